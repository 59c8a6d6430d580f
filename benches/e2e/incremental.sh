#!/usr/bin/env bash
# incremental.sh - incremental backup benchmark on a sysbench dataset with
# about 1 % of its pages changed since the base, tools alternating per round.
#
#   benches/e2e/incremental.sh [--flavor mariadb1011|mysql97] [--size-gb N]
#                              [--rounds R] [--changed-pct P | --changed-pages N]
#                              [--workdir DIR] [--keep]
#
# mariadb1011: xb-cli backup --incremental-basedir against mariadb-backup
#   --backup --incremental-basedir (its default of 1 thread, and --parallel=4,
#   xb's default, plus a sync so both end on disk), on the same base.
# mysql97: xb-cli incremental with and without --page-tracking (MySQL 9.7
#   has no vendor backup tool); run it at two --size-gb to see whether the
#   time follows the changed pages or the data size.
# Prints median wall, CPU, peak RSS and bytes written per run, and the ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
flavor=mariadb1011 size_gb=2 rounds=3 pct=1 npages= work= keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --flavor) flavor=$2; shift 2 ;;
        --size-gb) size_gb=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --changed-pct) pct=$2; shift 2 ;;
        --changed-pages) npages=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "usage: $0 [--flavor mariadb1011|mysql97] [--size-gb N] [--rounds R] [--changed-pct P | --changed-pages N] [--workdir DIR] [--keep]" >&2; exit 2 ;;
    esac
done
case $flavor in mariadb1011|mysql97) ;; *) echo "--flavor is mariadb1011 or mysql97" >&2; exit 2 ;; esac
work=${work:-${XB_BENCH_DIR:-/tmp/xb-bench}-$flavor-inc-$size_gb}
command -v sysbench >/dev/null || { echo "sysbench missing: apt-get install -y sysbench" >&2; exit 1; }
db="$here/scripts/db.sh"
data="$work/data" port=${XB_BENCH_PORT:-3498}
mkdir -p "$work"
cargo build -q --release -p xb-cli --manifest-path "$here/Cargo.toml"
xb="${CARGO_TARGET_DIR:-$here/target}/release/xb-cli"
args="--innodb-buffer-pool-size=1G --log-bin=binlog --server-id=1"
if [ "$flavor" = mysql97 ]; then args="$args --innodb-redo-log-capacity=1G"; else args="$args --innodb-log-file-size=1G"; fi
XB_MYSQLD_ARGS="$args" "$db" "$flavor" start "$data" "$port" >/dev/null
cleanup() { [ "$keep" = 1 ] || "$db" "$flavor" stop "$data" >/dev/null 2>&1 || true; }
trap cleanup EXIT
sql() { "$db" "$flavor" client "$data" -N -e "$1"; }

# sysbench rows are ~ 230 bytes on disk; 8 tables
rows=$(( size_gb * 1024 * 1024 * 1024 / 8 / 230 ))
if [ ! -f "$work/.loaded" ] && [ ! -f "$work/.loaded-$size_gb" ]; then
    echo "loading ~${size_gb} GB: 8 tables x $rows rows" >&2
    sql "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
    sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user=xb \
        --mysql-password=xb --mysql-db=sbtest --tables=8 --table-size="$rows" --threads=2 prepare >/dev/null
    touch "$work/.loaded"
fi
echo "dataset: $(du -sb "$data" | cut -f1) bytes in $data" >&2
conn=(--host=127.0.0.1 --port="$port" --user=xb --password=xb)
tracking=()
if [ "$flavor" = mysql97 ]; then
    [ "$(sql "SELECT COUNT(*) FROM mysql.component WHERE component_urn='file://component_mysqlbackup'")" = 1 ] ||
        sql "INSTALL COMPONENT 'file://component_mysqlbackup'"
    tracking=(--page-tracking)
fi

# the base: a full xb backup (with tracking on, on MySQL)
rm -rf "$work/base"
"$xb" backup "${conn[@]}" "${tracking[@]}" --target-dir="$work/base" 2>"$work/base.log"
# about pct % of the pages: one row updated on that many distinct pages
# (--changed-pages: the same number at every data size, to see what the
# time follows)
pages=${npages:-$(( $(du -sb "$data/sbtest" | cut -f1) / 16384 * pct / 100 ))}
per_table=$(( pages / 8 ))
step=$(( rows / (per_table + 1) ))
echo "changing ~$pages pages (one row every $step ids in each table)" >&2
for t in $(seq 8); do
    sql "UPDATE sbtest.sbtest$t SET k = k + 1 WHERE id % $step = 0"
done
# let the server write them out, as a night's changes would be
sql "SET GLOBAL innodb_max_dirty_pages_pct = 0"; sleep 20
sql "SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT"

cnf="$data.run/my.cnf"
measure() { # name cmd... ; appends "name wall cpu rss bytes" to $work/results
    local name=$1; shift
    rm -rf "$work/out"; mkdir -p "$work/out"
    sync
    /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" bash -c "$*" >/dev/null 2>"$work/$name.log" || {
        echo "$name failed, see $work/$name.log" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
    read -r wall user sys rss < "$work/time.txt"
    echo "$name $wall $(awk "BEGIN{print $user + $sys}") $rss $(du -sb "$work/out" | cut -f1)" >> "$work/results"
}
: > "$work/results"
names=() cmds=()
run() { names+=("$1"); cmds+=("$2"); }
run xb-inc "'$xb' backup ${conn[*]} --parallel=4 --incremental-basedir='$work/base' --target-dir='$work/out/i'"
if [ "$flavor" = mariadb1011 ]; then
    mb="'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --incremental-basedir='$work/base' --target-dir='$work/out/i'"
    run mb-inc "$mb"
    run mb-inc-p4+sync "$mb --parallel=4 && sync"
else
    run xb-inc-tracked "'$xb' backup ${conn[*]} --parallel=4 --page-tracking --incremental-basedir='$work/base' --target-dir='$work/out/i'"
fi
for r in $(seq "$rounds"); do
    echo "round $r/$rounds" >&2
    order=$(seq 0 $(( ${#names[@]} - 1 )))
    [ $(( r % 2 )) -eq 0 ] && order=$(echo "$order" | tac)
    for i in $order; do
        measure "${names[$i]}" "${cmds[$i]}"
    done
done
grep -h "every page is read" "$work"/*.log >&2 || true
python3 - "$work/results" "$flavor" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    n, wall, cpu, rss, out = line.split()
    rows.setdefault(n, []).append((float(wall), float(cpu), int(rss), int(out)))
med = {n: tuple(st.median(v[i] for v in vs) for i in range(4)) for n, vs in rows.items()}
print(f"{'run':16} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>13} {'written MiB':>12}")
for n, (w, c, r, o) in med.items():
    print(f"{n:16} {w:8.2f} {c:8.2f} {r/1024:13.1f} {o/2**20:12.1f}")
pairs = (("xb-inc", "mb-inc-p4+sync", "equal settings (--parallel=4, both on disk)"),
         ("xb-inc", "mb-inc", "each tool's default (xb 4 workers, mariadb-backup 1)"),
         ("xb-inc-tracked", "xb-inc", "xb with --page-tracking against xb reading every page"))
for a, b, title in pairs:
    if a in med and b in med:
        print(f"{title}: {a}/{b} wall {med[a][0]/med[b][0]:.2f}x  cpu {med[a][1]/med[b][1]:.2f}x  rss {med[a][2]/med[b][2]:.2f}x  written {med[a][3]/med[b][3]:.2f}x")
PY
