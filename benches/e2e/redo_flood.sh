#!/usr/bin/env bash
# redo_flood.sh - the redo copier under a flood of writes, xb-cli vs
# mariadb-backup, in the same run on the same server.
#
#   benches/e2e/redo_flood.sh [--throttle MIBS] [--mb-throttle MB_IOS] [--threads N]
#                             [--rounds R] [--workdir DIR]
#
# Uses the MariaDB 10.11 dataset of backup_vs_mariadb_backup.sh (run that
# once first, same --workdir), restarted with a 1 GiB redo log. For each
# run, `sysbench oltp_write_only --threads=N` (default 16) writes to the 8
# sbtest tables from 10 s before the backup (of that schema, --databases=sbtest)
# until it ends, and the data
# copy is throttled to MIBS (default 20) so that the backup lasts minutes:
#   xb   xb-cli backup --parallel=4 --throttle=MIBS
#   mb   mariadb-backup --parallel=4 --throttle=MB_IOS (default 5: its unit
#        is not 1 MiB; 5 gave about xb's 20 MiB/s here), then sync
# About once a second a sampler reads the server's LSN (Innodb_lsn_current)
# and xb's copied LSN from its --status-file (redo_copied_lsn). The lag is
# the difference, given in MiB and as a fraction of the log's capacity
# (p50, p99, max). Also printed: the server's redo rate and the copier's
# rate over the same span, each tool's CPU, the CPU of xb's copier thread
# (xb-redo-copy), and the redo each tool copied (from its own summary).
# mariadb-backup 10.11 does not say how far its copier is while it runs
# (no `log scanned up to` lines; its ib_logfile0 is not a byte image of
# the LSN range), so its lag is not sampled: only its rates and CPU.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
throttle=20 mb_throttle=5 threads=16 rounds=1 work=${XB_BENCH_DIR:-/tmp/xb-bench}
while [ $# -gt 0 ]; do
    case $1 in
        --throttle) throttle=$2; shift 2 ;;
        --mb-throttle) mb_throttle=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        *) echo "usage: $0 [--throttle MIBS] [--mb-throttle MB_IOS] [--threads N] [--rounds R] [--workdir DIR]" >&2; exit 2 ;;
    esac
done
command -v sysbench >/dev/null || { echo "sysbench missing: apt-get install -y sysbench" >&2; exit 1; }
bench_log_size=1G
. "$here/benches/e2e/lib.sh"
bench_start
sql() { "$db" mariadb1011 exec mariadb "${conn[@]}" -N -B -e "$1"; }
capacity=$(( $(sql "SELECT @@innodb_log_file_size") - 12288 ))
rows=$(sql "SELECT COUNT(*) FROM sbtest.sbtest1")
samples="$work/redo-samples"
: > "$work/results-redo"

