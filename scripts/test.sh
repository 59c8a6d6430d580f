#!/usr/bin/env bash
# test.sh - the whole xb test suite on a fresh Debian 12 machine.
#
#   scripts/test.sh
#
# Installs what the tests need (host tools with apt-get, cargo-nextest, the
# four database server roots under /opt/xb-*, an S3 server and Azurite under
# /opt/xb-objstore), then runs, failing on the
# first step that fails:
#   cargo fmt --check, cargo clippy -D warnings, cargo nextest (every test,
#   real servers included), cargo test --doc.
# Servers the tests start live under a private temporary directory; any left
# behind (a killed test) are stopped on exit.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
root=$PWD
log() { printf '[test.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
t0=$SECONDS

# 1. host tools: zstd/lz4 (format checks), sysbench (benchmarks), mount (tmpfs test)
need=()
for p in zstd lz4 sysbench ca-certificates debian-archive-keyring gpgv mount util-linux; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    log "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A full build of the workspace with its tests takes about 4 GB, the server
# roots 2 GB, and the runbooks' servers and backups a few more at a time.
avail_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "${avail_kb:-0}" -lt $((12 * 1024 * 1024)) ]; then
    echo "test.sh: only $((avail_kb / 1024)) MiB free on $(df -P . | awk 'NR == 2 { print $6 }'); the suite needs about 12 GiB: free some space (cargo clean, old backups) and run again" >&2
    exit 1
fi
export CARGO_INCREMENTAL=0

# 2. rust tools
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
    log "cargo install cargo-nextest"
    cargo install cargo-nextest --locked --quiet
fi

# 3. database server roots (private, never the host's apt or dpkg)
log "installing server roots"
pids=()
for f in $(scripts/db.sh flavors); do
    scripts/db.sh "$f" install > "/tmp/xb-install-$f.log" 2>&1 &
    pids+=($!)
done
# object stores for the object-storage runbooks: s3s-fs (crates.io), Azurite (npm)
for k in s3 azure; do
    scripts/objstore.sh "$k" install > "/tmp/xb-install-objstore-$k.log" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do
    wait "$p" || { cat /tmp/xb-install-*.log >&2; echo "server install failed" >&2; exit 1; }
done

# 4. tests, with their servers under a directory we own
export XB_TEST_TMP
XB_TEST_TMP=$(mktemp -d /tmp/xb-test.XXXXXX)
cleanup() {
    for pid in "$XB_TEST_TMP"/xb-s3-*/pid "$XB_TEST_TMP"/xb-azure-*/pid; do
        [ -f "$pid" ] && kill -9 "$(cat "$pid")" 2>/dev/null || true
    done
    for run in "$XB_TEST_TMP"/*/*.run; do
        [ -f "$run/flavor" ] || continue
        "$root/scripts/db.sh" "$(cat "$run/flavor")" stop "${run%.run}" >/dev/null 2>&1 || true
    done
    for m in $(awk -v d="$XB_TEST_TMP" 'index($2, d) == 1 { print $2 }' /proc/mounts); do umount "$m" || true; done
    rm -rf "$XB_TEST_TMP"
}
trap cleanup EXIT

log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
log "cargo nextest run"
cargo nextest run --workspace --profile "${XB_NEXTEST_PROFILE:-default}"
log "cargo test --doc"
cargo test --workspace --doc --quiet
log "all green in $((SECONDS - t0))s"
