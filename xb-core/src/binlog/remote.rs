//! The archive's copy in object storage.
//!
//! The archiver writes into a local directory (its working copy: it
//! resumes from there, and fsyncs once a second); [`Uploader`] mirrors that
//! directory into a bucket, and [`download`] brings a mirror back for a
//! restore. Object stores cannot append, so a file still growing goes up
//! in pieces:
//!
//! | object | holds |
//! |---|---|
//! | `binlog.000042` | a closed file (one the server has rotated away from), whole |
//! | `binlog.000042.xbseg/00000000000000001234` | bytes of the open file from offset 1234 up to the next segment (or its durable end) |
//! | `xb_binlog_source` | the identity of the server the archive follows |
//!
//! Each pass uploads the bytes of the open file made durable since the last
//! one as one new segment, so the bucket lags the server by at most one
//! upload interval and sends every byte once; a closed file then goes up
//! whole and its segments are deleted. Segments are only ever appended
//! after the last one, and a file's whole object wins over its segments.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use xb_sink::SinkError;
use xb_sink::object::{Listed, ObjectFiles};

use super::archive::{ArchiveError, SOURCE_FILE, archived_files, is_binlog_name};

/// What separates a file's name from its segments' offsets.
const SEGMENTS: &str = ".xbseg/";

/// The store's copy of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stored {
    /// The whole file's size, when it is stored whole.
    whole: Option<u64>,
    /// Segments by offset: their sizes.
    segments: BTreeMap<u64, u64>,
}

impl Stored {
    /// Bytes from offset 0 the store holds without a hole.
    fn contiguous(&self) -> u64 {
        if let Some(n) = self.whole {
            return n;
        }
        let mut end = 0;
        for (&at, &len) in &self.segments {
            if at != end {
                break;
            }
            end += len;
        }
        end
    }
}

/// `name` → its stored copy, from a listing.
fn stored(listed: &[Listed]) -> BTreeMap<String, Stored> {
    let mut out: BTreeMap<String, Stored> = BTreeMap::new();
    for l in listed {
        match l.rel.split_once(SEGMENTS) {
            Some((name, offset)) => {
                if let Ok(at) = offset.parse::<u64>() {
                    out.entry(name.to_string())
                        .or_default()
                        .segments
                        .insert(at, l.size);
                }
            }
            None if !l.rel.contains('/') => {
                out.entry(l.rel.clone()).or_default().whole = Some(l.size);
            }
            None => {}
        }
    }
    out
}

fn segment_name(file: &str, at: u64) -> String {
    format!("{file}{SEGMENTS}{at:020}")
}

fn store_err(source: SinkError) -> ArchiveError {
    ArchiveError::Upload { source }
}

/// What one pass sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Closed files uploaded whole.
    pub whole_files: u64,
    /// Segments of the open file.
    pub segments: u64,
    /// Bytes uploaded.
    pub bytes: u64,
}

/// Mirrors an archive directory into object storage, pass after pass.
#[derive(Debug)]
pub struct Uploader {
    files: ObjectFiles,
    dir: PathBuf,
    stored: BTreeMap<String, Stored>,
}

impl Uploader {
    /// Reads what the store already holds (an archiver restarted goes on
    /// where the last one's uploads ended).
    ///
    /// # Errors
    /// [`ArchiveError::Upload`].
    pub fn open(files: ObjectFiles, dir: &Path) -> Result<Self, ArchiveError> {
        let stored = stored(&files.list().map_err(store_err)?);
        Ok(Uploader {
            files,
            dir: dir.to_path_buf(),
            stored,
        })
    }

    /// `scheme://bucket/prefix`.
    #[must_use]
    pub fn url(&self) -> &str {
        self.files.url()
    }

