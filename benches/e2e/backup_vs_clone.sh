#!/usr/bin/env bash
# backup_vs_clone.sh - MySQL 9.7: `xb-cli backup` vs `CLONE LOCAL DATA DIRECTORY`
# on the same dataset, same run, alternating.
#
#   benches/e2e/backup_vs_clone.sh [--size-gb N] [--rounds R] [--workdir DIR] [--keep]
#
# Starts MySQL 9.7 (scripts/db.sh), loads a sysbench dataset of about N GB
# (default 2; reused by later runs from the same workdir), installs the clone
# plugin, then per round times both (wall, via /usr/bin/time for xb and the
# client's round trip for CLONE) and prints medians and the xb/CLONE ratio.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
size_gb=2 rounds=3 work=${XB_BENCH_DIR:-/tmp/xb-bench-clone} keep=0
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
db="$here/scripts/db.sh"
data="$work/data" port=${XB_BENCH_PORT:-3498}
mkdir -p "$work"
cargo build -q --release -p xb-cli --manifest-path "$here/Cargo.toml"
xb="${CARGO_TARGET_DIR:-$here/target}/release/xb-cli"
XB_MYSQLD_ARGS="--innodb-buffer-pool-size=1G --innodb-redo-log-capacity=1G" "$db" mysql97 start "$data" "$port" >/dev/null
cleanup() { [ "$keep" = 1 ] || "$db" mysql97 stop "$data" >/dev/null 2>&1 || true; }
trap cleanup EXIT
sql() { "$db" mysql97 client "$data" -N -B -e "$1"; }
rows=$(( size_gb * 1024 * 1024 * 1024 / 8 / 230 ))
if [ ! -f "$work/.loaded-$size_gb" ]; then
    echo "loading ~${size_gb} GB: 8 tables x $rows rows" >&2
    sql "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
    sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user=xb \
        --mysql-password=xb --mysql-db=sbtest --tables=8 --table-size="$rows" --threads=2 prepare >/dev/null
    touch "$work/.loaded-$size_gb"
fi
sql "INSTALL PLUGIN clone SONAME 'mysql_clone.so'" 2>/dev/null || true
echo "dataset: $(du -sb "$data" | cut -f1) bytes in $data" >&2
: > "$work/results"
for r in $(seq "$rounds"); do
    echo "round $r/$rounds" >&2
    rm -rf "$work/out"; sync
    /usr/bin/time -f '%e' -o "$work/t" "$xb" backup --host=127.0.0.1 --port="$port" --user=xb --password=xb \
        --target-dir="$work/out" >/dev/null 2>"$work/xb.log" || { tail -5 "$work/xb.log" >&2; exit 1; }
    echo "xb $(cat "$work/t")" >> "$work/results"
    rm -rf "$work/out"; sync
    t0=$(date +%s.%N)
    sql "CLONE LOCAL DATA DIRECTORY = '$work/out'"
    t1=$(date +%s.%N)
    echo "clone $(awk "BEGIN{print $t1 - $t0}")" >> "$work/results"
done
rm -rf "$work/out"
python3 - "$work/results" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    n, wall = line.split()
    rows.setdefault(n, []).append(float(wall))
med = {n: st.median(v) for n, v in rows.items()}
for n, w in med.items():
    print(f"{n:6} wall {w:6.2f} s (median of {len(rows[n])})")
print(f"ratio xb/clone: wall {med['xb']/med['clone']:.2f}x")
PY
