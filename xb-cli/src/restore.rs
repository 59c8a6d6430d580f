//! `xb-cli copy-back` and `xb-cli move-back`: put a prepared backup into a
//! server's datadir (see `xb_core::restore`).

use std::path::PathBuf;

use xb_core::restore::{Mode, RestoreOptions, restore};

/// Options of `xb-cli copy-back` and `xb-cli move-back`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The prepared backup directory.
    #[arg(long, value_name = "DIR")]
    pub target_dir: PathBuf,
    /// Where to restore (default: datadir of --defaults-file).
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// The server's option file: datadir, innodb_data_home_dir,
    /// innodb_log_group_home_dir, innodb_undo_directory and user of its
    /// [mysqld], [server], [mariadb] and [mariadbd] groups.
    #[arg(long, value_name = "FILE")]
    pub defaults_file: Option<PathBuf>,
    /// Files written at once (1, as the vendor tools: raise it for SSDs).
    #[arg(short = 'p', long, default_value_t = 1, value_name = "N")]
    pub parallel: usize,
    /// Restore into directories that hold files already; an existing file
    /// is still never overwritten.
    #[arg(long)]
    pub force_non_empty_directories: bool,
    /// Owner of the restored files when run as root (default: user= of
    /// the option file, else the owner of the datadir or the directory
    /// above it).
    #[arg(long, value_name = "USER")]
    pub chown: Option<String>,
}

/// Runs `xb-cli copy-back` (`Mode::Copy`) or `move-back`; returns the
/// process exit code (0, or the error's stable code after printing it
/// with its hint).
#[must_use]
pub fn run(args: RestoreArgs, mode: Mode) -> u8 {
    let mut opts = RestoreOptions::new(&args.target_dir);
    opts.datadir = args.datadir;
    opts.defaults_file = args.defaults_file;
    opts.parallel = args.parallel.max(1);
    opts.force_non_empty_directories = args.force_non_empty_directories;
    opts.chown = args.chown;
    opts.mode = mode;
    let what = match mode {
        Mode::Move => "move-back",
        Mode::Copy => "copy-back",
    };
    match restore(&opts) {
        Ok(r) => {
            for e in &r.external {
                crate::out::line(&format!("restored outside the datadir: {}", e.display()));
            }
            crate::out::line(&format!(
                "restored {} file(s), {} bytes, into {} in {:.1}s ({} backup-only file(s) left in {})",
                r.files,
                r.bytes,
                r.dirs.datadir.display(),
                r.elapsed.as_secs_f64(),
                r.skipped,
                args.target_dir.display()
            ));
            crate::out::line(&format!("{what} completed OK"));
            0
        }
        Err(e) => {
            crate::out::error(&format!("{what} failed: {e}"), Some(e.hint()));
            e.code()
        }
    }
}
