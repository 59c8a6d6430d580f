#!/usr/bin/env bash
# demo.sh - the main job, end to end, on this machine:
#
#   scripts/demo.sh [WORKDIR] [--keep]
#
# 1. starts a MariaDB 10.11 (private root, 127.0.0.1) in WORKDIR/source and
#    loads sample data (InnoDB, MyISAM and Aria tables, binlog on);
# 2. keeps writing to it and takes a hot backup with `xb-cli backup`;
# 3. prepares the backup with `xb-cli prepare` (the server's own recovery);
# 4. starts a second server on the backup, rolls it forward with the
#    source's binlog from the recorded position, and compares
#    CHECKSUM TABLE of every table with the source.
# Rerunnable: it starts from a clean WORKDIR (default ./.xb-demo) each time.
# Servers are stopped at the end unless --keep is given.
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
work="$here/.xb-demo" keep=0
for a in "$@"; do
    case $a in
        --keep) keep=1 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) work=$a ;;
    esac
done
db="$here/scripts/db.sh"
say() { printf '\n== %s\n' "$*"; }
stop_all() {
    [ "$keep" = 1 ] && { echo "servers left running (--keep): $work/source, $work/restored"; return; }
    "$db" mariadb1011 stop "$work/restored" >/dev/null 2>&1 || true
    "$db" mariadb1011 stop "$work/source" >/dev/null 2>&1 || true
}
for d in restored source; do "$db" mariadb1011 stop "$work/$d" >/dev/null 2>&1 || true; done
rm -rf "$work"; mkdir -p "$work"
trap stop_all EXIT

say "building xb-cli"
cargo build --quiet --release -p xb-cli --manifest-path "$here/Cargo.toml"
xb="${CARGO_TARGET_DIR:-$here/target}/release/xb-cli"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
say "starting MariaDB 10.11 on 127.0.0.1:$port"
XB_MYSQLD_ARGS="--log-bin=binlog --server-id=1" "$db" mariadb1011 start "$work/source" "$port" | sed -n '1,3p'
sql() { "$db" mariadb1011 client "$work/source" -N -B -e "$1"; }

say "loading sample data"
sql "CREATE DATABASE shop; CREATE DATABASE IF NOT EXISTS seq;
     CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, customer INT, total DECIMAL(10,2), note VARCHAR(200), KEY(customer)) ENGINE=InnoDB;
     CREATE TABLE shop.items (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT, sku CHAR(12), qty INT) ENGINE=InnoDB ROW_FORMAT=COMPRESSED;
     CREATE TABLE shop.audit (id INT PRIMARY KEY AUTO_INCREMENT, msg VARCHAR(100)) ENGINE=MyISAM;
     CREATE TABLE shop.sessions (id INT PRIMARY KEY AUTO_INCREMENT, token CHAR(32)) ENGINE=Aria;
     INSERT INTO shop.orders (customer, total, note) SELECT seq % 977, seq * 1.5, REPEAT('n', seq % 200) FROM seq.seq_1_to_50000;
     INSERT INTO shop.items (order_id, sku, qty) SELECT seq % 50000 + 1, LPAD(seq, 12, '0'), seq % 7 FROM seq.seq_1_to_100000;
     INSERT INTO shop.audit (msg) SELECT CONCAT('event ', seq) FROM seq.seq_1_to_5000;
     INSERT INTO shop.sessions (token) SELECT MD5(seq) FROM seq.seq_1_to_5000;"
sql "SELECT table_name, engine, table_rows FROM information_schema.tables WHERE table_schema='shop' ORDER BY 1" | column -t

say "writing to the server while xb-cli backup runs"
(
    i=0
    while [ ! -f "$work/stop-writes" ]; do
        i=$((i + 1))
        sql "UPDATE shop.orders SET total = total + 1 WHERE id = $(( (i * 7919) % 50000 + 1 ));
             INSERT INTO shop.items (order_id, sku, qty) VALUES ($i, 'w$i', 1);
             INSERT INTO shop.audit (msg) VALUES ('write $i');" || true
    done
) &
writer=$!
sleep 1
"$xb" backup --host 127.0.0.1 --port "$port" --user xb --password=xb --target-dir "$work/backup" --parallel 2
sleep 1
touch "$work/stop-writes"; wait "$writer"

say "preparing the backup with xb-cli prepare"
"$xb" prepare --target-dir "$work/backup" --server-binary /opt/xb-mariadb1011/sbin/mariadbd \
    --server-defaults-file "$work/source.run/my.cnf"

say "starting a server on the prepared backup"
mv "$work/backup" "$work/restored"
rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$db" mariadb1011 start "$work/restored" "$rport" | sed -n '1,3p'

read -r bfile bpos _ < "$work/restored/xtrabackup_binlog_info"
say "rolling the restore forward with the source's binlog from $bfile:$bpos"
files=$(sed -n "/$bfile/,\$p" "$work/source/binlog.index" | sed "s|^\./|$work/source/|")
# shellcheck disable=SC2086
"$db" mariadb1011 exec mariadb-binlog --start-position="$bpos" $files | "$db" mariadb1011 client "$work/restored"

say "comparing CHECKSUM TABLE, source vs restored"
q="CHECKSUM TABLE shop.orders, shop.items, shop.audit, shop.sessions EXTENDED"
src=$(sql "$q"); dst=$("$db" mariadb1011 client "$work/restored" -N -B -e "$q")
paste <(echo "$src") <(echo "$dst" | cut -f2) | awk 'BEGIN{printf "%-16s %-12s %-12s\n","table","source","restored"} {printf "%-16s %-12s %-12s %s\n",$1,$2,$3,($2==$3?"equal":"DIFFERENT")}'
if [ "$src" = "$dst" ]; then
    say "demo OK: the restored backup equals the source, table for table"
else
    say "demo FAILED: tables differ"; exit 1
fi
