//! The local-directory terminus: files under a new (or empty) directory,
//! synced when closed, directories synced at finish so the names survive a
//! crash.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::OFlag;

use crate::paths::{Create, Root};
use crate::{Datasink, PartedFile, SinkError, SinkFile};

/// A local directory target. It must be empty or absent; it is created.
/// Files are created beneath it one component at a time without following
/// symbolic links, and never over an existing file.
#[derive(Debug)]
pub struct LocalDir {
    root: Root,
    sync: bool,
    /// Small files closed without their own fsync, left to the one
    /// `syncfs` of [`Datasink::finish`].
    unsynced: Arc<AtomicBool>,
}

/// Files smaller than this are not fsynced one by one when closed: one
/// `syncfs` at the end makes them all durable at once. Twenty thousand
/// small tablespaces cost twenty thousand fsyncs (each a journal commit and
/// a device flush) otherwise; a large file's own fsync overlaps the copy
/// of the others.
const SYNC_EACH: u64 = 1 << 20;

impl LocalDir {
    /// Creates (or takes over an empty) `root`. Files are fsynced on close.
    ///
    /// # Errors
    /// [`SinkError::NotEmpty`] when `root` holds anything; I/O errors when it
    /// cannot be created.
    pub fn create(root: &Path) -> Result<Self, SinkError> {
        match fs::read_dir(root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(SinkError::NotEmpty {
                        dir: root.display().to_string(),
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(root).map_err(|e| SinkError::io(root.display(), e))?;
            }
            Err(e) => return Err(SinkError::io(root.display(), e)),
        }
        Ok(LocalDir {
            root: Root::open(root)?,
            sync: true,
            unsynced: Arc::default(),
        })
    }

    /// Turns the per-file and per-directory fsyncs off (tests, benches, or
    /// when the caller syncs the file system itself).
    #[must_use]
    pub fn without_sync(mut self) -> Self {
        self.sync = false;
        self
    }

    /// The directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        let stage = std::mem::take(&mut self.stage);
        if !stage.is_empty() {
            // a thread being torn down has no slot any more: simply freed
            let _ = SPARE_STAGE.try_with(|s| *s.borrow_mut() = stage);
        }
    }
}

struct LocalFile {
    file: File,
    path: PathBuf,
    sync: bool,
    /// `O_DIRECT` is set on `file`: whole aligned blocks go straight to the
    /// device, the rest waits in `stage`.
    direct: bool,
    /// Aligned staging for bytes that arrive unaligned (allocated on first
    /// use: tablespace pages arrive aligned and never need it).
    stage: Vec<Block>,
    staged: usize,
    /// Bytes handed to the file so far (not counting `staged`), and where
    /// writeback was last started (buffered mode).
    written: u64,
    kicked: u64,
    /// Set instead of an fsync when a small file closes (see [`SYNC_EACH`]).
    deferred: Option<Arc<AtomicBool>>,
}

/// Alignment of direct writes: buffer address, length and file offset.
/// 4 KiB satisfies every logical block size Linux file systems use.
const ALIGN: usize = 4096;

/// Size of the staging buffer of a direct file.
const STAGE: usize = 1 << 20;

/// One aligned block of the staging buffer.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(4096))]
struct Block([u8; ALIGN]);

