//! `xb_manifest.json`: every file of a backup with its size and the XXH3-128
//! of its stored bytes (after compression and encryption), hashed as the
//! bytes go through the sink chain, never by reading them again. With it a
//! backup is checked without a key, without a server and without trusting
//! the disk or the store it sat on. It also carries what the backup is (LSN
//! range, server, options, tool version) under `meta`.
//!
//! [`Manifested`] is the recording end of a chain: it wraps the terminus
//! (a directory, a stream, object storage), records each file as it is
//! closed, forgets a file taken back, and writes the manifest itself last
//! ([`Manifested::write_manifest`]), unrecorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::{Datasink, PartedFile, SinkError, SinkFile};

/// The manifest's file name, at the top of the backup.
pub const MANIFEST: &str = "xb_manifest.json";

const FORMAT: &str = "xb-manifest";

/// One file of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Backup-relative name, as stored (`db/t.ibd.zst`).
    pub path: String,
    /// Bytes stored.
    pub size: u64,
    /// XXH3-128 of the stored bytes, lower-case hex (big-endian); empty
    /// for a file written in parts, whose ranges carry their own.
    pub xxh3: String,
    /// A file written in parts by several writers at once (a large
    /// tablespace copied in page ranges): each range's offset, size and
    /// XXH3-128, in file order, covering the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartDigest>,
}

/// One range of a file written in parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartDigest {
    /// Where the range starts in the file.
    pub offset: u64,
    /// Its length.
    pub size: u64,
    /// XXH3-128 of its bytes.
    pub xxh3: String,
}

/// The list of a backup's files, and what the backup is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    format: String,
    version: u32,
    /// What the backup is: LSN range, server, options, tool version (the
    /// writer's choice of keys).
    #[serde(default)]
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// The files, sorted by name.
    pub files: Vec<ManifestEntry>,
}

impl Manifest {
    /// A manifest of these entries (`path → (size, xxh3)`), sorted by
    /// name as the map is.
    #[must_use]
    pub fn new(entries: &BTreeMap<String, (u64, String)>) -> Self {
        Manifest {
            format: FORMAT.into(),
            version: 1,
            meta: serde_json::Map::new(),
            files: entries
                .iter()
                .map(|(path, (size, xxh3))| ManifestEntry {
                    path: path.clone(),
                    size: *size,
                    xxh3: xxh3.clone(),
                    parts: Vec::new(),
                })
                .collect(),
        }
    }

    /// The manifest as stored.
    ///
    /// # Errors
    /// Never in practice (strings, numbers and the caller's JSON values).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(self)
    }

    /// Reads a stored manifest; `None` when it is not one of ours.
    #[must_use]
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Manifest>(bytes)
            .ok()
            .filter(|m| m.format == FORMAT && m.version == 1)
    }

    /// Bytes of every file listed.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The entry of `path`.
    #[must_use]
    pub fn entry(&self, path: &str) -> Option<&ManifestEntry> {
        self.files
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// XXH3-128 and length of a stream of bytes, fed piece by piece. Not a
/// cryptographic hash, and it need not be: the manifest is not signed, so it
/// guards against damage, not forgery; SHA-256 cost a directory backup of
/// 2.4 GB 2.1 s of CPU (+9 % wall on two cores), XXH3 a tenth of that.
#[derive(Clone, Default)]
pub struct Digester {
    hash: Xxh3,
    size: u64,
}

impl Digester {
    /// Takes the next bytes.
    pub fn update(&mut self, buf: &[u8]) {
        self.hash.update(buf);
        self.size += buf.len() as u64;
    }

    /// Bytes taken so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `(size, xxh3 hex)` of everything taken.
    #[must_use]
    pub fn finish(self) -> (u64, String) {
        let (size, xxh3) = self.finish_raw();
        (size, hex(&xxh3.to_be_bytes()))
    }

    /// `(size, xxh3)` of everything taken, the digest as a number.
    #[must_use]
    fn finish_raw(self) -> (u64, u128) {
        (self.size, self.hash.digest128())
    }
}

/// What is kept of a closed file until the manifest is written. A backup
/// of 100,000 tables closes 200,000 files: as [`ManifestEntry`] values
/// (name twice, digest as hex) they took about 240 bytes each, this about
/// a third of that with its name.
struct Recorded {
    size: u64,
    xxh3: u128,
    /// A file written in parts: its ranges, in file order.
    parts: Option<Box<[PartRecorded]>>,
}

struct PartRecorded {
    offset: u64,
    size: u64,
    xxh3: u128,
}

impl Recorded {
    fn entry(&self, path: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.to_string(),
            size: self.size,
            xxh3: match self.parts {
                Some(_) => String::new(),
                None => hex(&self.xxh3.to_be_bytes()),
            },
            parts: self.parts.as_deref().map_or_else(Vec::new, |ps| {
                ps.iter()
                    .map(|p| PartDigest {
                        offset: p.offset,
                        size: p.size,
                        xxh3: hex(&p.xxh3.to_be_bytes()),
                    })
                    .collect()
            }),
        }
    }
}

