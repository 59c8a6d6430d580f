#!/usr/bin/env bash
# db.sh - real MySQL-family servers on 127.0.0.1 for xb's tests and demos.
#
#   scripts/db.sh FLAVOR start DATADIR PORT   install on first use, init if empty, start, wait
#   scripts/db.sh FLAVOR stop DATADIR         clean shutdown (idempotent)
#   scripts/db.sh FLAVOR status DATADIR       exit 0 if running, 3 if not
#   scripts/db.sh FLAVOR client DATADIR [-e SQL]
#   scripts/db.sh FLAVOR exec PROG [ARGS]     run a program of the flavour's private root
#   scripts/db.sh FLAVOR install
#   scripts/db.sh flavors                     list the flavours
#
# FLAVOR: mariadb1011 (bookworm, with mariadb-backup), mariadb105 (bullseye),
#         mariadb118 (trixie), mysql97 (sid).
# Each flavour lives in a private root /opt/xb-FLAVOR; the host's apt sources
# and dpkg database are never touched. Design notes: scripts/servers/xbdb-lib.sh.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
flavors="mariadb1011 mariadb105 mariadb118 mysql97"
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in
    flavors) echo "$flavors"; exit 0 ;;
    -h|--help|help) usage ;;
esac
flavor=$1; shift
case " $flavors " in
    *" $flavor "*) ;;
    *) echo "db.sh: unknown flavour '$flavor' (expected one of: $flavors)" >&2; exit 2 ;;
esac
exec "$here/servers/$flavor.sh" "$@"
