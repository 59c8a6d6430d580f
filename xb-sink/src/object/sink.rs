//! A backup written straight into object storage, one object per file of
//! a directory backup (so one table can be fetched alone).
//!
//! - A file up to [`ObjectOptions::part_size`] is one PUT; a bigger one a
//!   multipart upload whose parts go up concurrently, at most
//!   [`ObjectOptions::concurrency`] parts in flight over the whole backup.
//!   Memory is bounded by `(files open + concurrency) × part_size`.
//! - `close` returns once the store has acknowledged the object; a failed
//!   or abandoned multipart upload is aborted.
//! - The location must be empty; an incomplete marker object goes up
//!   first. [`Datasink::finish`] writes the manifest, lists the location
//!   and checks every object against what was acknowledged (size, and the
//!   ETag where the listing gives one), and only then removes the marker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use memmap2::MmapMut;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use tokio::task::JoinHandle;

use super::location::{ObjectLocation, ObjectOptions};
use super::rt::Rt;
use crate::manifest::MANIFEST;
use crate::paths::check_rel;
use crate::{Datasink, SinkError, SinkFile};

/// How long an abort of a failed upload may take before it is left to the
/// store's own clean-up (a lifecycle rule).
const ABORT_PATIENCE: Duration = Duration::from_secs(5);

/// What the store acknowledged for one object.
#[derive(Debug, Clone)]
struct Acked {
    size: u64,
    e_tag: Option<String>,
}

/// Part buffers: anonymous mappings of one part each, handed to the
/// upload whole and back here once the store has the part. Heap buffers of
/// this size were kept by the allocator's arenas after their parts went up
/// (a backup's peak RSS measured twice the bound); fresh mappings each
/// time cost a page fault per 4 KiB (a third more system time). At most
/// `keep` stay mapped; more are unmapped when returned.
struct PartPool {
    free: Mutex<Vec<MmapMut>>,
    keep: usize,
}

impl PartPool {
    fn get(&self, size: usize, rel: &str) -> Result<MmapMut, SinkError> {
        let reused = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match reused {
            Some(m) if m.len() == size => Ok(m),
            _ => MmapMut::map_anon(size).map_err(|e| SinkError::io(rel, e)),
        }
    }
}

/// A part's bytes on their way to the store; the buffer goes back to the
/// pool when the upload drops them.
struct Pooled {
    map: Option<MmapMut>,
    pool: Arc<PartPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(m) = self.map.take() {
            let mut free = self
                .pool
                .free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if free.len() < self.pool.keep {
                free.push(m);
            }
        }
    }
}

struct Inner {
    pool: Arc<PartPool>,
    loc: ObjectLocation,
    opts: ObjectOptions,
    rt: Rt,
    parts: Arc<tokio::sync::Semaphore>,
    acked: Mutex<BTreeMap<String, Acked>>,
    marker: String,
    finished: Mutex<bool>,
}

/// The object-store end of a sink chain.
pub struct ObjectSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ObjectSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectSink({})", self.inner.loc.url)
    }
}

/// A store's error as a [`SinkError`] naming the location and the object.
pub(crate) fn store_error(
    loc: &ObjectLocation,
    op: &'static str,
    path: &str,
    e: object_store::Error,
) -> SinkError {
    match e {
        object_store::Error::Unauthenticated { source, .. }
        | object_store::Error::PermissionDenied { source, .. } => SinkError::ObjectAuth {
            url: loc.url.clone(),
            path: path.to_string(),
            detail: source.to_string(),
        },
        other => SinkError::ObjectStore {
            url: loc.url.clone(),
            op,
            path: path.to_string(),
            detail: other.to_string(),
        },
    }
}

/// The runtime went away under a request: only while the sink is dropped.
fn gone(loc: &ObjectLocation, op: &'static str, path: &str) -> SinkError {
    SinkError::ObjectStore {
        url: loc.url.clone(),
        op,
        path: path.to_string(),
        detail: "the upload was cancelled".into(),
    }
}

/// An ETag without its quotes or weak mark: HTTP headers quote it, some
/// listings (Azure's) do not.
fn bare_etag(t: &str) -> &str {
    t.trim_start_matches("W/").trim_matches('"')
}