/// The manifest as it is written: [`Manifest`]'s fields in its order, the
/// files serialized one at a time from the recorded map, so writing it
/// needs no second copy of the list and no document in memory.
#[derive(Serialize)]
struct Listing<'a> {
    format: &'static str,
    version: u32,
    meta: &'a serde_json::Map<String, serde_json::Value>,
    files: Files<'a>,
}

struct Files<'a>(&'a BTreeMap<Box<str>, Recorded>);

impl Serialize for Files<'_> {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (path, r) in self.0 {
            seq.serialize_element(&r.entry(path))?;
        }
        seq.end()
    }
}

/// Counts what is written to it: the manifest's size, known before it is
/// opened in the sink.
#[derive(Default)]
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `io::Write` into a sink file, keeping the sink's own error (the
/// serializer only carries an `io::Error` through).
struct IntoSink<'a> {
    file: &'a mut dyn SinkFile,
    failed: Option<SinkError>,
}

impl std::io::Write for IntoSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.file.write(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                self.failed = Some(e);
                Err(std::io::Error::other("the sink failed"))
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

type Entries = Arc<Mutex<BTreeMap<Box<str>, Recorded>>>;

/// The recording end of a chain (see the module's notes).
pub struct Manifested<S: Datasink> {
    inner: S,
    entries: Entries,
}

impl<S: Datasink> std::fmt::Debug for Manifested<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Manifested({} files)", lock(&self.entries).len())
    }
}

impl<S: Datasink> Manifested<S> {
    /// Records what goes through to `inner`.
    pub fn new(inner: S) -> Self {
        Manifested {
            inner,
            entries: Arc::default(),
        }
    }

    /// The sink it writes to.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Writes the manifest of every file closed so far (and not taken
    /// back), with `meta`, to the inner sink, and says how many files it
    /// lists. Call it once, after the last file and before
    /// [`Datasink::finish`].
    ///
    /// It is serialized twice, once to learn its size and once into the
    /// sink, never held whole: 200,000 files make a document of 40 MB.
    ///
    /// # Errors
    /// The inner sink's errors.
    pub fn write_manifest(
        &self,
        meta: serde_json::Map<String, serde_json::Value>,
    ) -> Result<usize, SinkError> {
        let entries = lock(&self.entries);
        let listing = Listing {
            format: FORMAT,
            version: 1,
            meta: &meta,
            files: Files(&entries),
        };
        let not_json = |e: serde_json::Error| SinkError::Io {
            path: MANIFEST.into(),
            source: std::io::Error::other(e),
        };
        let mut size = Counter::default();
        serde_json::to_writer_pretty(&mut size, &listing).map_err(not_json)?;
        let mut f = self.inner.open(MANIFEST, size.0)?;
        let mut w = IntoSink {
            file: f.as_mut(),
            failed: None,
        };
        let written = {
            let mut buffered = std::io::BufWriter::with_capacity(64 << 10, &mut w);
            serde_json::to_writer_pretty(&mut buffered, &listing)
                .and_then(|()| std::io::Write::flush(&mut buffered).map_err(serde_json::Error::io))
        };
        if let Some(e) = w.failed.take() {
            return Err(e);
        }
        written.map_err(not_json)?;
        f.close()?;
        Ok(entries.len())
    }
}

