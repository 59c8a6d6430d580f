//! Recovery by the real server: start its binary on the backup with the
//! backup's InnoDB settings and nothing that could change data beyond redo
//! apply (no clients, binlog, init-file, events, replication, cluster,
//! grant-table or system-table upgrade: [`LOCKDOWN`]), wait until redo
//! apply has finished (the server is ready), shut it down cleanly.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xb_innodb::redo::RedoFormat;

use super::PrepareOptions;
use super::error::{PrepareError, io_err};
use super::export::{self, ExportReport};

/// The `[mysqld]` lines of backup-my.cnf (InnoDB layout of the source).
fn backup_settings(dir: &Path) -> Result<String, PrepareError> {
    let file = dir.join("backup-my.cnf");
    let text = fs::read_to_string(&file).map_err(io_err(&file))?;
    // `loose-`: a setting this server version lacks is skipped, not fatal
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| format!("loose-{l}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Settings that keep the recovery server from changing anything beyond
/// what redo apply (and the rollback of unfinished transactions) changes.
/// [`option_file`] writes them last: the user's `--server-defaults-file`
/// is included at the top and `backup-my.cnf` comes from the backup, and in
/// an option file the last setting of a name wins, so neither can turn
/// these back (an inherited `init-file` is replaced by an empty one, see
/// [`NO_INIT_FILE`]). `loose-` marks a name only one family (or version)
/// knows, which the other skips. Each pair is the line and why it is
/// there; the why is written above the line in the file, for whoever reads
/// it after a failed recovery.
pub(super) const LOCKDOWN: &[(&str, &str)] = &[
    (
        "skip-networking",
        "no TCP client; the socket is in a private 0700 directory",
    ),
    (
        "skip-log-bin",
        "no binlog is written, nor an old one purged",
    ),
    (
        "event-scheduler=DISABLED",
        "no scheduled event runs, nor can be turned on",
    ),
    (
        "skip-grant-tables",
        "the privilege tables are not loaded and no statement can change them; \
         plugins installed into mysql.plugin and MySQL's loadable functions stay unloaded",
    ),
    (
        "loose-skip-slave-start",
        "no replica thread starts (MariaDB's name)",
    ),
    (
        "loose-skip-replica-start",
        "no replica thread starts (MySQL 8.0.26+)",
    ),
    (
        "loose-upgrade=MINIMAL",
        "MySQL: a newer server upgrades only the data dictionary, never the \
         mysql.* system tables (grants among them)",
    ),
    (
        "loose-group-replication-start-on-boot=OFF",
        "MySQL: never joins a replication group",
    ),
    (
        "loose-wsrep-on=OFF",
        "MariaDB Galera: never joins a cluster, whose state transfer would overwrite the backup",
    ),
    (
        "innodb-force-recovery=0",
        "all of the redo is applied and unfinished transactions rolled back; \
         an inherited force-recovery level would skip that",
    ),
];

/// What `--apply-log-only` adds after [`LOCKDOWN`] (so these win) on a
/// MariaDB backup: the server applies the redo and writes nothing else, so
/// every page keeps an LSN of the source's log and the next incremental's
/// pages and redo apply on top (a page the recovery server wrote with an
/// LSN of its own would make the next recovery skip the source's changes
/// to it).
///
/// `innodb_force_recovery` levels, from the servers' sources and checked by
/// experiment (every page LSN of the backup after recovery compared with
/// the end of the copied log, `incremental_prepare_vendor_made` does it on
/// every run):
/// * 2 stops purge, 3 also the rollback of unfinished transactions: with
///   the default (0) MariaDB 10.11 rolled back two transactions of a
///   backup under load and wrote 435 pages beyond the log's end; with 3
///   or 4, none;
/// * 4 also stops change-buffer merges and statistics updates (both write
///   pages); MariaDB 10.5/10.11 default to `innodb_change_buffering=none`,
///   but a source may have turned it on, so 4;
/// * 5 (no undo scan) and 6 (no redo apply at all) go too far for MariaDB.
///
/// MariaDB 10.5 and 10.11 at 4 still apply all of the redo, flush it and
/// shut down cleanly, writing about 70 bytes of redo of their own (the
/// shutdown checkpoint) and no page. MySQL needs more:
/// [`APPLY_LOG_ONLY_MYSQL`].
pub(super) const APPLY_LOG_ONLY: &[(&str, &str)] = &[(
    "innodb-force-recovery=4",
    "apply-log-only: no purge (2), no rollback of unfinished transactions (3), \
     no change-buffer merge or statistics (4): only the redo is applied",
)];

/// What `--apply-log-only` adds after [`LOCKDOWN`] on a MySQL 8.0.30+
/// backup: `innodb_force_recovery=5`, no undo log scan.
///
/// Level 4 is not enough for MySQL: level 3 stops InnoDB's own rollback of
/// unfinished transactions, but a transaction the source had *prepared*
/// (the first phase of the binlog's two-phase commit, which every commit
/// passes through on a source with a binlog) is resolved by the server
/// layer, whatever the level: without a binlog (`skip-log-bin`) it rolls
/// every such transaction back ("Crash recovery finished in InnoDB engine.
/// Successfully rolled back 1 internal transaction(s)" at
/// `log_error_verbosity=3`). Found by experiment with MySQL 9.7, a full
/// backup under a sysbench-like load: that rollback wrote 8 index and undo
/// pages (`xbload/sbtest2.ibd`, `undo_002`) with LSNs up to 755 bytes past
/// the end of the copied log. The source committed that transaction, and
/// the next incremental's redo (which starts at the incremental's
/// checkpoint, before those LSNs) holds the commit and the later changes
/// to those pages; recovery skips a page's records up to the page's LSN,
/// so it applied the rest onto the rolled-back pages the incremental's
/// delta did not replace (`undo_002` pages 31 and 384, `sbtest2.ibd` page
/// 37), and the server died with SIGSEGV while applying the redo. With
/// the base prepared at 5 the same incremental applies, and the chain
/// equals the source at each point (`backup_incremental`,
/// `mysql_chain_under_load_restores_at_each_point_with_xb_prepare`).
///
/// At 5 InnoDB does not scan the undo logs, so it resurrects no
/// transaction and the server layer finds none prepared ("No attempts to
/// commit, rollback or prepare any transactions"); the undo pages stay as
/// the redo left them and the next recovery (5 again for an incremental
/// with `--apply-log-only`, 0 for the last step) finds the transactions
/// there again and resolves them then. Redo apply is unchanged at 5 (6 skips it).
///
/// What MySQL 9.7 still writes at 5, as at any level, a few hundred bytes
/// past the log's end: the transaction-system page (`ibdata1` page 5, its
/// trx id counter) and the root of `mysql.innodb_dynamic_metadata` (index
/// id 2 in `mysql.ibd`: table counters InnoDB persists from the redo).
/// Both are tables of fields the source rewrites whole, and a later delta
/// carries either page once the source has flushed it; only a record of
/// the source's for one of them within those bytes after the base's log
/// could be skipped, leaving a value a later write of the source replaces.
pub(super) const APPLY_LOG_ONLY_MYSQL: &[(&str, &str)] = &[(
    "innodb-force-recovery=5",
    "apply-log-only (MySQL): only the redo is applied: no undo log scan (5), so no \
     transaction is rolled back, not even one the source had prepared (which the server \
     layer rolls back at every lower level)",
)];

/// The `--apply-log-only` settings for a backup whose redo is in `format`.
#[must_use]
pub(super) fn apply_log_only(format: RedoFormat) -> &'static [(&'static str, &'static str)] {
    match format {
        RedoFormat::MySql8030 => APPLY_LOG_ONLY_MYSQL,
        _ => APPLY_LOG_ONLY,
    }
}

/// The empty file, in the private run directory, that `init-file` names
/// for recovery: an inherited init-file's SQL could change anything, and
/// MySQL refuses to start on `init-file=` with no name ("Failed to open the
/// bootstrap file"), so it gets one that holds no SQL at all.
pub(super) const NO_INIT_FILE: &str = "no-init.sql";

/// The option file recovery runs with: the user's `--server-defaults-file`
/// (for paths such as `lc-messages-dir`), the backup's InnoDB layout, our
/// places (datadir, a private run directory), then an empty init-file and
/// [`LOCKDOWN`], last so they win.
fn option_file(
    opts: &PrepareOptions,
    pool: &str,
    dir: &Path,
    run: &Path,
    uid_root: bool,
    format: RedoFormat,
) -> Result<String, PrepareError> {
    let mut text = String::new();
    if let Some(extra) = &opts.server_defaults_file {
        text.push_str(&format!("!include {}\n", extra.display()));
    }
    text.push_str("[mysqld]\n");
    text.push_str(&backup_settings(dir)?);
    text.push_str(&format!(
        "\ndatadir={}\ntmpdir={}\nsocket={}\npid-file={}\nlog-error={}\n\
         innodb-buffer-pool-size={}\n{}",
        dir.display(),
        // its own tmpdir: a starting server deletes every '#sql*' file in
        // its tmpdir, which would hurt another server sharing /tmp
        run.display(),
        run.join("s.sock").display(),
        run.join("s.pid").display(),
        run.join("server.err").display(),
        pool,
        if uid_root { "user=root\n" } else { "" },
    ));
    text.push_str(&inside_backup(dir));
    text.push_str(&format!(
        "# no SQL from an inherited init-file runs: this one is empty\ninit-file={}\n",
        run.join(NO_INIT_FILE).display()
    ));
    for (line, why) in LOCKDOWN {
        text.push_str(&format!("# {why}\n{line}\n"));
    }
    if opts.apply_log_only {
        for (line, why) in apply_log_only(format) {
            text.push_str(&format!("# {why}\n{line}\n"));
        }
    }
    Ok(text)
}

/// The lines that keep InnoDB's search for files inside the backup.
///
/// A MySQL server scans the datadir, `innodb_directories`,
/// `innodb_data_home_dir` and `innodb_undo_directory` for tablespace files
/// at start-up and opens each file it finds; the same tablespace found
/// twice stops it. Copied from the source, these settings name the
/// source's directories: with `innodb_directories` naming the one a `DATA
/// DIRECTORY` table lives in, the recovery server opened the source's live
/// files (found by experiment with MySQL 9.7). The backup holds every
/// tablespace inside itself (`run::external`), and the server then finds
/// each one there by its space id, takes it for a moved tablespace and
/// records the new place in its data dictionary; the absolute paths the
/// dictionary and the log's file records hold are never opened. So all
/// four places are the backup, and so are the other places an inherited
/// setting could point at the source's files: the redo directory, MySQL's
/// doublewrite files (read to repair torn pages, then rewritten) and its
/// session temporary tablespaces (a starting server deletes what it finds
/// there). MariaDB lacks some of these names: `loose-`.
fn inside_backup(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "# InnoDB looks for files in the backup only, never in the source's directories\n\
         innodb-data-home-dir={d}\ninnodb-undo-directory={d}\nloose-innodb-directories={d}\n\
         innodb-log-group-home-dir={d}\nloose-innodb-doublewrite-dir={d}\n\
         loose-innodb-temp-tablespaces-dir={d}/#innodb_temp\n"
    )
}

