//! Extraction of an xbstream into a directory (the `xbstream -x` job),
//! optionally decrypting `.xbcrypt` and decompressing `.zst`/`.lz4` files on
//! the way. Every chunk's CRC-32 is verified by the reader; every path is
//! checked before use; files are created exclusively, so an existing file or
//! symlink in the target is never overwritten or followed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::paths::{check_rel, prepare_path};
use crate::stages::{self, Stage};
use crate::xbstream::{ChunkKind, FLAG_REWRITE, XbStreamReader};
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

    /// Sets [`Self::sync`].
    #[must_use]
    pub fn with_sync(mut self, on: bool) -> Self {
        self.sync = on;
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
fn plan(path: &str, opts: &ExtractOptions) -> Result<(String, Vec<Box<dyn Stage>>), SinkError> {
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
    root: &Path,
    path: &str,
    rewrite: bool,
    opts: &ExtractOptions,
) -> Result<OpenFile, SinkError> {
    let (name, stages) = plan(path, opts)?;
    let full = prepare_path(root, &name)?;
    let mut oo = OpenOptions::new();
    oo.write(true);
    if rewrite {
        oo.create(true);
    } else {
        oo.create_new(true);
    }
    let file = oo
        .open(&full)
        .map_err(|e| SinkError::io(full.display(), e))?;
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

/// Extracts the xbstream read from `input` into `target` (created if absent).
///
/// # Errors
/// Any [`SinkError`]: corrupt or truncated stream, CRC mismatch, unsafe path,
/// out-of-order chunk, an existing file in the way, decoding failures, I/O.
/// Files completed before the error stay in `target`; nothing is ever
/// written outside it.
pub fn extract<R: Read>(
    input: R,
    target: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractStats, SinkError> {
    std::fs::create_dir_all(target).map_err(|e| SinkError::io(target.display(), e))?;
    let mut reader = XbStreamReader::new(input);
    let mut open: HashMap<String, OpenFile> = HashMap::new();
    let mut st = ExtractStats::default();
    while let Some(chunk) = reader.next_chunk()? {
        st.chunks += 1;
        let rewrite = chunk.flags & FLAG_REWRITE != 0;
        let path = chunk.path;
        if matches!(
            chunk.kind,
            ChunkKind::Payload { .. } | ChunkKind::Seek { .. } | ChunkKind::Eof
        ) && !open.contains_key(&path)
        {
            let f = open_file(target, &path, rewrite, opts)?;
            open.insert(path.clone(), f);
        }
        match chunk.kind {
            ChunkKind::Payload { offset, data } => {
                let Some(f) = open.get_mut(&path) else {
                    continue;
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
                stages::feed(stages, &data, &mut |d| {
                    write_out(file, full, &mut st.bytes_written, d)
                })?;
            }
            ChunkKind::Seek { offset } => {
                let Some(f) = open.get_mut(&path) else {
                    continue;
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
                if let Some(f) = open.remove(&path) {
                    close_file(f, opts.sync, &mut st.bytes_written)?;
                    st.files += 1;
                }
            }
            ChunkKind::Rename { to } => {
                if let Some(f) = open.remove(&path) {
                    close_file(f, opts.sync, &mut st.bytes_written)?;
                }
                let (from_name, _) = plan(&path, opts)?;
                let (to_name, _) = plan(&to, opts)?;
                let from = prepare_path(target, &from_name)?;
                let to_full = prepare_path(target, &to_name)?;
                std::fs::rename(&from, &to_full).map_err(|e| SinkError::io(from.display(), e))?;
            }
            ChunkKind::Delete => {
                open.remove(&path);
                let (name, _) = plan(&path, opts)?;
                let full = prepare_path(target, &name)?;
                match std::fs::remove_file(&full) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(SinkError::io(full.display(), e)),
                }
            }
        }
    }
    st.stream_bytes = reader.position();
    if let Some(path) = open.keys().min() {
        return Err(SinkError::Corrupt {
            offset: st.stream_bytes,
            what: format!(
                "stream ended while {} file(s) had no end-of-file chunk, {path} among them (truncated stream?)",
                open.len()
            ),
        });
    }
    if opts.sync {
        crate::local::sync_tree(target)?;
    }
    tracing::debug!(files = st.files, bytes = st.bytes_written, "extracted");
    Ok(st)
}
