//! The simulated TokuDB engine: its files on disk, its two locks, and the
//! background writer that keeps changing the files the way a busy server does.
//!
//! Data file layout (every `.tokudb`, `tokudb.directory`, `tokudb.environment`,
//! `tokudb.rollback` written by the simulator):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `TOKUSIM1` |
//! | 8 | 8 | generation, u64 little endian; bumped on every rewrite |
//! | 16 | `DATA_FILE_LEN - 16` | filler, byte `i` = `(generation + i) as u8` |
//!
//! The filler depends on the generation, so a copy torn between two rewrites
//! does not parse (see [`parse_data_file`]).
//!
//! Log file layout (`log<NNNNNNNNNNNN>.tokulog27`): a sequence of
//! [`LOG_RECORD_LEN`]-byte text records `rec <20-digit seq>\n`, seq starting at 1
//! and contiguous across files; a new file starts every [`RECORDS_PER_LOG`] records.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Size of every simulated data file. Small, because the writer rewrites all of
/// them every tick on a shared build machine.
pub const DATA_FILE_LEN: usize = 16 * 1024;
/// Length of one log record, newline included.
pub const LOG_RECORD_LEN: usize = 25;
/// Records per log file before the simulator starts the next file.
pub const RECORDS_PER_LOG: u64 = 200;
const MAGIC: &[u8; 8] = b"TOKUSIM1";

/// Build the bytes of a data file at `generation`.
pub fn data_file_bytes(generation: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(DATA_FILE_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&generation.to_le_bytes());
    for i in 16..DATA_FILE_LEN {
        out.push(generation.wrapping_add(i as u64) as u8);
    }
    out
}

/// The generation of a data file, or `None` when the bytes are not one whole,
/// untorn data file (wrong size, magic, or filler from another generation).
pub fn parse_data_file(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != DATA_FILE_LEN || bytes.get(..8)? != MAGIC {
        return None;
    }
    let generation = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    (bytes == data_file_bytes(generation).as_slice()).then_some(generation)
}

/// Parse the records of one log file; `None` if any record is malformed or the
/// file ends inside a record.
pub fn parse_log_records(bytes: &[u8]) -> Option<Vec<u64>> {
    if bytes.len() % LOG_RECORD_LEN != 0 {
        return None;
    }
    bytes
        .chunks(LOG_RECORD_LEN)
        .map(|rec| {
            let text = std::str::from_utf8(rec).ok()?;
            let digits = text.strip_prefix("rec ")?.strip_suffix('\n')?;
            digits.parse().ok()
        })
        .collect()
}

/// Name of the `n`-th log file (1-based), in TokuFT's style.
pub fn log_file_name(n: u64) -> String {
    format!("log{n:012}.tokulog27")
}

/// Which directories hold which TokuDB files.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The server's `datadir`.
    pub datadir: PathBuf,
    /// Where `tokudb.*` and `.tokudb` files live (`datadir` when not separate).
    pub data_dir: PathBuf,
    /// Where the `.tokulog` files live (`datadir` when not separate).
    pub log_dir: PathBuf,
}

/// Mutable engine state, kept behind one mutex so that taking a lock and the
/// writer's rewrite can never interleave.
#[derive(Debug)]
pub struct Engine {
    pub(crate) layout: Layout,
    /// Data files, relative to `layout.data_dir`, with their current generation.
    pub(crate) data_files: BTreeMap<String, u64>,
    pub(crate) next_seq: u64,
    /// Session ids holding the checkpoint lock.
    pub(crate) checkpoint_lock: Vec<u32>,
    /// Session ids holding FLUSH TABLES WITH READ LOCK.
    pub(crate) read_lock: Vec<u32>,
    /// Generations of all data files at each moment the checkpoint lock went on.
    pub(crate) generations_at_lock: Vec<BTreeMap<String, u64>>,
    /// Last log seq written before each FTWRL was granted.
    pub(crate) seq_at_read_lock: Vec<u64>,
    /// Number of data-file rewrites and log appends since start.
    pub(crate) rewrites: u64,
    pub(crate) appends: u64,
    pub(crate) events: Vec<crate::Event>,
}