thread_local! {
    /// The staging buffer of the last direct file this thread dropped. A
    /// copy worker writes one small unaligned file after another (a
    /// `.frm` per table): a fresh 1 MiB buffer each time is 20,000
    /// allocations for 20,000 tables, and glibc keeps such freed blocks in
    /// its per-thread arenas, so the process grew with the table count.
    static SPARE_STAGE: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Start writeback every this many bytes, so the final fsync finds most of
/// the file already on its way to disk instead of all of it.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl LocalFile {
    /// A file just opened; `direct` says whether `O_DIRECT` is set on it.
    fn new(file: File, path: PathBuf, sync: bool, direct: bool) -> Self {
        Self::at(file, path, sync, direct, 0)
    }

    /// A writer of `file` from `offset` on (one part of a parted file).
    fn at(file: File, path: PathBuf, sync: bool, direct: bool, offset: u64) -> Self {
        LocalFile {
            file,
            path,
            sync,
            direct,
            stage: Vec::new(),
            staged: 0,
            written: offset,
            kicked: offset,
            deferred: None,
        }
    }

    /// Writes `data` at the end of what was written. A direct write the
    /// file system refuses (`EINVAL`: alignment it does not accept) turns
    /// `O_DIRECT` off for the rest of the file and goes on buffered.
    fn emit(&mut self, data: &[u8]) -> Result<(), SinkError> {
        let mut done = 0;
        while done < data.len() {
            match self.file.write_at(&data[done..], self.written) {
                Ok(0) => {
                    return Err(SinkError::io(
                        self.path.display(),
                        std::io::Error::from(ErrorKind::WriteZero),
                    ));
                }
                Ok(n) => {
                    done += n;
                    self.written += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if self.direct && e.raw_os_error() == Some(nix::libc::EINVAL) => {
                    self.buffered()?;
                }
                Err(e) => return Err(SinkError::io(self.path.display(), e)),
            }
        }
        Ok(())
    }

    /// Turns `O_DIRECT` off (for an unaligned tail, or a file system that
    /// refuses it).
    fn buffered(&mut self) -> Result<(), SinkError> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = fcntl(&self.file, FcntlArg::F_GETFL)
            .map_err(|e| SinkError::io(self.path.display(), e.into()))?;
        let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_DIRECT;
        fcntl(&self.file, FcntlArg::F_SETFL(flags))
            .map_err(|e| SinkError::io(self.path.display(), e.into()))?;
        self.direct = false;
        Ok(())
    }

    /// Writes the staged bytes: the aligned part directly, and with `last`
    /// the unaligned rest through the page cache. Without `last` the rest
    /// moves to the front of the stage.
    fn drain(&mut self, last: bool) -> Result<(), SinkError> {
        // out of `self` while `emit` borrows it mutably
        let mut stage = std::mem::take(&mut self.stage);
        let staged = std::mem::take(&mut self.staged);
        let whole = if self.direct {
            staged / ALIGN * ALIGN
        } else {
            staged
        };
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut stage);
        let result = self.emit(&bytes[..whole]).and_then(|()| {
            if last && whole < staged {
                self.buffered()?;
                self.emit(&bytes[whole..staged])?;
            }
            Ok(())
        });
        if !last {
            bytes.copy_within(whole..staged, 0);
            self.staged = staged - whole;
        }
        self.stage = stage;
        result
    }

    /// Starts writeback of what was written since the last kick (buffered
    /// mode only: direct writes are on the device already).
    fn kick(&mut self) {
        if self.direct || !self.sync || self.written - self.kicked < WRITEBACK_EVERY {
            return;
        }
        // POSIX_FADV_DONTNEED starts writeback of the dirty range (and
        // keeps the backup from crowding the server's page cache); a
        // failure only loses that hint, never data
        let (off, len) = (self.kicked, self.written - self.kicked);
        let _ = nix::fcntl::posix_fadvise(
            &self.file,
            i64::try_from(off).unwrap_or(0),
            i64::try_from(len).unwrap_or(0),
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
        self.kicked = self.written;
    }
}

impl SinkFile for LocalFile {
    fn write(&mut self, buf: &[u8]) -> Result<(), SinkError> {
        let mut rest = buf;
        while !rest.is_empty() {
            if !self.direct {
                if self.staged > 0 {
                    self.drain(false)?;
                }
                self.emit(rest)?;
                break;
            }
            if self.staged == 0 && rest.len() >= ALIGN && (rest.as_ptr() as usize) % ALIGN == 0 {
                // aligned input (pages read by O_DIRECT): no copy at all
                let n = rest.len() / ALIGN * ALIGN;
                self.emit(&rest[..n])?;
                rest = &rest[n..];
                continue;
            }
            if self.stage.is_empty() {
                self.stage = SPARE_STAGE
                    .try_with(|s| std::mem::take(&mut *s.borrow_mut()))
                    .ok()
                    .filter(|b| b.len() == STAGE / ALIGN)
                    .unwrap_or_else(|| vec![Block([0; ALIGN]); STAGE / ALIGN]);
            }
            let stage: &mut [u8] = bytemuck::cast_slice_mut(&mut self.stage);
            let take = (STAGE - self.staged).min(rest.len());
            stage[self.staged..self.staged + take].copy_from_slice(&rest[..take]);
            self.staged += take;
            rest = &rest[take..];
            if self.staged == STAGE {
                self.drain(false)?;
            }
        }
        self.kick();
        Ok(())
    }