fn lock(e: &Entries) -> std::sync::MutexGuard<'_, BTreeMap<Box<str>, Recorded>> {
    // each change is one insert or remove: a panic cannot leave it half-done
    e.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<S: Datasink> Datasink for Manifested<S> {
    fn open(&self, path: &str, size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        Ok(Box::new(Recording {
            inner: self.inner.open(path, size_hint)?,
            path: path.to_string(),
            digest: Digester::default(),
            entries: Arc::clone(&self.entries),
        }))
    }

    fn open_parted(
        &self,
        path: &str,
        size_hint: u64,
    ) -> Result<Option<Box<dyn PartedFile>>, SinkError> {
        Ok(self.inner.open_parted(path, size_hint)?.map(|inner| {
            Box::new(RecordingParted {
                inner,
                path: path.to_string(),
                parts: Arc::default(),
                entries: Arc::clone(&self.entries),
            }) as Box<dyn PartedFile>
        }))
    }

    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        let gone = self.inner.remove(path)?;
        if gone {
            lock(&self.entries).remove(path);
        }
        Ok(gone)
    }

    fn finish(&self) -> Result<(), SinkError> {
        self.inner.finish()
    }
}

struct Recording {
    inner: Box<dyn SinkFile>,
    path: String,
    digest: Digester,
    entries: Entries,
}

impl SinkFile for Recording {
    fn write(&mut self, buf: &[u8]) -> Result<(), SinkError> {
        self.digest.update(buf);
        self.inner.write(buf)
    }

    fn close(self: Box<Self>) -> Result<(), SinkError> {
        let Recording {
            inner,
            path,
            digest,
            entries,
        } = *self;
        inner.close()?;
        let (size, xxh3) = digest.finish_raw();
        lock(&entries).insert(
            path.into_boxed_str(),
            Recorded {
                size,
                xxh3,
                parts: None,
            },
        );
        Ok(())
    }
}

type Parts = Arc<Mutex<Vec<PartRecorded>>>;

/// A file written in parts: each part hashed as it goes, the file entered
/// with its parts when it is closed.
struct RecordingParted {
    inner: Box<dyn PartedFile>,
    path: String,
    parts: Parts,
    entries: Entries,
}

impl PartedFile for RecordingParted {
    fn part(&self, offset: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        Ok(Box::new(RecordingPart {
            inner: self.inner.part(offset)?,
            offset,
            digest: Digester::default(),
            parts: Arc::clone(&self.parts),
        }))
    }

    fn close(self: Box<Self>) -> Result<(), SinkError> {
        let RecordingParted {
            inner,
            path,
            parts,
            entries,
        } = *self;
        inner.close()?;
        let mut parts = std::mem::take(
            &mut *parts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        parts.sort_by_key(|p| p.offset);
        let size = parts.last().map_or(0, |p| p.offset + p.size);
        lock(&entries).insert(
            path.into_boxed_str(),
            Recorded {
                size,
                xxh3: 0,
                parts: Some(parts.into_boxed_slice()),
            },
        );
        Ok(())
    }
}

struct RecordingPart {
    inner: Box<dyn SinkFile>,
    offset: u64,
    digest: Digester,
    parts: Parts,
}

impl SinkFile for RecordingPart {
    fn write(&mut self, buf: &[u8]) -> Result<(), SinkError> {
        self.digest.update(buf);
        self.inner.write(buf)
    }

