#!/usr/bin/env bash
# many_tables.sh - a schema of many small tables, xb-cli vs mariadb-backup,
# in the same run on the same server.
#
#   benches/e2e/many_tables.sh [--tables N] [--rounds R] [--workdir DIR]
#
# Uses the MariaDB 10.11 of backup_vs_mariadb_backup.sh (run that once
# first, same --workdir), adds a schema `many` of N small InnoDB tables
# (default 20,000; two rows each) and 200 MyISAM tables once, then backs up
# that schema alone (--databases=many) to a directory (mariadb-backup
# only when the open-files hard limit is above the table count, see below):
#   xb              xb, --parallel=4 (its default)
#   mb-p4+sync      mariadb-backup --parallel=4, then sync (equal settings)
#   mb+sync         mariadb-backup at its default (1 thread), then sync
# and prints medians of wall, CPU and peak RSS, and the ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tables=20000 rounds=3 work=${XB_BENCH_DIR:-/tmp/xb-bench}
while [ $# -gt 0 ]; do
    case $1 in
        --tables) tables=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        *) echo "usage: $0 [--tables N] [--rounds R] [--workdir DIR]" >&2; exit 2 ;;
    esac
done
. "$here/benches/e2e/lib.sh"
bench_start
if [ ! -f "$work/.loaded-many-$tables" ]; then
    echo "creating $tables tables in schema many (about 4 ms each)" >&2
    python3 - "$tables" > "$work/many.sql" <<'PY'
import sys
n = int(sys.argv[1])
print("SET SESSION sql_log_bin=0; DROP DATABASE IF EXISTS many; CREATE DATABASE many; USE many;")
for i in range(n):
    print(f"CREATE TABLE t{i} (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB; INSERT INTO t{i} VALUES (1,'x'),(2,'y');")
for i in range(200):
    print(f"CREATE TABLE m{i} (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=MyISAM; INSERT INTO m{i} VALUES (1,'x');")
PY
    "$db" mariadb1011 client "$data" < "$work/many.sql" >/dev/null
    rm -f "$work"/.loaded-many-*
    touch "$work/.loaded-many-$tables"
fi
# mariadb-backup keeps every tablespace open at once: past the open-files
# limit it fails ("Too many open files"). It gets the hard limit; with more
# tables than that it cannot run here, and only xb is measured (xb keeps
# about --parallel files open).
hard=$(ulimit -Hn)
mb="ulimit -n $hard && '$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --open-files-limit=$hard --databases=many --target-dir='$out/b'"
names=(xb) cmds=("'$xb' backup ${conn[*]} --parallel=4 --databases=many --target-dir='$out/b'")
if [ "$hard" != unlimited ] && [ "$tables" -ge "$hard" ]; then
    echo "mariadb-backup not run: $tables tables need more open files than the hard limit of $hard" >&2
else
    names+=(mb-p4+sync mb+sync)
    cmds+=("$mb --parallel=4 && sync" "$mb && sync")
fi
rounds "$work/results-many" "$rounds"
python3 - "$work/results-many" "$tables" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    n, wall, cpu, rss, size = line.split()
    rows.setdefault(n, []).append((float(wall), float(cpu), int(rss)))
med = {n: tuple(st.median(v[i] for v in vs) for i in range(3)) for n, vs in rows.items()}
print(f"{sys.argv[2]} tables")
print(f"{'run':12} {'wall s':>8} {'cpu s':>8} {'RSS MiB':>8}")
for n, (w, c, r) in med.items():
    print(f"{n:12} {w:8.2f} {c:8.2f} {r/1024:8.1f}")
if 'mb-p4+sync' in med:
    print(f"equal settings (--parallel=4 both, both on disk): wall xb/mb-p4+sync {med['xb'][0]/med['mb-p4+sync'][0]:.2f}x")
    print(f"each tool's defaults: wall xb/mb+sync {med['xb'][0]/med['mb+sync'][0]:.2f}x")
PY
