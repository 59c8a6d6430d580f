//! Where a backup's bytes go: an `xb_sink` chain (local directory or
//! xbstream at the end; throttling, compression and encryption in front),
//! seen by the orchestration through the [`Target`] seam.
//!
//! `xtrabackup_checkpoints` (and xb's `xb_source`, which an incremental
//! reads from its base) is written to the plain end of the chain, as
//! xtrabackup does, so tools can read it without decompressing; so is an
//! incremental's `.meta` per tablespace ([`Target::create_plain`]); every other
//! file (data, the other metadata) goes through the whole chain. The redo
//! file ([`Target::create_log`]) goes through a chain of its own: the same
//! compression and encryption, its own worker threads, and no throttle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use xb_sink::object::{ObjectLocation, ObjectOptions, ObjectSink};
use xb_sink::{
    Compress, Compression, Datasink, Encrypt, EncryptKey, LocalDir, Manifested, PartedFile,
    SinkError, SinkFile, Throttle, XbStreamWriter,
};

use super::Destination;
use super::seams::{OutFile, PartedOut, SeamError, Target};
use crate::error::BackupError;
use crate::prepare::INCOMPLETE_MARKER;

/// How data is transformed on its way into the backup.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SinkOptions {
    /// Compress data files (`.zst` / `.lz4`).
    pub compression: Option<Compression>,
    /// Threads per compressing or encrypting stage (default 2).
    pub threads: usize,
    /// Encrypt data files (`.xbcrypt`, AES-CTR) with this key.
    pub encrypt_key: Option<EncryptKey>,
    /// Limit the data written into the chain, in bytes per second.
    pub throttle: Option<u64>,
}

/// The plain end of the chain, for files that stay readable as they are.
const PLAIN_FILES: &[&str] = &[
    "xtrabackup_checkpoints",
    super::incremental::SOURCE_FILE,
    super::page_track::INDEX_FILE,
];

/// A target made of an `xb_sink` chain.
pub struct SinkTarget {
    /// The end of the chain, recording every file for `xb_manifest.json`.
    manifest: Arc<Manifested<Arc<dyn Datasink>>>,
    data: Box<dyn Datasink>,
    /// The redo file's chain: as `data` but unthrottled, with its own
    /// compression and encryption workers, so the redo copier never waits
    /// for a data file's turn.
    log: Box<dyn Datasink>,
    plain: Arc<dyn Datasink>,
}

impl std::fmt::Debug for SinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkTarget")
    }
}

impl SinkTarget {
    fn chain(end: Arc<dyn Datasink>, opts: &SinkOptions) -> Self {
        let manifest = Arc::new(Manifested::new(end));
        let end: Arc<dyn Datasink> = Arc::clone(&manifest) as Arc<dyn Datasink>;
        let mut data = Self::transform(&end, opts);
        if let Some(rate) = opts.throttle {
            data = Box::new(Throttle::new(data, rate));
        }
        SinkTarget {
            manifest,
            data,
            log: Self::transform(&end, opts),
            plain: end,
        }
    }

    /// Writes `xb_manifest.json`: every file written so far with its size
    /// and XXH3-128, and `meta`.
    ///
    /// # Errors
    /// The end's errors.
    pub fn write_manifest(
        &self,
        meta: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), SinkError> {
        self.manifest.write_manifest(meta).map(|_| ())
    }

    /// Encryption, then compression in front of it (files become
    /// `NAME.zst.xbcrypt`), each stage with its own worker pool.
    fn transform(end: &Arc<dyn Datasink>, opts: &SinkOptions) -> Box<dyn Datasink> {
        let threads = opts.threads.max(1);
        let mut chain: Box<dyn Datasink> = Box::new(Arc::clone(end));
        if let Some(key) = &opts.encrypt_key {
            chain = Box::new(Encrypt::new(chain, key.clone(), threads));
        }
        if let Some(c) = opts.compression {
            chain = Box::new(Compress::new(chain, c, threads));
        }
        chain
    }

    /// A new (or empty) local directory.
    ///
    /// # Errors
    /// The directory holds files ([`xb_sink::SinkError::NotEmpty`]), or
    /// cannot be created.
    pub fn dir(root: &Path, opts: &SinkOptions) -> Result<Self, xb_sink::SinkError> {
        let end = LocalDir::create(root)?;
        Ok(Self::chain(Arc::new(end), opts))
    }

    /// A new backup in object storage; the sink puts the incomplete marker
    /// there first and removes it last, in its `finish`.
    ///
    /// # Errors
    /// The store's refusals ([`SinkError::NoBucket`],
    /// [`SinkError::ObjectAuth`], [`SinkError::NotEmpty`], …).
    pub fn object(
        location: ObjectLocation,
        object: ObjectOptions,
        opts: &SinkOptions,
    ) -> Result<Self, SinkError> {
        let end = ObjectSink::create(location, object, INCOMPLETE_MARKER)?;
        Ok(Self::chain(Arc::new(end), opts))
    }

