# lib.sh - what the end-to-end benchmarks on the MariaDB 10.11 dataset of
# backup_vs_mariadb_backup.sh share: its server, and one measured run.
# Sourced with $here (the repository) and $work (the dataset's directory).

db="$here/scripts/db.sh"
data="$work/data" port=${XB_BENCH_PORT:-3499}
cnf="$data.run/my.cnf"
conn=(--host=127.0.0.1 --port="$port" --user=xb --password=xb)
out="$work/out"

# Starts the dataset's server (stopped again on exit) and builds xb. The
# redo log is $bench_log_size (512M unless the script sets it; the server
# resizes its log at start).
bench_start() {
    ls "$work"/.loaded-* >/dev/null 2>&1 || {
        echo "no dataset in $work: run benches/e2e/backup_vs_mariadb_backup.sh first" >&2; exit 1; }
    cargo build -q --release -p xb-cli --manifest-path "$here/Cargo.toml"
    xb="${CARGO_TARGET_DIR:-$here/target}/release/xb-cli"
    XB_MYSQLD_ARGS="--innodb-buffer-pool-size=1G --innodb-log-file-size=${bench_log_size:-512M} --log-bin=binlog --server-id=1" \
        "$db" mariadb1011 start "$data" "$port" >/dev/null
    trap '"$db" mariadb1011 stop "$data" >/dev/null 2>&1 || true' EXIT
}

# measure RESULTS NAME CMD: runs CMD (its backup in $out/b) after a sync and
# appends "NAME wall cpu rss bytes" to RESULTS.
measure() {
    local results=$1 name=$2; shift 2
    rm -rf "$out"; mkdir -p "$out"
    sync
    /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" bash -c "$*" >/dev/null 2>"$work/$name.log" || {
        echo "$name failed, see $work/$name.log" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
    read -r wall user sys rss < "$work/time.txt"
    echo "$name $wall $(awk "BEGIN{print $user + $sys}") $rss $(du -sb "$out/b" | cut -f1)" >> "$results"
}

# rounds RESULTS R: runs the (names, cmds) arrays R times, even rounds in
# reverse order, so no run always inherits the same page-cache state.
rounds() {
    local results=$1 r i order
    : > "$results"
    for r in $(seq "$2"); do
        echo "round $r/$2" >&2
        order=$(seq 0 $(( ${#names[@]} - 1 )))
        [ $(( r % 2 )) -eq 0 ] && order=$(echo "$order" | tac)
        for i in $order; do
            measure "$results" "${names[$i]}" "${cmds[$i]}"
        done
    done
}
