//! The file names in a MariaDB 10.8+ log's FILE_ records, and rewriting
//! them in place.
//!
//! Recovery opens every tablespace it has redo for at the path the log's
//! FILE_CREATE / FILE_MODIFY / FILE_RENAME / FILE_DELETE records name. For
//! a table created with `DATA DIRECTORY` that path is absolute, so a server
//! recovering a backup's copy of the log would open (and write) the source
//! server's own file rather than the backup's copy of it. A name can be
//! replaced by another of the same length without moving any byte of the
//! log (LSNs are byte positions, so nothing else may move); the
//! mini-transaction's CRC-32C is then recomputed.
//!
//! Record layout (after the length, see [`crate::redo108`]): a record whose
//! first byte has bit 7 set is for the same page as the record before it,
//! unless no page record came before it in the mini-transaction; then it
//! is a file record: space id and page number (MariaDB's 1–5 byte
//! varints), then the name; FILE_RENAME carries the old name, a NUL byte
//! and the new name.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::be::be32;
use crate::redo108::{Log108, MTR_SIZE_MAX, Redo108Error, START_OFFSET, Stop108, parse_mtr};

const FILE_CREATE: u8 = 0x80;
const FILE_DELETE: u8 = 0x90;
const FILE_RENAME: u8 = 0xa0;
const FILE_MODIFY: u8 = 0xb0;

/// Bytes rewritten in a log file, enough to put them back: a 10.8+
/// mini-transaction, or a 10.5 block (see [`crate::redo105_names`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPatch {
    /// File offset of the rewritten bytes.
    pub offset: u64,
    /// The bytes before the rewrite.
    pub before: Vec<u8>,
    /// The bytes after it.
    pub after: Vec<u8>,
}

/// Length of the varint starting with `b`.
pub(crate) fn varint_len(b: u8) -> usize {
    match b {
        0..=0x7f => 1,
        0x80..=0xbf => 2,
        0xc0..=0xdf => 3,
        0xe0..=0xef => 4,
        _ => 5,
    }
}

/// Where the record starting at `recs[i]` ends: its header length (type
/// byte and length varint) and its total length, or `None` when `recs`
/// ends before the length does. Shared by every format whose records use
/// this encoding (MariaDB 10.5+), so that names are found the same way.
///
/// # Errors
/// A reason when the length is longer than a record can be.
pub(crate) fn record_len(recs: &[u8], i: usize) -> Result<Option<(usize, usize)>, String> {
    let Some(&b) = recs.get(i) else {
        return Ok(None);
    };
    if b & 15 != 0 {
        return Ok(Some((1, 1 + usize::from(b & 15))));
    }
    let at = |k: usize| recs.get(i + k).map(|&v| usize::from(v));
    let Some(v) = at(1) else {
        return Ok(None);
    };
    // the length is at most 3 bytes (a mini-transaction is < 1 MiB)
    let (vlen, n) = match varint_len(recs[i + 1]) {
        1 => (1, v),
        2 => match at(2) {
            Some(w) => (2, ((v & 0x3f) << 8 | w) + 0x80),
            None => return Ok(None),
        },
        3 => match (at(2), at(3)) {
            (Some(w), Some(x)) => (3, ((v & 0x1f) << 16 | w << 8 | x) + 0x4080),
            _ => return Ok(None),
        },
        _ => return Err(format!("record at byte {i}: length over 3 bytes")),
    };
    Ok(Some((1 + vlen, 16 + n)))
}

