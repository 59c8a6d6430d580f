//! Runbook for the classic redo group (MySQL 5.7, 8.0 before 8.0.30,
//! Percona Server, MariaDB ≤ 10.4), none of which can run here: the log a
//! real Percona Server 8.0.21 left after an unclean shutdown (1.3 MB after
//! its checkpoint, `../shared/fixtures/innodb`) is written again, block by
//! block, into a live group of two small files, the way the server writes
//! it: the last block rewritten as it fills, the group wrapping more than
//! once, the checkpoint moving on. The copier follows it while it grows.
//!
//! - Kept up with, the copy equals the server's blocks byte for byte, and
//!   the `xtrabackup_logfile` made of it reads back with every block in
//!   place and the fixture's log records in it.
//! - Lapped (the server writes over log the copier has not read yet), the
//!   copy fails with "overwritten", and what it handed out before is the
//!   real log, never a block of the later lap.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use xb_innodb::redo_classic::{
    BLOCK, BlockChecksum, ClassicError, HEADER_SIZE, LogClassic, ScannerClassic,
};
use xb_innodb::redo_classic_backup::{BLOCK_HEADER, BackupLogfile, backup_logfile_header};
use xb_testing::fixtures;

const B: usize = 512;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// The fixture's log from the block of its checkpoint to its end, read
/// with nothing but the format's arithmetic (not with the reader under
/// test): the checkpoint block's group offset, then block after block
/// across the files, skipping each file's 2048-byte header, until a block
/// is not full.
struct Original {
    header: Vec<u8>,
    checkpoint: u64,
    /// LSN of the first block.
    start: u64,
    /// LSN just past the last byte of log.
    end: u64,
    /// The blocks, the last one partly filled.
    blocks: Vec<u8>,
}

fn original(root: &Path, tmp: &Path) -> Original {
    let zip = root.join("percona-server-std_data/data80_rocks_index_ver_bump.zip");
    fixtures::unzip(&zip, tmp, &["*/ib_logfile*"]);
    let dir = tmp.join("data80_rocks_index_ver_bump");
    let files: Vec<std::fs::File> = (0..2)
        .map(|n| std::fs::File::open(dir.join(format!("ib_logfile{n}"))).unwrap())
        .collect();
    let size = files[0].metadata().unwrap().len();
    let mut header = vec![0u8; 2048];
    files[0].read_exact_at(&mut header, 0).unwrap();
    assert!(
        String::from_utf8_lossy(&header[16..48]).starts_with("MySQL 8.0.21"),
        "the Percona 8.0.21 group"
    );
    // both checkpoint blocks hold the same LSN in this fixture
    let (checkpoint, group_offset) = (be64(&header, 512 + 8), be64(&header, 512 + 16));
    let start = checkpoint / 512 * 512;
    let mut real = group_offset - (checkpoint - start);
    let mut blocks = Vec::new();
    loop {
        if real % size == 0 {
            real += HEADER_SIZE;
        }
        let mut b = [0u8; B];
        files[usize::try_from(real / size).unwrap() % files.len()]
            .read_exact_at(&mut b, real % size)
            .unwrap();
        blocks.extend_from_slice(&b);
        real = (real + BLOCK) % (size * files.len() as u64);
        if be16(&b, 4) < 512 {
            break;
        }
    }
    let last = &blocks[blocks.len() - B..];
    let end = start + (blocks.len() - B) as u64 + u64::from(be16(last, 4));
    Original {
        header,
        checkpoint,
        start,
        end,
        blocks,
    }
}

/// A live classic group the test writes as a server would.
struct Ring {
    dir: tempfile::TempDir,
    files: u64,
    file_size: u64,
    /// LSN at group offset 2048 (the first byte after file 0's header).
    base: u64,
}

