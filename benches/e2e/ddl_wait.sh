#!/usr/bin/env bash
# ddl_wait.sh - what a backup costs the server it protects: a stream of DDL
# and a stream of commits run through a backup by xb and by mariadb-backup
# (MariaDB 10.11, same dataset, tools alternating per round).
#
#   benches/e2e/ddl_wait.sh [--size-gb N] [--rounds R] [--cold] [--backlog] [--aria-mb M]
#                           [--workdir DIR] [--keep]
#
# --cold drops the page cache before each run (needs root), so the copy
# reads from disk and lasts long enough for the streams to matter.
# --backlog updates every row once before each run, so the backup starts
# with a large checkpoint age (a busy server): its redo copy has a backlog
# to copy before the end point is reached.
# --aria-mb M adds a transactional Aria table of about M MiB, and a third
# stream updating 100 of its rows every 0.05 s (Aria log written all along,
# in 8 MiB log files): what copying Aria costs the commits.
# XB_BEFORE=/path/to/xb-cli adds an older xb build to each round, at the
# same settings as xb.
#
# Both tools at --parallel=4 (xb's default; mariadb-backup's is 1, run too)
# and ending with data on disk (mariadb-backup followed by sync; xb
# fdatasyncs its files). Per run: backup wall time; the DDL statements
# (CREATE, INSERT, ALTER ADD COLUMN, RENAME, DROP on small tables, one
# every 0.2 s) that started during the backup and how many of them
# completed before it ended; the longest any of them took; the longest a
# single-row autocommit INSERT (one every 0.05 s) took. Statement times are
# the server's own (NOW(6) before and after, in one session per stream).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
size_gb=1 rounds=3 work= keep=0 cold=0 backlog=0 aria_mb=0
while [ $# -gt 0 ]; do
    case $1 in
        --size-gb) size_gb=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --cold) cold=1; shift ;;
        --backlog) backlog=1; shift ;;
        --aria-mb) aria_mb=$2; shift 2 ;;
        *) echo "usage: $0 [--size-gb N] [--rounds R] [--cold] [--backlog] [--aria-mb M] [--workdir DIR] [--keep]" >&2; exit 2 ;;
    esac
done
flavor=mariadb1011
work=${work:-${XB_BENCH_DIR:-/tmp/xb-bench}-ddl-$size_gb-aria-$aria_mb}
command -v sysbench >/dev/null || { echo "sysbench missing: apt-get install -y sysbench" >&2; exit 1; }
db="$here/scripts/db.sh"
data="$work/data" port=${XB_BENCH_PORT:-3499}
mkdir -p "$work"
cargo build -q --release -p xb-cli --manifest-path "$here/Cargo.toml"
xb="${CARGO_TARGET_DIR:-$here/target}/release/xb-cli"
XB_MYSQLD_ARGS="--innodb-buffer-pool-size=1G --innodb-log-file-size=1G --log-bin=binlog --server-id=1 --aria-log-file-size=8388608" \
    "$db" "$flavor" start "$data" "$port" >/dev/null
streams=()
# the client runs under wrapper scripts: stop it and everything under it
killtree() { local c; for c in $(pgrep -P "$1"); do killtree "$c"; done; kill "$1" 2>/dev/null || true; }
cleanup() {
    for p in "${streams[@]}"; do killtree "$p"; done
    [ "$keep" = 1 ] || "$db" "$flavor" stop "$data" >/dev/null 2>&1 || true
}
trap cleanup EXIT
sql() { "$db" "$flavor" client "$data" -N -e "$1"; }

rows=$(( size_gb * 1024 * 1024 * 1024 / 8 / 230 ))
if [ ! -f "$work/.loaded" ]; then
    echo "loading ~${size_gb} GB: 8 tables x $rows rows" >&2
    sql "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
    sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user=xb \
        --mysql-password=xb --mysql-db=sbtest --tables=8 --table-size="$rows" --threads=2 prepare >/dev/null
    if [ "$aria_mb" -gt 0 ]; then
        echo "loading ~${aria_mb} MiB of transactional Aria" >&2
        sql "DROP DATABASE IF EXISTS ariab; CREATE DATABASE ariab;
             CREATE TABLE ariab.big (id INT PRIMARY KEY, n INT NOT NULL DEFAULT 0, pad CHAR(255)) ENGINE=Aria TRANSACTIONAL=1;
             INSERT INTO ariab.big (id, pad) SELECT seq, REPEAT('a', 255) FROM ariab.seq_1_to_$(( aria_mb * 1024 * 1024 / 270 ))"
    fi
    touch "$work/.loaded"
fi
sql "DROP DATABASE IF EXISTS ddlb; CREATE DATABASE ddlb; CREATE TABLE ddlb.probe (id INT AUTO_INCREMENT PRIMARY KEY, at DOUBLE) ENGINE=InnoDB"
echo "dataset: $(du -sb "$data" | cut -f1) bytes in $data" >&2
conn=(--host=127.0.0.1 --port="$port" --user=xb --password=xb)
cnf="$data.run/my.cnf"

