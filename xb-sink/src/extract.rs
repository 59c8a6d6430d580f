//! Extraction of an xbstream into a directory (the `xbstream -x` job),
//! optionally decrypting `.xbcrypt` and decompressing `.zst`/`.lz4` files on
//! the way. Every chunk's CRC-32 is verified by the reader; every path is
//! checked before use and opened beneath the target without following
//! symbolic links (see [`Root`]); files are created exclusively, so an
//! existing file or symlink in the target is never overwritten or followed.
//! A target that already holds anything is refused unless
//! [`ExtractOptions::force_non_empty_directories`] is set.
//!
//! Memory: the reader holds at most one payload piece of
//! [`MAX_PIECE`](crate::xbstream::MAX_PIECE) bytes (10 MiB); a parallel
//! extraction adds, per worker, a queue of four pieces and the one being
//! written, so at most `(1 + 5 × workers)` pieces whatever the stream says.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};

use nix::fcntl::OFlag;

use crate::paths::{Create, Root, check_rel, first_entry};
use crate::stages::{self, Stage};
use crate::xbstream::{Chunk, ChunkKind, FLAG_REWRITE, XbStreamReader};
use crate::{EncryptKey, SinkError};

/// How to extract.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExtractOptions {
    /// Decompress `.zst` and `.lz4` files (names lose the suffix).
    pub decompress: bool,
    /// Decrypt `.xbcrypt` files with this key (names lose the suffix).
    pub decrypt: Option<EncryptKey>,
    /// fsync every file and directory at the end.
    pub sync: bool,
    /// Worker threads writing (and decoding) files; 0 or 1 extracts on the
    /// calling thread. Each file stays with one worker, so its chunks are
    /// applied in stream order.
    pub parallel: usize,
    /// Extract into a target that already holds files (xtrabackup's
    /// `--force-non-empty-directories`). Default false: a non-empty target
    /// is [`SinkError::TargetNotEmpty`]. Even when set, a file the stream
    /// creates must not exist yet, and symbolic links are never followed.
    pub force_non_empty_directories: bool,
}

impl ExtractOptions {
    /// Sets [`Self::decompress`].
    #[must_use]
    pub fn with_decompress(mut self, on: bool) -> Self {
        self.decompress = on;
        self
    }

    /// Sets [`Self::decrypt`].
    #[must_use]
    pub fn with_key(mut self, key: Option<EncryptKey>) -> Self {
        self.decrypt = key;
        self
    }

    /// Sets [`Self::parallel`].
    #[must_use]
    pub fn with_parallel(mut self, threads: usize) -> Self {
        self.parallel = threads;
        self
    }

    /// Sets [`Self::sync`].
    #[must_use]
    pub fn with_sync(mut self, on: bool) -> Self {
        self.sync = on;
        self
    }

    /// Sets [`Self::force_non_empty_directories`].
    #[must_use]
    pub fn with_force_non_empty_directories(mut self, on: bool) -> Self {
        self.force_non_empty_directories = on;
        self
    }
}

/// What an extraction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtractStats {
    /// Files completed (end-of-file chunks seen).
    pub files: u64,
    /// Chunks read.
    pub chunks: u64,
    /// Bytes of the stream read.
    pub stream_bytes: u64,
    /// Bytes written to files after decoding.
    pub bytes_written: u64,
}

struct OpenFile {
    file: File,
    full: PathBuf,
    offset: u64,
    stages: Vec<Box<dyn Stage>>,
}

/// The output name of a stream file and the stages that decode it.
pub(crate) fn plan(
    path: &str,
    opts: &ExtractOptions,
) -> Result<(String, Vec<Box<dyn Stage>>), SinkError> {
    let mut name = path.to_string();
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    if let Some(key) = &opts.decrypt {
        if let Some(base) = name.strip_suffix(".xbcrypt") {
            stages.push(Box::new(stages::Decrypt::new(key.clone(), path)));
            name = base.to_string();
        }
    }
    let encrypted_left = name.ends_with(".xbcrypt");
    if opts.decompress && !encrypted_left {
        if let Some(base) = name.strip_suffix(".zst") {
            stages.push(Box::new(stages::Zstd::new(path)?));
            name = base.to_string();
        } else if let Some(base) = name.strip_suffix(".lz4") {
            stages.push(Box::new(stages::Lz4::new(path)));
            name = base.to_string();
        }
    }
    check_rel(&name)?;
    Ok((name, stages))
}