    fn close(self: Box<Self>) -> Result<(), SinkError> {
        let RecordingPart {
            inner,
            offset,
            digest,
            parts,
        } = *self;
        inner.close()?;
        let (size, xxh3) = digest.finish_raw();
        parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(PartRecorded { offset, size, xxh3 });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_reads_back_and_a_foreign_document_is_not_one() {
        let mut e = BTreeMap::new();
        e.insert("b/t.ibd".to_string(), (16384, "ab".repeat(32)));
        e.insert("a".to_string(), (0, "cd".repeat(32)));
        let mut m = Manifest::new(&e);
        m.meta.insert("to_lsn".into(), 42.into());
        let back = Manifest::from_json(&m.to_json().expect("json")).expect("reads back");
        assert_eq!(back, m);
        assert_eq!(back.files[0].path, "a", "sorted by name");
        assert_eq!(back.entry("b/t.ibd").map(|e| e.size), Some(16384));
        assert_eq!(back.total_bytes(), 16384);
        assert!(Manifest::from_json(br#"{"format":"other","version":1,"files":[]}"#).is_none());
        assert!(Manifest::from_json(b"not json").is_none());
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }

    #[test]
    fn what_goes_through_is_recorded_and_what_is_taken_back_is_not() {
        let dir = tempfile::tempdir().expect("tmp");
        let sink = Manifested::new(crate::LocalDir::create(dir.path()).expect("dir"));
        for (name, data) in [
            ("a", &b"hello"[..]),
            ("db/t.ibd", b"pages"),
            ("stale", b"x"),
        ] {
            let mut f = sink.open(name, 0).expect("open");
            f.write(data).expect("write");
            f.close().expect("close");
        }
        assert!(sink.remove("stale").expect("removed"));
        let listed = sink
            .write_manifest(serde_json::Map::new())
            .expect("manifest");
        sink.finish().expect("finish");
        let stored = std::fs::read(dir.path().join(MANIFEST)).expect("written");
        let m = Manifest::from_json(&stored).expect("ours");
        assert_eq!(listed, 2);
        let names: Vec<_> = m.files.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["a", "db/t.ibd"]);
        let mut d = Digester::default();
        d.update(b"hel");
        d.update(b"lo");
        assert_eq!(m.files[0].xxh3, d.finish().1);
        // streamed out, it is the document `Manifest` itself writes
        assert_eq!(m.to_json().expect("json"), stored);
    }

    #[test]
    fn a_file_written_in_parts_by_several_threads_is_whole_and_listed_by_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("b");
        let sink = Manifested::new(crate::LocalDir::create(&root).expect("dir"));
        let part = |i: u8| vec![i; 64 << 10];
        let file = sink
            .open_parted("db/big.ibd", 3 * (64 << 10))
            .expect("open")
            .expect("a directory takes parts");
        std::thread::scope(|s| {
            // the last part first, each on its own thread
            for i in [2u8, 0, 1] {
                let f = &file;
                let bytes = part(i);
                s.spawn(move || {
                    let mut w = f.part(u64::from(i) * (64 << 10)).expect("part");
                    for piece in bytes.chunks(10_000) {
                        w.write(piece).expect("write");
                    }
                    w.close().expect("close part");
                });
            }
        });
        file.close().expect("close");
        sink.write_manifest(serde_json::Map::new())
            .expect("manifest");
        let m = Manifest::from_json(&std::fs::read(root.join(MANIFEST)).expect("written"))
            .expect("ours");
        let on_disk = std::fs::read(root.join("db/big.ibd")).expect("read");
        assert_eq!(on_disk, [part(0), part(1), part(2)].concat());
        let e = m.entry("db/big.ibd").expect("listed");
        assert_eq!((e.size, e.xxh3.as_str()), (3 * (64 << 10), ""));
        let ranges: Vec<(u64, u64)> = e.parts.iter().map(|p| (p.offset, p.size)).collect();
        assert_eq!(ranges, [(0, 65536), (65536, 65536), (131072, 65536)]);
        let mut d = Digester::default();
        d.update(&part(1));
        assert_eq!(e.parts[1].xxh3, d.finish().1);
    }
}
