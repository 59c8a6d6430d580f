//! The file names in a MariaDB 10.5–10.7 log's FILE_ records, rewritten
//! in place: the 512-byte-block counterpart of [`crate::redo108_names`]
//! (see there for why recovery must not see the source's absolute paths).
//!
//! The records are encoded as in 10.8 (so [`file_names`] finds the names),
//! but the framing differs:
//! - the log is a run of blocks (see [`crate::redo105`]) whose payloads,
//!   bytes 12 up to the block's data length (at most 508), concatenate into
//!   one stream of records; a record, and so a name, may cross from one
//!   block into the next;
//! - a mini-transaction ends with one 0x00 byte (no record starts with it)
//!   and carries no checksum of its own: each block's CRC-32C covers it.
//!
//! So the stream is rebuilt from the checkpoint on, split into
//! mini-transactions by walking record lengths, and each replaced byte is
//! written back to the block that holds it, whose CRC-32C is then
//! recomputed. Nothing moves: LSNs are byte positions, headers included.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::redo105::{BLOCK, HEADER_SIZE, Log105, Redo105Error, block_ok};
use crate::redo108_names::{EditFn, LogPatch, record_len, rename_edits, revert, writer};

/// Size of a block header; the payload starts here.
const PAYLOAD_START: usize = 12;
/// Where the trailer (CRC-32C) starts; the payload ends here at the latest.
const TRAILER: usize = 508;
/// Bytes one read fills.
pub(crate) const WINDOW: usize = 4 << 20;

/// Rewrites, in the log file at `path` (a backup's copy), every file name
/// for which `rename` returns a replacement, from the latest checkpoint to
/// the end of valid log, and returns the blocks it changed (each once,
/// with its bytes before the first change and after the last). `rename`
/// must return names of the same length (others are refused). The patches
/// are put back by [`revert`]; on an error, what was written already is.
///
/// # Errors
/// I/O, a malformed record, or a replacement of another length.
pub fn rewrite_file_names(
    path: &Path,
    rename: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<Vec<LogPatch>, Redo105Error> {
    edit_mtrs(path, &mut |recs| rename_edits(recs, rename), WINDOW)
}

/// Hands the records of every whole mini-transaction from the latest
/// checkpoint to the end of valid log at `path` to `edit`, in log order,
/// reading `window` bytes at a time, and writes back the edits it returns
/// (each block's checksum recomputed); returns the blocks changed. A walk
/// whose `edit` never edits only reads. On an error the log is put back.
///
/// # Errors
/// I/O, a malformed record, or a reason from `edit`, named with the
/// mini-transaction's offset.
pub(crate) fn edit_mtrs(
    path: &Path,
    edit: &mut EditFn,
    window: usize,
) -> Result<Vec<LogPatch>, Redo105Error> {
    let log = Log105::open(path)?;
    let file = File::open(path).map_err(|e| io_error(path, 0, &e))?;
    let mut w = Rewriter {
        path,
        file,
        writer: None,
        edit,
        stream: Vec::new(),
        base: 0,
        segs: Vec::new(),
        patches: Vec::new(),
        patch_of: HashMap::new(),
    };
    let done = w.run(&log, window);
    if done.is_err() {
        // a failure half-way leaves the log as it was
        let _ = revert(path, &w.patches);
    }
    done.map(|()| w.patches)
}

fn io_error(path: &Path, offset: u64, e: &std::io::Error) -> Redo105Error {
    Redo105Error::Io {
        file: path.to_path_buf(),
        offset,
        reason: e.to_string(),
    }
}

/// Where the records that `buf` starts with end: the index of the 0x00
/// byte that closes the mini-transaction, `None` when `buf` ends first.
fn mtr_end(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut i = 0;
    loop {
        match buf.get(i) {
            None => return Ok(None),
            Some(0) => return Ok(Some(i)),
            Some(_) => match record_len(buf, i)? {
                Some((_, total)) => i += total,
                None => return Ok(None),
            },
        }
    }
}

/// The walk: the stream of payload bytes not yet split into complete
/// mini-transactions, where each of them lies in the file, and what was
/// changed so far.
struct Rewriter<'a> {
    path: &'a Path,
    file: File,
    /// The log opened for writing, once there is something to write.
    writer: Option<File>,
    edit: &'a mut EditFn<'a>,
    /// Payload bytes from stream position `base` on; `base` is always the
    /// start of a mini-transaction.
    stream: Vec<u8>,
    base: u64,
    /// For each block whose payload is (partly) in `stream`, in order: the
    /// stream position and the file offset of its first payload byte there.
    segs: Vec<(u64, u64)>,
    patches: Vec<LogPatch>,
    /// Block offset → index in `patches`.
    patch_of: HashMap<u64, usize>,
}