fn open_file(
    root: &Root,
    path: &str,
    rewrite: bool,
    opts: &ExtractOptions,
) -> Result<OpenFile, SinkError> {
    let (name, stages) = plan(path, opts)?;
    let how = if rewrite {
        Create::Existing
    } else {
        Create::New
    };
    let (file, full) = root.create(&name, how, OFlag::empty())?;
    Ok(OpenFile {
        file,
        full,
        offset: 0,
        stages,
    })
}

/// Writes decoded bytes into the file, counting them.
fn write_out(file: &mut File, full: &Path, count: &mut u64, d: &[u8]) -> Result<(), SinkError> {
    *count += d.len() as u64;
    file.write_all(d)
        .map_err(|e| SinkError::io(full.display(), e))
}

fn close_file(mut f: OpenFile, sync: bool, written: &mut u64) -> Result<(), SinkError> {
    let OpenFile {
        file, full, stages, ..
    } = &mut f;
    stages::finish(stages, &mut |d| write_out(file, full, written, d))?;
    if sync {
        file.sync_data()
            .map_err(|e| SinkError::io(full.display(), e))?;
    }
    Ok(())
}

/// Applies chunks to the files under one root; one per worker thread.
struct Extractor<'a> {
    root: &'a Root,
    opts: &'a ExtractOptions,
    open: HashMap<String, OpenFile>,
    files: u64,
    written: u64,
}

impl<'a> Extractor<'a> {
    fn new(root: &'a Root, opts: &'a ExtractOptions) -> Self {
        Extractor {
            root,
            opts,
            open: HashMap::new(),
            files: 0,
            written: 0,
        }
    }

    fn apply(&mut self, chunk: Chunk) -> Result<(), SinkError> {
        let (root, opts) = (self.root, self.opts);
        let rewrite = chunk.flags & FLAG_REWRITE != 0;
        let path = chunk.path;
        if matches!(
            chunk.kind,
            ChunkKind::Payload { .. } | ChunkKind::Seek { .. } | ChunkKind::Eof
        ) && !self.open.contains_key(&path)
        {
            let f = open_file(root, &path, rewrite, opts)?;
            self.open.insert(path.clone(), f);
        }
        match chunk.kind {
            ChunkKind::Payload { offset, data, .. } => {
                let Some(f) = self.open.get_mut(&path) else {
                    return Ok(());
                };
                if offset != f.offset {
                    return Err(SinkError::OutOfOrder {
                        path,
                        got: offset,
                        want: f.offset,
                    });
                }
                f.offset += data.len() as u64;
                let OpenFile {
                    file, full, stages, ..
                } = f;
                let written = &mut self.written;
                stages::feed(stages, &data, &mut |d| write_out(file, full, written, d))?;
            }
            ChunkKind::Seek { offset } => {
                let Some(f) = self.open.get_mut(&path) else {
                    return Ok(());
                };
                if !f.stages.is_empty() {
                    return Err(SinkError::Corrupt {
                        offset: chunk.stream_offset,
                        what: format!("seek inside {path}, which is being decoded"),
                    });
                }
                f.file
                    .seek(SeekFrom::Start(offset))
                    .map_err(|e| SinkError::io(f.full.display(), e))?;
                f.offset = offset;
            }
            ChunkKind::Eof => {
                if let Some(f) = self.open.remove(&path) {
                    close_file(f, opts.sync, &mut self.written)?;
                    self.files += 1;
                }
            }
            ChunkKind::Rename { to } => {
                if let Some(f) = self.open.remove(&path) {
                    close_file(f, opts.sync, &mut self.written)?;
                }
                let (from_name, _) = plan(&path, opts)?;
                let (to_name, _) = plan(&to, opts)?;
                root.rename(&from_name, &to_name)?;
            }
            ChunkKind::Delete => {
                self.open.remove(&path);
                let (name, _) = plan(&path, opts)?;
                root.remove(&name)?;
            }
        }
        Ok(())
    }

    /// Files still open at the end of the stream mean it was cut short.
    fn finish(self, stream_end: u64) -> Result<(u64, u64), SinkError> {
        if let Some(path) = self.open.keys().min() {
            return Err(SinkError::Corrupt {
                offset: stream_end,
                what: format!(
                    "stream ended while {} file(s) had no end-of-file chunk, {path} among them (truncated stream?)",
                    self.open.len()
                ),
            });
        }
        Ok((self.files, self.written))
    }
}

