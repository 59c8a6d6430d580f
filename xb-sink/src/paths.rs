//! Path safety: every name that comes from a stream or a caller is checked
//! before it touches the file system, and is then opened beneath the
//! target one component at a time without following symbolic links, so
//! nothing lands outside the target.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, FcntlArg, OFlag, fcntl, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::SinkError;

/// Longest path xbstream readers accept (MySQL's `FN_REFLEN` minus the NUL).
pub(crate) const MAX_PATH: usize = 511;

/// Checks that `rel` is a plain relative path of normal components.
pub(crate) fn check_rel(rel: &str) -> Result<&Path, SinkError> {
    let bad = |reason| SinkError::UnsafePath {
        path: rel.to_string(),
        reason,
    };
    if rel.is_empty() {
        return Err(bad("empty path"));
    }
    if rel.len() > MAX_PATH {
        return Err(bad("longer than 511 bytes"));
    }
    if rel.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let p = Path::new(rel);
    if p.is_absolute() {
        return Err(bad("absolute path"));
    }
    // judged on the raw text: Path::components would hide "a/./b" and "a//b"
    for seg in rel.split('/') {
        match seg {
            ".." => return Err(bad("contains '..'")),
            "" | "." => return Err(bad("not a plain relative path")),
            _ => {}
        }
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(bad("not a plain relative path"));
    }
    Ok(p)
}

/// The first entry of `dir`, `None` when it is empty.
pub(crate) fn first_entry(dir: &Path) -> Result<Option<String>, SinkError> {
    let mut entries = fs::read_dir(dir).map_err(|e| SinkError::io(dir.display(), e))?;
    match entries.next() {
        None => Ok(None),
        Some(Ok(e)) => Ok(Some(e.file_name().to_string_lossy().into_owned())),
        Some(Err(e)) => Err(SinkError::io(dir.display(), e)),
    }
}

/// How [`Root::create`] treats a file that is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// The file must not exist (`O_EXCL`): nothing is ever overwritten.
    New,
    /// Open it if it exists, else create it (MariaDB's rewrite flag). It
    /// must be a regular file.
    Existing,
}

fn not_regular(rel: &str) -> SinkError {
    SinkError::UnsafePath {
        path: rel.to_string(),
        reason: "it exists and is not a regular file",
    }
}

/// Flags of every directory opened on the way down: `O_NOFOLLOW` makes a
/// symbolic link an error (`ELOOP`) instead of a detour.
const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// A target directory, opened once. Every path below it is resolved one
/// component at a time from this handle, each directory and the file itself
/// opened with `O_NOFOLLOW`, so a symbolic link already in the target (or
/// planted during the run) is refused, never followed. Checking with `lstat`
/// first and opening by name afterwards would leave a window in which a
/// directory can be swapped for a link.
///
/// The root itself is opened by name and may be a symbolic link: the
/// caller chose it.
#[derive(Debug)]
pub(crate) struct Root {
    dir: OwnedFd,
    path: PathBuf,
}

/// The directory that holds a file, and the file's name in it.
struct Parent<'a> {
    /// `None`: the root itself.
    dir: Option<OwnedFd>,
    root: BorrowedFd<'a>,
    name: &'a str,
}

impl Parent<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_ref().map_or(self.root, AsFd::as_fd)
    }
}