/// Byte ranges, within `recs` (a mini-transaction's records, without what
/// ends it), of the names its file records carry.
///
/// # Errors
/// A reason when a record runs past the records.
pub fn file_names(recs: &[u8]) -> Result<Vec<Range<usize>>, String> {
    let mut names = Vec::new();
    let mut i = 0usize;
    let mut got_page_op = false;
    while i < recs.len() {
        let b = recs[i];
        let (head, total) = record_len(recs, i)?.ok_or("record length cut off")?;
        let end = i + total;
        if end > recs.len() || head > total {
            return Err(format!("record at byte {i} runs past its mini-transaction"));
        }
        if !(b & 0x80 != 0 && got_page_op) {
            let mut p = i + head;
            for _ in 0..2 {
                p += recs
                    .get(p)
                    .map(|&v| varint_len(v))
                    .ok_or("page id cut off")?;
            }
            if p > end {
                return Err(format!("record at byte {i}: page id runs past the record"));
            }
            got_page_op = b & 0x80 == 0;
            match b & 0xf0 {
                FILE_CREATE | FILE_DELETE | FILE_MODIFY => names.push(p..end),
                FILE_RENAME => match recs[p..end].iter().position(|&c| c == 0) {
                    Some(nul) => {
                        names.push(p..p + nul);
                        names.push(p + nul + 1..end);
                    }
                    None => names.push(p..end),
                },
                _ => {}
            }
        }
        i = end;
    }
    Ok(names)
}

/// Rewrites, in the log file at `path` (a backup's linear copy), every
/// file name for which `rename` returns a replacement, from the latest
/// checkpoint to the end of the log, and returns what it changed.
/// `rename` must return names of the same length (others are refused).
///
/// # Errors
/// I/O, a malformed record, or a replacement of another length.
pub fn rewrite_file_names(
    path: &Path,
    rename: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<Vec<LogPatch>, Redo108Error> {
    edit_mtrs(path, &mut |recs| rename_edits(recs, rename))
}

/// An edit of a mini-transaction's records: the index of the first byte
/// replaced, and the bytes that replace it (as many as there were).
pub(crate) type Edit = (usize, Vec<u8>);

/// What a walk over mini-transactions calls with each one's records: the
/// edits to write back (none, for a walk that only reads), or why the
/// records cannot be taken.
pub(crate) type EditFn<'a> = dyn FnMut(&[u8]) -> Result<Vec<Edit>, String> + 'a;

/// The edits that replace the names `rename` has replacements for, in the
/// file records of one mini-transaction's `recs`.
///
/// # Errors
/// A reason when a record is malformed or a replacement has another
/// length than the name it replaces.
pub(crate) fn rename_edits(
    recs: &[u8],
    rename: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<Vec<Edit>, String> {
    let mut edits = Vec::new();
    for r in file_names(recs)? {
        let Some(new) = rename(&recs[r.clone()]) else {
            continue;
        };
        if new.len() != r.len() {
            return Err(format!(
                "a file name of {} bytes cannot be replaced by one of {}",
                r.len(),
                new.len()
            ));
        }
        edits.push((r.start, new));
    }
    Ok(edits)
}

/// Hands the records of every whole mini-transaction from the latest
/// checkpoint to the end of the log at `path` to `edit`, in log order, and
/// writes back the edits it returns (the checksum recomputed); returns
/// what changed. A walk whose `edit` never edits only reads. On an error
/// the log is put back as it was.
///
/// # Errors
/// I/O, or a reason from `edit`, named with the mini-transaction's offset.
pub(crate) fn edit_mtrs(path: &Path, edit: &mut EditFn) -> Result<Vec<LogPatch>, Redo108Error> {
    let mut patches = Vec::new();
    let done = edit_into(path, edit, &mut patches);
    if done.is_err() {
        // a failure half-way leaves the log as it was
        let _ = revert(path, &patches);
    }
    done.map(|()| patches)
}

fn edit_into(
    path: &Path,
    edit: &mut EditFn,
    patches: &mut Vec<LogPatch>,
) -> Result<(), Redo108Error> {
    let log = Log108::open(path)?;
    let start = log.latest_checkpoint()?.lsn;
    let io = |offset: u64, e: std::io::Error| Redo108Error::Io {
        file: path.to_path_buf(),
        offset,
        reason: e.to_string(),
    };
    // opened for writing only once there is something to write
    let file = File::open(path).map_err(|e| io(0, e))?;
    let mut out: Option<File> = None;
    let size = log.size();
    let mut lsn = start;
    let mut buf = Vec::new();
    loop {
        let off = START_OFFSET + (lsn - log.first_lsn());
        if off >= size {
            return Ok(());
        }
        let len = usize::try_from(size - off).map_or(4 << 20, |n| n.min(4 << 20));
        buf.resize(len, 0);
        file.read_exact_at(&mut buf, off).map_err(|e| io(off, e))?;
        let mut p = 0usize;
        loop {
            match parse_mtr(&log, lsn + p as u64, &buf[p..]) {
                Ok(n) => {
                    let mtr = &mut buf[p..p + n];
                    if let Some(patch) = edit_mtr(mtr, edit, path, off + p as u64)? {
                        writer(&mut out, path)
                            .map_err(|e| io(0, e))?
                            .write_all_at(&patch.after, patch.offset)
                            .map_err(|e| io(patch.offset, e))?;
                        patches.push(patch);
                    }
                    p += n;
                }
                // the window cut a mini-transaction: read on from it
                Err(Stop108::Incomplete) if p > 0 && len - p <= MTR_SIZE_MAX + 5 => break,
                Err(_) => return Ok(()),
            }
        }
        lsn += p as u64;
    }
}

/// The log at `path` opened for writing, the first time a walk has
/// something to write (a walk that only reads never opens it so).
pub(crate) fn writer<'w>(slot: &'w mut Option<File>, path: &Path) -> std::io::Result<&'w mut File> {
    match slot {
        Some(f) => Ok(f),
        None => Ok(slot.insert(OpenOptions::new().write(true).open(path)?)),
    }
}

