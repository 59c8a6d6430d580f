//! The way back from object storage: which backups a prefix holds, and a
//! backup downloaded into a directory, every object checked against the
//! manifest (size and XXH3-128) as it streams through, in parallel.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use nix::fcntl::OFlag;
use object_store::ObjectStoreExt;

use super::location::ObjectLocation;
use super::rt::Rt;
use super::sink::store_error;
use crate::extract::{open_target, plan};
use crate::manifest::{Digester, MANIFEST, Manifest, ManifestEntry};
use crate::paths::{Create, Root};
use crate::{ExtractOptions, ExtractStats, SinkError, stages};

/// The file whose presence makes a directory a backup, read for `list`.
const CHECKPOINTS: &str = "xtrabackup_checkpoints";

/// One backup found under a prefix.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListedBackup {
    /// Its name below the listed prefix (`.` for the prefix itself).
    pub name: String,
    /// Objects stored.
    pub objects: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// The newest object's time, seconds since the Unix epoch.
    pub last_modified: i64,
    /// The manifest is there and the incomplete marker is not.
    pub complete: bool,
    /// `xtrabackup_checkpoints`, when stored.
    pub checkpoints: Option<String>,
}

/// The backups under `loc`: every directory holding a checkpoints file,
/// a manifest or the incomplete `marker`.
///
/// # Errors
/// The listing or a read fails ([`SinkError::NoBucket`],
/// [`SinkError::ObjectAuth`], [`SinkError::ObjectStore`]).
pub fn list_backups(loc: &ObjectLocation, marker: &str) -> Result<Vec<ListedBackup>, SinkError> {
    let rt = Rt::new()?;
    super::sink::probe(loc, &rt)?;
    let store = Arc::clone(&loc.store);
    let prefix = loc.prefix.clone();
    let listed = rt
        .run(async move { store.list(Some(&prefix)).collect::<Vec<_>>().await })
        .ok_or_else(|| cancelled(loc, "list", ""))?;
    let mut objects = Vec::new();
    for m in listed {
        let m = m.map_err(|e| store_error(loc, "list", "", e))?;
        if let Some(rel) = loc.rel_of(&m.location) {
            objects.push((rel, m.size, m.last_modified.timestamp()));
        }
    }
    let parent = |rel: &str| rel.rsplit_once('/').map_or(".", |(d, _)| d).to_string();
    let mut roots: BTreeMap<String, ListedBackup> = objects
        .iter()
        .filter(|(rel, ..)| {
            let base = rel.rsplit('/').next().unwrap_or(rel);
            base == CHECKPOINTS || base == MANIFEST || base == marker
        })
        .map(|(rel, ..)| {
            let name = parent(rel);
            let b = ListedBackup {
                name: name.clone(),
                objects: 0,
                bytes: 0,
                last_modified: 0,
                complete: false,
                checkpoints: None,
            };
            (name, b)
        })
        .collect();
    let mut has = BTreeMap::<(String, &str), bool>::new();
    for (rel, size, time) in &objects {
        // the deepest backup root above the object holds it
        let mut dir = parent(rel);
        let root = loop {
            if roots.contains_key(&dir) {
                break Some(dir);
            }
            if dir == "." {
                break None;
            }
            dir = parent(&dir);
        };
        let Some(root) = root else { continue };
        let within = if root == "." {
            rel.as_str()
        } else {
            &rel[root.len() + 1..]
        };
        for name in [MANIFEST, marker] {
            if within == name {
                has.insert((root.clone(), name), true);
            }
        }
        if let Some(b) = roots.get_mut(&root) {
            b.objects += 1;
            b.bytes += size;
            b.last_modified = b.last_modified.max(*time);
        }
    }
    for b in roots.values_mut() {
        let present = |n| has.get(&(b.name.clone(), n)).copied().unwrap_or(false);
        b.complete = present(MANIFEST) && !present(marker);
        let at = if b.name == "." {
            loc.clone()
        } else {
            loc.child(&b.name)
        };
        b.checkpoints = get_small(&at, &rt, CHECKPOINTS)?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    }
    Ok(roots.into_values().collect())
}

fn cancelled(loc: &ObjectLocation, op: &'static str, path: &str) -> SinkError {
    SinkError::ObjectStore {
        url: loc.url.clone(),
        op,
        path: path.to_string(),
        detail: "the request was cancelled".into(),
    }
}

/// Small files of the backup at `loc`, each whole, `None` for one that is
/// not there: one runtime and one probe of the store for all of them. For
/// the files read before a backup starts (an incremental's base).
///
/// # Errors
/// The store's errors.
pub fn read_objects(
    loc: &ObjectLocation,
    rels: &[&str],
) -> Result<Vec<Option<Vec<u8>>>, SinkError> {
    let rt = Rt::new()?;
    super::sink::probe(loc, &rt)?;
    rels.iter().map(|rel| get_small(loc, &rt, rel)).collect()
}

