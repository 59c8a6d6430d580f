//! The binlog archiver: connects as a replica, asks for the binlog from
//! where the archive ends, and appends each event the server sends to the
//! file of the same name in the archive directory, so that every archived
//! file is byte for byte the server's.
//!
//! What keeps it honest:
//! * each real event must end exactly at the file's length plus its size
//!   (its `log_pos`): an event missing or sent twice stops the archiver
//!   with an error instead of leaving a file that only looks whole;
//! * each checksum is checked before the event is written;
//! * a resume starts from the end of the last whole event on disk (a kill
//!   mid-write leaves at most a partial event, which is cut off), and
//!   checks that the server's file is still the one archived (the format
//!   description event the server re-sends must be the archived one);
//! * a file the archive needs that the server no longer has (purged) is a
//!   gap, reported with both names; so is another server behind the same
//!   address (a new `server_uuid`).
//!
//! Memory is one event at a time (plus the stream's buffer). Files are
//! fsynced at least once a second, at each rotate and at the end; the
//! status reports the durable position.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::BinlogStreamRequest;
use mysql_async::binlog::BinlogVersion;
use mysql_async::prelude::Queryable;

use super::format::{self, Header};
use crate::error::BackupError;
use crate::run::ConnectOptions;
use crate::run::server;

/// The archive's record of which server it follows.
pub const SOURCE_FILE: &str = "xb_binlog_source";

/// What the archiver is told.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// The server to follow.
    pub connect: ConnectOptions,
    /// The archive directory (created if absent).
    pub dir: PathBuf,
    /// The server id the archiver registers as: unique among the source's
    /// replicas, or the source drops one of the two connections.
    pub server_id: u32,
    /// With an empty archive, the binlog to start from; the oldest the
    /// server has when `None`.
    pub start_file: Option<String>,
    /// How long a lost server may stay away (a restart) before the
    /// archiver gives up.
    pub reconnect_for: Duration,
}

/// Where the archive stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveStatus {
    /// The file being appended to.
    pub file: String,
    /// Its length on disk, fsynced.
    pub durable_pos: u64,
    /// Events written since the archiver started.
    pub events: u64,
    /// Bytes written since the archiver started.
    pub bytes: u64,
    /// The timestamp (seconds since the epoch) of the last event written.
    pub last_event_time: u32,
    /// Times the connection was lost and made again.
    pub reconnects: u64,
}

/// Why the archiver stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The server could not be reached or refused the account.
    #[error("{0}")]
    Connect(#[source] BackupError),
    /// A statement or the binlog dump failed.
    #[error("{what}: {message}")]
    Server {
        /// What was asked.
        what: String,
        /// The server's or the driver's message.
        message: String,
    },
    /// The server writes no binlog.
    #[error("the server at {endpoint} has no binary log (log_bin is OFF)")]
    NoBinlog {
        /// `host:port` or socket.
        endpoint: String,
    },
    /// The archive needs a file the server no longer has.
    #[error(
        "gap in the binlog archive: it needs {needed} from position {pos}, but the server's oldest binlog is {oldest} (purged before it was archived)"
    )]
    Gap {
        /// The file the archive continues with.
        needed: String,
        /// Where in it.
        pos: u64,
        /// The oldest file the server still has.
        oldest: String,
    },
    /// The server is not the one the archive follows.
    #[error("the archive in {dir} follows server {archived}, but {endpoint} is server {now}")]
    OtherServer {
        /// The archive.
        dir: PathBuf,
        /// Who it followed.
        archived: String,
        /// Who answers now.
        now: String,
        /// `host:port` or socket.
        endpoint: String,
    },
    /// The server's file differs from the archived one of the same name.
    #[error("the server's {file} is not the archived {file}: {reason}")]
    Diverged {
        /// The file.
        file: String,
        /// What differs.
        reason: String,
    },
    /// An event failed its checksum.
    #[error("event at {file}:{pos} failed its CRC-32 checksum (type {kind})")]
    Checksum {
        /// The file.
        file: String,
        /// Where the event starts.
        pos: u64,
        /// Its type.
        kind: u8,
    },
    /// An event does not follow on from the last one.
    #[error(
        "event of type {kind} in {file} ends at {log_pos}, but the archived file is {len} bytes and the event {size}: an event is missing or repeated"
    )]
    Sequence {
        /// The file.
        file: String,
        /// The event's `log_pos`.
        log_pos: u64,
        /// The archived file's length.
        len: u64,
        /// The event's size.
        size: u64,
        /// Its type.
        kind: u8,
    },
    /// Reading or writing the archive failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The archive's copy in object storage could not be read or written.
    #[error("{source}")]
    Upload {
        /// The store's error (it names the URL and object).
        #[source]
        source: xb_sink::SinkError,
    },
    /// An archived file is not a binlog file.
    #[error("{path} is not a binlog file (no \\xfebin magic)")]
    NotABinlog {
        /// The file.
        path: PathBuf,
    },
}