impl Root {
    /// Opens the existing directory `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, SinkError> {
        let dir = openat(
            AT_FDCWD,
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SinkError::io(path.display(), e.into()))?;
        Ok(Root {
            dir,
            path: path.to_path_buf(),
        })
    }

    /// The directory as it was named.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `name` in `dir` is a symbolic link (false when it cannot be
    /// looked at).
    fn is_symlink(dir: BorrowedFd<'_>, name: &str) -> bool {
        Self::file_type(dir, name) == Some(SFlag::S_IFLNK)
    }

    /// The file type bits (`S_IFMT`) of `name` in `dir`, not following a
    /// link; `None` when it cannot be looked at.
    fn file_type(dir: BorrowedFd<'_>, name: &str) -> Option<SFlag> {
        fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
    }

    fn symlink(&self, rel: &str, link: &str) -> SinkError {
        SinkError::Symlink {
            path: rel.to_string(),
            link: self.path.join(link).display().to_string(),
        }
    }

    /// Opens the directory that holds `rel`. Missing directories are
    /// created when `create`, else one missing is an I/O error of kind
    /// `NotFound`; an existing one that is a symbolic link or not a
    /// directory is refused.
    fn parent<'a>(&'a self, rel: &'a str, create: bool) -> Result<Parent<'a>, SinkError> {
        check_rel(rel)?;
        // check_rel leaves only plain components separated by single '/'
        let (name, dirs) = match rel.rsplit_once('/') {
            Some((dirs, name)) => (name, Some(dirs)),
            None => (rel, None),
        };
        let mut cur: Option<OwnedFd> = None;
        let mut walked = 0;
        for d in dirs.into_iter().flat_map(|d| d.split('/')) {
            walked += d.len() + usize::from(walked > 0);
            let here = &rel[..walked];
            let at = cur.as_ref().map_or(self.dir.as_fd(), AsFd::as_fd);
            let next = match openat(at, d, DIR_FLAGS, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(at, d, Mode::from_bits_truncate(0o777)) {
                        // EEXIST: a concurrent creator won; the open checks it
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(SinkError::io(self.path.join(here).display(), e.into()));
                        }
                    }
                    openat(at, d, DIR_FLAGS, Mode::empty())
                }
                r => r,
            };
            cur = Some(next.map_err(|e| match e {
                _ if Self::is_symlink(at, d) => self.symlink(rel, here),
                Errno::ENOTDIR => SinkError::UnsafePath {
                    path: rel.to_string(),
                    reason: "a parent component is not a directory",
                },
                e => SinkError::io(self.path.join(here).display(), e.into()),
            })?);
        }
        Ok(Parent {
            dir: cur,
            root: self.dir.as_fd(),
            name,
        })
    }

    /// Creates (or with [`Create::Existing`] opens) the file `rel` for
    /// writing, with `extra` flags (`O_DIRECT`, `O_TRUNC`), creating the
    /// directories above it. Returns the file and its full path.
    ///
    /// A symbolic link at `rel` or above is [`SinkError::Symlink`]; an
    /// existing file with [`Create::New`] is [`SinkError::Exists`].
    pub(crate) fn create(
        &self,
        rel: &str,
        how: Create,
        extra: OFlag,
    ) -> Result<(File, PathBuf), SinkError> {
        let full = self.path.join(rel);
        let parent = self.parent(rel, true)?;
        let mut flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | extra;
        flags |= match how {
            Create::New => OFlag::O_EXCL,
            // a FIFO planted there would block the open forever
            Create::Existing => OFlag::O_NONBLOCK,
        };
        let fd = openat(
            parent.fd(),
            parent.name,
            flags,
            Mode::from_bits_truncate(0o666),
        )
        .map_err(|e| match (e, Self::file_type(parent.fd(), parent.name)) {
            (_, Some(SFlag::S_IFLNK)) => self.symlink(rel, rel),
            (Errno::EEXIST, _) => SinkError::Exists {
                path: full.display().to_string(),
            },
            // a directory (EISDIR), a FIFO without a reader (ENXIO), ...
            (_, Some(t)) if t != SFlag::S_IFREG => not_regular(rel),
            (e, _) => SinkError::io(full.display(), e.into()),
        })?;
        let file = File::from(fd);
        if how == Create::Existing {
            let regular = file
                .metadata()
                .map_err(|e| SinkError::io(full.display(), e))?
                .is_file();
            if !regular {
                return Err(not_regular(rel));
            }
            let fl = OFlag::from_bits_truncate(
                fcntl(&file, FcntlArg::F_GETFL)
                    .map_err(|e| SinkError::io(full.display(), e.into()))?,
            );
            fcntl(&file, FcntlArg::F_SETFL(fl & !OFlag::O_NONBLOCK))
                .map_err(|e| SinkError::io(full.display(), e.into()))?;
        }
        Ok((file, full))
    }

    /// Renames `from` to `to` (replacing `to`, as `rename(2)` does; a
    /// symbolic link there is replaced, not followed).
    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<(), SinkError> {
        let src = self.parent(from, false)?;
        let dst = self.parent(to, true)?;
        renameat(src.fd(), src.name, dst.fd(), dst.name)
            .map_err(|e| SinkError::io(self.path.join(from).display(), e.into()))
    }

    /// Removes the file `rel` (a symbolic link there is removed, not
    /// followed); a file that is not there is no error.
    pub(crate) fn remove(&self, rel: &str) -> Result<(), SinkError> {
        let p = match self.parent(rel, false) {
            Ok(p) => p,
            Err(SinkError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match unlinkat(p.fd(), p.name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(SinkError::io(self.path.join(rel).display(), e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "a\0b",
        ] {
            assert!(check_rel(bad).is_err(), "{bad:?}");
        }
        assert!(check_rel(&"a".repeat(512)).is_err());
        for good in ["ibdata1", "db/t.ibd", "a/b/c"] {
            assert!(check_rel(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn symlinked_parents_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("db")).unwrap();
        let root = Root::open(d.path()).unwrap();
        let e = root
            .create("db/t.ibd", Create::New, OFlag::empty())
            .unwrap_err();
        let link = d.path().join("db").display().to_string();
        assert!(
            matches!(e, SinkError::Symlink { ref path, link: ref l } if path == "db/t.ibd" && *l == link),
            "{e:?}"
        );
        assert!(e.to_string().contains("hint:"), "{e}");
        // deeper: the link is the second component
        fs::create_dir(d.path().join("a")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("a/b")).unwrap();
        let e = root
            .create("a/b/c/t", Create::Existing, OFlag::empty())
            .unwrap_err();
        assert!(e.to_string().contains("a/b is a symbolic link"), "{e}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // a file where a directory should be
        fs::write(d.path().join("f"), b"").unwrap();
        let e = root.create("f/t", Create::New, OFlag::empty()).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        // missing directories are made
        let (_, full) = root.create("x/y/z", Create::New, OFlag::empty()).unwrap();
        assert!(d.path().join("x/y").is_dir());
        assert_eq!(full, d.path().join("x/y/z"));
    }

    #[test]
    fn a_symlink_in_place_of_the_file_is_never_written_through() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("live")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("new"), d.path().join("dangling")).unwrap();
        let root = Root::open(d.path()).unwrap();
        for how in [Create::New, Create::Existing] {
            for name in ["live", "dangling"] {
                let e = root.create(name, how, OFlag::O_TRUNC).unwrap_err();
                assert!(
                    matches!(e, SinkError::Symlink { .. }),
                    "{how:?} {name}: {e:?}"
                );
            }
        }
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(!outside.path().join("new").exists());
        // removing or renaming a link touches the link only
        root.rename("live", "moved").unwrap();
        root.remove("moved").unwrap();
        root.remove("not/there").unwrap();
        // the missing directory is named
        let e = root.rename("not/there", "x").unwrap_err();
        let missing = d.path().join("not").display().to_string();
        assert!(
            matches!(e, SinkError::Io { ref path, ref source } if *path == missing && source.kind() == ErrorKind::NotFound),
            "{e:?}"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn an_existing_file_is_refused_new_and_reopened_existing() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), b"abc").unwrap();
        let root = Root::open(d.path()).unwrap();
        let e = root.create("f", Create::New, OFlag::empty()).unwrap_err();
        assert!(matches!(e, SinkError::Exists { .. }), "{e:?}");
        let (f, _) = root.create("f", Create::Existing, OFlag::empty()).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"X", 1).unwrap();
        assert_eq!(fs::read(d.path().join("f")).unwrap(), b"aXc");
        // a FIFO is refused at once instead of blocking the open, and so
        // is a directory
        nix::unistd::mkfifo(&d.path().join("p"), Mode::from_bits_truncate(0o600)).unwrap();
        fs::create_dir(d.path().join("dir")).unwrap();
        for name in ["p", "dir"] {
            let e = root
                .create(name, Create::Existing, OFlag::empty())
                .unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{name}: {e}");
        }
        assert!(first_entry(d.path()).unwrap().is_some());
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(first_entry(empty.path()).unwrap(), None);
    }
}
