#!/usr/bin/env bash
# backup_to_s3.sh - backups into a local S3 server: xb-cli straight to S3 vs
# xb-cli to a local directory vs mariadb-backup's stream piped into the AWS
# CLI's upload, in the same run on the same dataset.
#
#   benches/e2e/backup_to_s3.sh [--size-gb N] [--rounds R] [--workdir DIR] [--keep]
#
# Starts a MariaDB 10.11 (scripts/db.sh) with a sysbench dataset of about N GB
# (default 2; the dataset of backup_vs_mariadb_backup.sh, reused from the same
# workdir) and an S3 server (scripts/objstore.sh: s3s-fs, objects as files on
# the same disk). Each round runs, alternating the order:
#   xb-dir        xb-cli backup --target-dir (O_DIRECT, fdatasync)
#   xb-s3         xb-cli backup --target s3://bench/NAME (one object per file)
#   mb-s3-p4      mariadb-backup --parallel=4 --stream=xbstream | aws s3 cp - s3://bench/NAME.xbs
#   mb-s3         the same at mariadb-backup's default (1 thread)
#   xb-s3-zstd    xb-cli backup --target s3://... --compress (zstd -1)
#   mb-s3-zstd-p4 mariadb-backup --parallel=4 --stream | zstd -1 -T2 | aws s3 cp -
# Every run ends with `sync`, so the S3 server's files are on disk for all.
# Printed: wall, CPU (user+sys of the backup's processes), peak RSS (of the
# largest process of the run), the S3 server's own CPU, medians over the
# rounds, and the ratios at equal settings and at each tool's defaults.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
size_gb=2 rounds=3 work=${XB_BENCH_DIR:-/tmp/xb-bench} keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --size-gb) size_gb=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "usage: $0 [--size-gb N] [--rounds R] [--workdir DIR] [--keep]" >&2; exit 2 ;;
    esac
done
command -v sysbench >/dev/null || { echo "sysbench missing: apt-get install -y sysbench" >&2; exit 1; }
command -v zstd >/dev/null || { echo "zstd missing: apt-get install -y zstd" >&2; exit 1; }
command -v aws >/dev/null || pip install --quiet awscli
db="$here/scripts/db.sh" objstore="$here/scripts/objstore.sh"
data="$work/data" port=${XB_BENCH_PORT:-3499} s3port=${XB_BENCH_S3_PORT:-9499}
mkdir -p "$work"
cargo build -q --release -p xb-cli --manifest-path "$here/Cargo.toml"
xb="${CARGO_TARGET_DIR:-$here/target}/release/xb-cli"

XB_MYSQLD_ARGS="--innodb-buffer-pool-size=1G --innodb-log-file-size=512M --log-bin=binlog --server-id=1" \
    "$db" mariadb1011 start "$data" "$port" >/dev/null
"$objstore" s3 stop "$work/s3" >/dev/null 2>&1 || true
rm -rf "$work/s3"
"$objstore" s3 start "$work/s3" "$s3port"
"$objstore" s3 bucket "$work/s3" "$s3port" bench
cleanup() {
    "$objstore" s3 stop "$work/s3" >/dev/null 2>&1 || true
    [ "$keep" = 1 ] || "$db" mariadb1011 stop "$data" >/dev/null 2>&1 || true
}
trap cleanup EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$s3port" AWS_ACCESS_KEY_ID=AK AWS_SECRET_ACCESS_KEY=SK AWS_REGION=us-east-1

rows=$(( size_gb * 1024 * 1024 * 1024 / 8 / 230 ))
if [ ! -f "$work/.loaded-$size_gb" ]; then
    echo "loading ~${size_gb} GB: 8 tables x $rows rows" >&2
    "$db" mariadb1011 client "$data" -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
    sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user=xb \
        --mysql-password=xb --mysql-db=sbtest --tables=8 --table-size="$rows" --threads=2 prepare >/dev/null
    touch "$work/.loaded-$size_gb"
fi
echo "dataset: $(du -sb "$data" | cut -f1) bytes in $data" >&2

cnf="$data.run/my.cnf"
conn=(--host=127.0.0.1 --port="$port" --user=xb --password=xb)
mb="'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --target-dir='$work/out/b'"
# CPU seconds (in ticks) the S3 server has used: on a small machine the
# store's own work is what caps every upload
server_cpu() { awk '{print $14 + $15}' "/proc/$(cat "$work/s3/pid")/stat"; }
measure() { # name cmd... ; appends "name wall cpu rss" to $work/results
    local name=$1; shift
    rm -rf "$work/out" "$work/s3/data/bench/"*; mkdir -p "$work/out"
    sync
    local s0; s0=$(server_cpu)
    /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" bash -o pipefail -c "$* && sync" >/dev/null 2>"$work/$name.log" || {
        echo "$name failed, see $work/$name.log" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
    read -r wall user sys rss < "$work/time.txt"
    echo "$name $wall $(awk "BEGIN{print $user + $sys}") $rss $(awk "BEGIN{print ($(server_cpu) - $s0) / 100}")" >> "$work/results"
    echo "  $name: ${wall}s, $(du -sb "$work/s3/data/bench" | cut -f1) bytes in the bucket" >&2
}
: > "$work/results"
names=() cmds=()
run() { names+=("$1"); cmds+=("$2"); }
run xb-dir "'$xb' backup ${conn[*]} --parallel=4 --target-dir='$work/out/b'"
run xb-s3 "'$xb' backup ${conn[*]} --parallel=4 --target=s3://bench/full"
run mb-s3-p4 "$mb --parallel=4 --stream=xbstream | aws s3 cp - s3://bench/full.xbs"
run mb-s3 "$mb --stream=xbstream | aws s3 cp - s3://bench/full.xbs"
run xb-s3-zstd "'$xb' backup ${conn[*]} --parallel=4 --compress=zstd --target=s3://bench/full"
run mb-s3-zstd-p4 "$mb --parallel=4 --stream=xbstream | zstd -1 -T2 -q | aws s3 cp - s3://bench/full.xbs.zst"
for r in $(seq "$rounds"); do
    echo "round $r/$rounds" >&2
    order=$(seq 0 $(( ${#names[@]} - 1 )))
    [ $(( r % 2 )) -eq 0 ] && order=$(echo "$order" | tac)
    for i in $order; do
        measure "${names[$i]}" "${cmds[$i]}"
    done
done
python3 - "$work/results" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    n, wall, cpu, rss, server = line.split()
    rows.setdefault(n, []).append((float(wall), float(cpu), int(rss), float(server)))
med = {n: tuple(st.median(v[i] for v in vs) for i in range(4)) for n, vs in rows.items()}
print(f"{'run':16} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>13} {'S3 server cpu s':>16}")
for n, (w, c, r, sv) in med.items():
    print(f"{n:16} {w:8.2f} {c:8.2f} {r/1024:13.1f} {sv:16.2f}")
pairs = (
    ("S3 against a local directory (target: <= 1.2x)", (("xb-s3", "xb-dir"),)),
    ("equal settings (--parallel=4 both; zstd -1 both)", (("xb-s3", "mb-s3-p4"), ("xb-s3-zstd", "mb-s3-zstd-p4"))),
    ("each tool's defaults (xb 4 workers, mariadb-backup 1)", (("xb-s3", "mb-s3"),)),
)
for title, ps in pairs:
    print(title)
    for a, b in ps:
        if a in med and b in med:
            print(f"  ratio {a}/{b}: wall {med[a][0]/med[b][0]:.2f}x  cpu {med[a][1]/med[b][1]:.2f}x  rss {med[a][2]/med[b][2]:.2f}x")
PY
