//! `xb-cli restore --until …`: a new datadir at a point in time, from the
//! newest backup before it and the binlog archive.

use std::path::PathBuf;

use clap::Args;
use xb_core::pitr::{PitrOptions, Until, point};

use crate::out;

/// `restore` options.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("point").required(true).args(["until", "until_gtid", "until_position"])))]
pub struct PitrArgs {
    /// Directory whose subdirectories are the backups (full and
    /// incremental, as xb-cli backup wrote them).
    #[arg(long, value_name = "DIR")]
    pub backups: PathBuf,
    /// The archive `xb-cli binlog-archive` keeps: its directory, or the
    /// URL it uploads to (`--upload-to`), whose files are first downloaded
    /// into a scratch directory beside --target-dir.
    #[arg(long, value_name = "DIR|URL")]
    pub binlog_archive: String,
    #[command(flatten)]
    pub store: crate::objects::StoreArgs,
    /// Every transaction committed at or before this time: YYYY-MM-DD
    /// HH:MM:SS in UTC, or @SECONDS since the epoch.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Up to and including this transaction: UUID:N (MySQL) or
    /// DOMAIN-SERVER-SEQ (MariaDB).
    #[arg(long, value_name = "GTID")]
    pub until_gtid: Option<String>,
    /// Up to the last transaction that ends at or before FILE:POS.
    #[arg(long, value_name = "FILE:POS")]
    pub until_position: Option<String>,
    /// The datadir to make (absent or empty); start a server on it after.
    #[arg(long, value_name = "DIR")]
    pub target_dir: PathBuf,
    /// The server binary that prepares and replays (default: mariadbd or
    /// mysqld in PATH, of the backup's version).
    #[arg(long, value_name = "PATH")]
    pub server_binary: Option<PathBuf>,
    /// An option file for that server (paths such as plugin-dir).
    #[arg(long, value_name = "FILE")]
    pub server_defaults_file: Option<PathBuf>,
    /// The binlog reader (default: mysqlbinlog or mariadb-binlog beside the
    /// server binary, then in PATH).
    #[arg(long, value_name = "PATH")]
    pub binlog_reader: Option<PathBuf>,
    /// The client (default: mysql or mariadb, found the same way).
    #[arg(long, value_name = "PATH")]
    pub client: Option<PathBuf>,
    /// Buffer pool for prepare: auto, or a size such as 1G.
    #[arg(long, default_value = "auto")]
    pub use_memory: String,
}

/// Runs the restore; returns the exit code.
/// Downloads the archive at `args.binlog_archive` (a URL) into a scratch
/// directory beside the target; on failure, reports and gives the exit code.
fn download_archive(args: &PitrArgs) -> Result<tempfile::TempDir, u8> {
    use xb_core::binlog::ArchiveError;
    let fail = |e: ArchiveError| {
        out::error(
            &format!("restore failed: cannot fetch the binlog archive: {e}"),
            Some(&e.hint()),
        );
        e.code()
    };
    let upload = |source| ArchiveError::Upload { source };
    let url = &args.binlog_archive;
    let loc = args.store.location(url).map_err(upload).map_err(fail)?;
    let files =
        xb_sink::object::ObjectFiles::open(loc, usize::from(args.store.object_part_size) << 20)
            .map_err(upload)
            .map_err(fail)?;
    let beside = match args.target_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io = |source| ArchiveError::Io {
        path: beside.clone(),
        source,
    };
    std::fs::create_dir_all(&beside).map_err(io).map_err(fail)?;
    let scratch = tempfile::Builder::new()
        .prefix(".xb-binlogs-")
        .tempdir_in(&beside)
        .map_err(io)
        .map_err(fail)?;
    let names = xb_core::binlog::remote::download(&files, scratch.path()).map_err(fail)?;
    out::line(&format!(
        "fetched {} binlog file(s) from {url}",
        names.len()
    ));
    Ok(scratch)
}

pub fn run(args: PitrArgs) -> u8 {
    let until = match (&args.until, &args.until_gtid, &args.until_position) {
        (Some(t), _, _) => point::parse_time(t).map(Until::Time),
        (_, Some(g), _) => point::parse_gtid(g).map(Until::Gtid),
        (_, _, Some(p)) => point::parse_position(p),
        _ => Err("give --until, --until-gtid or --until-position".into()),
    };
    let until = match until {
        Ok(u) => u,
        Err(e) => {
            out::error(&format!("restore refused: {e}"), None);
            return 2;
        }
    };
    // an archive in object storage comes down first; the scratch
    // directory goes when the restore is done, whatever its outcome
    let scratch;
    let archive = if xb_sink::object::is_object_url(&args.binlog_archive) {
        match download_archive(&args) {
            Ok(dir) => {
                scratch = dir;
                scratch.path().to_path_buf()
            }
            Err(code) => return code,
        }
    } else {
        PathBuf::from(&args.binlog_archive)
    };
    let opts = PitrOptions {
        backups: args.backups,
        archive,
        until,
        target: args.target_dir,
        server_binary: args.server_binary,
        server_defaults_file: args.server_defaults_file,
        binlog_reader: args.binlog_reader,
        client: args.client,
        use_memory: args.use_memory,
    };
    out::line(&format!(
        "restoring to {} into {}",
        opts.until,
        opts.target.display()
    ));
    match xb_core::pitr::restore(&opts) {
        Ok(r) => {
            let chain: Vec<String> = r.chain.iter().map(|p| p.display().to_string()).collect();
            out::line(&format!("backup: {}", chain.join(" + ")));
            match &r.reached {
                Some(b) => out::line(&format!(
                    "replayed binlog from {}:{} to {}:{} (last transaction at {} UTC{})",
                    r.from.0,
                    r.from.1,
                    b.file,
                    b.end,
                    point::format_time(b.time),
                    b.gtid.map(|g| format!(", GTID {g}")).unwrap_or_default()
                )),
                None => out::line(&format!(
                    "no binlog to replay: the backup is at {}:{}, the point's last transaction",
                    r.from.0, r.from.1
                )),
            }
            out::line("restore completed OK");
            0
        }
        Err(e) => {
            out::error(&format!("restore failed: {e}"), Some(&e.hint()));
            if opts.target.join(xb_core::restore::MARKER).exists() {
                out::line(&format!(
                    "{} is incomplete ({} says why): remove it before trying again",
                    opts.target.display(),
                    xb_core::restore::MARKER
                ));
            }
            e.code()
        }
    }
}