/// Whether the store's answer says the bucket (container) does not exist.
///
/// `object_store` hands list failures back untyped, with the response
/// inside; the stores' own error codes are a stable part of their APIs
/// (S3 `NoSuchBucket`, Azure `ContainerNotFound`, GCS's message for a 404
/// on a bucket), so they are looked for there, and only there.
fn says_no_bucket(e: &object_store::Error) -> bool {
    let text = e.to_string();
    [
        "NoSuchBucket",
        "ContainerNotFound",
        "The specified bucket does not exist",
    ]
    .iter()
    .any(|code| text.contains(code))
}

/// Asks the store about the location before anything is written: the
/// credentials must be good (a HEAD, whose refusal comes back typed), the
/// bucket must exist (a 404 on the listing), and the answer is whether
/// anything is stored there.
pub(crate) fn probe(loc: &ObjectLocation, rt: &Rt) -> Result<bool, SinkError> {
    let store = Arc::clone(&loc.store);
    let head = loc.path_of("xb-probe");
    match rt
        .run(async move { store.head(&head).await })
        .ok_or_else(|| gone(loc, "list", ""))?
    {
        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) if says_no_bucket(&e) => {
            return Err(SinkError::NoBucket {
                url: loc.url.clone(),
                detail: e.to_string(),
            });
        }
        Err(e) => return Err(store_error(loc, "list", "", e)),
    }
    let store = Arc::clone(&loc.store);
    let prefix = loc.prefix.clone();
    let first = rt
        .run(async move { store.list(Some(&prefix)).next().await })
        .ok_or_else(|| gone(loc, "list", ""))?;
    match first {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) if matches!(e, object_store::Error::NotFound { .. }) || says_no_bucket(&e) => {
            Err(SinkError::NoBucket {
                url: loc.url.clone(),
                detail: e.to_string(),
            })
        }
        Some(Err(e)) => Err(store_error(loc, "list", "", e)),
    }
}

impl ObjectSink {
    /// Opens an empty location for a new backup and puts `marker` there
    /// first; [`Datasink::finish`] removes it last.
    ///
    /// # Errors
    /// [`SinkError::NoBucket`], [`SinkError::ObjectAuth`],
    /// [`SinkError::NotEmpty`] (something is stored under the name already),
    /// [`SinkError::ObjectStore`].
    pub fn create(
        loc: ObjectLocation,
        opts: ObjectOptions,
        marker: &str,
    ) -> Result<Self, SinkError> {
        let rt = Rt::new()?;
        if probe(&loc, &rt)? {
            return Err(SinkError::NotEmpty {
                dir: loc.url.clone(),
            });
        }
        let inner = Arc::new(Inner {
            // the parts in flight and one being filled per writer (data
            // workers, the redo, a metadata file)
            pool: Arc::new(PartPool {
                free: Mutex::new(Vec::new()),
                keep: opts.concurrency.max(1) + 6,
            }),
            parts: Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1))),
            loc,
            opts,
            rt,
            acked: Mutex::new(BTreeMap::new()),
            marker: marker.to_string(),
            finished: Mutex::new(false),
        });
        inner.put_whole(
            marker,
            Bytes::from_static(b"xb: this backup did not complete\n"),
        )?;
        Ok(ObjectSink { inner })
    }

    /// Where the backup goes.
    #[must_use]
    pub fn location(&self) -> &ObjectLocation {
        &self.inner.loc
    }
}

impl Inner {
    /// One PUT; returns the store's ETag.
    fn put_whole(&self, rel: &str, data: Bytes) -> Result<Option<String>, SinkError> {
        let store = Arc::clone(&self.loc.store);
        let path = self.loc.path_of(rel);
        let r = self
            .rt
            .run(async move { store.put(&path, PutPayload::from(data)).await })
            .ok_or_else(|| gone(&self.loc, "upload", rel))?;
        r.map(|p| p.e_tag)
            .map_err(|e| store_error(&self.loc, "upload", rel, e))
    }

    fn delete(&self, rel: &str) -> Result<(), SinkError> {
        let store = Arc::clone(&self.loc.store);
        let path = self.loc.path_of(rel);
        self.rt
            .run(async move { store.delete(&path).await })
            .ok_or_else(|| gone(&self.loc, "delete", rel))?
            .map_err(|e| store_error(&self.loc, "delete", rel, e))
    }