impl Ring {
    /// `files` files of `data` bytes of log each, headed by the original's
    /// header with each file's start LSN, and a first checkpoint at `cp`.
    fn new(orig: &Original, files: u64, data: u64) -> Ring {
        let ring = Ring {
            dir: tempfile::tempdir().unwrap(),
            files,
            file_size: HEADER_SIZE + data,
            base: orig.start,
        };
        for n in 0..files {
            let mut h = vec![0u8; usize::try_from(ring.file_size).unwrap()];
            h[..B].copy_from_slice(&orig.header[..B]);
            h[8..16].copy_from_slice(&(ring.base + n * data).to_be_bytes());
            let crc = crc32c::crc32c(&h[..508]);
            h[508..512].copy_from_slice(&crc.to_be_bytes());
            std::fs::write(ring.path(n), h).unwrap();
        }
        ring.checkpoint(1, orig.checkpoint);
        ring
    }

    fn path(&self, n: u64) -> std::path::PathBuf {
        self.dir.path().join(format!("ib_logfile{n}"))
    }

    fn capacity(&self) -> u64 {
        self.files * (self.file_size - HEADER_SIZE)
    }

    /// Group offset of `lsn` (file headers counted).
    fn real(&self, lsn: u64) -> u64 {
        let data = self.file_size - HEADER_SIZE;
        let s = (lsn - self.base) % self.capacity();
        s + HEADER_SIZE * (1 + s / data)
    }

    fn put(&self, real: u64, bytes: &[u8]) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path(real / self.file_size))
            .unwrap();
        f.write_all_at(bytes, real % self.file_size).unwrap();
    }

    /// Checkpoint number `no` at `lsn`, in the block InnoDB uses for it.
    fn checkpoint(&self, no: u64, lsn: u64) {
        let mut b = [0u8; B];
        b[0..8].copy_from_slice(&no.to_be_bytes());
        b[8..16].copy_from_slice(&lsn.to_be_bytes());
        b[16..24].copy_from_slice(&self.real(lsn).to_be_bytes());
        b[24..32].copy_from_slice(&(16u64 << 20).to_be_bytes());
        let crc = crc32c::crc32c(&b[..508]);
        b[508..512].copy_from_slice(&crc.to_be_bytes());
        self.put(if no % 2 == 0 { 512 } else { 1536 }, &b);
    }
}

/// Block `block` of the original cut to `len` bytes of data (header
/// included), its checksum made again, the rest of the block filled with
/// stale bytes as a server's log buffer leaves them.
fn partial(block: &[u8], len: usize) -> [u8; B] {
    let mut b = [0u8; B];
    b.copy_from_slice(block);
    b[4..6].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    if usize::from(be16(&b, 6)) >= len {
        b[6..8].fill(0);
    }
    for (i, x) in b[len..508].iter_mut().enumerate() {
        *x = (i * 31 % 251) as u8;
    }
    let crc = crc32c::crc32c(&b[..508]);
    b[508..512].copy_from_slice(&crc.to_be_bytes());
    b
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// The server's checkpoint stays behind the copier (a copier that keeps
    /// up): it never writes where the copier has not read.
    KeptUp,
    /// The server goes on regardless: its checkpoint passes the copier.
    Lapping,
}

/// The server: writes the original's log into `ring` in steps of a few
/// KiB, rewriting the last block as it fills.
struct Server<'a> {
    ring: &'a Ring,
    orig: &'a Original,
    /// LSN up to which the log is written.
    written: u64,
    /// The last checkpoint's number.
    no: u64,
    seed: u64,
}

impl<'a> Server<'a> {
    fn new(ring: &'a Ring, orig: &'a Original) -> Self {
        Server {
            ring,
            orig,
            written: orig.start,
            no: 1,
            seed: 0x9E37_79B9,
        }
    }

