#!/usr/bin/env bash
# prepare_redo.sh - preparing a backup that carries a lot of redo,
# xb-cli prepare vs mariadb-backup --prepare, on copies of the same backup.
#
#   benches/e2e/prepare_redo.sh [--min-redo-mib M] [--rounds R] [--workdir DIR]
#
# Uses the MariaDB 10.11 dataset of backup_vs_mariadb_backup.sh (run that
# once first, same --workdir). Once, it takes the source backup: xb-cli
# backup of the sbtest schema throttled to 10 MiB/s while `sysbench oltp_write_only
# --threads=16` writes, on a server with a 1 GiB redo log, and keeps it in
# $work/prep-src if the redo it copied is at least M MiB (default 1024).
# Then each round prepares fresh copies of it:
#   xb-auto   xb-cli prepare (the server's own recovery) at its default,
#             --use-memory=auto (a pool as large as the redo, within bounds)
#   xb-256M   xb-cli prepare --use-memory=256M (its default before auto)
#   mb-100M   mariadb-backup --prepare at its default --use-memory (100M)
#   xb-1G     xb-cli prepare --use-memory=1G     (equal settings with mb-1G)
#   mb-1G     mariadb-backup --prepare --use-memory=1G
# and prints median wall, CPU and peak RSS (the largest process of the run:
# for xb-cli prepare that is the server it starts).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
min_redo=1024 rounds=3 work=${XB_BENCH_DIR:-/tmp/xb-bench}
while [ $# -gt 0 ]; do
    case $1 in
        --min-redo-mib) min_redo=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        *) echo "usage: $0 [--min-redo-mib M] [--rounds R] [--workdir DIR]" >&2; exit 2 ;;
    esac
done
command -v sysbench >/dev/null || { echo "sysbench missing: apt-get install -y sysbench" >&2; exit 1; }
bench_log_size=1G
. "$here/benches/e2e/lib.sh"
bench_start
src="$work/prep-src"
server_bin=/opt/xb-mariadb1011/sbin/mariadbd
[ -x "$server_bin" ] || { echo "no $server_bin: scripts/db.sh mariadb1011 install" >&2; exit 1; }
if [ ! -f "$src/xtrabackup_checkpoints" ]; then
    rm -rf "$src"
    rows=$("$db" mariadb1011 exec mariadb "${conn[@]}" -N -B -e "SELECT COUNT(*) FROM sbtest.sbtest1")
    echo "taking the source backup under sysbench oltp_write_only --threads=16 (minutes)" >&2
    sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user=xb \
        --mysql-password=xb --mysql-db=sbtest --tables=8 --table-size="$rows" \
        --threads=16 --time=3600 run > "$work/prep-src.sysbench" 2>&1 &
    load=$!
    sleep 10
    rc=0
    "$xb" backup "${conn[@]}" --parallel=4 --throttle=10 --databases=sbtest --target-dir="$src" 2> "$work/prep-src.log" || rc=$?
    kill "$load"; wait "$load" 2>/dev/null || true
    [ "$rc" = 0 ] || { echo "source backup failed, see $work/prep-src.log" >&2; exit 1; }
fi
redo=$(stat -c %s "$src/ib_logfile0")
echo "source backup: $(du -sb "$src" | cut -f1) bytes, of which redo $((redo >> 20)) MiB" >&2
[ $((redo >> 20)) -ge "$min_redo" ] || {
    echo "only $((redo >> 20)) MiB of redo (< $min_redo): rm -rf $src and run again, or pass --min-redo-mib" >&2; exit 1; }

names=() cmds=()
add() { names+=("$1"); cmds+=("rm -rf '$out/b' && cp -a '$src' '$out/b' && sync && $2"); }
add xb-auto "'$xb' prepare --target-dir='$out/b' --server-binary='$server_bin'"
add xb-256M "'$xb' prepare --target-dir='$out/b' --server-binary='$server_bin' --use-memory=256M"
add mb-100M "'$db' mariadb1011 exec mariadb-backup --prepare --target-dir='$out/b'"
add xb-1G "'$xb' prepare --target-dir='$out/b' --server-binary='$server_bin' --use-memory=1G"
add mb-1G "'$db' mariadb1011 exec mariadb-backup --prepare --use-memory=1G --target-dir='$out/b'"
# the copy is inside the measured command (so each run starts from the
# same bytes); it is measured alone too, and taken off
add copy-only "true"
rounds "$work/results-prepare" "$rounds"
python3 - "$work/results-prepare" "$redo" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    n, wall, cpu, rss, size = line.split()
    rows.setdefault(n, []).append((float(wall), float(cpu), int(rss)))
med = {n: tuple(st.median(v[i] for v in vs) for i in range(3)) for n, vs in rows.items()}
cw, cc, _ = med.pop("copy-only")
print(f"prepare of a backup with {int(sys.argv[2]) >> 20} MiB of redo (copy of the backup, {cw:.1f} s, taken off)")
print(f"{'run':8} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>12}")
for n, (w, c, r) in med.items():
    print(f"{n:8} {w - cw:8.1f} {c - cc:8.1f} {r/1024:12.1f}")
print(f"each tool's default memory: wall xb-auto/mb-100M {(med['xb-auto'][0]-cw)/(med['mb-100M'][0]-cw):.2f}x")
print(f"equal --use-memory=1G: wall xb-1G/mb-1G {(med['xb-1G'][0]-cw)/(med['mb-1G'][0]-cw):.2f}x")
PY