    fn lock_acked(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Acked>> {
        // a panic elsewhere cannot leave the map half-changed: each change
        // is one insert or remove
        self.acked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lists the location and holds every acknowledged object against it.
    fn check_listing(&self, expected: &BTreeMap<String, Acked>) -> Result<(), SinkError> {
        let store = Arc::clone(&self.loc.store);
        let prefix = self.loc.prefix.clone();
        let listed = self
            .rt
            .run(async move { store.list(Some(&prefix)).collect::<Vec<_>>().await })
            .ok_or_else(|| gone(&self.loc, "list", ""))?;
        let mut seen = BTreeMap::new();
        for m in listed {
            let m = m.map_err(|e| store_error(&self.loc, "list", "", e))?;
            if let Some(rel) = self.loc.rel_of(&m.location) {
                seen.insert(rel, (m.size, m.e_tag));
            }
        }
        for (rel, want) in expected {
            let problem = match seen.get(rel) {
                None => "is missing from the listing".to_string(),
                Some((size, _)) if *size != want.size => {
                    format!(
                        "is listed with {size} bytes, not the {} uploaded",
                        want.size
                    )
                }
                Some((_, Some(listed)))
                    if want
                        .e_tag
                        .as_deref()
                        .is_some_and(|t| bare_etag(t) != bare_etag(listed)) =>
                {
                    format!(
                        "is listed with ETag {listed}, not the {} the upload returned",
                        want.e_tag.as_deref().unwrap_or_default()
                    )
                }
                Some(_) => continue,
            };
            return Err(SinkError::ObjectCheck {
                url: self.loc.url.clone(),
                path: rel.clone(),
                problem,
            });
        }
        Ok(())
    }
}

impl Datasink for ObjectSink {
    fn open(&self, path: &str, _size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        check_rel(path)?;
        Ok(Box::new(ObjectFile {
            inner: Arc::clone(&self.inner),
            rel: path.to_string(),
            buf: None,
            filled: 0,
            size: 0,
            upload: None,
            parts: Vec::new(),
        }))
    }

    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        self.inner.delete(path)?;
        self.inner.lock_acked().remove(path);
        Ok(true)
    }

    fn finish(&self) -> Result<(), SinkError> {
        let inner = &self.inner;
        let mut finished = inner
            .finished
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *finished {
            return Ok(());
        }
        let mut expected = inner.lock_acked().clone();
        expected.remove(&inner.marker);
        // a backup nobody can check is not complete: the manifest
        // (`Manifested::write_manifest`) must be among the objects
        if !expected.contains_key(MANIFEST) {
            return Err(SinkError::ObjectCheck {
                url: inner.loc.url.clone(),
                path: MANIFEST.into(),
                problem: "was never written (write the manifest before finishing)".into(),
            });
        }
        inner.check_listing(&expected)?;
        inner.delete(&inner.marker)?;
        *finished = true;
        tracing::debug!(url = %inner.loc.url, objects = expected.len(), "backup objects checked");
        Ok(())
    }
}

/// One object being uploaded.
struct ObjectFile {
    inner: Arc<Inner>,
    rel: String,
    /// Bytes not sent yet, at most one part, in a buffer of the pool.
    buf: Option<MmapMut>,
    /// Bytes of `buf` filled.
    filled: usize,
    size: u64,
    upload: Option<Box<dyn MultipartUpload>>,
    parts: Vec<JoinHandle<object_store::Result<()>>>,
}

impl ObjectFile {
    fn err(&self, op: &'static str, e: object_store::Error) -> SinkError {
        store_error(&self.inner.loc, op, &self.rel, e)
    }

    fn gone(&self, op: &'static str) -> SinkError {
        gone(&self.inner.loc, op, &self.rel)
    }