impl ArchiveError {
    /// What the user can do about it.
    #[must_use]
    pub fn hint(&self) -> String {
        match self {
            ArchiveError::Connect(e) => e.hint(),
            ArchiveError::Server { .. } => {
                "Check the server's error log; the account needs REPLICATION SLAVE (and REPLICATION CLIENT for SHOW BINARY LOGS).".into()
            }
            ArchiveError::NoBinlog { .. } => {
                "Start the server with log_bin (and a server_id): without a binary log there is nothing to archive.".into()
            }
            ArchiveError::Gap { .. } => {
                "Take a new full backup and start a new archive directory for it; raise binlog_expire_logs_seconds (expire_logs_days) so the archiver never falls that far behind.".into()
            }
            ArchiveError::OtherServer { .. } | ArchiveError::Diverged { .. } => {
                "Point the archiver at the server it followed, or start a new archive directory (and a new full backup) for this server.".into()
            }
            ArchiveError::Checksum { .. } => {
                "The event was damaged on the way or on the server's disk: check the server's binlog with mysqlbinlog --verify-binlog-checksum; the archive keeps only what came before it.".into()
            }
            ArchiveError::Sequence { .. } => {
                "Run the archiver again: it resumes from the last whole event. If this repeats, report it with the two files.".into()
            }
            ArchiveError::Io { .. } => {
                "Check that the archive directory exists, is writable and has space.".into()
            }
            ArchiveError::Upload { .. } => {
                "Check the store's URL, bucket, credentials and network. The local archive keeps every event: run the archiver again and its first upload sends what the store is missing.".into()
            }
            ArchiveError::NotABinlog { .. } => {
                "Move the file out of the archive directory, or use an empty directory.".into()
            }
        }
    }

    /// The process exit code for it.
    #[must_use]
    pub fn code(&self) -> u8 {
        match self {
            ArchiveError::Connect(e) => e.code(),
            ArchiveError::Server { .. } => 13,
            ArchiveError::NoBinlog { .. } => 14,
            ArchiveError::Gap { .. }
            | ArchiveError::OtherServer { .. }
            | ArchiveError::Diverged { .. } => 40,
            ArchiveError::Checksum { .. } | ArchiveError::Sequence { .. } => 41,
            ArchiveError::Io { .. } | ArchiveError::NotABinlog { .. } => 42,
            ArchiveError::Upload { .. } => 43,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sql_err(what: &str) -> impl FnOnce(mysql_async::Error) -> ArchiveError + '_ {
    move |e| ArchiveError::Server {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// Where an archive resumes: the file and the end of its last whole event,
/// and that file's format description event (to hold the server's
/// against).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The newest archived file.
    pub file: String,
    /// The end of its last whole event.
    pub pos: u64,
    /// Its last whole event's type (a rotate or stop: the file is closed).
    pub last_kind: Option<u8>,
    /// The archived format description event's timestamp.
    pub fde_time: Option<u32>,
}

/// Is `name` a binlog file name (`base.NNNNNN`)?
pub(crate) fn is_binlog_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(base, n)| {
        !base.is_empty() && n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The files of the archive in `dir`, oldest first (by number).
///
/// # Errors
/// [`ArchiveError::Io`] when the directory cannot be read.
pub fn archived_files(dir: &Path) -> Result<Vec<String>, ArchiveError> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_binlog_name(n))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(dir)(e)),
    };
    names.sort_by_key(|n| format::file_number(n));
    Ok(names)
}