impl Engine {
    /// Create the directory tree and the initial files. `standalone`: the
    /// datadir is the simulator's own, so fake files of other engines are
    /// put there too; in proxy mode it is a real server's and only TokuDB
    /// files are added.
    pub(crate) fn create(layout: Layout, standalone: bool) -> io::Result<Self> {
        for dir in [&layout.datadir, &layout.data_dir, &layout.log_dir] {
            fs::create_dir_all(dir)?;
        }
        // Files of other engines and TokuDB's own lock files: a backup of the
        // TokuDB part must leave all of these alone.
        if standalone {
            fs::create_dir_all(layout.datadir.join("test"))?;
            fs::write(layout.datadir.join("ibdata1"), b"not tokudb")?;
            fs::write(layout.datadir.join("test/t0.frm"), b"not tokudb")?;
            fs::write(layout.datadir.join("test/t0.MYD"), b"not tokudb")?;
        }
        for what in ["data", "environment", "recovery", "temp"] {
            let name = format!("__tokudb_lock_dont_delete_me_{what}");
            fs::write(layout.data_dir.join(name), b"")?;
        }
        fs::write(
            layout.log_dir.join("__tokudb_lock_dont_delete_me_logs"),
            b"",
        )?;
        // tables of a database directory (tokudb_dir_per_db); in proxy mode
        // one of its own, so the real server's schemas stay untouched
        let db = if standalone { "test" } else { "tokudb_test" };
        fs::create_dir_all(layout.data_dir.join(db))?;
        let names = [
            "tokudb.directory".to_string(),
            "tokudb.environment".into(),
            "tokudb.rollback".into(),
            format!("_{db}_t1_main_2_1_1d.tokudb"),
            format!("_{db}_t1_status_2_1_1d.tokudb"),
            format!("{db}/t2_main_3_1_1d.tokudb"),
            format!("{db}/t2_status_3_1_1d.tokudb"),
        ];
        let mut data_files = BTreeMap::new();
        for name in names {
            fs::write(layout.data_dir.join(&name), data_file_bytes(1))?;
            data_files.insert(name, 1);
        }
        fs::write(layout.log_dir.join(log_file_name(1)), b"")?;
        Ok(Self {
            layout,
            data_files,
            next_seq: 1,
            checkpoint_lock: Vec::new(),
            read_lock: Vec::new(),
            generations_at_lock: Vec::new(),
            seq_at_read_lock: Vec::new(),
            rewrites: 0,
            appends: 0,
            events: Vec::new(),
        })
    }

    /// One tick of server activity: rewrite data files unless a checkpoint lock
    /// is held, append a log record unless FTWRL is held.
    pub(crate) fn tick(&mut self) -> io::Result<()> {
        if self.checkpoint_lock.is_empty() {
            let data_dir = self.layout.data_dir.clone();
            for (name, generation) in self.data_files.iter_mut() {
                *generation += 1;
                rewrite_in_place(&data_dir.join(name), &data_file_bytes(*generation))?;
            }
            self.rewrites += 1;
        }
        if self.read_lock.is_empty() {
            let seq = self.next_seq;
            let file_no = (seq - 1) / RECORDS_PER_LOG + 1;
            let path = self.layout.log_dir.join(log_file_name(file_no));
            let mut f = OpenOptions::new().create(true).append(true).open(path)?;
            f.write_all(format!("rec {seq:020}\n").as_bytes())?;
            self.next_seq += 1;
            self.appends += 1;
        }
        Ok(())
    }

    pub(crate) fn take_checkpoint_lock(&mut self, session: u32) {
        if !self.checkpoint_lock.contains(&session) {
            self.checkpoint_lock.push(session);
            self.generations_at_lock.push(self.data_files.clone());
        }
    }

    pub(crate) fn release_checkpoint_lock(&mut self, session: u32) -> bool {
        let before = self.checkpoint_lock.len();
        self.checkpoint_lock.retain(|s| *s != session);
        before != self.checkpoint_lock.len()
    }

    pub(crate) fn take_read_lock(&mut self, session: u32) {
        if !self.read_lock.contains(&session) {
            self.read_lock.push(session);
            self.seq_at_read_lock.push(self.next_seq - 1);
        }
    }

    pub(crate) fn release_read_lock(&mut self, session: u32) -> bool {
        let before = self.read_lock.len();
        self.read_lock.retain(|s| *s != session);
        before != self.read_lock.len()
    }

    /// What the server does when a connection ends: session-scoped locks die
    /// with the session.
    pub(crate) fn end_session(&mut self, session: u32) {
        let released_read_lock = self.release_read_lock(session);
        let released_checkpoint_lock = self.release_checkpoint_lock(session);
        self.events.push(crate::Event::SessionEnded {
            session,
            at: SystemTime::now(),
            released_read_lock,
            released_checkpoint_lock,
        });
    }
}

/// Overwrite a file in place in two halves, as a page-writing engine does; a
/// reader racing with this sees a torn file.
fn rewrite_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    let half = bytes.len() / 2;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&bytes[..half])?;
    f.write_all(&bytes[half..])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_round_trips_and_detects_tearing() {
        let a = data_file_bytes(7);
        assert_eq!(parse_data_file(&a), Some(7));
        let b = data_file_bytes(8);
        let mut torn = a[..DATA_FILE_LEN / 2].to_vec();
        torn.extend_from_slice(&b[DATA_FILE_LEN / 2..]);
        assert_eq!(parse_data_file(&torn), None);
        assert_eq!(parse_data_file(&a[..100]), None);
    }

    #[test]
    fn log_records_parse_and_reject_partial_records() {
        let mut bytes = Vec::new();
        for seq in 1..=3u64 {
            bytes.extend_from_slice(format!("rec {seq:020}\n").as_bytes());
        }
        assert_eq!(parse_log_records(&bytes), Some(vec![1, 2, 3]));
        assert_eq!(parse_log_records(&bytes[..bytes.len() - 1]), None);
    }
}
