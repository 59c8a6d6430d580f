//! Which server binary may run recovery on a backup.
//!
//! Recovery by the wrong server does not fail cleanly: MariaDB cannot read a
//! MySQL redo log (nor MySQL a MariaDB one), a MariaDB server of another
//! release series either cannot read the log (10.5–10.7 wrote another
//! format than 10.8+) or upgrades the files as it starts (11.0 drops the
//! change buffer), and an older MySQL cannot recover a newer one's crash.
//! Either way the backup is left half-changed or no longer restorable on
//! the source's version. So before anything in the backup changes we read
//! the source's version from `xtrabackup_info`, ask each candidate binary
//! for its own (`--version`) and refuse a pair [`compatibility`] rejects.

use std::fs;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xb_innodb::redo::RedoFormat;

use super::PrepareOptions;
use super::error::{PrepareError, io_err};

/// The two server families; they share no redo format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// MariaDB (its version string says `MariaDB`).
    MariaDb,
    /// Oracle MySQL and its builds (Percona Server).
    MySql,
}

/// A server version as the server itself writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Version {
    /// MariaDB or MySQL.
    pub family: Family,
    /// Major, minor, patch.
    pub number: (u32, u32, u32),
    /// The text it was parsed from (for messages).
    pub text: String,
}

impl Version {
    /// Parses `SELECT VERSION()`'s answer (what `xtrabackup_info` records)
    /// or the version word of `--version`: `10.11.18-MariaDB-0+deb12u1`,
    /// `9.7.4-2`, `8.0.36-28`. `None` unless it starts with `X.Y.Z`.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let mariadb = text.contains("MariaDB");
        // MariaDB's old replication prefix, never its real version
        let body = if mariadb {
            text.strip_prefix("5.5.5-").unwrap_or(text)
        } else {
            text
        };
        let end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let mut parts = body[..end].split('.').map(str::parse::<u32>);
        let number = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => (a, b, c),
            _ => return None,
        };
        Some(Version {
            family: if mariadb {
                Family::MariaDb
            } else {
                Family::MySql
            },
            number,
            text: text.to_string(),
        })
    }

    /// The version in `<binary> --version` output: the word after `Ver`
    /// (`mariadbd  Ver 10.11.18-MariaDB-0+deb12u1 for debian-linux-gnu …`,
    /// `mysqld  Ver 9.7.4-2 for Linux on x86_64 ((Debian))`).
    pub fn from_version_output(out: &str) -> Option<Version> {
        let mut words = out.split_whitespace();
        words.find(|w| *w == "Ver")?;
        Version::parse(words.next()?)
    }
}

/// Why `server` may not recover a backup of `backup`, or `Ok` when it may.
///
/// * Families must match: neither reads the other's redo log.
/// * MariaDB: the same major.minor series. 10.5–10.7 and 10.8+ write
///   different redo formats, and a newer series changes the files as it
///   starts (e.g. 11.0 removes the change buffer), after which the backup
///   no longer restores on the source's version; mariadb-backup is tied to
///   its series for the same reasons.
/// * MySQL: the same version or a newer 8.x/9.x release. 8.0.30 through
///   9.x share one redo format and a newer server recovers an older one's
///   log (then upgrades the data dictionary, as any upgrade does); an older
///   server, even by one patch release, would be a downgrade of a crashed
///   instance, which MySQL does not support.
///
/// # Errors
/// The reason, as a sentence fragment for [`PrepareError::ServerMismatch`].
pub(super) fn compatibility(backup: &Version, server: &Version) -> Result<(), &'static str> {
    match (backup.family, server.family) {
        (Family::MySql, Family::MariaDb) => Err("MariaDB cannot recover a MySQL backup"),
        (Family::MariaDb, Family::MySql) => Err("MySQL cannot recover a MariaDB backup"),
        (Family::MariaDb, Family::MariaDb) => {
            let series = |v: &Version| (v.number.0, v.number.1);
            if series(backup) == series(server) {
                Ok(())
            } else {
                Err("a MariaDB backup needs a server of the same major.minor release series")
            }
        }
        (Family::MySql, Family::MySql) => {
            if !(8..=9).contains(&server.number.0) {
                Err("prepare knows MySQL 8.x and 9.x servers only")
            } else if server.number < backup.number {
                Err("an older MySQL cannot recover a newer one's backup")
            } else {
                Ok(())
            }
        }
    }
}

