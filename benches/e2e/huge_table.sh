#!/usr/bin/env bash
# huge_table.sh - one huge table against many, xb-cli vs mariadb-backup, in
# the same run on the same server.
#
#   benches/e2e/huge_table.sh [--rounds R] [--workdir DIR]
#
# Uses the MariaDB 10.11 and the 8-table sysbench dataset of
# backup_vs_mariadb_backup.sh (run that once first, same --workdir), adds a
# schema `sbbig` with one table of about 3.2 GB (the rows of the 8 tables,
# and 3 of them again) once, then for each round backs up each schema alone
# (--databases) to a directory:
#   xb-big          xb, --parallel=4, ranges of the huge table shared (default)
#   xb-big-whole    xb, --parallel=4, --split-at 0 (each file by one worker)
#   mb-big-p4+sync  mariadb-backup --parallel=4, then sync (both end on disk)
#   xb-8 / mb-8-p4+sync   the same for the 8 tables of `sbtest`
# and prints medians of wall, CPU, peak RSS and MB/s of the backup's size,
# the ratios at equal settings, and the huge table's rate against the 8
# tables' (the target: within 15 %).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
rounds=3 work=${XB_BENCH_DIR:-/tmp/xb-bench}
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        *) echo "usage: $0 [--rounds R] [--workdir DIR]" >&2; exit 2 ;;
    esac
done
. "$here/benches/e2e/lib.sh"
bench_start
if [ ! -f "$work/.loaded-big" ]; then
    echo "loading sbbig.big (about 3.2 GB, a few minutes)" >&2
    sql="SET SESSION sql_log_bin=0; DROP DATABASE IF EXISTS sbbig; CREATE DATABASE sbbig;
         CREATE TABLE sbbig.big LIKE sbtest.sbtest1;"
    for t in 1 2 3 4 5 6 7 8 1 2 3; do
        sql="$sql INSERT INTO sbbig.big (k,c,pad) SELECT k,c,pad FROM sbtest.sbtest$t;"
    done
    "$db" mariadb1011 client "$data" -e "$sql"
    touch "$work/.loaded-big"
fi
ls -l "$data/sbbig/big.ibd" >&2
mb="'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --parallel=4 --target-dir='$out/b'"
names=(xb-big xb-big-whole mb-big-p4+sync xb-8 mb-8-p4+sync)
cmds=(
    "'$xb' backup ${conn[*]} --parallel=4 --databases=sbbig --target-dir='$out/b'"
    "'$xb' backup ${conn[*]} --parallel=4 --split-at 0 --databases=sbbig --target-dir='$out/b'"
    "$mb --databases=sbbig && sync"
    "'$xb' backup ${conn[*]} --parallel=4 --databases=sbtest --target-dir='$out/b'"
    "$mb --databases=sbtest && sync"
)
rounds "$work/results-huge" "$rounds"
python3 - "$work/results-huge" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    n, wall, cpu, rss, size = line.split()
    rows.setdefault(n, []).append((float(wall), float(cpu), int(rss), int(size)))
med = {n: tuple(st.median(v[i] for v in vs) for i in range(4)) for n, vs in rows.items()}
print(f"{'run':16} {'wall s':>8} {'cpu s':>8} {'RSS MiB':>8} {'GB':>6} {'MB/s':>7}")
for n, (w, c, r, b) in med.items():
    print(f"{n:16} {w:8.2f} {c:8.2f} {r/1024:8.1f} {b/1e9:6.2f} {b/1e6/w:7.0f}")
rate = lambda n: med[n][3] / med[n][0]
print("equal settings (--parallel=4 both, both on disk):")
for a, b in (("xb-big", "mb-big-p4+sync"), ("xb-8", "mb-8-p4+sync")):
    print(f"  wall {a}/{b}: {med[a][0]/med[b][0]:.2f}x")
print(f"one huge table against 8 tables, per byte: xb {rate('xb-8')/rate('xb-big'):.2f}x the time "
      f"(whole-file copy: {rate('xb-8')/rate('xb-big-whole'):.2f}x), mariadb-backup {rate('mb-8-p4+sync')/rate('mb-big-p4+sync'):.2f}x")
PY