fn log_tail(file: &Path) -> String {
    let text = fs::read_to_string(file).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// What a run of the recovery server did.
pub(super) struct Recovered {
    /// From start to clean shutdown.
    pub time: Duration,
    /// The `--export` step's outcome, when asked: an error here came after
    /// a complete recovery and a clean shutdown.
    pub export: Option<Result<ExportReport, PrepareError>>,
    /// The `CHECK TABLE` step's outcome, when asked (as `export`).
    pub checked: Option<Result<super::check::CheckReport, PrepareError>>,
}

/// Runs the server on the backup (whose redo is in `format`, `redo` bytes
/// of it left to apply: what `--use-memory=auto` sizes the pool by) until
/// it is ready, has it export the tables with `opts.export`, then stops it
/// cleanly.
pub(super) fn recover_with_server(
    opts: &PrepareOptions,
    dir: &Path,
    server: &Path,
    format: RedoFormat,
    redo: u64,
) -> Result<Recovered, PrepareError> {
    let run = tempfile::Builder::new()
        .prefix("xb-prepare-")
        .tempdir()
        .map_err(io_err(Path::new("/tmp")))?;
    let cnf = run.path().join("prepare.cnf");
    let err_log = run.path().join("server.err");
    let uid_root = fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    // `auto` becomes a size here, the one place the pool is set
    let pool = super::memory::resolve(&opts.use_memory, redo);
    tracing::info!(use_memory = %pool, redo_bytes = redo, "recovery buffer pool");
    let text = option_file(opts, &pool, dir, run.path(), uid_root, format)?;
    let no_init = run.path().join(NO_INIT_FILE);
    fs::write(&no_init, b"").map_err(io_err(&no_init))?;
    fs::write(&cnf, text).map_err(io_err(&cnf))?;

    let started = Instant::now();
    let mut child = Command::new(server)
        .arg(format!("--defaults-file={}", cnf.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_err(server))?;
    let failed = |reason: String| PrepareError::ServerFailed {
        dir: dir.to_path_buf(),
        reason,
        log_tail: log_tail(&err_log),
    };
    // Ready means recovery has finished: the server only accepts
    // connections after redo apply.
    loop {
        if let Some(status) = child.try_wait().map_err(io_err(server))? {
            return Err(failed(format!(
                "the server exited during recovery ({status})"
            )));
        }
        let log = fs::read_to_string(&err_log).unwrap_or_default();
        if log.contains("ready for connections") {
            break;
        }
        if started.elapsed() > opts.timeout {
            stop_child(&mut child);
            return Err(failed(format!(
                "recovery did not finish within {:?}",
                opts.timeout
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // ready: recovery is done and the server is the backup's only user
    if let Some(r) = &opts.replay {
        if let Err(e) = super::replay::run(r, &run.path().join("s.sock"), dir) {
            stop_child(&mut child);
            return Err(e);
        }
    }
    let export = opts
        .export
        .then(|| export::export_tables(&run.path().join("s.sock"), dir, opts.timeout));
    let checked = (opts.check_tables && !opts.apply_log_only)
        .then(|| super::check::check_tables(&run.path().join("s.sock"), dir, opts.timeout));
    let status = terminate(&mut child, opts.timeout).map_err(&failed)?;
    let log = fs::read_to_string(&err_log).unwrap_or_default();
    if !status.success() || !log.contains("Shutdown complete") {
        return Err(failed(format!("unclean shutdown ({status})")));
    }
    // Keep the server's account of the recovery with the backup.
    let keep = dir.join("xb_prepare.log");
    fs::copy(&err_log, &keep).map_err(io_err(&keep))?;
    Ok(Recovered {
        time: started.elapsed(),
        export,
        checked,
    })
}

/// Sends SIGTERM (a clean shutdown for mysqld/mariadbd) and waits.
fn terminate(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus, String> {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !kill.success() {
        return Err(format!("kill -TERM {} failed", child.id()));
    }
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if t0.elapsed() > timeout => {
                stop_child(child);
                return Err("the server did not shut down in time".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for the server: {e}")),
        }
    }
}

fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value a server ends up with for `name` from `text` and the files
    /// it includes: the last line that sets it wins, `loose-` and `_`/`-`
    /// aside (the servers' own rule).
    fn effective(text: &str, name: &str) -> Option<String> {
        let mut value = None;
        for line in text.lines() {
            if let Some(file) = line.strip_prefix("!include ") {
                let inner = fs::read_to_string(file).unwrap();
                if let Some(v) = effective(&inner, name) {
                    value = Some(v);
                }
                continue;
            }
            let line = line.trim();
            if line.starts_with('#') || line.starts_with('[') {
                continue;
            }
            let (key, v) = line.split_once('=').unwrap_or((line, ""));
            let key = key.trim().trim_start_matches("loose-").replace('_', "-");
            if key == name {
                value = Some(v.trim().to_string());
            }
        }
        value
    }

    #[test]
    fn nothing_inherited_turns_the_lockdown_back() {
        let d = tempfile::tempdir().unwrap();
        // the user's defaults file and the backup's own settings both try
        fs::write(
            d.path().join("backup-my.cnf"),
            "[mysqld]\ninnodb_page_size=16384\ninit-file=/tmp/from-backup.sql\n",
        )
        .unwrap();
        let user = d.path().join("user.cnf");
        fs::write(
            &user,
            "[mysqld]\ninit_file=/tmp/evil.sql\nevent_scheduler=ON\nlog-bin=binlog\n\
             innodb_force_recovery=6\nwsrep_on=ON\nupgrade=FORCE\n[mariadb]\nskip-networking=0\n\
             innodb_directories=/srv/remote\ninnodb_data_home_dir=/srv/ibdata\n\
             innodb_undo_directory=/srv/undo\ninnodb_log_group_home_dir=/srv/redo\n\
             innodb_doublewrite_dir=/srv/dblwr\ninnodb_temp_tablespaces_dir=/srv/tmp\n",
        )
        .unwrap();
        let opts = PrepareOptions::new(d.path()).server_defaults_file(&user);
        let text = option_file(
            &opts,
            "256M",
            d.path(),
            Path::new("/run/x"),
            false,
            RedoFormat::MySql8030,
        )
        .unwrap();
        assert!(text.starts_with(&format!("!include {}\n", user.display())));
        let want = [
            ("init-file", "/run/x/no-init.sql"),
            ("event-scheduler", "DISABLED"),
            ("innodb-force-recovery", "0"),
            ("wsrep-on", "OFF"),
            ("upgrade", "MINIMAL"),
            ("group-replication-start-on-boot", "OFF"),
            ("skip-grant-tables", ""),
            ("skip-slave-start", ""),
            ("skip-replica-start", ""),
            ("skip-log-bin", ""),
            ("skip-networking", ""),
            ("datadir", &d.path().display().to_string()),
            ("innodb-page-size", "16384"),
            ("innodb-directories", &d.path().display().to_string()),
            ("innodb-data-home-dir", &d.path().display().to_string()),
            ("innodb-undo-directory", &d.path().display().to_string()),
            ("innodb-log-group-home-dir", &d.path().display().to_string()),
            ("innodb-doublewrite-dir", &d.path().display().to_string()),
            (
                "innodb-temp-tablespaces-dir",
                &d.path().join("#innodb_temp").display().to_string(),
            ),
        ];
        for (name, value) in want {
            assert_eq!(
                effective(&text, name).as_deref(),
                Some(value),
                "{name} in\n{text}"
            );
        }
        // every lockdown line says why it is there, on the line above
        for (line, why) in LOCKDOWN {
            assert!(text.contains(&format!("# {why}\n{line}\n")), "{line}");
        }
    }

    /// `--apply-log-only` rolls back nothing: MySQL at level 5 (the server
    /// layer rolls back prepared transactions below it), MariaDB at 4; an
    /// inherited level loses either way, and a full prepare runs at 0.
    #[test]
    fn apply_log_only_level_by_family_wins_over_inherited_settings() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("backup-my.cnf"),
            "[mysqld]\ninnodb_force_recovery=6\n",
        )
        .unwrap();
        let cases = [
            (RedoFormat::MySql8030, "5"),
            (RedoFormat::MariaDb108, "4"),
            (RedoFormat::MariaDb105, "4"),
        ];
        for (format, level) in cases {
            let opts = PrepareOptions::new(d.path()).apply_log_only(true);
            let text =
                option_file(&opts, "256M", d.path(), Path::new("/run/x"), false, format).unwrap();
            assert_eq!(
                effective(&text, "innodb-force-recovery").as_deref(),
                Some(level),
                "{format:?} in\n{text}"
            );
            for (line, why) in apply_log_only(format) {
                assert!(text.contains(&format!("# {why}\n{line}\n")), "{line}");
            }
            let opts = PrepareOptions::new(d.path());
            let text =
                option_file(&opts, "256M", d.path(), Path::new("/run/x"), false, format).unwrap();
            assert_eq!(
                effective(&text, "innodb-force-recovery").as_deref(),
                Some("0")
            );
        }
    }
}