# sample NAME PID: until PID ends, "time server_lsn copied_lsn" lines
sample() {
    local name=$1 pid=$2 copied
    : > "$samples.$name"
    while kill -0 "$pid" 2>/dev/null; do
        lsn=$(sql "SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'" | cut -f2)
        copied=0
        if [ "$name" = xb ]; then
            copied=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["redo_copied_lsn"])' \
                "$out/status.json" 2>/dev/null || echo 0)
        fi
        # xb's copier thread: the last reading before it ends is its total
        if [ "$name" = xb ]; then
            for t in /proc/"$(pgrep -n -f 'xb-cli backup')"/task/*; do
                [ "$(cat "$t/comm" 2>/dev/null)" = xb-redo-copy ] &&
                    awk '{print $14 + $15}' "$t/stat" > "$samples.$name.thread" 2>/dev/null
            done
        fi
        echo "$(date +%s.%N) $lsn ${copied:-0}" >> "$samples.$name"
        sleep 0.5
    done
}

# run NAME CMD: the backup under the flood, sampled
run() {
    local name=$1 cmd=$2
    rm -rf "$out"; mkdir -p "$out"; rm -f "$samples.$name.thread"
    sync
    sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user=xb \
        --mysql-password=xb --mysql-db=sbtest --tables=8 --table-size="$rows" \
        --threads="$threads" --time=3600 --report-interval=0 run > "$work/$name.sysbench" 2>&1 &
    local load=$!
    sleep 10
    /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" bash -c "$cmd" >/dev/null 2>"$work/$name.log" &
    local backup=$!
    sample "$name" "$backup" &
    local sampler=$!
    local rc=0
    wait "$backup" || rc=$?
    kill "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    wait "$sampler" || true
    [ "$rc" = 0 ] || { echo "$name failed, see $work/$name.log" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
    read -r wall user sys rss < "$work/time.txt"
    local thread=-
    [ -f "$samples.$name.thread" ] && thread=$(awk -v hz="$(getconf CLK_TCK)" '{print $1 / hz}' "$samples.$name.thread")
    # the redo range each tool says it copied
    local range
    range=$(grep -oE 'redo copied from LSN [0-9]+ to [0-9]+|Redo log \(from LSN [0-9]+ to [0-9]+\)' "$work/$name.log" |
        tail -1 | grep -oE '[0-9]+' | tail -2 | paste -sd' ')
    python3 - "$samples.$name" "$capacity" "$name" "$wall" "$(awk "BEGIN{print $user + $sys}")" "$thread" $range \
        >> "$work/results-redo" <<'PY'
import sys
path, cap, name, wall, cpu, thread, lo, hi = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
rows = [l.split() for l in open(path)]
rows = [(float(t), int(s), int(c)) for t, s, c in rows if s.isdigit() and c.isdigit()]
span = rows[-1][0] - rows[0][0]
server = (rows[-1][1] - rows[0][1]) / span
copied = [r for r in rows if r[2] > 0]  # from the copier's first report on
if len(copied) >= 2:
    lags = sorted(max(s - c, 0) for _, s, c in copied)
    q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]
    cspan = copied[-1][0] - copied[0][0]
    lag = (q(0.5), q(0.99), lags[-1], (copied[-1][2] - copied[0][2]) / cspan)
else:
    lag = ("-",) * 4
print(name, wall, cpu, thread, len(copied), *lag, server, int(hi) - int(lo), cap)
PY
}

xb_cmd="'$xb' backup ${conn[*]} --parallel=4 --throttle=$throttle --databases=sbtest --status-file='$out/status.json' --target-dir='$out/b'"
mb_cmd="'$db' mariadb1011 exec mariadb-backup --defaults-file='$cnf' --backup ${conn[*]} --parallel=4 --throttle=$mb_throttle --databases=sbtest --target-dir='$out/b' && sync"
for r in $(seq "$rounds"); do
    echo "round $r/$rounds" >&2
    if [ $(( r % 2 )) -eq 1 ]; then run xb "$xb_cmd"; run mb "$mb_cmd"; else run mb "$mb_cmd"; run xb "$xb_cmd"; fi
done
python3 - "$work/results-redo" "$threads" "$throttle" "$mb_throttle" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault(f[0], []).append(f[1:])
print(f"sysbench oltp_write_only --threads={sys.argv[2]}; xb --throttle={sys.argv[3]} (MiB/s), "
      f"mariadb-backup --throttle={sys.argv[4]}; 1 GiB redo log; medians")
print(f"{'run':4} {'wall s':>7} {'cpu s':>6} {'copier cpu s':>12} {'samples':>7} {'lag p50 MiB':>11} "
      f"{'p99 MiB':>8} {'max MiB':>8} {'max % cap':>9} {'copy MB/s':>9} {'server MB/s':>11} {'redo MB':>8}")
M = 1 << 20
def med(vs, i):
    xs = [float(v[i]) for v in vs if v[i] != "-"]
    return st.median(xs) if xs else None
fmt = lambda x, f: "-" if x is None else format(x, f)
for name, vs in rows.items():
    w, c, t, n, p50, p99, mx, copy, server, redo = (med(vs, i) for i in range(10))
    cap = int(vs[0][10])
    print(f"{name:4} {w:7.1f} {c:6.1f} {fmt(t, '.2f'):>12} {n:7.0f} {fmt(p50 and p50 / M, '.1f'):>11} "
          f"{fmt(p99 and p99 / M, '.1f'):>8} {fmt(mx and mx / M, '.1f'):>8} {fmt(mx and 100 * mx / cap, '.2f'):>9} "
          f"{fmt(copy and copy / 1e6, '.2f'):>9} {server / 1e6:11.2f} {redo / 1e6:8.0f}")
PY