/// A whole object, `None` when it does not exist.
fn get_small(loc: &ObjectLocation, rt: &Rt, rel: &str) -> Result<Option<Vec<u8>>, SinkError> {
    let store = Arc::clone(&loc.store);
    let path = loc.path_of(rel);
    let r = rt
        .run(async move {
            match store.get(&path).await {
                Ok(g) => g.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .ok_or_else(|| cancelled(loc, "download", rel))?;
    r.map(|b| b.map(|b| b.to_vec()))
        .map_err(|e| store_error(loc, "download", rel, e))
}

/// Downloads the complete backup at `loc` into `target` (new or empty
/// unless [`ExtractOptions::force_non_empty_directories`]), decrypting and
/// decompressing as `opts` says, `opts.parallel` objects at a time. Each
/// object's bytes are held against the manifest as they arrive; a
/// mismatch removes that file and fails.
///
/// # Errors
/// [`SinkError::IncompleteBackup`] (the `marker` is there, or no
/// manifest): nothing is written. [`SinkError::ObjectMismatch`], the
/// store's errors, and those of [`crate::extract()`] for the files.
pub fn fetch(
    loc: &ObjectLocation,
    target: &FsPath,
    opts: &ExtractOptions,
    marker: &str,
) -> Result<ExtractStats, SinkError> {
    let rt = Rt::new()?;
    super::sink::probe(loc, &rt)?;
    let incomplete = |why: String| SinkError::IncompleteBackup {
        url: loc.url.clone(),
        why,
    };
    if get_small(loc, &rt, marker)?.is_some() {
        return Err(incomplete(format!(
            "the incomplete marker {marker} is there"
        )));
    }
    let Some(raw) = get_small(loc, &rt, MANIFEST)? else {
        return Err(incomplete(format!(
            "{MANIFEST} is missing (the backup never finished, or this is not a backup)"
        )));
    };
    let manifest = Manifest::from_json(&raw)
        .ok_or_else(|| incomplete(format!("{MANIFEST} is not a manifest xb wrote")))?;

    let root = open_target(target, opts)?;
    let next = AtomicUsize::new(0);
    let workers = opts.parallel.max(1).min(manifest.files.len().max(1));
    let totals = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<(u64, u64), SinkError> {
                    let (mut down, mut written) = (0, 0);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(entry) = manifest.files.get(i) else {
                            return Ok((down, written));
                        };
                        let (d, w) = fetch_one(loc, &rt, &root, entry, opts)?;
                        down += d;
                        written += w;
                    }
                })
            })
            .collect();
        let mut first_err = None;
        let (mut down, mut written) = (0, 0);
        for h in handles {
            match h.join() {
                Ok(Ok((d, w))) => {
                    down += d;
                    written += w;
                }
                Ok(Err(e)) => {
                    // the others stop at their next object
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(cancelled(loc, "download", "(a worker panicked)"));
                }
            }
        }
        first_err.map_or(Ok((down, written)), Err)
    })?;
    let (mut file, full) = root.create(MANIFEST, Create::New, OFlag::empty())?;
    file.write_all(&raw)
        .map_err(|e| SinkError::io(full.display(), e))?;
    if opts.sync {
        crate::local::sync_tree(root.path())?;
    }
    Ok(ExtractStats {
        files: manifest.files.len() as u64,
        chunks: manifest.files.len() as u64,
        stream_bytes: totals.0,
        bytes_written: totals.1,
    })
}

/// Streams one object into its file through the decoding stages, checking
/// its size and XXH3-128. Returns bytes downloaded and bytes written.
fn fetch_one(
    loc: &ObjectLocation,
    rt: &Rt,
    root: &Root,
    entry: &ManifestEntry,
    opts: &ExtractOptions,
) -> Result<(u64, u64), SinkError> {
    let (name, mut stages) = plan(&entry.path, opts)?;
    let (mut file, full) = root.create(&name, Create::New, OFlag::empty())?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let store = Arc::clone(&loc.store);
    let path = loc.path_of(&entry.path);
    rt.handle()
        .ok_or_else(|| cancelled(loc, "download", &entry.path))?
        .spawn(async move {
            match store.get(&path).await {
                Ok(g) => {
                    let mut body = g.into_stream();
                    while let Some(piece) = body.next().await {
                        let stop = piece.is_err();
                        if tx.send(piece).await.is_err() || stop {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
    let mut digest = Digester::default();
    let mut written = 0u64;
    let mut out = |d: &[u8]| -> Result<(), SinkError> {
        written += d.len() as u64;
        file.write_all(d)
            .map_err(|e| SinkError::io(full.display(), e))
    };
    let streamed = (|| {
        while let Some(piece) = rx.blocking_recv() {
            let piece = piece.map_err(|e| store_error(loc, "download", &entry.path, e))?;
            digest.update(&piece);
            stages::feed(&mut stages, &piece, &mut out)?;
        }
        Ok::<_, SinkError>(())
    })();
    let mismatch = |problem: String| SinkError::ObjectMismatch {
        url: loc.url.clone(),
        path: entry.path.clone(),
        problem,
    };
    let (size, got) = digest.finish();
    let failed = match streamed {
        Err(e) => Some(e),
        Ok(()) if size != entry.size => Some(mismatch(format!(
            "{size} bytes downloaded, the manifest says {}",
            entry.size
        ))),
        Ok(()) => {
            if got == entry.xxh3 {
                stages::finish(&mut stages, &mut out).err()
            } else {
                Some(mismatch(format!(
                    "XXH3-128 {got}, the manifest says {}",
                    entry.xxh3
                )))
            }
        }
    };
    if let Some(e) = failed {
        // a file that is not what was backed up is not left looking like one
        let _ = root.remove(&name);
        return Err(e);
    }
    if opts.sync {
        file.sync_data()
            .map_err(|e| SinkError::io(full.display(), e))?;
    }
    Ok((size, written))
}