    fn close(mut self: Box<Self>) -> Result<(), SinkError> {
        if self.staged > 0 {
            self.drain(true)?;
        }
        match &self.deferred {
            Some(flag) if self.sync && self.written < SYNC_EACH => {
                flag.store(true, Ordering::Release);
            }
            _ if self.sync => {
                self.file
                    .sync_data()
                    .map_err(|e| SinkError::io(self.path.display(), e))?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A file of a [`LocalDir`] written in parts: each part a [`LocalFile`]
/// writing from its offset through a descriptor of its own, opened again
/// from this one (`/proc/self/fd`: the same inode, never a path that could
/// have changed), so one part leaving `O_DIRECT` for its unaligned tail
/// does not take it from the others. The file is synced once, at close.
struct LocalParted {
    file: File,
    path: PathBuf,
    sync: bool,
    direct: bool,
}

impl PartedFile for LocalParted {
    fn part(&self, offset: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let again = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        let open = |flags: OFlag| {
            fs::OpenOptions::new()
                .write(true)
                .custom_flags(flags.bits())
                .open(&again)
        };
        let (file, direct) = match open(if self.direct {
            OFlag::O_DIRECT
        } else {
            OFlag::empty()
        }) {
            Ok(f) => (f, self.direct),
            Err(e) if self.direct && e.raw_os_error() == Some(nix::libc::EINVAL) => {
                let f = open(OFlag::empty()).map_err(|e| SinkError::io(self.path.display(), e))?;
                (f, false)
            }
            Err(e) => return Err(SinkError::io(self.path.display(), e)),
        };
        // a part syncs nothing itself: the file is synced once, at close
        Ok(Box::new(LocalFile::at(
            file,
            self.path.clone(),
            false,
            direct,
            offset,
        )))
    }

    fn close(self: Box<Self>) -> Result<(), SinkError> {
        if self.sync {
            self.file
                .sync_data()
                .map_err(|e| SinkError::io(self.path.display(), e))?;
        }
        Ok(())
    }
}

impl Datasink for LocalDir {
    fn open_parted(
        &self,
        path: &str,
        _size_hint: u64,
    ) -> Result<Option<Box<dyn PartedFile>>, SinkError> {
        let (file, full, direct) = self.create_file(path)?;
        Ok(Some(Box::new(LocalParted {
            file,
            path: full,
            sync: self.sync,
            direct,
        })))
    }

    fn open(&self, path: &str, _size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        let (file, full, direct) = self.create_file(path)?;
        let mut f = LocalFile::new(file, full, self.sync, direct);
        f.deferred = Some(Arc::clone(&self.unsynced));
        Ok(Box::new(f))
    }

    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        self.root.remove(path)?;
        Ok(true)
    }

    fn finish(&self) -> Result<(), SinkError> {
        if !self.sync {
            return Ok(());
        }
        if self.unsynced.swap(false, Ordering::AcqRel) {
            // the small files closed without an fsync of their own, all at once
            let dir = File::open(self.root.path())
                .map_err(|e| SinkError::io(self.root.path().display(), e))?;
            nix::unistd::syncfs(&dir)
                .map_err(|e| SinkError::io(self.root.path().display(), e.into()))?;
        }
        sync_tree(self.root.path())
    }
}

impl LocalDir {
    /// Creates `path` (never over an existing file), with `O_DIRECT` when
    /// files are synced and the file system takes it; says which.
    fn create_file(&self, path: &str) -> Result<(File, PathBuf, bool), SinkError> {
        // durable anyway: skip the page cache (filling it costs more than
        // the write on many machines) and the writeback at fsync
        let direct = if self.sync {
            OFlag::O_DIRECT
        } else {
            OFlag::empty()
        };
        let (file, full, direct) = match self.root.create(path, Create::New, direct) {
            Ok((f, full)) => (f, full, self.sync),
            // a file system without O_DIRECT: the same file, buffered (the
            // refused open may have created it; O_EXCL already proved it
            // was not there before)
            Err(SinkError::Io { source, .. })
                if self.sync && source.raw_os_error() == Some(nix::libc::EINVAL) =>
            {
                let (f, full) = self.root.create(path, Create::Existing, OFlag::O_TRUNC)?;
                (f, full, false)
            }
            Err(e) => return Err(e),
        };
        Ok((file, full, direct))
    }
}

/// fsyncs every directory under `root` (not following symlinks).
pub(crate) fn sync_tree(root: &Path) -> Result<(), SinkError> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).map_err(|e| SinkError::io(d.display(), e))? {
            let e = e.map_err(|e| SinkError::io(d.display(), e))?;
            let ft = e
                .file_type()
                .map_err(|err| SinkError::io(d.display(), err))?;
            if ft.is_dir() {
                dirs.push(e.path());
            }
        }
        File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| SinkError::io(d.display(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::os::unix::fs::OpenOptionsExt;

    use super::*;

    #[test]
    fn files_land_under_the_root_and_non_empty_targets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalDir::create(&dir.path().join("b")).unwrap();
        for bad in ["/etc/passwd", "../x", "a/../../x", ""] {
            assert!(t.open(bad, 0).is_err(), "{bad}");
        }
        let mut f = t.open("db/t.ibd", 0).unwrap();
        f.write(b"abc").unwrap();
        f.close().unwrap();
        t.finish().unwrap();
        assert_eq!(fs::read(dir.path().join("b/db/t.ibd")).unwrap(), b"abc");
        let err = LocalDir::create(&dir.path().join("b")).unwrap_err();
        assert!(err.to_string().contains("is not empty"), "{err}");
    }

    #[test]
    fn a_symlink_planted_after_create_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let t = LocalDir::create(&dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("b/db")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x"), dir.path().join("b/ibdata1")).unwrap();
        for path in ["db/t.ibd", "ibdata1"] {
            let e = t.open(path, 0).err().unwrap();
            assert!(matches!(e, SinkError::Symlink { .. }), "{path}: {e:?}");
        }
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    /// Writes `pieces` (offset into an aligned source, length) through one
    /// file and returns what landed on disk and whether O_DIRECT stayed on.
    fn write_pieces(pieces: &[(usize, usize)]) -> (Vec<u8>, Vec<u8>, bool) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("b")).unwrap();
        let total: usize = pieces.iter().map(|p| p.0 + p.1).max().unwrap_or(0);
        let mut src = vec![Block([0; ALIGN]); total.div_ceil(ALIGN) + 1];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut src);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let bytes: &[u8] = bytemuck::cast_slice(&src);
        let full = dir.path().join("b/f");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_DIRECT)
            .open(&full)
            .unwrap();
        let mut f = Box::new(LocalFile::new(file, full.clone(), true, true));
        let mut want = Vec::new();
        for &(off, len) in pieces {
            f.write(&bytes[off..off + len]).unwrap();
            want.extend_from_slice(&bytes[off..off + len]);
        }
        let direct = f.direct;
        f.close().unwrap();
        (fs::read(&full).unwrap(), want, direct)
    }

    #[test]
    fn direct_writes_keep_every_byte_whatever_the_alignment() {
        // aligned pages only (the tablespace case): no staging, no tail
        let (got, want, direct) = write_pieces(&[(0, 1 << 20), (0, 3 * ALIGN)]);
        assert_eq!(got, want);
        assert!(direct, "O_DIRECT was dropped on aligned input");
        // odd sizes and addresses, a staged buffer filled past its end, an
        // aligned piece arriving while bytes are staged, an unaligned tail
        let cases: &[&[(usize, usize)]] = &[
            &[(1, 7)],
            &[(0, ALIGN + 1)],
            &[(3, STAGE + 5000), (0, 2 * ALIGN), (17, 100)],
            &[(0, ALIGN), (5, ALIGN - 5), (0, ALIGN), (0, 1)],
            &[(0, 0), (ALIGN, ALIGN)],
        ];
        for &c in cases {
            let (got, want, _) = write_pieces(c);
            assert_eq!(got.len(), want.len(), "{c:?}");
            assert!(got == want, "content differs for {c:?}");
        }
    }

    #[test]
    fn small_files_wait_for_one_syncfs_large_ones_sync_when_closed() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDir::create(&dir.path().join("b")).unwrap();
        let mut f = sink.open("big", 0).unwrap();
        f.write(&vec![1u8; SYNC_EACH as usize]).unwrap();
        f.close().unwrap();
        assert!(!sink.unsynced.load(Ordering::Acquire), "synced itself");
        let mut f = sink.open("db/t.frm", 0).unwrap();
        f.write(b"small").unwrap();
        f.close().unwrap();
        assert!(sink.unsynced.load(Ordering::Acquire), "left to finish");
        sink.finish().unwrap();
        assert!(!sink.unsynced.load(Ordering::Acquire));
        assert_eq!(
            std::fs::read(dir.path().join("b/db/t.frm")).unwrap(),
            b"small"
        );
    }

    #[test]
    fn synced_and_unsynced_sinks_both_write_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalDir::create(&dir.path().join("b")).unwrap();
        let mut f = t.open("x", 0).unwrap();
        f.write(&[7u8; 10_000]).unwrap();
        f.close().unwrap();
        assert_eq!(fs::read(dir.path().join("b/x")).unwrap(), vec![7u8; 10_000]);
        // without sync the page cache is used and nothing is forced
        let t = LocalDir::create(&dir.path().join("c"))
            .unwrap()
            .without_sync();
        let mut f = t.open("x", 0).unwrap();
        f.write(b"abc").unwrap();
        f.close().unwrap();
        assert_eq!(fs::read(dir.path().join("c/x")).unwrap(), b"abc");
    }
}