    /// An xbstream on `out`.
    #[must_use]
    pub fn stream(out: Box<dyn std::io::Write + Send>, opts: &SinkOptions) -> Self {
        Self::chain(Arc::new(XbStreamWriter::new(out)), opts)
    }
}

struct File(Box<dyn SinkFile>);

impl OutFile for File {
    fn write(&mut self, buf: &[u8]) -> Result<(), SeamError> {
        Ok(self.0.write(buf)?)
    }
    fn close(self: Box<Self>) -> Result<(), SeamError> {
        Ok(self.0.close()?)
    }
}

struct Parted(Box<dyn PartedFile>);

impl PartedOut for Parted {
    fn part(&self, offset: u64) -> Result<Box<dyn OutFile>, SeamError> {
        Ok(Box::new(File(self.0.part(offset)?)))
    }
    fn close(self: Box<Self>) -> Result<(), SeamError> {
        Ok(self.0.close()?)
    }
}

impl SinkTarget {
    /// The chain a file named `rel` goes through in [`Target::create`].
    fn chain_of(&self, rel: &str) -> &dyn Datasink {
        if PLAIN_FILES.contains(&rel) {
            &*self.plain
        } else {
            &*self.data
        }
    }
}

impl Target for SinkTarget {
    fn create(&self, rel: &str, size_hint: u64) -> Result<Box<dyn OutFile>, SeamError> {
        Ok(Box::new(File(self.chain_of(rel).open(rel, size_hint)?)))
    }

    fn create_parted(&self, rel: &str, size: u64) -> Result<Option<Box<dyn PartedOut>>, SeamError> {
        Ok(self
            .chain_of(rel)
            .open_parted(rel, size)?
            .map(|p| Box::new(Parted(p)) as Box<dyn PartedOut>))
    }

    fn create_log(&self, rel: &str) -> Result<Box<dyn OutFile>, SeamError> {
        Ok(Box::new(File(self.log.open(rel, 0)?)))
    }

    fn create_plain(&self, rel: &str) -> Result<Box<dyn OutFile>, SeamError> {
        Ok(Box::new(File(self.plain.open(rel, 0)?)))
    }

    fn remove(&self, rel: &str) -> Result<bool, SeamError> {
        // through the chain that wrote it, which names it as it did
        // (`NAME.zst.xbcrypt`)
        Ok(self.chain_of(rel).remove(rel)?)
    }

    fn finish(&self) -> Result<(), SeamError> {
        // the filters keep nothing between files and only pass `finish` on
        // to the end, which `plain.finish` reaches; the log chain's one file
        // is closed by now
        self.data.finish()?;
        Ok(self.plain.finish()?)
    }
}

/// The backup's target and, for a directory, the marker that says it is
/// incomplete until the very end.
pub struct Output {
    /// Where files go.
    pub target: Arc<dyn Target>,
    sink: Arc<SinkTarget>,
    /// `file` or `mbstream`, for `xtrabackup_info`.
    pub format: &'static str,
    marker_dir: Option<PathBuf>,
}

impl Output {
    fn of(t: SinkTarget, format: &'static str, marker_dir: Option<PathBuf>) -> Self {
        let sink = Arc::new(t);
        Output {
            target: Arc::clone(&sink) as Arc<dyn Target>,
            sink,
            format,
            marker_dir,
        }
    }

    /// Opens the destination and, for a directory, marks it incomplete
    /// before anything else is written.
    ///
    /// # Errors
    /// [`BackupError::TargetNotEmpty`] or [`BackupError::Target`].
    pub fn open(destination: Destination, opts: &SinkOptions) -> Result<Self, BackupError> {
        match destination {
            Destination::Dir(p) => {
                let t = SinkTarget::dir(&p, opts).map_err(|e| match e {
                    SinkError::NotEmpty { .. } => BackupError::TargetNotEmpty {
                        path: p.display().to_string(),
                    },
                    other => BackupError::Target(other.into()),
                })?;
                let marker = p.join(INCOMPLETE_MARKER);
                std::fs::write(&marker, b"xb: this backup did not complete\n")
                    .map_err(|e| BackupError::Target(SinkError::io(marker.display(), e).into()))?;
                Ok(Output::of(t, "file", Some(p)))
            }
            Destination::Object(location, object) => {
                let url = location.url().to_string();
                let t = SinkTarget::object(location, object, opts).map_err(|e| match e {
                    SinkError::NotEmpty { .. } => BackupError::TargetNotEmpty { path: url },
                    other => BackupError::Target(other.into()),
                })?;
                Ok(Output::of(t, "object", None))
            }
            Destination::Stream(w) => Ok(Output::of(SinkTarget::stream(w, opts), "mbstream", None)),
        }
    }

