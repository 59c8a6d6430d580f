#!/usr/bin/env bash
# objstore.sh - real object-storage servers on 127.0.0.1 for xb's tests,
# demos and benchmarks.
#
#   scripts/objstore.sh KIND install
#   scripts/objstore.sh KIND start ROOT PORT   start in the background, wait until it answers
#   scripts/objstore.sh KIND stop ROOT         stop (idempotent)
#   scripts/objstore.sh KIND bucket ROOT PORT NAME   make a bucket (an Azure container)
#   scripts/objstore.sh KIND path              the server program
#
# KIND: s3     s3s-fs (crates.io), an S3-compatible server keeping each bucket
#              as a directory under ROOT; credentials AK / SK (or
#              XB_S3_ACCESS_KEY / XB_S3_SECRET_KEY); a bucket is made with mkdir.
#       azure  Azurite (npm), Microsoft's Azure Storage emulator, blob service
#              on PORT, well-known development account devstoreaccount1.
# Programs go to /opt/xb-objstore (never the host's package databases).
set -euo pipefail
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
kind=$1 cmd=$2; shift 2
prefix=/opt/xb-objstore
S3S_VERSION=0.14.1
AZURITE_VERSION=3.35.0
BLOB_CLIENT_VERSION=12.29.1

program() {
    case "$kind" in
        s3) echo "$prefix/bin/s3s-fs" ;;
        azure) echo "$prefix/node_modules/.bin/azurite-blob" ;;
        *) echo "objstore.sh: unknown kind '$kind' (s3 or azure)" >&2; exit 2 ;;
    esac
}

install() {
    local p; p=$(program)
    [ -x "$p" ] && return 0
    mkdir -p "$prefix"
    case "$kind" in
        s3) cargo install --quiet --locked --root "$prefix" "s3s-fs@$S3S_VERSION" --features binary ;;
        azure) npm install --silent --prefix "$prefix" "azurite@$AZURITE_VERSION" \
                   "@azure/storage-blob@$BLOB_CLIENT_VERSION" >/dev/null ;;
    esac
    [ -x "$p" ] || { echo "objstore.sh: $p missing after install" >&2; exit 1; }
}

# whether process $1 holds the listening socket of 127.0.0.1:$2 (another
# program may have taken the port first: then ours fails to bind and exits,
# and a connection to the port would reach the other one)
listens() {
    local hex inode
    hex=$(printf ':%04X' "$2")
    for inode in $(awk -v p="$hex" 'substr($2, length($2) - 4) == p && $4 == "0A" { print $10 }' /proc/net/tcp); do
        ls -l "/proc/$1/fd" 2>/dev/null | grep -q "socket:\[$inode\]" && return 0
    done
    return 1
}

wait_port() {
    local port=$1 pid=$2
    for _ in $(seq 1 400); do
        listens "$pid" "$port" && return 0
        kill -0 "$pid" 2>/dev/null || { echo "objstore.sh: $kind server exited (port $port taken?); log:" >&2; cat "$log" >&2; exit 1; }
        sleep 0.05
    done
    echo "objstore.sh: $kind server not listening on port $port" >&2; exit 1
}

case "$cmd" in
    install) install ;;
    path) program ;;
    start)
        [ $# -eq 2 ] || usage
        root=$1 port=$2
        install
        mkdir -p "$root/data"
        log="$root/server.log"
        case "$kind" in
            s3)
                setsid "$(program)" --host 127.0.0.1 --port "$port" \
                    --access-key "${XB_S3_ACCESS_KEY:-AK}" --secret-key "${XB_S3_SECRET_KEY:-SK}" \
                    "$root/data" > "$log" 2>&1 < /dev/null &
                ;;
            azure)
                setsid "$(program)" --blobHost 127.0.0.1 --blobPort "$port" --location "$root/data" \
                    --skipApiVersionCheck --silent --loose --disableTelemetry > "$log" 2>&1 < /dev/null &
                ;;
        esac
        echo $! > "$root/pid"
        wait_port "$port" "$!"
        ;;
    bucket)
        [ $# -eq 3 ] || usage
        root=$1 port=$2 name=$3
        case "$kind" in
            s3) mkdir -p "$root/data/$name" ;;
            azure)
                # the emulator's well-known development account and key
                NODE_PATH="$prefix/node_modules" node -e '
                    const { BlobServiceClient } = require("@azure/storage-blob");
                    const conn = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
                        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
                        "BlobEndpoint=http://127.0.0.1:" + process.argv[1] + "/devstoreaccount1;";
                    BlobServiceClient.fromConnectionString(conn).getContainerClient(process.argv[2]).create()
                        .catch(e => { console.error(e.message); process.exit(1); });
                ' "$port" "$name"
                ;;
        esac
        ;;
    stop)
        [ $# -eq 1 ] || usage
        root=$1
        if [ -f "$root/pid" ]; then
            pid=$(cat "$root/pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$root/pid"
        fi
        ;;
    *) usage ;;
esac