impl Rewriter<'_> {
    fn run(&mut self, log: &Log105, window: usize) -> Result<(), Redo105Error> {
        let size = HEADER_SIZE + log.capacity();
        let start = log.latest_checkpoint()?.lsn;
        let first_block = start / BLOCK * BLOCK;
        // the first mini-transaction starts at the checkpoint itself
        let skip = usize::try_from(start % BLOCK)
            .unwrap_or(0)
            .max(PAYLOAD_START);
        let mut lsn = first_block;
        let mut buf = Vec::new();
        // one lap at most: a linear copy ends well before
        while lsn - first_block < log.capacity() {
            let off = log.offset_of(lsn);
            let room = (size - off).min(log.capacity() - (lsn - first_block));
            let len = usize::try_from(room).map_or(window, |n| n.min(window)) / 512 * 512;
            if len == 0 {
                break; // the file ends in part of a block
            }
            buf.resize(len, 0);
            self.file
                .read_exact_at(&mut buf, off)
                .map_err(|e| io_error(self.path, off, &e))?;
            let mut ended = false;
            for b in buf.chunks_exact(512) {
                let Some(n) = block_ok(b, lsn) else {
                    ended = true; // never written, an older lap, or torn
                    break;
                };
                let from = if lsn == first_block {
                    skip
                } else {
                    PAYLOAD_START
                };
                let to = usize::from(n).min(TRAILER);
                if from < to {
                    let at = self.base + self.stream.len() as u64;
                    self.segs.push((at, log.offset_of(lsn) + from as u64));
                    self.stream.extend_from_slice(&b[from..to]);
                }
                lsn += BLOCK;
                if usize::from(n) < 512 {
                    ended = true; // the partly written last block
                    break;
                }
            }
            self.split()?;
            if ended {
                break;
            }
        }
        // an incomplete last mini-transaction is not recovered: left alone
        Ok(())
    }

    /// File offset of stream position `pos` (held in `stream`).
    fn offset_of(&self, pos: u64) -> u64 {
        let i = self.segs.partition_point(|&(p, _)| p <= pos);
        let (p, off) = self.segs[i.saturating_sub(1)];
        off + (pos - p)
    }

    /// Rewrites the names of every complete mini-transaction in `stream`,
    /// then drops them.
    fn split(&mut self) -> Result<(), Redo105Error> {
        let mut used = 0usize;
        loop {
            let rest = &self.stream[used..];
            let end = match mtr_end(rest) {
                Ok(Some(end)) => end,
                Ok(None) => break,
                Err(reason) => return Err(self.bad(used, &reason)),
            };
            let edits = (self.edit)(&rest[..end]).map_err(|r| self.bad(used, &r))?;
            for (at, new) in edits {
                self.write(used + at, &new)?;
            }
            used += end + 1;
        }
        self.stream.drain(..used);
        self.base += used as u64;
        // keep the block holding `base` and those after it
        let keep = self.segs.partition_point(|&(p, _)| p <= self.base);
        self.segs.drain(..keep.saturating_sub(1));
        Ok(())
    }

    fn bad(&self, at: usize, reason: &str) -> Redo105Error {
        let offset = self.offset_of(self.base + at as u64);
        Redo105Error::Header {
            file: self.path.to_path_buf(),
            reason: format!("mini-transaction at offset {offset}: {reason}"),
        }
    }

    /// Writes `new` over the stream's bytes from index `at`, block by
    /// block, each with its CRC-32C recomputed.
    fn write(&mut self, at: usize, new: &[u8]) -> Result<(), Redo105Error> {
        self.stream[at..at + new.len()].copy_from_slice(new);
        let mut by_block: Vec<(u64, Vec<(usize, u8)>)> = Vec::new();
        for (k, &c) in new.iter().enumerate() {
            let off = self.offset_of(self.base + (at + k) as u64);
            let block = off / BLOCK * BLOCK;
            // within a block: below 512, so the cast cannot truncate
            let within = (off - block) as usize;
            match by_block.last_mut() {
                Some((b, v)) if *b == block => v.push((within, c)),
                _ => by_block.push((block, vec![(within, c)])),
            }
        }
        for (block, bytes) in by_block {
            let mut b = vec![0u8; 512];
            self.file
                .read_exact_at(&mut b, block)
                .map_err(|e| io_error(self.path, block, &e))?;
            let before = b.clone();
            for (i, c) in bytes {
                b[i] = c;
            }
            let crc = crc32c::crc32c(&b[..TRAILER]);
            b[TRAILER..].copy_from_slice(&crc.to_be_bytes());
            writer(&mut self.writer, self.path)
                .map_err(|e| io_error(self.path, 0, &e))?
                .write_all_at(&b, block)
                .map_err(|e| io_error(self.path, block, &e))?;
            match self.patch_of.get(&block) {
                Some(&i) => self.patches[i].after = b,
                None => {
                    self.patch_of.insert(block, self.patches.len());
                    self.patches.push(LogPatch {
                        offset: block,
                        before,
                        after: b,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::be::{be16, hdr_no};
    use crate::redo105::{Checkpoint105, backup_log_header};

    const FILE_MODIFY: u8 = 0xb0;
    const FILE_RENAME: u8 = 0xa0;
    const REMOTE: &[u8] = b"/srv/remote/ts/far.ibd";

    /// A record of type byte `kind` whose bytes after the length are
    /// `body` (page id, then payload).
    fn rec(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = if body.len() < 16 {
            vec![kind | u8::try_from(body.len()).unwrap()]
        } else if body.len() - 14 < 128 {
            // the varint's value n counts n + 15 bytes after the type byte,
            // the varint itself among them
            vec![kind, u8::try_from(body.len() - 14).unwrap()]
        } else {
            let n = body.len() - 13 - 128;
            vec![
                kind,
                0x80 | u8::try_from(n >> 8).unwrap(),
                u8::try_from(n & 0xff).unwrap(),
            ]
        };
        r.extend(body);
        r
    }

    /// A file record for space 5, page 0.
    fn file_rec(kind: u8, name: &[u8]) -> Vec<u8> {
        rec(kind, &[&[5, 0][..], name].concat())
    }

    /// A mini-transaction: its records and the 0x00 that ends it.
    fn mtr(recs: &[u8]) -> Vec<u8> {
        let mut m = recs.to_vec();
        m.push(0);
        m
    }

    /// A WRITE to space 5 page 3 whose mini-transaction is `total` bytes.
    fn write_mtr(total: usize) -> Vec<u8> {
        let mut body = vec![5, 3, 0x26];
        let head = if total - 1 - 1 < 16 {
            1
        } else if total - 1 - 2 - 14 < 128 {
            2
        } else {
            3
        };
        body.resize(total - 1 - head, b'x');
        let m = mtr(&rec(0x30, &body));
        assert_eq!(m.len(), total);
        m
    }

    /// A backup's log whose checkpoint is at `cp_lsn`, holding `stream`
    /// from there on (blocks sealed, the last one partly filled, then a
    /// zero block); the first block's bytes before the checkpoint hold
    /// `before`.
    fn log(cp_lsn: u64, before: &[u8], stream: &[u8]) -> Vec<u8> {
        let mut cp = vec![0u8; 512];
        cp[0..8].copy_from_slice(&7u64.to_be_bytes());
        cp[8..16].copy_from_slice(&cp_lsn.to_be_bytes());
        let cp = Checkpoint105 {
            no: 7,
            lsn: cp_lsn,
            block: cp,
        };
        let mut v = backup_log_header(&cp, "Backup 10.5.29");
        let mut lsn = cp_lsn / BLOCK * BLOCK;
        let skip = usize::try_from(cp_lsn % BLOCK).unwrap();
        let mut rest = stream;
        let mut first = true;
        loop {
            let mut b = vec![0u8; 512];
            let from = if first { skip } else { 12 };
            if first {
                b[12..12 + before.len()].copy_from_slice(before);
            }
            let n = rest.len().min(508 - from);
            b[from..from + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            let len = if from + n == 508 { 512 } else { from + n };
            b[0..4].copy_from_slice(&hdr_no(lsn).to_be_bytes());
            b[4..6].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
            b[6..8].copy_from_slice(&12u16.to_be_bytes());
            b[8..12].copy_from_slice(&7u32.to_be_bytes());
            let crc = crc32c::crc32c(&b[..508]);
            b[508..].copy_from_slice(&crc.to_be_bytes());
            v.extend(b);
            lsn += BLOCK;
            first = false;
            if len < 512 {
                break;
            }
        }
        v.extend([0u8; 512]);
        v
    }

    /// The payload stream of `v` from `cp_lsn` on, every block's checksum
    /// checked on the way.
    fn payloads(v: &[u8], cp_lsn: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut lsn = cp_lsn / BLOCK * BLOCK;
        for (i, b) in v[2048..].chunks_exact(512).enumerate() {
            let Some(n) = block_ok(b, lsn) else {
                assert_eq!(b, &[0u8; 512][..], "block {i} is neither valid nor padding");
                break;
            };
            let from = if i == 0 {
                usize::try_from(cp_lsn % BLOCK).unwrap()
            } else {
                12
            };
            out.extend(&b[from..usize::from(n).min(508)]);
            assert_eq!(be16(b, 4), n);
            lsn += BLOCK;
        }
        out
    }

    #[test]
    fn a_name_across_a_block_boundary_is_rewritten_checksummed_and_reverted() {
        let cp_lsn = 8192 + 3 * 512 + 112;
        // a mini-transaction before the checkpoint naming the remote file:
        // it is not recovered, so it is not rewritten
        let before = mtr(&file_rec(FILE_MODIFY, REMOTE));
        // the checkpoint's block holds 396 payload bytes: the name of the
        // second mini-transaction starts at 390 and ends in the next block
        let m1 = write_mtr(386);
        let m2 = mtr(&file_rec(FILE_MODIFY, REMOTE));
        assert_eq!(m2[4..26], *REMOTE);
        let mut both = REMOTE.to_vec();
        both.push(0);
        both.extend(b"./ts/near.ibd");
        let m3 = mtr(&file_rec(FILE_RENAME, &both));
        let m4 = write_mtr(700);
        let stream = [m1, m2, m3, m4].concat();
        let orig = log(cp_lsn, &before, &stream);
        assert_eq!(stream[390..412], *REMOTE);
        // in the file the name is cut by the block's trailer and the next
        // one's header: only the other two copies are whole
        assert_eq!(
            orig.windows(REMOTE.len()).filter(|w| *w == REMOTE).count(),
            2
        );
        let local = format!("{}ts/far.ibd", "./".repeat(6)).into_bytes();
        assert_eq!(local.len(), REMOTE.len());
        let rename = |n: &[u8]| (n == REMOTE).then(|| local.clone());
        let want = stream
            .windows(REMOTE.len())
            .enumerate()
            .filter(|(_, w)| *w == REMOTE)
            .fold(stream.clone(), |mut s, (i, _)| {
                s[i..i + REMOTE.len()].copy_from_slice(&local);
                s
            });
        assert_ne!(want, stream);
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ib_logfile0");
        // one block per read, two, and the real window: same result
        for window in [512, 1024, WINDOW] {
            std::fs::write(&path, &orig).unwrap();
            let patches =
                edit_mtrs(&path, &mut |recs| rename_edits(recs, &rename), window).unwrap();
            let now = std::fs::read(&path).unwrap();
            assert_eq!(payloads(&now, cp_lsn), want, "window {window}");
            // the blocks of the first name, and the second's (in the second
            // block too), each patched once
            let offsets: Vec<u64> = patches.iter().map(|p| p.offset).collect();
            assert_eq!(offsets, [2048, 2560], "window {window}");
            assert_eq!(
                now[2048 + 12..2048 + 12 + before.len()],
                before[..],
                "before the checkpoint"
            );
            assert_eq!(now.len(), orig.len());
            assert_eq!(revert(&path, &patches).unwrap(), 2);
            assert_eq!(std::fs::read(&path).unwrap(), orig);
            assert_eq!(revert(&path, &patches).unwrap(), 0, "nothing of ours left");
        }
        // a replacement of another length: refused, nothing written
        std::fs::write(&path, &orig).unwrap();
        let longer = [&local[..], b"x"].concat();
        let wrong = |n: &[u8]| (n == REMOTE).then(|| longer.clone());
        let e = rewrite_file_names(&path, &wrong).unwrap_err();
        assert!(e.to_string().contains("cannot be replaced"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), orig);
    }

    #[test]
    fn a_log_without_file_names_is_left_unchanged() {
        let cp_lsn = 8192 + 40;
        let stream = [write_mtr(300), write_mtr(20), write_mtr(900)].concat();
        let orig = log(cp_lsn, &[], &stream);
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ib_logfile0");
        std::fs::write(&path, &orig).unwrap();
        let any = |n: &[u8]| Some(vec![b'.'; n.len()]);
        assert!(rewrite_file_names(&path, &any).unwrap().is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), orig);
    }

    #[test]
    fn a_record_length_no_record_has_is_refused_with_its_offset() {
        let cp_lsn = 8192 + 12;
        // a length varint of four bytes (0xe0): never written by a server
        let stream = [write_mtr(30), vec![0x30, 0xe0, 0, 0, 0, 0]].concat();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ib_logfile0");
        std::fs::write(&path, log(cp_lsn, &[], &stream)).unwrap();
        let e = rewrite_file_names(&path, &|_| None).unwrap_err();
        assert!(e.to_string().contains("offset 2090"), "{e}");
        assert_eq!(mtr_end(&[0x31, 7, 0]), Ok(Some(2)));
        assert_eq!(mtr_end(&[0x30]), Ok(None));
    }
}
