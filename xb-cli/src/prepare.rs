//! `xb-cli prepare`: make a backup restorable with the server's own crash
//! recovery (see `xb_core::prepare`).

use std::path::PathBuf;
use std::time::Duration;

use xb_core::prepare::{PrepareOptions, prepare};

/// Options of `xb-cli prepare`.
#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// The backup directory to prepare in place.
    #[arg(long, value_name = "DIR")]
    pub target_dir: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Apply the redo only: no rollback of unfinished transactions, so
    /// incremental backups can still be applied on top (use it for the base
    /// and every incremental but the last).
    #[arg(long)]
    pub apply_log_only: bool,
    /// Apply this incremental backup onto --target-dir (a base prepared with
    /// --apply-log-only whose to_lsn is the incremental's from_lsn).
    #[arg(long, value_name = "DIR")]
    pub incremental_dir: Option<PathBuf>,
    /// After recovery, have the server write each InnoDB table's .cfg (and
    /// .cfp) beside its .ibd, for ALTER TABLE … IMPORT TABLESPACE; also on a
    /// backup already prepared. Not with --apply-log-only.
    #[arg(long)]
    pub export: bool,
}

/// The server that runs a recovery (`prepare`, `verify --restore-test`).
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Server binary that runs the recovery; it must be the backup's flavour and
    /// release series (default: the first mariadbd or mysqld in PATH that is).
    #[arg(long, value_name = "PATH")]
    pub server_binary: Option<PathBuf>,
    /// Option file read before xb's own settings (e.g. for lc-messages-dir).
    #[arg(long, value_name = "FILE")]
    pub server_defaults_file: Option<PathBuf>,
    /// Buffer pool size for recovery: a size (`1G`), or `auto`, as large
    /// as the redo to apply (at least 256M, at most half the memory
    /// available and 1G).
    #[arg(long, default_value = "auto")]
    pub use_memory: String,
    /// Seconds recovery may take before xb gives up.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}

impl ServerArgs {
    /// These settings on `opts`.
    pub fn apply(&self, mut opts: PrepareOptions) -> PrepareOptions {
        if let Some(bin) = &self.server_binary {
            opts = opts.server_binary(bin);
        }
        if let Some(cnf) = &self.server_defaults_file {
            opts = opts.server_defaults_file(cnf);
        }
        opts.use_memory.clone_from(&self.use_memory);
        opts.timeout = Duration::from_secs(self.timeout);
        opts
    }
}

/// Runs `xb-cli prepare`; returns the process exit code (0, or the
/// error's stable code after printing it with its hint).
#[must_use]
pub fn run(args: PrepareArgs) -> u8 {
    let mut opts = args.server.apply(PrepareOptions::new(&args.target_dir));
    opts.apply_log_only = args.apply_log_only;
    opts.export = args.export;
    if let Some(inc) = args.incremental_dir {
        opts = opts.incremental_dir(inc);
    }
    match prepare(&opts) {
        Ok(report) => {
            if let Some(m) = &report.merged {
                crate::out::line(&format!(
                    "merged the incremental: {} delta(s), {} page(s) ({} new tablespace(s), {} renamed), {} file(s) copied, {} dropped",
                    m.deltas, m.pages, m.new_spaces, m.moved, m.copied, m.removed
                ));
            }
            if let Some(x) = &report.export {
                for n in &x.not_exported {
                    crate::out::warning(&format!("{} not exported: {}", n.table, n.reason));
                }
                crate::out::line(&format!(
                    "exported {} of {} InnoDB table(s): {} .cfg/.cfp file(s) written",
                    x.tables - x.not_exported.len(),
                    x.tables,
                    x.files
                ));
            }
            if report.already_prepared {
                crate::out::line(&format!(
                    "{} was prepared already: no redo applied, server took {:.1}s",
                    args.target_dir.display(),
                    report.server_time.as_secs_f64()
                ));
            } else {
                crate::out::line(&format!(
                    "prepared {}: redo applied from LSN {} to {} (backup end point {}), {} DDL marker(s), server took {:.1}s",
                    args.target_dir.display(),
                    report.first_lsn,
                    report.log_end_lsn,
                    report.last_lsn,
                    report.ddl_markers_applied,
                    report.server_time.as_secs_f64()
                ));
            }
            crate::out::line("prepare completed OK");
            0
        }
        Err(e) => {
            crate::out::error(&format!("prepare failed: {e}"), Some(e.hint()));
            e.code()
        }
    }
}
