//! `xb-cli`: the thin command-line front end of xb. Each subcommand lives in
//! its own module and only translates options into library calls.

mod argv;
mod backup;
mod binlog_archive;
mod connect;
mod dry_run;
mod extract;
mod malloc;
mod objects;
mod out;
mod pitr;
mod prepare;
mod progress;
mod restore;
mod status;
mod verify;

use clap::{Parser, Subcommand};
use xb_core::restore::Mode;

/// Hot physical backups of MySQL-family servers.
#[derive(Debug, Parser)]
#[command(name = "xb-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Take a hot backup of a running server.
    Backup(Box<backup::BackupArgs>),
    /// Follow a server's binary log into a directory, file for file, until
    /// SIGTERM: the log a point-in-time restore replays.
    BinlogArchive(binlog_archive::ArchiveArgs),
    /// Make a backup restorable by running the server's own crash recovery on it.
    Prepare(prepare::PrepareArgs),
    /// Unpack an xbstream, or download a backup from object storage, into a directory.
    Extract(extract::ExtractArgs),
    /// List the backups under an object-storage prefix, complete or not.
    List(objects::ListArgs),
    /// Check a backup without a server: manifest checksums, pages, redo, metadata.
    Verify(verify::VerifyArgs),
    /// Copy a prepared backup into a server's (empty) datadir.
    CopyBack(restore::RestoreArgs),
    /// Make a new datadir at a point in time: the newest backup before it,
    /// prepared, then rolled forward with the binlog archive.
    Restore(pitr::PitrArgs),
    /// Move a prepared backup into a server's (empty) datadir: no second
    /// copy's space needed; the backup is used up.
    MoveBack(restore::RestoreArgs),
}

fn main() -> std::process::ExitCode {
    malloc::limit_arenas();
    out::init_tracing();
    let cli = Cli::parse();
    // clap holds its own copies now; what `ps` shows loses the secrets
    argv::scrub_secrets();
    let result = match cli.command {
        Command::Backup(args) => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    out::error(&format!("cannot start the async runtime: {e}"), None);
                    return std::process::ExitCode::FAILURE;
                }
            };
            match rt.block_on(backup::run(*args)) {
                Ok(0) => Ok(()),
                Ok(code) => return std::process::ExitCode::from(code),
                Err(e) => Err(e),
            }
        }
        Command::Prepare(args) => match prepare::run(args) {
            0 => Ok(()),
            code => return std::process::ExitCode::from(code),
        },
        Command::BinlogArchive(args) => match binlog_archive::run(args) {
            0 => Ok(()),
            code => return std::process::ExitCode::from(code),
        },
        Command::Extract(args) => extract::run(args),
        Command::List(args) => objects::list(&args),
        Command::Verify(args) => match verify::run(&args) {
            Ok(0) => Ok(()),
            Ok(code) => return std::process::ExitCode::from(code),
            Err(e) => Err(e),
        },
        Command::Restore(args) => {
            return std::process::ExitCode::from(pitr::run(args));
        }
        Command::CopyBack(args) => {
            return std::process::ExitCode::from(restore::run(args, Mode::Copy));
        }
        Command::MoveBack(args) => {
            return std::process::ExitCode::from(restore::run(args, Mode::Move));
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            out::error(&format!("{e:#}"), None);
            std::process::ExitCode::FAILURE
        }
    }
}