    /// Writes the manifest (with `meta`), flushes everything, then removes
    /// the incomplete marker: only now is the directory a backup.
    ///
    /// # Errors
    /// [`BackupError::Target`]; the marker then stays.
    pub fn complete(
        &self,
        meta: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), BackupError> {
        self.sink
            .write_manifest(meta)
            .map_err(|e| BackupError::Target(e.into()))?;
        self.target.finish().map_err(BackupError::Target)?;
        if let Some(d) = &self.marker_dir {
            let m = d.join(INCOMPLETE_MARKER);
            std::fs::remove_file(&m)
                .map_err(|e| BackupError::Target(SinkError::io(m.display(), e).into()))?;
            if let Ok(dir) = std::fs::File::open(d) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

/// Takes back a file the backup wrote as `rel` (a copy that DDL made
/// stale), failing where the target cannot.
///
/// # Errors
/// [`BackupError::Target`].
pub(super) fn take_back(target: &dyn Target, rel: &str) -> Result<(), BackupError> {
    if target.remove(rel).map_err(BackupError::Target)? {
        Ok(())
    } else {
        Err(BackupError::Target(SeamError::Io {
            path: rel.to_string(),
            message: "the target cannot take back a copy that DDL made stale".into(),
        }))
    }
}

/// A target that writes nothing and records what it is asked to take
/// back: for the code that settles early copies.
#[cfg(test)]
#[derive(Default)]
pub(super) struct Taken(pub std::sync::Mutex<Vec<String>>);

#[cfg(test)]
impl Target for Taken {
    fn create(&self, rel: &str, _: u64) -> Result<Box<dyn super::seams::OutFile>, SeamError> {
        unreachable!("only takes back: {rel}")
    }
    fn remove(&self, rel: &str) -> Result<bool, SeamError> {
        self.0
            .lock()
            .map_err(|_| SeamError::Cancelled)?
            .push(rel.into());
        Ok(true)
    }
    fn finish(&self) -> Result<(), SeamError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use xb_sink::SharedBuf;

    use super::*;

    /// Data files are held to 4 bytes per second: 8 bytes through `create`
    /// take two seconds, and 4 MiB would take twelve days. 4 MiB of redo
    /// through `create_log` are not held back (the bound is a hang check,
    /// not a speed target), and come out of the stream compressed and
    /// encrypted under the data files' names, byte for byte.
    #[test]
    fn the_redo_file_is_never_throttled_and_looks_like_data() {
        let key = xb_sink::EncryptKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec())
            .expect("a 32-byte key");
        let opts = SinkOptions {
            compression: Some(Compression::Zstd { level: 1 }),
            threads: 1,
            encrypt_key: Some(key.clone()),
            throttle: Some(4),
        };
        let stream = SharedBuf::default();
        let t = Arc::new(SinkTarget::stream(Box::new(stream.clone()), &opts));

        let started = Instant::now();
        let mut data = t.create("ibdata1", 8).expect("data file");
        data.write(b"12345678").expect("data written");
        data.close().expect("data closed");
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "the throttle holds data files back ({:?})",
            started.elapsed()
        );

        let redo: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        // on a thread, so a redo file stuck behind the throttle fails the
        // test after the bound instead of hanging it for days
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn({
            let (t, redo) = (Arc::clone(&t), redo.clone());
            move || {
                let mut log = t.create_log("ib_logfile0").expect("redo file");
                for block in redo.chunks(64 << 10) {
                    log.write(block).expect("redo written");
                }
                log.close().expect("redo closed");
                let _ = done.send(());
            }
        });
        let bound = Duration::from_secs(20);
        assert!(
            finished.recv_timeout(bound).is_ok(),
            "4 MiB of redo not written within {bound:?}: the redo file waits behind the throttle"
        );
        t.finish().expect("finished");

        let raw = stream.bytes();
        for name in [&b"ibdata1.zst.xbcrypt"[..], b"ib_logfile0.zst.xbcrypt"] {
            assert!(
                raw.windows(name.len()).any(|w| w == name),
                "{} missing from the stream",
                String::from_utf8_lossy(name)
            );
        }
        let out = tempfile::tempdir().expect("tempdir");
        xb_sink::extract(
            &raw[..],
            out.path(),
            &xb_sink::ExtractOptions::default()
                .with_decompress(true)
                .with_key(Some(key)),
        )
        .expect("the stream extracts");
        let got = std::fs::read(out.path().join("ib_logfile0")).expect("redo extracted");
        assert!(got == redo, "the redo file's bytes differ after extraction");
        assert_eq!(
            std::fs::read(out.path().join("ibdata1")).expect("data extracted"),
            b"12345678"
        );
    }
}
