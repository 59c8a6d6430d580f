#!/usr/bin/env bash
# binlog_archive_lag.sh - how far `xb-cli binlog-archive` trails a busy
# source, and what it costs.
#
#   benches/e2e/binlog_archive_lag.sh [--seconds S] [--threads N] [--workdir DIR]
#
# Uses the MariaDB 10.11 dataset of backup_vs_mariadb_backup.sh (run that
# once first, same --workdir); its server writes a binlog. The archiver
# starts at the server's current binlog file into a fresh directory, then
# `sysbench oltp_write_only --threads=N` (default 16) writes for S seconds
# (default 60). Every 50 ms a sampler reads the server's binlog end (the
# current file of binlog.index and its size) and the archive's: what it has
# written (the archive file's size) and what it has fsynced (the
# `durable_pos` of its --status-file, updated at each fsync, at least once
# a second). The delay of a position is the time from the server's file
# reaching it to the archive reaching it: p50, p99 and max, written and
# durable. Also printed: the server's binlog rate, the archiver's CPU (and
# CPU per MB), its peak RSS, and whether every archived file is byte for
# byte the server's (the file still being written compared without its
# "in use" flag, as the server sends it).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
seconds=60 threads=16 work=${XB_BENCH_DIR:-/tmp/xb-bench}
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        *) echo "usage: $0 [--seconds S] [--threads N] [--workdir DIR]" >&2; exit 2 ;;
    esac
done
command -v sysbench >/dev/null || { echo "sysbench missing: apt-get install -y sysbench" >&2; exit 1; }
. "$here/benches/e2e/lib.sh"
bench_start
rows=$("$db" mariadb1011 exec mariadb "${conn[@]}" -N -B -e "SELECT COUNT(*) FROM sbtest.sbtest1")
arch="$work/binlog-archive"
rm -rf "$arch"
python3 - "$xb" "$data" "$arch" "$port" "$seconds" "$threads" "$rows" "$work" <<'PY'
import json, os, signal, statistics, subprocess, sys, time
xb, data, arch, port, seconds, threads, rows, work = sys.argv[1:]
seconds, threads = int(seconds), int(threads)
index = os.path.join(data, "binlog.index")

def server_end():
    with open(index) as f:
        name = os.path.basename(f.read().split()[-1])
    return name, os.stat(os.path.join(data, name)).st_size

def num(name):
    return int(name.rsplit(".", 1)[1])

start_file = server_end()[0]
status = os.path.join(work, "binlog-archive.json")
log = open(os.path.join(work, "binlog-archive.log"), "w")
archiver = subprocess.Popen([xb, "binlog-archive", "--host=127.0.0.1", f"--port={port}", "--user=xb",
                             "--password=xb", f"--target-dir={arch}", f"--status-file={status}",
                             f"--start-file={start_file}"], stderr=log)
time.sleep(2)
load = subprocess.Popen(["sysbench", "oltp_write_only", "--mysql-host=127.0.0.1", f"--mysql-port={port}",
                         "--mysql-user=xb", "--mysql-password=xb", "--mysql-db=sbtest", "--tables=8",
                         f"--table-size={rows}", f"--threads={threads}", f"--time={seconds}",
                         "--report-interval=0", "run"], stdout=open(os.path.join(work, "binlog-archive.sysbench"), "w"),
                        stderr=subprocess.STDOUT)
samples = []  # (t, server (n, pos), written (n, pos), durable (n, pos))
first = None
while load.poll() is None or (samples and samples[-1][3] < samples[-1][1]):
    t = time.time()
    try:
        sf, sp = server_end()
        wf = sorted((f for f in os.listdir(arch) if f.startswith("binlog.0")), key=num)[-1]
        wp = os.stat(os.path.join(arch, wf)).st_size
        st = json.load(open(status))
        df, dp = st.get("file") or wf, st.get("durable_pos", 0)
    except (OSError, ValueError, IndexError, KeyError):
        time.sleep(0.05)
        continue
    samples.append((t, (num(sf), sp), (num(wf), wp), (num(df), dp)))
    if first is None:
        first = samples[-1]
    if load.poll() is not None and t - samples[0][0] > seconds + 30:
        break
    time.sleep(0.05)
with open(f"/proc/{archiver.pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
with open(f"/proc/{archiver.pid}/status") as f:
    hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
archiver.send_signal(signal.SIGTERM)
rc = archiver.wait(timeout=60)

def delays(k):
    out, j = [], 0
    for i, s in enumerate(samples):
        j = max(j, i)
        while j < len(samples) and samples[j][k] < s[1]:
            j += 1
        if j < len(samples):
            out.append(samples[j][0] - s[0])
    return sorted(out)

def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")

busy = [s for s in samples if s[0] - samples[0][0] <= seconds]
span = busy[-1][0] - busy[0][0]
moved = 0
for a, b in zip(busy, busy[1:]):
    moved += b[1][1] - a[1][1] if b[1][0] == a[1][0] else b[1][1]
identical = True
for f in sorted((f for f in os.listdir(arch) if f.startswith("binlog.0")), key=num):
    ours = open(os.path.join(arch, f), "rb").read()
    theirs = bytearray(open(os.path.join(data, f), "rb").read())
    if f == server_end()[0]:
        theirs[4 + 17] &= 0xFE
        theirs = bytes(theirs[: len(ours)])
    identical &= ours == bytes(theirs)
w, d = delays(2), delays(3)
print(f"sysbench oltp_write_only --threads={threads} for {seconds} s; {len(samples)} samples")
print(f"server binlog rate        {moved / span / 1e6:.2f} MB/s ({moved / 1e6:.0f} MB)")
print(f"written delay  p50 {pct(w, .5) * 1000:.0f} ms  p99 {pct(w, .99) * 1000:.0f} ms  max {w[-1] * 1000:.0f} ms")
print(f"durable delay  p50 {pct(d, .5) * 1000:.0f} ms  p99 {pct(d, .99) * 1000:.0f} ms  max {d[-1] * 1000:.0f} ms")
print(f"archiver CPU {cpu:.2f} s ({cpu / max(moved / 1e6, 1e-9) * 1000:.1f} ms per MB), peak RSS {hwm / 1024:.1f} MiB, exit {rc}")
print(f"archive byte for byte the server's: {'yes' if identical else 'NO'}")
PY