/// The source server's version, from `server_version` in `xtrabackup_info`,
/// checked against the redo log the backup holds (`#innodb_redo/` is
/// MySQL's, `ib_logfile0` MariaDB's, and its format tells 10.5–10.7 from
/// 10.8+): a file that contradicts the log is not trusted.
///
/// # Errors
/// [`PrepareError::UnknownSourceVersion`] when the file or key is missing,
/// unparsable or contradicts the log.
pub(super) fn source_version(dir: &Path, redo: RedoFormat) -> Result<Version, PrepareError> {
    let file = dir.join("xtrabackup_info");
    let bad = |reason: String| PrepareError::UnknownSourceVersion {
        file: file.clone(),
        reason,
    };
    let version = recorded_version(dir)?;
    let value = &version.text;
    let fits = match redo {
        RedoFormat::MySql8030 => version.family == Family::MySql,
        RedoFormat::MariaDb105 => version.family == Family::MariaDb && version.number < (10, 8, 0),
        RedoFormat::MariaDb108 => version.family == Family::MariaDb && version.number >= (10, 8, 0),
        // uncovered: log_extent refuses the classic format before this
        RedoFormat::Classic => true,
    };
    if fits {
        Ok(version)
    } else {
        Err(bad(format!(
            "server_version = {value} contradicts the backup's redo log ({redo:?} format)"
        )))
    }
}

/// The redo format a server of `version` writes (as far as prepare knows
/// servers): for a prepared backup, whose log is the recovery server's own
/// and so no longer tells the source's.
pub(super) fn redo_format_of(version: &Version) -> RedoFormat {
    match version.family {
        Family::MySql => RedoFormat::MySql8030,
        Family::MariaDb if version.number >= (10, 8, 0) => RedoFormat::MariaDb108,
        Family::MariaDb => RedoFormat::MariaDb105,
    }
}

/// `server_version` of `xtrabackup_info`, unchecked against the log.
///
/// # Errors
/// [`PrepareError::UnknownSourceVersion`] when the file or key is missing
/// or unparsable.
pub(super) fn recorded_version(dir: &Path) -> Result<Version, PrepareError> {
    let file = dir.join("xtrabackup_info");
    let bad = |reason: String| PrepareError::UnknownSourceVersion {
        file: file.clone(),
        reason,
    };
    let text = match fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) => return Err(bad(format!("cannot be read ({e})"))),
    };
    let value = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "server_version")
        .map(|(_, v)| v.trim())
        .ok_or_else(|| bad("has no server_version line".into()))?;
    Version::parse(value).ok_or_else(|| bad(format!("server_version = {value} is not a version")))
}