    /// Sends the buffer as the next part, once a part's slot is free.
    fn send_part(&mut self) -> Result<(), SinkError> {
        let inner = Arc::clone(&self.inner);
        if self.upload.is_none() {
            let store = Arc::clone(&inner.loc.store);
            let path = inner.loc.path_of(&self.rel);
            let up = inner
                .rt
                .run(async move { store.put_multipart(&path).await })
                .ok_or_else(|| self.gone("upload"))?
                .map_err(|e| self.err("upload", e))?;
            self.upload = Some(up);
        }
        self.reap(false)?;
        let sem = Arc::clone(&inner.parts);
        let permit = inner
            .rt
            .run(async move { sem.acquire_owned().await })
            .ok_or_else(|| self.gone("upload"))?
            .map_err(|_| self.gone("upload"))?;
        let data = self.take_buf();
        let Some(up) = self.upload.as_mut() else {
            return Err(self.gone("upload"));
        };
        let part = up.put_part(PutPayload::from(data));
        let handle = inner
            .rt
            .handle()
            .ok_or_else(|| self.gone("upload"))?
            .spawn(async move {
                let r = part.await;
                drop(permit);
                r
            });
        self.parts.push(handle);
        Ok(())
    }

    /// Collects finished parts (all of them when `all`), surfacing the
    /// first failure as soon as it is known.
    fn reap(&mut self, all: bool) -> Result<(), SinkError> {
        while let Some(h) = self.parts.first() {
            if !all && !h.is_finished() {
                break;
            }
            let h = self.parts.remove(0);
            match self.inner.rt.run(h) {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => return Err(self.err("upload", e)),
                Some(Err(_)) | None => return Err(self.gone("upload")),
            }
        }
        Ok(())
    }

    /// The bytes written since the last part, as the upload's payload.
    fn take_buf(&mut self) -> Bytes {
        let filled = std::mem::take(&mut self.filled);
        self.buf.take().map_or_else(Bytes::new, |m| {
            Bytes::from_owner(Pooled {
                map: Some(m),
                pool: Arc::clone(&self.inner.pool),
            })
            .slice(..filled)
        })
    }

    fn record(&self, e_tag: Option<String>) {
        let acked = Acked {
            size: self.size,
            e_tag,
        };
        self.inner.lock_acked().insert(self.rel.clone(), acked);
    }

    fn complete(&mut self) -> Result<(), SinkError> {
        if self.upload.is_none() {
            let data = self.take_buf();
            let e_tag = self.inner.put_whole(&self.rel, data)?;
            self.record(e_tag);
            return Ok(());
        }
        if self.filled > 0 {
            self.send_part()?;
        }
        self.reap(true)?;
        let Some(mut up) = self.upload.take() else {
            return Err(self.gone("upload"));
        };
        let done = self.inner.rt.run(async move {
            match up.complete().await {
                Ok(r) => Ok(r),
                Err(e) => {
                    let _ = tokio::time::timeout(ABORT_PATIENCE, up.abort()).await;
                    Err(e)
                }
            }
        });
        let r = done
            .ok_or_else(|| self.gone("upload"))?
            .map_err(|e| self.err("upload", e))?;
        self.record(r.e_tag);
        Ok(())
    }
}

impl SinkFile for ObjectFile {
    fn write(&mut self, mut buf: &[u8]) -> Result<(), SinkError> {
        self.size += buf.len() as u64;
        let part = self.inner.opts.part_size;
        while !buf.is_empty() {
            let map = match &mut self.buf {
                Some(m) => m,
                None => self.buf.insert(self.inner.pool.get(part, &self.rel)?),
            };
            let take = (part - self.filled).min(buf.len());
            map[self.filled..self.filled + take].copy_from_slice(&buf[..take]);
            self.filled += take;
            buf = &buf[take..];
            if self.filled == part {
                self.send_part()?;
            }
        }
        Ok(())
    }

    fn close(mut self: Box<Self>) -> Result<(), SinkError> {
        self.complete()
    }
}

impl Drop for ObjectFile {
    /// A file dropped before its upload completed (an error, a cancelled
    /// backup) aborts the upload, so the store keeps no parts of it.
    fn drop(&mut self) {
        for h in self.parts.drain(..) {
            h.abort();
        }
        if let Some(mut up) = self.upload.take() {
            let _ = self.inner.rt.run(async move {
                let _ = tokio::time::timeout(ABORT_PATIENCE, up.abort()).await;
            });
        }
    }
}