/// Where the archive in `dir` resumes; `None` when it holds no file. A
/// partial event at the end of the newest file is cut off here.
///
/// # Errors
/// [`ArchiveError::Io`], [`ArchiveError::NotABinlog`].
pub fn resume_point(dir: &Path) -> Result<Option<Resume>, ArchiveError> {
    let Some(file) = archived_files(dir)?.pop() else {
        return Ok(None);
    };
    let path = dir.join(&file);
    // headers only: the newest file may be a full 1 GiB binlog
    let f = File::open(&path).map_err(io_err(&path))?;
    let len = f.metadata().map_err(io_err(&path))?.len();
    let Some(w) =
        format::whole_events(&mut std::io::BufReader::new(f), len).map_err(io_err(&path))?
    else {
        return Err(ArchiveError::NotABinlog { path });
    };
    if w.end < len {
        tracing::warn!(file = %path.display(), whole = w.end, len, "cutting off a partial event");
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.set_len(w.end).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
    }
    Ok(Some(Resume {
        file,
        pos: w.end,
        last_kind: w.last_kind,
        fde_time: w.fde_time,
    }))
}

/// The server's identity as the archive records it: `server_uuid` where
/// the server has one (MySQL), else `server_id` (MariaDB has no uuid).
async fn identity(conn: &mut mysql_async::Conn) -> Result<String, ArchiveError> {
    let uuid: Result<Option<String>, _> = conn.query_first("SELECT @@server_uuid").await;
    if let Ok(Some(u)) = uuid {
        return Ok(format!("uuid {u}"));
    }
    let id: Option<u64> = conn
        .query_first("SELECT @@server_id")
        .await
        .map_err(sql_err("SELECT @@server_id"))?;
    Ok(format!("server_id {}", id.unwrap_or(0)))
}

/// The server's binlog files, oldest first.
async fn server_files(conn: &mut mysql_async::Conn) -> Result<Vec<String>, ArchiveError> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(sql_err("SHOW BINARY LOGS"))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.get::<String, _>(0))
        .collect())
}

/// The file being appended to.
struct Open {
    name: String,
    /// Events are gathered into large writes (one `write` per event cost
    /// a system call each, at a few hundred bytes an event); each fsync
    /// flushes first.
    file: std::io::BufWriter<File>,
    path: PathBuf,
    len: u64,
    synced: u64,
}

impl Open {
    /// Opens `name` in `dir` to append at `len` (creating it with the
    /// magic when `len` is 4 and it is not there).
    fn at(dir: &Path, name: &str, len: u64) -> Result<Open, ArchiveError> {
        let path = dir.join(name);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let on_disk = file.metadata().map_err(io_err(&path))?.len();
        if on_disk == 0 && len == 4 {
            file.write_all(&format::MAGIC).map_err(io_err(&path))?;
        } else if on_disk != len {
            return Err(ArchiveError::Diverged {
                file: name.into(),
                reason: format!("the archive holds {on_disk} bytes, the stream starts at {len}"),
            });
        }
        Ok(Open {
            name: name.into(),
            file: std::io::BufWriter::with_capacity(256 << 10, file),
            path,
            len,
            synced: on_disk,
        })
    }

