#!/usr/bin/env bash
# mariadb1011.sh - MariaDB 10.11 (Debian bookworm mariadb-server-core, the
# host's own release) in a private root /opt/xb-mariadb1011, run through that
# root's own loader, so the host's dpkg database is never touched.
# Also installs mariadb-backup (mariadb-backup, mbstream), the reference tool
# our backups are compared with, and the MyRocks plugin.
# Redo format: ib_logfile0 with 12 KiB header, format id 'Phys' (0x50687973).
#
#   mariadb1011.sh start DATADIR PORT | stop DATADIR | client DATADIR ... | exec PROG ...
#
# See xbdb-lib.sh for the design and the XB_* knobs.
XB_FLAVOR=mariadb1011
XB_SUITE=${XB_SUITE:-bookworm}
XB_KIND=mariadb
XB_PACKAGES="mariadb-server-core mariadb-client-core mariadb-backup mariadb-plugin-rocksdb libc-bin"
XB_EXCLUDE_RE='dpkg|tar|debconf|perl|perl-base|perl-modules-[0-9.]+|libperl[0-9.]+'
XB_VERSION_PKG=mariadb-server-core
XB_VERSION_RE='^1:10\.11\.'
XB_SERVER_BIN=usr/sbin/mariadbd
XB_CLIENT_BIN=usr/bin/mariadb
XB_CHECK_ELFS="usr/sbin/mariadbd usr/bin/mariadb usr/bin/my_print_defaults usr/bin/resolveip usr/bin/mariadb-backup usr/bin/mbstream"
XB_INIT_MARKER=mysql/global_priv.frm

. "$(dirname "$(readlink -f "$0")")/xbdb-lib.sh"

XB_BASEDIR="$XB_ROOT"
XB_LC_MESSAGES_DIR="$XB_ROOTFS/usr/share/mariadb"
XB_CHARSETS_DIR="$XB_ROOTFS/usr/share/mariadb/charsets"
XB_FLAVOR_CNF=""

xb_initialize() {
    local u=""
    [ "$(id -u)" = 0 ] && u="--user=root"
    # shellcheck disable=SC2086
    sh "$XB_ROOTFS/usr/bin/mariadb-install-db" --defaults-file="$XB_CNF" \
        --basedir="$XB_ROOT" --datadir="$XB_DATADIR" $u \
        --auth-root-authentication-method=normal --skip-test-db --force \
        $XB_MYSQLD_ARGS
}

xb_main "$@"