/// Creates `target` if absent and opens it, refusing one that holds
/// anything unless [`ExtractOptions::force_non_empty_directories`].
pub(crate) fn open_target(target: &Path, opts: &ExtractOptions) -> Result<Root, SinkError> {
    std::fs::create_dir_all(target).map_err(|e| SinkError::io(target.display(), e))?;
    if !opts.force_non_empty_directories {
        if let Some(entry) = first_entry(target)? {
            return Err(SinkError::TargetNotEmpty {
                dir: target.display().to_string(),
                entry,
            });
        }
    }
    Root::open(target)
}

/// Extracts the xbstream read from `input` into `target` (created if absent;
/// when it exists it must be empty unless
/// [`ExtractOptions::force_non_empty_directories`]).
///
/// # Errors
/// Any [`SinkError`]: a non-empty target ([`SinkError::TargetNotEmpty`]),
/// corrupt or truncated stream, CRC mismatch, unsafe path, a symbolic link
/// in the way ([`SinkError::Symlink`]), out-of-order chunk, an existing file
/// in the way, decoding failures, I/O. Files completed before the error
/// stay in `target`, and so does the part of the file being written (bytes
/// of a chunk bigger than a piece may be written before its CRC-32 is found
/// wrong); nothing is ever written outside it.
pub fn extract<R: Read>(
    input: R,
    target: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractStats, SinkError> {
    let root = open_target(target, opts)?;
    let mut reader = XbStreamReader::new(input);
    let mut st = ExtractStats::default();
    if opts.parallel <= 1 {
        let mut ex = Extractor::new(&root, opts);
        while let Some(chunk) = reader.next_chunk()? {
            st.chunks += 1;
            ex.apply(chunk)?;
        }
        st.stream_bytes = reader.position();
        (st.files, st.bytes_written) = ex.finish(st.stream_bytes)?;
    } else {
        extract_parallel(&mut reader, &root, opts, &mut st)?;
    }
    if opts.sync {
        crate::local::sync_tree(root.path())?;
    }
    tracing::debug!(files = st.files, bytes = st.bytes_written, "extracted");
    Ok(st)
}

enum Job {
    Chunk(Chunk),
    /// Reply once every earlier job is applied (ordering for renames and deletes).
    Barrier(SyncSender<()>),
    /// End of stream at this offset.
    End(u64),
}

fn worker_of(path: &str, n: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    (h.finish() % n as u64) as usize
}

/// The reader on this thread, files spread over `opts.parallel` workers by
/// path; each worker's queue holds at most four chunks (pieces of at most
/// [`MAX_PIECE`](crate::xbstream::MAX_PIECE) bytes), which bounds memory.
fn extract_parallel<R: Read>(
    reader: &mut XbStreamReader<R>,
    root: &Root,
    opts: &ExtractOptions,
    st: &mut ExtractStats,
) -> Result<(), SinkError> {
    let n = opts.parallel;
    std::thread::scope(|s| {
        let mut txs = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = sync_channel::<Job>(4);
            txs.push(tx);
            handles.push(s.spawn(move || {
                let mut ex = Extractor::new(root, opts);
                for job in rx {
                    match job {
                        Job::Chunk(c) => ex.apply(c)?,
                        Job::Barrier(ack) => {
                            let _ = ack.send(());
                        }
                        Job::End(at) => return ex.finish(at),
                    }
                }
                // the reader stopped on an error; it reports that one
                Ok((0, 0))
            }));
        }
        let read = (|| -> Result<bool, SinkError> {
            while let Some(chunk) = reader.next_chunk()? {
                st.chunks += 1;
                let w = worker_of(&chunk.path, n);
                if matches!(chunk.kind, ChunkKind::Rename { .. } | ChunkKind::Delete) {
                    // everything before it must be on disk first, in every worker
                    for tx in &txs {
                        let (ack_tx, ack_rx) = sync_channel(1);
                        if tx.send(Job::Barrier(ack_tx)).is_err() || ack_rx.recv().is_err() {
                            return Ok(false);
                        }
                    }
                }
                if txs[w].send(Job::Chunk(chunk)).is_err() {
                    return Ok(false); // that worker failed; its error is reported below
                }
            }
            st.stream_bytes = reader.position();
            for tx in &txs {
                let _ = tx.send(Job::End(st.stream_bytes));
            }
            Ok(true)
        })();
        drop(txs);
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok((files, written))) => {
                    st.files += files;
                    st.bytes_written += written;
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(SinkError::Corrupt {
                        offset: reader.position(),
                        what: "an extraction worker panicked".into(),
                    });
                }
            }
        }
        match (read, first_err) {
            (Err(e), _) | (Ok(_), Some(e)) => Err(e),
            (Ok(_), None) => Ok(()),
        }
    })
}
