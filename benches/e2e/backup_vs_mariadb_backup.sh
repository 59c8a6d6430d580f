#!/usr/bin/env bash
# backup_vs_mariadb_backup.sh - end-to-end backup benchmark, xb-cli vs mariadb-backup,
# measured in the same run on the same dataset, alternating the two tools.
#
#   benches/e2e/backup_vs_mariadb_backup.sh [--size-gb N] [--rounds R] [--workdir DIR] [--keep]
#
# Starts a MariaDB 10.11 (scripts/db.sh), loads a sysbench dataset of about N GB
# (default 2) once (reused by later runs from the same workdir), then for each round runs
#   1. xb-cli backup --target-dir        2. mariadb-backup --backup --target-dir
#   3. xb-cli backup --stream=xbstream > file
#   4. mariadb-backup --backup --stream=xbstream > file
#   5./6. the same streams compressed (xb: --compress=zstd;
#      mariadb-backup: piped through zstd -1 -T2)
# mariadb-backup runs at its default (1 thread) and at --parallel=4, xb's
# default; the ratios are printed for equal settings and for defaults.
# under /usr/bin/time -v, and prints wall time, CPU (user+sys), peak RSS and the
# xb/mariadb-backup ratios (medians over the rounds). Page cache is warm for both;
# `sync` runs before each measurement; even rounds run the list backwards. xb
# writes every file to disk (O_DIRECT, fdatasync); mariadb-backup leaves that
# to the kernel, hence the extra "mariadb-backup + sync" run.
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
db="$here/scripts/db.sh"
data="$work/data" port=${XB_BENCH_PORT:-3499}
mkdir -p "$work"
cargo build -q --release -p xb-cli --manifest-path "$here/Cargo.toml"
xb="${CARGO_TARGET_DIR:-$here/target}/release/xb-cli"

XB_MYSQLD_ARGS="--innodb-buffer-pool-size=1G --innodb-log-file-size=512M --log-bin=binlog --server-id=1" \
    "$db" mariadb1011 start "$data" "$port" >/dev/null
cleanup() { [ "$keep" = 1 ] || "$db" mariadb1011 stop "$data" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# sysbench rows are ~ 230 bytes on disk; 8 tables
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
measure() { # name cmd... ; appends "name wall cpu rss" to $work/results
    local name=$1; shift
    rm -rf "$work/out"; mkdir -p "$work/out"
    # no run pays for the previous run's dirty pages
    sync
    /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" bash -c "$*" >/dev/null 2>"$work/$name.log" || {
        echo "$name failed, see $work/$name.log" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
    read -r wall user sys rss < "$work/time.txt"
    echo "$name $wall $(awk "BEGIN{print $user + $sys}") $rss" >> "$work/results"
}
: > "$work/results"
# the runs, in the order of odd rounds; even rounds run them backwards, so
# no tool always inherits the page-cache state the same other run left
names=() cmds=()
run() { names+=("$1"); cmds+=("$2"); }
# xb runs with --parallel=4, its default, spelled out; mariadb-backup runs at
# its default (1 thread) and at --parallel=4, the equal setting
run xb-dir "'$xb' backup ${conn[*]} --parallel=4 --target-dir='$work/out/b'"
run mb-dir "'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --target-dir='$work/out/b'"
# mariadb-backup leaves its output in the page cache; xb writes every file
# to disk (O_DIRECT, fdatasync). With a sync after it, both end on disk.
run mb-dir+sync "'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --target-dir='$work/out/b' && sync"
run mb-dir-p4+sync "'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --parallel=4 --target-dir='$work/out/b' && sync"
run xb-stream "'$xb' backup ${conn[*]} --parallel=4 --stream=xbstream > '$work/out/s.xbs'"
run mb-stream "'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --stream=xbstream --target-dir='$work/out/b' > '$work/out/s.xbs'"
run mb-stream-p4 "'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --parallel=4 --stream=xbstream --target-dir='$work/out/b' > '$work/out/s.xbs'"
# zstd level 1 on both sides (xb's default level is 1, as xtrabackup's)
run xb-zstd "'$xb' backup ${conn[*]} --parallel=4 --stream=xbstream --compress=zstd > '$work/out/s.xbs'"
run mb-zstd "'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --stream=xbstream --target-dir='$work/out/b' | zstd -1 -T2 -q > '$work/out/s.zst'"
run mb-zstd-p4 "'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --parallel=4 --stream=xbstream --target-dir='$work/out/b' | zstd -1 -T2 -q > '$work/out/s.zst'"
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
    n, wall, cpu, rss = line.split()
    rows.setdefault(n, []).append((float(wall), float(cpu), int(rss)))
med = {n: tuple(st.median(v[i] for v in vs) for i in range(3)) for n, vs in rows.items()}
print(f"{'run':16} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>13}")
for n, (w, c, r) in med.items():
    print(f"{n:16} {w:8.2f} {c:8.2f} {r/1024:13.1f}")
pairs = (
    ("equal settings (--parallel=4 both, zstd -1, both on disk)", (("xb-dir", "mb-dir-p4+sync"), ("xb-stream", "mb-stream-p4"), ("xb-zstd", "mb-zstd-p4"))),
    ("each tool's defaults (xb 4 workers, mariadb-backup 1)", (("xb-dir", "mb-dir"), ("xb-dir", "mb-dir+sync"), ("xb-stream", "mb-stream"), ("xb-zstd", "mb-zstd"))),
)
for title, ps in pairs:
    print(title)
    for a, b in ps:
        if a in med and b in med:
            print(f"  ratio {a}/{b}: wall {med[a][0]/med[b][0]:.2f}x  cpu {med[a][1]/med[b][1]:.2f}x  rss {med[a][2]/med[b][2]:.2f}x")
PY
