//! `xb-cli backup`: options in the style of xtrabackup/mariadb-backup,
//! turned into a `xb_core::run::backup` call.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use xb_core::plan::BackupPlan;
use xb_core::run::{BackupError, Progress as _, QueryKind, ReadLockOptions};

use crate::out;
use crate::progress::Report;

/// Options of `xb-cli backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Directory the backup is written to (must be absent or empty).
    /// With --stream it is not written to.
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Write the backup into object storage instead: s3://BUCKET/NAME,
    /// azure://CONTAINER/NAME, gs://BUCKET/NAME or file:///DIR/NAME. Files
    /// are laid out as in a directory backup; NAME must hold nothing yet.
    /// "completed OK" only once a final listing shows every object.
    #[arg(long, value_name = "URL", conflicts_with_all = ["target_dir", "stream"])]
    pub target: Option<String>,
    #[command(flatten)]
    pub store: crate::objects::StoreArgs,
    /// Write the backup to standard output in this format instead.
    #[arg(long, value_name = "FORMAT", value_parser = ["xbstream", "mbstream"])]
    pub stream: Option<String>,
    /// Copy threads.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    #[command(flatten)]
    pub conn: crate::connect::ConnectArgs,
    /// Partial backup: databases (or `db.table`) to keep, separated by spaces.
    /// The system schemas are always kept.
    #[arg(long, value_name = "LIST")]
    pub databases: Option<String>,
    /// Partial backup: keep only tables whose `db.table` matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub tables: Option<String>,
    /// Compress data files: zstd (default) or lz4; files get `.zst`/`.lz4`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "zstd", value_parser = ["zstd", "lz4"])]
    pub compress: Option<String>,
    /// zstd level (1..=19).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub compress_zstd_level: i32,
    /// Threads per compressing or encrypting stage.
    #[arg(long, default_value_t = 2)]
    pub compress_threads: usize,
    /// Encrypt data files (xbcrypt: AES-CTR, `.xbcrypt`): AES128, AES192 or AES256.
    #[arg(long, value_parser = ["AES128", "AES192", "AES256"])]
    pub encrypt: Option<String>,
    /// Encryption key (raw bytes of the algorithm's length, or hex). Prefer
    /// --encrypt-key-file: a key on the command line is visible in `ps`.
    #[arg(long, value_name = "KEY")]
    pub encrypt_key: Option<String>,
    /// File holding the raw encryption key.
    #[arg(long, value_name = "FILE")]
    pub encrypt_key_file: Option<PathBuf>,
    /// Keep a JSON document at FILE saying where the running backup is
    /// (phase, bytes, throughput, ETA, redo LSN and lag, locks, warnings)
    /// and how it ended; rewritten whole and renamed into place, about once
    /// a second.
    #[arg(long, value_name = "FILE")]
    pub status_file: Option<PathBuf>,
    /// Read the server's data files at no more than this many MiB per
    /// second, and write no more than that into the backup (the redo copy
    /// is never held back).
    #[arg(long, value_name = "MIB_PER_SEC")]
    pub throttle: Option<u64>,
    /// MySQL: protect each table with a metadata lock instead of blocking all
    /// DDL for the whole copy (LOCK INSTANCE FOR BACKUP is then taken only at
    /// the end). Deprecated: --lock-ddl=reduced blocks no table at all
    /// during the copy.
    #[arg(long)]
    pub lock_ddl_per_table: bool,
    /// When DDL is blocked: `on` for the whole InnoDB copy; `reduced`
    /// (default) only after it, with tables created, dropped, renamed or
    /// rebuilt meanwhile made good then; `off` as `reduced`, but DDL that
    /// ran during the copy fails the backup.
    #[arg(long, value_enum, ignore_case = true, default_value_t = LockDdlArg::Reduced)]
    pub lock_ddl: LockDdlArg,
    /// Incremental backup on top of the backup in DIR (full or incremental):
    /// only InnoDB pages changed since its to_lsn are copied. DIR may be an
    /// object-storage URL (s3://BUCKET/NAME, …) of a complete backup.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["incremental_lsn", "incremental_history_name", "incremental_history_uuid"])]
    pub incremental_basedir: Option<PathBuf>,
    /// Incremental backup of the pages changed since this LSN.
    #[arg(long, value_name = "LSN", conflicts_with_all = ["incremental_history_name", "incremental_history_uuid"])]
    pub incremental_lsn: Option<u64>,
    /// Incremental backup on the newest completed backup of the series NAME
    /// in the server's backup history (see --history).
    #[arg(long, value_name = "NAME", conflicts_with = "incremental_history_uuid")]
    pub incremental_history_name: Option<String>,
    /// Incremental backup on the backup with this uuid in the server's
    /// backup history (its `uuid` in xtrabackup_info).
    #[arg(long, value_name = "UUID")]
    pub incremental_history_uuid: Option<String>,
    /// Once the backup is complete, record it (uuid, times, LSNs, binlog
    /// position, format) in the server's backup history table, under the
    /// series NAME if given: mysql.mariadb_backup_history on MariaDB 10.11+,
    /// PERCONA_SCHEMA.xtrabackup_history elsewhere, as the vendor tools do.
    /// The table is made first if missing (CREATE and INSERT on it needed).
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "", require_equals = true)]
    pub history: Option<String>,
    /// MySQL: use the server's changed-page tracking (component_mysqlbackup),
    /// so an incremental reads only the pages changed since its base; every
    /// backup taken with it keeps tracking on for the next one.
    #[arg(long)]
    pub page_tracking: bool,
    /// When the server is a replica, record its source's coordinates at the
    /// backup's consistent point in `xtrabackup_slave_info`: the statements
    /// that point a server restored from this backup at the same source.
    /// On a server that is not a replica: a warning, and no file.
    #[arg(long, visible_alias = "replica-info")]
    pub slave_info: bool,
    /// Stop the replica's SQL thread before the backup takes its locks and
    /// wait until it has no temporary table open; it is started again at
    /// the end (also when the backup fails), if it ran before.
    #[arg(long, visible_alias = "safe-replica-backup")]
    pub safe_slave_backup: bool,
    /// Seconds --safe-slave-backup waits for the replica's temporary tables
    /// to close before the backup fails (exit 26).
    #[arg(
        long,
        visible_alias = "safe-replica-backup-timeout",
        default_value_t = 300,
        value_name = "SECONDS"
    )]
    pub safe_slave_backup_timeout: u64,
    /// Seconds to wait for the server's backup lock.
    #[arg(long, default_value_t = 86_400)]
    pub lock_wait_timeout: u64,
    /// Seconds each attempt at the backup lock (LOCK INSTANCE FOR BACKUP,
    /// the BACKUP STAGE statements) may wait for DDL holding it; unset:
    /// --lock-wait-timeout, in one attempt.
    #[arg(long, value_name = "SECONDS")]
    pub backup_lock_timeout: Option<u64>,
    /// Attempts at the backup lock after one timed out; then the backup
    /// fails (exit 28) naming the lock and who holds it.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub backup_lock_retry_count: u32,
    /// Before FLUSH TABLES WITH READ LOCK, wait up to this many seconds
    /// for statements running longer than --ftwrl-wait-threshold to end,
    /// and fail (exit 27) rather than queue the lock behind one: a queued
    /// read lock stalls every statement after it. 0 asks at once.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub ftwrl_wait_timeout: u64,
    /// Seconds a statement must have run to be waited for.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub ftwrl_wait_threshold: u64,
    /// Which statements --ftwrl-wait-timeout waits for (update: all but
    /// SELECT and SHOW).
    #[arg(long, value_enum, default_value_t = QueryType::All)]
    pub ftwrl_wait_query_type: QueryType,
    /// When FLUSH TABLES WITH READ LOCK is not granted within this many
    /// seconds, kill the statements that have run at least that long
    /// (of --kill-long-query-type), each one logged. 0 never kills.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub kill_long_queries_timeout: u64,
    /// Which statements --kill-long-queries-timeout may kill.
    #[arg(long, value_enum, default_value_t = KillType::Select)]
    pub kill_long_query_type: KillType,
    /// Copy tablespaces of MIB mebibytes or more in page ranges, by several
    /// workers at once (a directory target without compression or
    /// encryption; streams and object storage copy each file whole), so one
    /// huge table does not leave the other --parallel workers idle. 0: every
    /// file whole.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub split_at: u64,
    /// Print a JSON summary at the end (stdout, or stderr with --stream).
    #[arg(long)]
    pub json: bool,
    /// Connect, check privileges and settings (the redo log's capacity
    /// against the server's write rate, the open-files limit against the
    /// tablespaces, the target's free space, TLS), print the files, bytes
    /// and locks the backup would take, and exit without copying or
    /// locking. Exit 0: nothing in the way; 3: a check found a problem;
    /// otherwise the code the backup itself would fail with.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--ftwrl-wait-query-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryType {
    /// Every statement.
    All,
    /// Everything but SELECT and SHOW.
    Update,
    /// SELECT and SHOW.
    Select,
}