    fn sync(&mut self) -> Result<(), ArchiveError> {
        if self.synced != self.len {
            self.file.flush().map_err(io_err(&self.path))?;
            self.file
                .get_ref()
                .sync_data()
                .map_err(io_err(&self.path))?;
            self.synced = self.len;
        }
        Ok(())
    }
}

/// What a wait in the dump loop gave.
enum Got {
    Event(Option<mysql_async::Result<mysql_async::binlog::events::Event>>),
    Stop,
    Tick,
}

/// How one dump session ended.
enum Ended {
    /// Asked to stop.
    Stopped,
    /// The connection was lost (a server restart, a network cut).
    Lost(String),
}

/// Follows the server until `stop` turns true or an error that retrying
/// cannot mend. `on_status` is called after each fsync.
///
/// # Errors
/// [`ArchiveError`], naming the file and what to do.
pub async fn run(
    opts: &ArchiveOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
    on_status: &(dyn Fn(&ArchiveStatus) + Sync),
) -> Result<ArchiveStatus, ArchiveError> {
    fs::create_dir_all(&opts.dir).map_err(io_err(&opts.dir))?;
    let mut status = ArchiveStatus::default();
    let mut lost_since: Option<Instant> = None;
    let mut connected_once = false;
    loop {
        if *stop.borrow() {
            return Ok(status);
        }
        let conn = match server::connect(&opts.connect).await {
            Ok(c) => c,
            Err(e) => {
                let since = *lost_since.get_or_insert_with(Instant::now);
                // the first connection fails at once (a wrong address or
                // account is not waited out); a lost one is retried
                if !connected_once || since.elapsed() > opts.reconnect_for {
                    return Err(ArchiveError::Connect(e));
                }
                tracing::info!(error = %e, "server away, trying again");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if lost_since.take().is_some() {
            status.reconnects += 1;
        }
        connected_once = true;
        match session(opts, conn, &mut stop, &mut status, on_status).await? {
            Ended::Stopped => return Ok(status),
            Ended::Lost(why) => {
                tracing::info!(reason = %why, file = %status.file, pos = status.durable_pos, "binlog stream lost, resuming");
                lost_since = Some(Instant::now());
            }
        }
    }
}

/// One connection's dump: checks, then events until the stream ends.
async fn session(
    opts: &ArchiveOptions,
    mut conn: mysql_async::Conn,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    status: &mut ArchiveStatus,
    on_status: &(dyn Fn(&ArchiveStatus) + Sync),
) -> Result<Ended, ArchiveError> {
    let log_bin: Option<u64> = conn
        .query_first("SELECT @@log_bin")
        .await
        .map_err(sql_err("SELECT @@log_bin"))?;
    if log_bin != Some(1) {
        return Err(ArchiveError::NoBinlog {
            endpoint: opts.connect.endpoint(),
        });
    }
    let who = identity(&mut conn).await?;
    let source = opts.dir.join(SOURCE_FILE);
    match fs::read_to_string(&source) {
        Ok(archived) if archived.trim() != who => {
            return Err(ArchiveError::OtherServer {
                dir: opts.dir.clone(),
                archived: archived.trim().to_string(),
                now: who,
                endpoint: opts.connect.endpoint(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::write(&source, format!("{who}\n")).map_err(io_err(&source))?;
        }
        Err(e) => return Err(io_err(&source)(e)),
    }
    let on_server = server_files(&mut conn).await?;
    let oldest = on_server.first().cloned().unwrap_or_default();
    let resume = resume_point(&opts.dir)?;
    // the file and position to ask for
    let (mut file, mut pos) = match &resume {
        None => (opts.start_file.clone().unwrap_or_else(|| oldest.clone()), 4),
        Some(r) => (r.file.clone(), r.pos),
    };
    // where the archive stands before anything arrives (a caught-up
    // archive may wait long for the next event)
    status.file.clone_from(&file);
    status.durable_pos = pos;
    on_status(status);
    if !on_server.contains(&file) {
        // a closed file (it ends with a rotate or a stop) whose successor
        // the server still has is no gap: the dump starts at the successor
        let closed = resume
            .as_ref()
            .is_some_and(|r| matches!(r.last_kind, Some(format::ROTATE | format::STOP)));
        let next = format::file_number(&file).map(|n| n + 1);
        match on_server.iter().find(|n| format::file_number(n) == next) {
            Some(next) if closed => {
                file.clone_from(next);
                pos = 4;
            }
            _ => {
                return Err(ArchiveError::Gap {
                    needed: file,
                    pos,
                    oldest,
                });
            }
        }
    }
    // MariaDB: send GTID and annotate events as they are in the file,
    // not rewritten for a replica that predates them
    let _ = conn.query_drop("SET @mariadb_slave_capability = 4").await;
    let request = BinlogStreamRequest::new(opts.server_id)
        .with_filename(file.as_bytes())
        .with_pos(pos);
    let mut stream = conn
        .get_binlog_stream(request)
        .await
        .map_err(sql_err("binlog dump"))?;
    let mut open: Option<Open> = None;
    // the file the stream is in (the made-up rotate names it) and whether
    // its events carry checksums (its format description says)
    let mut current = file.clone();
    let mut checksummed = true;
    let mut fde_checked = resume.as_ref().is_none_or(|r| r.pos <= 4);
    // one timer for the whole session: a sleep made per event cost a
    // timer registration and a clock read for every event (a tenth of the
    // archiver's CPU in a profile)
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = Vec::with_capacity(64 << 10);
    loop {
        let got = tokio::select! {
            e = stream.next() => Got::Event(e),
            r = stop.changed() => if r.is_err() || *stop.borrow() { Got::Stop } else { Got::Tick },
            _ = tick.tick() => Got::Tick,
        };
        let next = match got {
            Got::Event(e) => e,
            Got::Tick => {
                if let Some(o) = open.as_mut() {
                    o.sync()?;
                    report(status, o, on_status);
                }
                continue;
            }
            Got::Stop => {
                if let Some(o) = open.as_mut() {
                    o.sync()?;
                    report(status, o, on_status);
                }
                return Ok(Ended::Stopped);
            }
        };
        let event = match next {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                if let Some(o) = open.as_mut() {
                    o.sync()?;
                    report(status, o, on_status);
                }
                return match &e {
                    mysql_async::Error::Server(se) if se.code == 1236 => {
                        Err(ArchiveError::Diverged {
                            file: current,
                            reason: se.message.clone(),
                        })
                    }
                    _ => Ok(Ended::Lost(e.to_string())),
                };
            }
            None => {
                if let Some(o) = open.as_mut() {
                    o.sync()?;
                    report(status, o, on_status);
                }
                return Ok(Ended::Lost("the server ended the stream".into()));
            }
        };
        buf.clear();
        event
            .write(BinlogVersion::Version4, &mut buf)
            .map_err(|e| ArchiveError::Server {
                what: "binlog event".into(),
                message: e.to_string(),
            })?;
        let Some(h) = Header::parse(&buf) else {
            continue;
        };
        if h.kind == format::FORMAT_DESCRIPTION {
            checksummed = format::fde_checksummed(&buf);
        }
        if h.is_made_up() {
            if h.kind == format::ROTATE {
                // the first one comes before any format description, with
                // a checksum from MariaDB and none from MySQL: its own
                // bytes tell
                if let Some((_, name)) = format::rotate_target(&buf, format::checksum_ok(&buf)) {
                    current = name;
                }
            }
            if h.kind == format::FORMAT_DESCRIPTION && !fde_checked {
                // re-sent because the dump starts mid-file: it must be the
                // archived file's own
                fde_checked = true;
                if let Some(r) = &resume {
                    if r.file == current && r.fde_time.is_some_and(|t| t != h.timestamp) {
                        return Err(ArchiveError::Diverged {
                            file: current,
                            reason: "its format description event has another timestamp (the server was replaced, or its binlog reset)".into(),
                        });
                    }
                }
            }
            continue;
        }
        // a real event of `current`. Its checksum as the server sent it,
        // against the one of its bytes: the driver writes an event back
        // with a fresh checksum once it knows the file's algorithm (from the
        // format description, which always comes first), and keeps the
        // sent one in the bytes while it does not.
        let intact = match event.checksum() {
            Some(sent) => buf.ends_with(&sent),
            None => !checksummed || format::checksum_ok(&buf),
        };
        if !intact {
            return Err(ArchiveError::Checksum {
                file: current,
                pos: open.as_ref().map_or(0, |o| o.len),
                kind: h.kind,
            });
        }
        if open.as_ref().is_none_or(|o| o.name != current) {
            if let Some(o) = open.as_mut() {
                o.sync()?;
            }
            let start = match &resume {
                Some(r) if r.file == current => r.pos,
                _ => 4,
            };
            open = Some(Open::at(&opts.dir, &current, start)?);
            status.file = current.clone();
        }
        let Some(o) = open.as_mut() else { continue };
        let size = buf.len() as u64;
        if u64::from(h.log_pos) != o.len + size {
            return Err(ArchiveError::Sequence {
                file: current,
                log_pos: h.log_pos.into(),
                len: o.len,
                size,
                kind: h.kind,
            });
        }
        o.file.write_all(&buf).map_err(io_err(&o.path))?;
        o.len += size;
        status.events += 1;
        status.bytes += size;
        status.last_event_time = h.timestamp;
        if h.kind == format::ROTATE || h.kind == format::STOP {
            o.sync()?;
            report(status, o, on_status);
        }
    }
}

fn report(status: &mut ArchiveStatus, o: &Open, on_status: &(dyn Fn(&ArchiveStatus) + Sync)) {
    status.file.clone_from(&o.name);
    status.durable_pos = o.synced;
    on_status(status);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_names_are_base_dot_digits() {
        assert!(is_binlog_name("binlog.000001"));
        assert!(is_binlog_name("mysql-bin.123456"));
        assert!(!is_binlog_name("binlog.index"));
        assert!(!is_binlog_name(SOURCE_FILE));
        assert!(!is_binlog_name(".000001"));
        assert_eq!(format::file_number("binlog.000010"), Some(10));
    }

    #[test]
    fn a_resume_cuts_a_partial_event_and_names_the_last_one() {
        let d = tempfile::tempdir().unwrap();
        let mut f = format::MAGIC.to_vec();
        let fde = crate::binlog::format::tests::event(
            format::FORMAT_DESCRIPTION,
            4 + 27,
            0,
            &[0, 0, 0, 1],
        );
        f.extend(&fde);
        let end = f.len() as u64;
        let xid = crate::binlog::format::tests::event(format::XID, (end + 31) as u32, 0, &[0; 8]);
        f.extend(&xid[..12]);
        fs::write(d.path().join("binlog.000003"), &f).unwrap();
        fs::write(d.path().join("binlog.000002"), format::MAGIC).unwrap();
        let r = resume_point(d.path()).unwrap().unwrap();
        assert_eq!(r.file, "binlog.000003");
        assert_eq!(r.pos, end);
        assert_eq!(r.last_kind, Some(format::FORMAT_DESCRIPTION));
        assert_eq!(r.fde_time, Some(1_700_000_000));
        assert_eq!(
            fs::metadata(d.path().join("binlog.000003")).unwrap().len(),
            end
        );
        fs::write(d.path().join("binlog.000004"), b"garbage").unwrap();
        assert!(matches!(
            resume_point(d.path()),
            Err(ArchiveError::NotABinlog { .. })
        ));
    }
}