    /// Writes on to `until`. With [`Pace::KeptUp`] a step waits until the
    /// copier's position (`needed`, the first LSN it still needs) leaves
    /// room in the ring, and the checkpoint follows it.
    fn serve(&mut self, until: u64, pace: Pace, needed: &AtomicU64) {
        let (ring, orig) = (self.ring, self.orig);
        let until = until.min(orig.end);
        while self.written < until {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            let mut to = (self.written + 300 + self.seed % 9000).min(until);
            let block = to / BLOCK * BLOCK;
            let in_block = to - block;
            // a block's data is 12..508 of it: round into the payload
            if in_block >= 508 {
                to = block + 512;
            } else if in_block < 12 && to < orig.end {
                to = block + 12;
            }
            if pace == Pace::KeptUp {
                while to + 2 * BLOCK > needed.load(Ordering::Acquire) + ring.capacity() {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            let mut lsn = self.written / BLOCK * BLOCK;
            while lsn < to {
                let i = usize::try_from(lsn - orig.start).unwrap();
                let full = &orig.blocks[i..i + B];
                let b = if lsn + BLOCK <= to || to == orig.end {
                    full.try_into().unwrap()
                } else {
                    partial(full, usize::try_from(to - lsn).unwrap())
                };
                ring.put(ring.real(lsn), &b);
                lsn += BLOCK;
            }
            self.written = to;
            self.no += 1;
            let cp = match pace {
                Pace::KeptUp => needed.load(Ordering::Acquire).max(orig.checkpoint),
                Pace::Lapping => to.saturating_sub(4 * BLOCK).max(orig.checkpoint),
            };
            ring.checkpoint(self.no, cp);
            std::thread::sleep(Duration::from_micros(300));
        }
    }
}

/// What the copier made of the group: the header of its
/// `xtrabackup_logfile` and the log it copied, or how it stopped.
struct Copied {
    header: Vec<u8>,
    log: Vec<u8>,
    failed: Option<ClassicError>,
}

/// Holds the copier once it has copied up to an LSN.
struct Gate {
    /// The copier stops once the LSN it needs next is at or past this.
    at: u64,
    /// Up while the copier is held.
    held: AtomicBool,
    /// The copier goes on once this is up.
    go: AtomicBool,
}

/// Follows the group from its checkpoint until `end` (a minute at most),
/// publishing the first LSN it still needs in `needed`; with a `gate`, it
/// waits there once it has copied that far.
fn copy(dir: &Path, end: u64, needed: &AtomicU64, gate: Option<&Gate>) -> Copied {
    let log = LogClassic::open(dir, BlockChecksum::Crc32c).unwrap();
    let (header, cp) = backup_logfile_header(&log, "xtrabkup 261203 18:30:00").unwrap();
    let start = cp.lsn / BLOCK * BLOCK;
    let mut scanner = ScannerClassic::new(cp.lsn);
    let mut copied = Copied {
        header,
        log: Vec::new(),
        failed: None,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while scanner.lsn() < end {
        assert!(
            std::time::Instant::now() < deadline,
            "the copy stalled at LSN {}",
            scanner.lsn()
        );
        let out = &mut copied.log;
        if let Err(e) = scanner.poll(&log, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        }) {
            copied.failed = Some(e);
            return copied;
        }
        let next = start + copied.log.len() as u64;
        needed.store(next, Ordering::Release);
        if let Some(gate) = gate.filter(|g| next >= g.at) {
            gate.held.store(true, Ordering::Release);
            while !gate.go.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        std::thread::sleep(Duration::from_micros(700));
    }
    scanner
        .tail(&mut |b| {
            copied.log.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
    copied
}

#[test]
fn a_copier_that_keeps_up_copies_a_real_group_exactly_across_wraps() {
    let Some(root) = fixtures::root() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let orig = original(&root, tmp.path());
    assert_eq!(
        orig.end - orig.checkpoint,
        1_388_427,
        "the fixture's redo after its checkpoint"
    );
    // two files of 256 KiB: the 1.3 MB of log wraps the group 2.6 times
    let ring = Ring::new(&orig, 2, 256 << 10);
    assert!(orig.end - orig.start > 2 * ring.capacity());
    let needed = Arc::new(AtomicU64::new(orig.start));
    let copier = {
        let (dir, needed) = (ring.dir.path().to_path_buf(), Arc::clone(&needed));
        let end = orig.end;
        std::thread::spawn(move || copy(&dir, end, &needed, None))
    };
    Server::new(&ring, &orig).serve(orig.end, Pace::KeptUp, &needed);
    let copied = copier.join().unwrap();
    assert!(copied.failed.is_none(), "{:?}", copied.failed);
    assert_eq!(copied.log.len(), orig.blocks.len());
    assert!(copied.log == orig.blocks, "the copy is the server's blocks");

    // the backup's xtrabackup_logfile reads back block by block
    let mut file = copied.header.clone();
    file.extend_from_slice(&copied.log);
    let back = BackupLogfile::parse(&file, BlockChecksum::Crc32c).unwrap();
    assert!(back.creator.starts_with("xtrabkup"), "{}", back.creator);
    assert_eq!(back.checkpoint.lsn, orig.checkpoint);
    assert_eq!((back.start_lsn, back.end_lsn), (orig.start, orig.end));
    // the fixture's log records: every payload byte from the checkpoint on
    let payload: Vec<u8> = back.payload().flat_map(|(_, p)| p.to_vec()).collect();
    let fixture: Vec<u8> = orig
        .blocks
        .chunks_exact(B)
        .flat_map(|b| b[BLOCK_HEADER..usize::from(be16(b, 4)).min(508)].to_vec())
        .collect();
    assert_eq!(payload.len(), fixture.len());
    assert!(payload == fixture);
    // a file with a block out of place is refused, naming it
    let mut swapped = file.clone();
    let (a, b) = (2048 + 3 * B, 2048 + 4 * B);
    let third = swapped[a..b].to_vec();
    swapped.copy_within(b..b + B, a);
    swapped[b..b + B].copy_from_slice(&third);
    let err = BackupLogfile::parse(&swapped, BlockChecksum::Crc32c).unwrap_err();
    assert!(err.to_string().contains(&format!("offset {a}")), "{err}");
}

#[test]
fn a_lapped_copier_fails_as_overwritten_and_hands_out_only_real_log() {
    let Some(root) = fixtures::root() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let orig = original(&root, tmp.path());
    let ring = Ring::new(&orig, 2, 256 << 10);
    let needed = Arc::new(AtomicU64::new(orig.start));
    // the copier keeps up with the first 300 KiB, then stalls
    let gate = Arc::new(Gate {
        at: orig.start + (300 << 10),
        held: AtomicBool::new(false),
        go: AtomicBool::new(false),
    });
    let copier = {
        let (dir, needed, gate) = (
            ring.dir.path().to_path_buf(),
            Arc::clone(&needed),
            Arc::clone(&gate),
        );
        let end = orig.end;
        std::thread::spawn(move || copy(&dir, end, &needed, Some(&gate)))
    };
    let mut server = Server::new(&ring, &orig);
    while !gate.held.load(Ordering::Acquire) {
        let step = server.written + (16 << 10);
        server.serve(step, Pace::KeptUp, &needed);
    }
    let held_at = needed.load(Ordering::Acquire);
    // while it stalls, the server writes over the log it has not read
    server.serve(orig.end, Pace::Lapping, &needed);
    gate.go.store(true, Ordering::Release);
    let copied = copier.join().unwrap();
    match copied.failed {
        Some(ClassicError::Overwritten { needed, checkpoint }) => {
            assert_eq!(needed, held_at);
            assert!(checkpoint > needed + ring.capacity(), "{checkpoint}");
        }
        other => panic!("expected overwritten, got {other:?}"),
    }
    assert_eq!(copied.log.len() as u64, held_at - orig.start);
    assert!(
        orig.blocks.starts_with(&copied.log),
        "only the server's real log was handed out"
    );
}