# one client session per stream, each statement between two server clocks
ddl_script() {
    local i
    for i in $(seq 1 100000); do
        for s in "CREATE TABLE ddlb.t$i (id INT PRIMARY KEY, v INT) ENGINE=InnoDB" \
                 "INSERT INTO ddlb.t$i VALUES (1,1),(2,2),(3,3)" \
                 "ALTER TABLE ddlb.t$i ADD COLUMN w INT DEFAULT 7" \
                 "RENAME TABLE ddlb.t$i TO ddlb.r$i" \
                 "DROP TABLE ddlb.r$i"; do
            echo "SELECT UNIX_TIMESTAMP(NOW(6)); $s; SELECT UNIX_TIMESTAMP(NOW(6)); DO SLEEP(0.2);"
        done
    done
}
commit_script() {
    for _ in $(seq 1 1000000); do
        echo "SELECT UNIX_TIMESTAMP(NOW(6)); INSERT INTO ddlb.probe (at) VALUES (UNIX_TIMESTAMP(NOW(6))); SELECT UNIX_TIMESTAMP(NOW(6)); DO SLEEP(0.05);"
    done
}
aria_rows=$(( aria_mb * 1024 * 1024 / 270 ))
aria_script() {
    local i
    for i in $(seq 0 1000000); do
        echo "UPDATE ariab.big SET n = n + 1 WHERE id BETWEEN $(( (i * 100) % (aria_rows - 100) + 1 )) AND $(( (i * 100) % (aria_rows - 100) + 100 )); DO SLEEP(0.05);"
    done
}
start_stream() { # script-fn out-file
    "$1" | "$db" "$flavor" client "$data" -N -B --unbuffered > "$2" 2>/dev/null &
    streams+=($!)
}

: > "$work/results"
measure() { # name cmd...
    local name=$1; shift
    rm -rf "$work/out"; mkdir -p "$work/out"
    if [ "$backlog" = 1 ]; then
        for t in $(seq 1 8); do sql "UPDATE sbtest.sbtest$t SET k = k + 1"; done
    fi
    sync
    [ "$cold" = 1 ] && echo 3 > /proc/sys/vm/drop_caches
    start_stream ddl_script "$work/ddl.times"
    start_stream commit_script "$work/commit.times"
    [ "$aria_mb" -gt 0 ] && start_stream aria_script /dev/null
    sleep 2
    local t0 t1
    t0=$(date +%s.%N)
    bash -c "$*" >/dev/null 2>"$work/$name.log" || {
        echo "$name failed, see $work/$name.log" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
    t1=$(date +%s.%N)
    sleep 2
    for p in "${streams[@]}"; do killtree "$p"; done
    wait 2>/dev/null || true
    streams=()
    sql "DROP DATABASE ddlb; CREATE DATABASE ddlb; CREATE TABLE ddlb.probe (id INT AUTO_INCREMENT PRIMARY KEY, at DOUBLE) ENGINE=InnoDB"
    python3 - "$name" "$t0" "$t1" "$work/ddl.times" "$work/commit.times" >> "$work/results" <<'PY'
import sys
name, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def spans(path):
    v = [float(x) for x in open(path).read().split()]
    # a statement still running when its stream stopped has no end
    ends = v[1::2] + [None] * (len(v) % 2)
    return list(zip(v[0::2], ends))
ddl = [(a, b) for a, b in spans(sys.argv[4]) if t0 <= a < t1]
started = len(ddl)
done = sum(1 for a, b in ddl if b is not None and b <= t1)
# one still waiting at the end waited at least until the backup ended
longest_ddl = max([(b if b is not None else t1) - a for a, b in ddl] + [0.0])
commits = [(b if b is not None else t1) - a for a, b in spans(sys.argv[5]) if t0 <= a < t1]
print(name, f"{t1 - t0:.2f}", started, done, f"{longest_ddl:.3f}", f"{max(commits + [0.0]):.3f}")
PY
}
names=() cmds=()
run() { names+=("$1"); cmds+=("$2"); }
run xb "'$xb' backup ${conn[*]} --parallel=4 --lock-ddl=reduced --target-dir='$work/out/b'"
[ -n "${XB_BEFORE:-}" ] && run xb-before "'$XB_BEFORE' backup ${conn[*]} --parallel=4 --lock-ddl=reduced --target-dir='$work/out/b'"
mb="'$db' $flavor exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --target-dir='$work/out/b'"
run mb-p4+sync "$mb --parallel=4 && sync"
run mb-default+sync "$mb && sync"
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
    n, wall, started, done, ddl, commit = line.split()
    rows.setdefault(n, []).append((float(wall), int(started), int(done), float(ddl), float(commit)))
print(f"{'run':16} {'wall s':>8} {'DDL started':>12} {'DDL done':>9} {'longest DDL s':>14} {'longest commit s':>17}")
for n, vs in rows.items():
    m = [st.median(v[i] for v in vs) for i in range(5)]
    print(f"{n:16} {m[0]:8.2f} {m[1]:12.0f} {m[2]:9.0f} {m[3]:14.3f} {m[4]:17.3f}")
print("medians of", len(next(iter(rows.values()))), "rounds; xb, xb-before and mb-p4+sync are at equal settings, mb-default+sync is mariadb-backup's default (1 thread)")
PY