fn edit_mtr(
    mtr: &mut [u8],
    edit: &mut EditFn,
    path: &Path,
    offset: u64,
) -> Result<Option<LogPatch>, Redo108Error> {
    let bad = |reason: String| Redo108Error::Header {
        file: path.to_path_buf(),
        reason: format!("mini-transaction at offset {offset}: {reason}"),
    };
    let recs = mtr.len() - 5;
    let edits = edit(&mtr[..recs]).map_err(bad)?;
    if edits.is_empty() {
        return Ok(None);
    }
    let before = mtr.to_vec();
    for (at, new) in edits {
        mtr[at..at + new.len()].copy_from_slice(&new);
    }
    debug_assert_eq!(crc32c::crc32c(&before[..recs]), be32(&before, recs + 1));
    let crc = crc32c::crc32c(&mtr[..recs]);
    mtr[recs + 1..].copy_from_slice(&crc.to_be_bytes());
    Ok(Some(LogPatch {
        offset,
        before,
        after: mtr.to_vec(),
    }))
}

/// Puts back what [`rewrite_file_names`] (or
/// [`crate::redo105_names::rewrite_file_names`]: patches are plain byte
/// runs whatever the format) changed, where the file still
/// holds the rewritten bytes (a server that already replaced its log has
/// left none of them). Returns how many were put back.
///
/// # Errors
/// I/O.
pub fn revert(path: &Path, patches: &[LogPatch]) -> Result<usize, Redo108Error> {
    let io = |offset: u64, e: std::io::Error| Redo108Error::Io {
        file: PathBuf::from(path),
        offset,
        reason: e.to_string(),
    };
    let file: File = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(0, e)),
    };
    let mut n = 0;
    for p in patches {
        let mut now = vec![0u8; p.after.len()];
        if file.read_exact_at(&mut now, p.offset).is_ok() && now == p.after {
            file.write_all_at(&p.before, p.offset)
                .map_err(|e| io(p.offset, e))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redo108::{Checkpoint108, backup_log_header};

    /// A mini-transaction: records, sequence byte 1, CRC-32C.
    fn mtr(recs: &[u8]) -> Vec<u8> {
        let mut m = recs.to_vec();
        let crc = crc32c::crc32c(&m);
        m.push(1);
        m.extend(crc.to_be_bytes());
        m
    }

    /// A file record of `kind` for space 5, page 0.
    fn file_rec(kind: u8, name: &[u8]) -> Vec<u8> {
        let body = 2 + name.len();
        let mut r = if body < 16 {
            vec![kind | u8::try_from(body).unwrap()]
        } else {
            // a 1-byte varint length n covers the type byte, itself and
            // n + 14 more bytes
            vec![kind, u8::try_from(body - 14).unwrap()]
        };
        r.extend([5, 0]);
        r.extend(name);
        r
    }

    const REMOTE: &[u8] = b"/srv/remote/ts/far.ibd";

    #[test]
    fn names_are_found_in_file_records_and_not_in_same_page_writes() {
        let mut recs = file_rec(FILE_MODIFY, REMOTE);
        let mut both = REMOTE.to_vec();
        both.push(0);
        both.extend(b"./ts/near.ibd");
        recs.extend(file_rec(FILE_RENAME, &both));
        let pages_at = recs.len();
        // a page WRITE (space 5, page 3), then a same-page WRITE (0xb0, as
        // FILE_MODIFY) whose bytes happen to spell the same path
        recs.extend([0x30 | 4, 5, 3, 0x26, b'x']);
        recs.push(0xb0);
        recs.push(u8::try_from(1 + REMOTE.len() - 14).unwrap());
        recs.push(0x10);
        recs.extend(REMOTE);
        let names = file_names(&recs).unwrap();
        let got: Vec<&[u8]> = names.iter().map(|r| &recs[r.clone()]).collect();
        assert_eq!(got, [REMOTE, REMOTE, &b"./ts/near.ibd"[..]]);
        assert!(names.iter().all(|r| r.end <= pages_at));
        assert!(file_names(&recs[..recs.len() - 1]).is_err());
    }

    #[test]
    fn a_rewritten_log_names_the_local_file_checksums_and_reverts() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ib_logfile0");
        let cp = Checkpoint108 {
            lsn: 20_000,
            end_lsn: 20_000,
            offset: 4096,
        };
        let mut log = backup_log_header(cp, "Backup 10.11.18");
        let first = mtr(&file_rec(FILE_MODIFY, REMOTE));
        let second = mtr(&[0x30 | 4, 5, 3, 0x26, b'x']);
        log.extend(&first);
        log.extend(&second);
        std::fs::write(&path, &log).unwrap();
        let local = format!("{}/ts/far.ibd", "./".repeat(6)).into_bytes();
        assert_eq!(local.len(), REMOTE.len() + 1);
        let wrong = |n: &[u8]| (n == REMOTE).then(|| local.clone());
        assert!(rewrite_file_names(&path, &wrong).is_err());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            log,
            "refused: nothing written"
        );
        let local = format!("{}ts/far.ibd", "./".repeat(6)).into_bytes();
        assert_eq!(local.len(), REMOTE.len());
        let rename = |n: &[u8]| (n == REMOTE).then(|| local.clone());
        let patches = rewrite_file_names(&path, &rename).unwrap();
        assert_eq!(patches.len(), 1);
        assert_eq!(patches[0].offset, START_OFFSET);
        let now = std::fs::read(&path).unwrap();
        let m = &now[12_288..12_288 + first.len()];
        let recs = m.len() - 5;
        assert_eq!(&m[4..recs], &local[..]);
        assert_eq!(crc32c::crc32c(&m[..recs]), be32(m, recs + 1));
        // the whole log still scans to its end
        let l = Log108::open(&path).unwrap();
        let mut s = crate::redo108::Scanner108::new(cp.lsn);
        // a backup's copy: all of it final, the last block too
        s.trust_up_to(u64::MAX);
        let end = s.poll(&l, &mut |_| Ok(())).unwrap();
        assert_eq!(end, cp.lsn + (first.len() + second.len()) as u64);
        assert_eq!(revert(&path, &patches).unwrap(), 1);
        assert_eq!(std::fs::read(&path).unwrap(), log);
        // nothing of ours left: nothing put back
        assert_eq!(revert(&path, &patches).unwrap(), 0);
    }
}