/// `--lock-ddl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LockDdlArg {
    /// DDL waits for the whole InnoDB copy.
    On,
    /// DDL waits only for the end of the backup.
    Reduced,
    /// DDL is never waited for during the copy; a backup it ran in fails.
    Off,
}

/// `--kill-long-query-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KillType {
    /// Every statement (a killed write is rolled back).
    All,
    /// SELECT and SHOW only.
    Select,
}

/// Runs `xb-cli backup`; returns the process exit code.
///
/// # Errors
/// Only for usage errors before the backup starts; backup failures are
/// printed with their hint and returned as the exit code.
pub async fn run(args: BackupArgs) -> anyhow::Result<u8> {
    if args.stream.is_some() && std::io::stdout().is_terminal() {
        anyhow::bail!("--stream writes binary data: redirect standard output to a file or a pipe");
    }
    let connect = args
        .conn
        .options(&["client", "xtrabackup", "mariadb-backup", "mariabackup"])?;
    if args.lock_ddl_per_table {
        out::warning(
            "--lock-ddl-per-table is deprecated: --lock-ddl=reduced blocks no table during the copy",
        );
    }
    let mut plan = BackupPlan::builder(connect)
        .parallel(args.parallel)
        .lock_wait_timeout(args.lock_wait_timeout)
        .lock_ddl_per_table(args.lock_ddl_per_table)
        .lock_ddl(match args.lock_ddl {
            LockDdlArg::On => xb_core::run::LockDdl::On,
            LockDdlArg::Reduced => xb_core::run::LockDdl::Reduced,
            LockDdlArg::Off => xb_core::run::LockDdl::Off,
        })
        .page_tracking(args.page_tracking)
        .slave_info(args.slave_info)
        .read_lock(read_lock_options(&args))
        .backup_lock(args.backup_lock_timeout, args.backup_lock_retry_count)
        .safe_slave_backup(
            args.safe_slave_backup
                .then(|| std::time::Duration::from_secs(args.safe_slave_backup_timeout)),
        )
        .command_line(std::env::args().skip(1).collect());
    plan = match (&args.stream, &args.target_dir) {
        (None, None) if args.target.is_some() => {
            let url = args.target.as_deref().unwrap_or_default();
            plan.target_object(args.store.location(url)?, args.store.options())
        }
        (Some(_), _) => plan.stream(Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        ))),
        (None, Some(dir)) => plan.target_dir(dir),
        (None, None) => {
            anyhow::bail!(
                "give --target-dir DIR, --target URL (object storage), or --stream=xbstream to write to standard output"
            )
        }
    };
    if let Some(dir) = &args.incremental_basedir {
        let base = match dir.to_str() {
            Some(url) if xb_sink::object::is_object_url(url) => {
                xb_core::run::IncrementalBase::Object(args.store.location(url)?)
            }
            _ => xb_core::run::IncrementalBase::Dir(dir.clone()),
        };
        plan = plan.incremental(base);
    } else if let Some(lsn) = args.incremental_lsn {
        plan = plan.incremental(xb_core::run::IncrementalBase::Lsn(lsn));
    } else if let Some(name) = &args.incremental_history_name {
        plan = plan.incremental(xb_core::run::IncrementalBase::History(
            xb_core::run::history::Key::Name(name.clone()),
        ));
    } else if let Some(uuid) = &args.incremental_history_uuid {
        plan = plan.incremental(xb_core::run::IncrementalBase::History(
            xb_core::run::history::Key::Uuid(uuid.clone()),
        ));
    }
    if let Some(name) = &args.history {
        plan = plan.history(name.clone());
    }
    plan = plan.split_at(args.split_at.saturating_mul(1 << 20));
    if let Some(algo) = &args.compress {
        plan = plan.compress(match algo.as_str() {
            "lz4" => xb_sink::Compression::Lz4,
            _ => xb_sink::Compression::Zstd {
                level: args.compress_zstd_level,
            },
        });
    }
    plan = plan.sink_threads(args.compress_threads.max(1));
    if let Some(algo) = &args.encrypt {
        let key = match (&args.encrypt_key, &args.encrypt_key_file) {
            (Some(k), None) => xb_sink::EncryptKey::from_arg(k),
            (None, Some(f)) => xb_sink::EncryptKey::from_file(f),
            _ => anyhow::bail!(
                "--encrypt={algo} needs exactly one of --encrypt-key or --encrypt-key-file"
            ),
        }
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let want = match algo.as_str() {
            "AES128" => 16,
            "AES192" => 24,
            _ => 32,
        };
        anyhow::ensure!(
            key.len() == want,
            "--encrypt={algo} needs a {want}-byte key, the key given has {} bytes",
            key.len()
        );
        plan = plan.encrypt(key);
    } else if args.encrypt_key.is_some() || args.encrypt_key_file.is_some() {
        anyhow::bail!("an encryption key was given without --encrypt=AES128|AES192|AES256");
    }
    if let Some(mib) = args.throttle {
        anyhow::ensure!(mib > 0, "--throttle must be at least 1 (MiB per second)");
        plan = plan.throttle(mib << 20);
    }
    if let Some(list) = &args.databases {
        plan = plan.databases(list.split_whitespace().map(String::from).collect());
    }
    if let Some(re) = &args.tables {
        plan = plan.tables(regex::Regex::new(re).map_err(|e| {
            anyhow::anyhow!("--tables {re:?} is not a valid regular expression: {e}")
        })?);
    }
    if args.dry_run {
        return match plan.build() {
            Ok(p) => Ok(crate::dry_run::run(&p, args.json).await),
            Err(e) => {
                print_failure(&e, None);
                Ok(e.code())
            }
        };
    }
    let status = args
        .status_file
        .clone()
        .map(crate::status::StatusFile::create)
        .transpose()
        .map_err(|e| {
            anyhow::anyhow!("--status-file: {e}\nhint: give a file in a directory xb may write")
        })?;
    let plan = match plan.build() {
        Ok(p) => p,
        Err(e) => {
            print_failure(&e, None);
            if let Some(st) = &status {
                st.finish(Some(format!("{e}")));
            }
            return Ok(e.code());
        }
    };
    let report = Report::new(std::io::stderr().is_terminal(), status);
    let streaming = args.stream.is_some();
    let ran = plan.run(&report).await;
    report.end();
    match ran {
        Ok(s) => {
            report.phase(&format!(
                "redo copied from LSN {} to {}; {} files, {} MiB, {} page re-reads; commits blocked {:.1}s{}",
                s.start_lsn,
                s.last_lsn,
                s.files,
                s.bytes >> 20,
                s.page_retries,
                s.lock_seconds,
                vanished_note(&s.vanished)
            ));
            for l in &s.locks {
                report.phase(&format!(
                    "{} blocked {:.1}s by {} (taken {:.1}s into the backup)",
                    l.blocks, l.held, l.lock, l.taken_at
                ));
            }
            if let Some(t) = &s.history {
                report.phase(&format!("recorded in the backup history table {t}"));
            }
            if args.json {
                let j = serde_json::json!({
                    "status": "completed",
                    "server_version": s.server_version,
                    "to_lsn": s.to_lsn,
                    "last_lsn": s.last_lsn,
                    "start_lsn": s.start_lsn,
                    "binlog": s.binlog.as_ref().map(|(f, p, g)| serde_json::json!({"file": f, "position": p, "gtid": g})),
                    "files": s.files,
                    "bytes": s.bytes,
                    "page_retries": s.page_retries,
                    "lock_seconds": s.lock_seconds,
                    "locks": s.locks.iter().map(|l| serde_json::json!({
                        "blocks": l.blocks,
                        "lock": l.lock,
                        "taken_at_seconds": l.taken_at,
                        "held_seconds": l.held,
                    })).collect::<Vec<_>>(),
                    "vanished": s.vanished,
                    "history": s.history,
                    "tokudb": s.tokudb.as_ref().map(|t| serde_json::json!({
                        "data_files": t.data_files.len(),
                        "log_files": t.log_files.len(),
                    })),
                    "redo": s.redo.as_ref().map(|r| serde_json::json!({
                        "capacity": r.capacity,
                        "max_lag": r.max_lag,
                        "min_margin": r.min_margin,
                        "server_bytes_per_s": r.server_rate.round(),
                        "copy_bytes_per_s": r.copy_rate.round(),
                        "samples": r.samples,
                    })),
                });
                if streaming {
                    eprintln!("{j}");
                } else {
                    println!("{j}");
                }
            }
            if let Some(st) = report.status() {
                st.finish(None);
            }
            out::line("completed OK!");
            Ok(0)
        }
        Err(e) => {
            if let Some(st) = report.status() {
                st.finish(Some(format!("{e}")));
            }
            print_failure(&e, args.target_dir.as_ref().filter(|_| !streaming));
            Ok(e.code())
        }
    }
}

