//! Plain objects under a location, for a process that mirrors local files
//! into a bucket as they grow (the binlog archiver) rather than writing a
//! backup once: list with sizes, upload a byte range of a local file,
//! download one, delete one. Every call waits for the store's answer.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path as FsPath;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};

use super::location::ObjectLocation;
use super::rt::Rt;
use super::sink::{probe, store_error};
use crate::SinkError;

/// Objects under one location.
pub struct ObjectFiles {
    loc: ObjectLocation,
    rt: Rt,
    part_size: usize,
}

impl std::fmt::Debug for ObjectFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectFiles({})", self.loc.url)
    }
}

/// One object: its name below the location and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// `/`-separated name below the location.
    pub rel: String,
    /// Bytes.
    pub size: u64,
}

impl ObjectFiles {
    /// The objects under `loc`; uploads bigger than `part_size` (at least
    /// 5 MiB) go up in parts of that size.
    ///
    /// # Errors
    /// The bucket is missing or refuses the credentials.
    pub fn open(loc: ObjectLocation, part_size: usize) -> Result<Self, SinkError> {
        let rt = Rt::new()?;
        probe(&loc, &rt)?;
        Ok(ObjectFiles {
            loc,
            rt,
            part_size: part_size.max(5 << 20),
        })
    }

    /// `scheme://bucket/prefix`, for messages.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.loc.url
    }

    fn gone(&self, op: &'static str, rel: &str) -> SinkError {
        SinkError::ObjectStore {
            url: self.loc.url.clone(),
            op,
            path: rel.to_string(),
            detail: "the request was cancelled".into(),
        }
    }

    /// Every object under the location, sorted by name.
    ///
    /// # Errors
    /// The store's.
    pub fn list(&self) -> Result<Vec<Listed>, SinkError> {
        let store = Arc::clone(&self.loc.store);
        let prefix = self.loc.prefix.clone();
        let listed = self
            .rt
            .run(async move { store.list(Some(&prefix)).collect::<Vec<_>>().await })
            .ok_or_else(|| self.gone("list", ""))?;
        let mut out = Vec::with_capacity(listed.len());
        for m in listed {
            let m = m.map_err(|e| store_error(&self.loc, "list", "", e))?;
            if let Some(rel) = self.loc.rel_of(&m.location) {
                out.push(Listed { rel, size: m.size });
            }
        }
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(out)
    }

    /// Uploads `len` bytes of `path` from `offset` as the object `rel`,
    /// replacing one of that name: one PUT up to the part size, parts of
    /// it otherwise (an upload that fails is aborted). Memory: one part.
    ///
    /// # Errors
    /// Reading the file (it is shorter than the range), or the store's.
    pub fn put_range(
        &self,
        rel: &str,
        path: &FsPath,
        offset: u64,
        len: u64,
    ) -> Result<(), SinkError> {
        let mut file = std::fs::File::open(path).map_err(|e| SinkError::io(path.display(), e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| SinkError::io(path.display(), e))?;
        let mut left = len;
        let mut next_part = |left: &mut u64| -> Result<Vec<u8>, SinkError> {
            let n = usize::try_from((*left).min(self.part_size as u64)).unwrap_or(self.part_size);
            let mut buf = vec![0u8; n];
            file.read_exact(&mut buf)
                .map_err(|e| SinkError::io(path.display(), e))?;
            *left -= n as u64;
            Ok(buf)
        };
        let store = Arc::clone(&self.loc.store);
        let at = self.loc.path_of(rel);
        if len <= self.part_size as u64 {
            let body = next_part(&mut left)?;
            return self
                .rt
                .run(async move { store.put(&at, PutPayload::from(body)).await })
                .ok_or_else(|| self.gone("upload", rel))?
                .map(|_| ())
                .map_err(|e| store_error(&self.loc, "upload", rel, e));
        }
        let mut upload = self
            .rt
            .run(async move { store.put_multipart(&at).await })
            .ok_or_else(|| self.gone("upload", rel))?
            .map_err(|e| store_error(&self.loc, "upload", rel, e))?;
        let result = loop {
            if left == 0 {
                break None;
            }
            let part = match next_part(&mut left) {
                Ok(p) => p,
                Err(e) => break Some(e),
            };
            let fut = upload.put_part(PutPayload::from(part));
            match self.rt.run(fut) {
                Some(Ok(())) => {}
                Some(Err(e)) => break Some(store_error(&self.loc, "upload", rel, e)),
                None => break Some(self.gone("upload", rel)),
            }
        };
        match result {
            None => {
                let done = self.rt.run(async move {
                    let r = upload.complete().await;
                    (upload, r)
                });
                match done {
                    Some((_, Ok(_))) => Ok(()),
                    Some((mut upload, Err(e))) => {
                        let _ = self.rt.run(async move { upload.abort().await });
                        Err(store_error(&self.loc, "upload", rel, e))
                    }
                    None => Err(self.gone("upload", rel)),
                }
            }
            Some(e) => {
                let _ = self.rt.run(async move { upload.abort().await });
                Err(e)
            }
        }
    }

    /// Deletes the object `rel` (no error when it is not there).
    ///
    /// # Errors
    /// The store's.
    pub fn delete(&self, rel: &str) -> Result<(), SinkError> {
        let store = Arc::clone(&self.loc.store);
        let at = self.loc.path_of(rel);
        let r = self
            .rt
            .run(async move { store.delete(&at).await })
            .ok_or_else(|| self.gone("delete", rel))?;
        match r {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(&self.loc, "delete", rel, e)),
        }
    }

    /// Streams the object `rel` into `out`; returns its size.
    ///
    /// # Errors
    /// The store's (a missing object is [`SinkError::ObjectStore`]), or
    /// writing `out`.
    pub fn get_into(&self, rel: &str, out: &mut dyn Write) -> Result<u64, SinkError> {
        let store = Arc::clone(&self.loc.store);
        let at = self.loc.path_of(rel);
        let (tx, rx) =
            std::sync::mpsc::sync_channel::<Result<bytes::Bytes, object_store::Error>>(4);
        let handle = self.rt.handle().ok_or_else(|| self.gone("download", rel))?;
        handle.spawn(async move {
            match store.get(&at).await {
                Ok(got) => {
                    let mut s = got.into_stream();
                    while let Some(chunk) = s.next().await {
                        if tx.send(chunk).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        let mut n = 0u64;
        for chunk in rx {
            let chunk = chunk.map_err(|e| store_error(&self.loc, "download", rel, e))?;
            out.write_all(&chunk).map_err(|e| SinkError::io(rel, e))?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }
}