/// How long `<binary> --version` may take (it prints and exits at once).
const VERSION_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `<server> --no-defaults --version` and parses what it prints. The
/// output goes to an anonymous file so a binary that hangs can be killed.
fn server_version(server: &Path) -> Result<Version, PrepareError> {
    let unknown = |detail: String| PrepareError::ServerVersionUnknown {
        server: server.to_path_buf(),
        detail,
    };
    let mut out = tempfile::tempfile().map_err(io_err(Path::new("/tmp")))?;
    let mut child = Command::new(server)
        .args(["--no-defaults", "--version"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(io_err(Path::new("/tmp")))?)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| unknown(format!("cannot run it: {e}")))?;
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if t0.elapsed() > VERSION_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(unknown(format!(
                    "--version did not answer within {VERSION_TIMEOUT:?}"
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(unknown(format!("waiting for it: {e}"))),
        }
    };
    out.rewind().map_err(io_err(Path::new("/tmp")))?;
    let mut bytes = Vec::new();
    out.read_to_end(&mut bytes)
        .map_err(io_err(Path::new("/tmp")))?;
    // a binary's output need not be UTF-8
    let text = String::from_utf8_lossy(&bytes);
    if !status.success() {
        return Err(unknown(format!("--version exited with {status}")));
    }
    Version::from_version_output(&text).ok_or_else(|| {
        unknown(format!(
            "no version in its --version output {:?}",
            text.trim()
        ))
    })
}

/// Checks `server` against the source: its version, or why it may not run.
fn check(server: &Path, backup: &Version) -> Result<Version, PrepareError> {
    let version = server_version(server)?;
    compatibility(backup, &version).map_err(|reason| PrepareError::ServerMismatch {
        server: server.to_path_buf(),
        server_version: version.text.clone(),
        backup_version: backup.text.clone(),
        reason,
    })?;
    Ok(version)
}

/// The server binary that recovers the backup of `backup`: the one given
/// (which must fit), else the first `mariadbd`/`mysqld` in `PATH` that fits.
/// Nothing is changed on disk.
///
/// # Errors
/// [`PrepareError::ServerNotFound`] when there is no candidate at all,
/// [`PrepareError::ServerVersionUnknown`] when the given binary does not
/// say its version, [`PrepareError::ServerMismatch`] when the given binary,
/// or every candidate in `PATH`, is of the wrong family or version (the
/// first candidate's mismatch is reported).
pub(super) fn find_server(
    opts: &PrepareOptions,
    backup: &Version,
) -> Result<(PathBuf, Version), PrepareError> {
    if let Some(bin) = &opts.server_binary {
        if !bin.is_file() {
            return Err(PrepareError::ServerNotFound {
                tried: bin.display().to_string(),
            });
        }
        return check(bin, backup).map(|v| (bin.clone(), v));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut tried = Vec::new();
    let mut first_refusal = None;
    let names = match backup.family {
        Family::MariaDb => ["mariadbd", "mysqld"],
        Family::MySql => ["mysqld", "mariadbd"],
    };
    for name in names {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join(name);
            if !cand.is_file() {
                continue;
            }
            match check(&cand, backup) {
                Ok(v) => return Ok((cand, v)),
                Err(e) => {
                    tracing::info!(server = %cand.display(), error = %e, "server binary skipped");
                    first_refusal.get_or_insert(e);
                }
            }
        }
        tried.push(format!("{name} in PATH"));
    }
    Err(first_refusal.unwrap_or(PrepareError::ServerNotFound {
        tried: tried.join(", "),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn versions_are_read_as_the_servers_write_them() {
        let m = v("10.11.18-MariaDB-0+deb12u1-log");
        assert_eq!((m.family, m.number), (Family::MariaDb, (10, 11, 18)));
        let m = v("5.5.5-10.5.23-MariaDB");
        assert_eq!((m.family, m.number), (Family::MariaDb, (10, 5, 23)));
        let o = v("9.7.4-2");
        assert_eq!((o.family, o.number), (Family::MySql, (9, 7, 4)));
        let p = v("8.0.36-28");
        assert_eq!((p.family, p.number), (Family::MySql, (8, 0, 36)));
        for bad in ["", "MariaDB", "10.11", "10.11.x", "1.2.3.4", "v8.0.36"] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_version_is_the_word_after_ver() {
        let out = "/usr/sbin/mariadbd  Ver 11.8.9-MariaDB-0+deb13u1 from Debian for \
                   debian-linux-gnu on x86_64 (-- Please help get to 10k stars)\n";
        let m = Version::from_version_output(out).unwrap();
        assert_eq!((m.family, m.number), (Family::MariaDb, (11, 8, 9)));
        assert_eq!(m.text, "11.8.9-MariaDB-0+deb13u1");
        let out = "/usr/sbin/mysqld  Ver 9.7.4-2 for Linux on x86_64 ((Debian))\n";
        let o = Version::from_version_output(out).unwrap();
        assert_eq!((o.family, o.number), (Family::MySql, (9, 7, 4)));
        // Percona Server says MySQL-compatible things only
        let out = "mysqld  Ver 8.0.36-28 for Linux on x86_64 (Percona Server (GPL), Release '28')";
        assert_eq!(
            Version::from_version_output(out).unwrap().family,
            Family::MySql
        );
        assert_eq!(Version::from_version_output("bash, version 5.2"), None);
        assert_eq!(Version::from_version_output("Ver"), None);
    }

    #[test]
    fn families_never_recover_each_other() {
        let err = compatibility(&v("9.7.4-2"), &v("10.11.18-MariaDB")).unwrap_err();
        assert!(err.contains("MariaDB cannot recover a MySQL"), "{err}");
        let err = compatibility(&v("10.11.18-MariaDB"), &v("9.7.4")).unwrap_err();
        assert!(err.contains("MySQL cannot recover a MariaDB"), "{err}");
        // even a MariaDB binary named mysqld, or a MySQL version number that
        // looks like a MariaDB series, is judged by its family
        assert!(compatibility(&v("8.0.36"), &v("10.5.23-MariaDB")).is_err());
        assert!(compatibility(&v("10.5.23-MariaDB"), &v("10.5.23")).is_err());
    }

    #[test]
    fn mariadb_needs_its_own_release_series() {
        let ok = |b: &str, s: &str| compatibility(&v(b), &v(s)).is_ok();
        assert!(ok("10.5.23-MariaDB", "10.5.23-MariaDB"));
        assert!(ok("10.5.23-MariaDB", "10.5.27-MariaDB"), "newer patch");
        assert!(ok("10.11.18-MariaDB", "10.11.9-MariaDB"), "older patch");
        assert!(!ok("10.5.23-MariaDB", "11.8.9-MariaDB"), "redo format");
        assert!(!ok("10.5.23-MariaDB", "10.6.20-MariaDB"));
        assert!(!ok("10.11.18-MariaDB", "11.8.9-MariaDB"), "upgrade");
        assert!(!ok("11.8.9-MariaDB", "10.11.18-MariaDB"), "downgrade");
        assert!(!ok("10.11.18-MariaDB", "10.5.23-MariaDB"), "downgrade");
    }

    #[test]
    fn mysql_needs_the_same_or_a_newer_8_or_9_release() {
        let ok = |b: &str, s: &str| compatibility(&v(b), &v(s)).is_ok();
        assert!(ok("9.7.4", "9.7.4-2"));
        assert!(ok("8.0.30", "8.0.36"));
        assert!(ok("8.0.36", "8.4.3"));
        assert!(ok("8.4.3", "9.7.4"));
        assert!(!ok("8.0.36", "8.0.35"), "an older patch is a downgrade");
        assert!(!ok("9.7.4", "8.4.3"));
        assert!(!ok("8.0.36", "10.0.0"), "an unknown major");
        assert!(!ok("8.0.36", "5.7.44"));
    }

    fn info_dir(text: Option<&str>) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        if let Some(t) = text {
            fs::write(d.path().join("xtrabackup_info"), t).unwrap();
        }
        d
    }

    #[test]
    fn the_source_version_must_be_known_and_match_the_log() {
        let d = info_dir(Some("uuid = x\nserver_version = 10.11.18-MariaDB-log\n"));
        let got = source_version(d.path(), RedoFormat::MariaDb108).unwrap();
        assert_eq!(got.number, (10, 11, 18));

        let d = info_dir(Some("server_version = 9.7.4-2\n"));
        assert!(source_version(d.path(), RedoFormat::MySql8030).is_ok());

        let refused = |d: &tempfile::TempDir, redo, needle: &str| {
            let e = source_version(d.path(), redo).unwrap_err();
            assert!(
                matches!(e, PrepareError::UnknownSourceVersion { .. }),
                "{e}"
            );
            let text = e.to_string();
            assert!(text.contains("xtrabackup_info"), "{text}");
            assert!(text.contains(needle), "{text}");
        };
        refused(&info_dir(None), RedoFormat::MariaDb108, "cannot be read");
        refused(
            &info_dir(Some("uuid = x\n")),
            RedoFormat::MariaDb108,
            "no server_version",
        );
        refused(
            &info_dir(Some("server_version = \n")),
            RedoFormat::MariaDb108,
            "is not a version",
        );
        // a MySQL log under a MariaDB version, or the other way round
        let d = info_dir(Some("server_version = 10.11.18-MariaDB\n"));
        refused(&d, RedoFormat::MySql8030, "contradicts");
        refused(&d, RedoFormat::MariaDb105, "contradicts");
        let d = info_dir(Some("server_version = 10.5.23-MariaDB\n"));
        refused(&d, RedoFormat::MariaDb108, "contradicts");
        assert!(source_version(d.path(), RedoFormat::MariaDb105).is_ok());
    }

    /// A fake server binary: a shell script that prints `out` for --version.
    fn fake_server(dir: &Path, name: &str, out: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        fs::write(&p, format!("#!/bin/sh\necho '{out}'\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn an_explicit_binary_of_the_wrong_kind_is_refused_naming_both_versions() {
        let d = tempfile::tempdir().unwrap();
        let bin = fake_server(
            d.path(),
            "mariadbd",
            "mariadbd  Ver 10.11.18-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64",
        );
        let opts = PrepareOptions::new(d.path()).server_binary(&bin);
        let e = find_server(&opts, &v("9.7.4-2")).unwrap_err();
        assert!(matches!(e, PrepareError::ServerMismatch { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("10.11.18-MariaDB-0+deb12u1"), "{text}");
        assert!(text.contains("9.7.4-2"), "{text}");
        assert!(text.contains(&bin.display().to_string()), "{text}");
        assert!(e.hint().contains("--server-binary"), "{}", e.hint());

        let ok = find_server(&opts, &v("10.11.5-MariaDB")).unwrap();
        assert_eq!(ok.0, bin);

        let silent = fake_server(d.path(), "quiet", "");
        let opts = PrepareOptions::new(d.path()).server_binary(&silent);
        let e = find_server(&opts, &v("9.7.4-2")).unwrap_err();
        assert!(
            matches!(e, PrepareError::ServerVersionUnknown { .. }),
            "{e}"
        );
    }
}