/// Vanished files named in the closing line, at most this many.
const VANISHED_SHOWN: usize = 10;

/// `; N files vanished during the copy (dropped tables): a, b …` for the
/// closing line, or nothing. The list is capped so a schema dropped during
/// the copy does not flood the log; `--json` has them all.
fn vanished_note(vanished: &[String]) -> String {
    if vanished.is_empty() {
        return String::new();
    }
    let shown = vanished
        .iter()
        .take(VANISHED_SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let more = if vanished.len() > VANISHED_SHOWN {
        format!(
            " … and {} more (--json lists all)",
            vanished.len() - VANISHED_SHOWN
        )
    } else {
        String::new()
    };
    format!(
        "; {} file{} vanished during the copy (dropped tables): {shown}{more}",
        vanished.len(),
        if vanished.len() == 1 { "" } else { "s" }
    )
}

pub fn print_failure(e: &BackupError, target: Option<&PathBuf>) {
    out::error(&e.to_string(), Some(&e.hint()));
    if let Some(t) = target {
        if t.join(xb_core::prepare::INCOMPLETE_MARKER).exists() {
            out::line(&format!(
                "{} is incomplete (it holds {}); it cannot be restored",
                t.display(),
                xb_core::prepare::INCOMPLETE_MARKER
            ));
        }
    }
}

/// The read-lock options from the command line.
fn read_lock_options(args: &BackupArgs) -> ReadLockOptions {
    use std::time::Duration;
    let mut o = ReadLockOptions::default();
    o.wait_timeout = Duration::from_secs(args.ftwrl_wait_timeout);
    o.wait_threshold = Duration::from_secs(args.ftwrl_wait_threshold);
    o.wait_query_type = match args.ftwrl_wait_query_type {
        QueryType::All => QueryKind::All,
        QueryType::Update => QueryKind::Update,
        QueryType::Select => QueryKind::Select,
    };
    o.kill_timeout = Duration::from_secs(args.kill_long_queries_timeout);
    o.kill_query_type = match args.kill_long_query_type {
        KillType::All => QueryKind::All,
        KillType::Select => QueryKind::Select,
    };
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vanished_files_are_named_and_capped() {
        assert_eq!(vanished_note(&[]), "");
        assert_eq!(
            vanished_note(&["db/a.MYD".into()]),
            "; 1 file vanished during the copy (dropped tables): db/a.MYD"
        );
        let many: Vec<String> = (0..12).map(|i| format!("db/t{i:02}.MYD")).collect();
        let note = vanished_note(&many);
        assert!(
            note.starts_with("; 12 files vanished during the copy (dropped tables): db/t00.MYD, "),
            "{note}"
        );
        assert!(note.contains("db/t09.MYD … and 2 more"), "{note}");
        assert!(!note.contains("db/t10.MYD"), "{note}");
    }
}