    /// One pass: the identity file; every file older than the open one
    /// whole (deleting its segments); and the open file `open` (name,
    /// durable length, as the archiver last reported) as one segment of
    /// what it gained since the last pass. Files newer than `open` (just
    /// begun, nothing durable reported yet) wait for the next pass; without
    /// `open`, the newest file waits.
    ///
    /// # Errors
    /// [`ArchiveError::Upload`]; [`ArchiveError::Diverged`] when the store
    /// holds more of a file than the archive does (another archive's
    /// uploads under the same prefix).
    pub fn pass(&mut self, open: Option<(&str, u64)>) -> Result<Sent, ArchiveError> {
        let mut sent = Sent::default();
        let source = self.dir.join(SOURCE_FILE);
        if let Ok(meta) = std::fs::metadata(&source) {
            if self.stored.get(SOURCE_FILE).and_then(|s| s.whole) != Some(meta.len()) {
                self.files
                    .put_range(SOURCE_FILE, &source, 0, meta.len())
                    .map_err(store_err)?;
                self.stored.entry(SOURCE_FILE.into()).or_default().whole = Some(meta.len());
            }
        }
        let mut local = archived_files(&self.dir)?;
        let open_at = match open {
            Some((f, _)) => local.iter().position(|n| n == f),
            None => None,
        };
        match open_at {
            Some(i) => local.truncate(i + 1),
            None => {
                local.pop();
            }
        }
        for name in &local {
            let path = self.dir.join(name);
            let is_open = open_at.is_some() && open.is_some_and(|(f, _)| f == name.as_str());
            let len = match open {
                Some((f, durable)) if f == name.as_str() => durable,
                _ => std::fs::metadata(&path)
                    .map_err(|source| ArchiveError::Io {
                        path: path.clone(),
                        source,
                    })?
                    .len(),
            };
            let have = self.stored.get(name).cloned().unwrap_or_default();
            let up_to = have.contiguous();
            if up_to > len {
                return Err(ArchiveError::Diverged {
                    file: name.clone(),
                    reason: format!(
                        "{} holds {up_to} bytes of it, the archive in {} only {len}",
                        self.files.url(),
                        self.dir.display()
                    ),
                });
            }
            if is_open {
                if len > up_to {
                    let rel = segment_name(name, up_to);
                    self.files
                        .put_range(&rel, &path, up_to, len - up_to)
                        .map_err(store_err)?;
                    self.stored
                        .entry(name.clone())
                        .or_default()
                        .segments
                        .insert(up_to, len - up_to);
                    sent.segments += 1;
                    sent.bytes += len - up_to;
                }
                continue;
            }
            if have.whole != Some(len) {
                self.files
                    .put_range(name, &path, 0, len)
                    .map_err(store_err)?;
                sent.whole_files += 1;
                sent.bytes += len;
            }
            for &at in have.segments.keys() {
                self.files
                    .delete(&segment_name(name, at))
                    .map_err(store_err)?;
            }
            self.stored.insert(
                name.clone(),
                Stored {
                    whole: Some(len),
                    segments: BTreeMap::new(),
                },
            );
        }
        Ok(sent)
    }
}

/// Brings the archive at `files` into `into` (created, or emptied of
/// binlog files first is the caller's business): each file whole, or its
/// segments joined. Returns the names, oldest first.
///
/// # Errors
/// [`ArchiveError::Upload`]; [`ArchiveError::Diverged`] for a file whose
/// segments leave a hole (a segment lost): the file is not written.
pub fn download(files: &ObjectFiles, into: &Path) -> Result<Vec<String>, ArchiveError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Io { path, source }
    };
    std::fs::create_dir_all(into).map_err(io(into))?;
    let stored = stored(&files.list().map_err(store_err)?);
    let mut names = Vec::new();
    for (name, s) in stored
        .iter()
        .filter(|(n, _)| is_binlog_name(n) || n.as_str() == SOURCE_FILE)
    {
        let path = into.join(name);
        let tmp = into.join(format!("{name}.xbpart"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
        let fetched =
            fetch_file(files, name, s, &mut out).and_then(|()| out.flush().map_err(io(&tmp)));
        drop(out);
        if let Err(e) = fetched {
            // a partial file never stays beside the whole ones
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        if name != SOURCE_FILE {
            names.push(name.clone());
        }
    }
    Ok(names)
}

/// Writes the stored copy `s` of `name` into `out`: its whole object, or
/// its segments joined, each of the size the listing gave.
fn fetch_file(
    files: &ObjectFiles,
    name: &str,
    s: &Stored,
    out: &mut dyn Write,
) -> Result<(), ArchiveError> {
    let diverged = |reason: String| ArchiveError::Diverged {
        file: name.to_string(),
        reason,
    };
    if let Some(listed) = s.whole {
        let got = files.get_into(name, out).map_err(store_err)?;
        if got != listed {
            return Err(diverged(format!(
                "{} listed it with {listed} bytes and sent {got}",
                files.url()
            )));
        }
        return Ok(());
    }
    let mut end = 0;
    for (&at, &len) in &s.segments {
        if at != end {
            return Err(diverged(format!(
                "{} holds it in segments with a hole: bytes {end}..{at} are missing",
                files.url()
            )));
        }
        let got = files
            .get_into(&segment_name(name, at), out)
            .map_err(store_err)?;
        if got != len {
            return Err(diverged(format!(
                "its segment at {at} was listed with {len} bytes and read with {got}"
            )));
        }
        end = at + got;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(rel: &str, size: u64) -> Listed {
        Listed {
            rel: rel.into(),
            size,
        }
    }

    #[test]
    fn a_listing_reads_as_whole_files_and_segments() {
        let s = stored(&[
            l("binlog.000001", 900),
            l("binlog.000002.xbseg/00000000000000000000", 100),
            l("binlog.000002.xbseg/00000000000000000100", 50),
            l("binlog.000002.xbseg/00000000000000000200", 10),
            l("xb_binlog_source", 37),
            l("elsewhere/binlog.000009", 5),
        ]);
        assert_eq!(s["binlog.000001"].contiguous(), 900);
        // the third segment is past a hole: only the first 150 bytes count
        assert_eq!(s["binlog.000002"].contiguous(), 150);
        assert_eq!(s["xb_binlog_source"].whole, Some(37));
        assert!(!s.contains_key("elsewhere/binlog.000009"));
        assert_eq!(
            segment_name("binlog.000002", 150),
            "binlog.000002.xbseg/00000000000000000150"
        );
    }
}
