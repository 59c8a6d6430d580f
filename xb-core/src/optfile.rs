//! A small reader for MySQL option files (`--defaults-file`): the groups
//! xb cares about, `key = value` lines, `-`/`_` equivalence, quotes, comments,
//! `!include` and `!includedir`. Later values win, as in the server's own reader.
//!
//! One implementation for the whole workspace: `xb-cli backup` reads the
//! client groups through it, [`crate::restore`] the server's groups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why an option file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptionFileError {
    /// The file (or one it includes) cannot be read.
    #[error("cannot read option file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not an option.
    #[error("{}: line {line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Options collected from the wanted groups.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options(BTreeMap<String, String>);

impl Options {
    /// The value of `key` (`-` and `_` are the same).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.get(&key.replace('-', "_")).cloned()
    }
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1]
                .replace("\\\\", "\\")
                .replace(&format!("\\{q}"), &q.to_string());
        }
    }
    // an unquoted value ends at a comment
    v.split(" #").next().unwrap_or(v).trim().to_string()
}

fn parse_into(
    text: &str,
    path: &Path,
    groups: &[&str],
    out: &mut Options,
    depth: u32,
) -> Result<(), OptionFileError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut active = false;
    for (no, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(inc) = line.strip_prefix("!include ") {
            parse_into_file(
                &base.join(inc.trim()),
                groups,
                out,
                depth + 1,
                (no + 1, path),
            )?;
            continue;
        }
        if let Some(inc) = line.strip_prefix("!includedir ") {
            // every `*.cnf` of the directory, in name order, as the
            // servers read Debian's /etc/mysql/my.cnf
            let d = base.join(inc.trim());
            let read = |e: std::io::Error| OptionFileError::Read {
                path: d.clone(),
                source: e,
            };
            let mut files = Vec::new();
            for e in std::fs::read_dir(&d).map_err(read)? {
                let p = e.map_err(read)?.path();
                if p.extension().is_some_and(|x| x == "cnf") && p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            for p in files {
                parse_into_file(&p, groups, out, depth + 1, (no + 1, path))?;
            }
            continue;
        }
        if let Some(g) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            active = groups.contains(&g.trim());
            continue;
        }
        if !active {
            continue;
        }
        let (k, v) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), unquote(v)),
            None => (line, String::new()),
        };
        if k.is_empty() {
            return Err(OptionFileError::Malformed {
                path: path.to_path_buf(),
                line: no + 1,
                reason: "option without a name",
            });
        }
        let k = k
            .strip_prefix("loose-")
            .or_else(|| k.strip_prefix("loose_"))
            .unwrap_or(k);
        out.0.insert(k.replace('-', "_"), v);
    }
    Ok(())
}

/// Reads the file `path` included at line `from.0` of `from.1`.
fn parse_into_file(
    path: &Path,
    groups: &[&str],
    out: &mut Options,
    depth: u32,
    from: (usize, &Path),
) -> Result<(), OptionFileError> {
    if depth > 10 {
        return Err(OptionFileError::Malformed {
            path: from.1.to_path_buf(),
            line: from.0,
            reason: "option files include each other too deeply",
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| OptionFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_into(&text, path, groups, out, depth)
}

/// Reads `path`, keeping the options of `groups`.
///
/// # Errors
/// [`OptionFileError`]: the file cannot be read, or a line is malformed.
pub fn read_groups(path: &Path, groups: &[&str]) -> Result<Options, OptionFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| OptionFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Options::default();
    parse_into(&text, path, groups, &mut out, 0)?;
    Ok(out)
}

impl Options {
    /// These options with `top`'s over them (a later file wins).
    #[must_use]
    pub fn overlay(mut self, top: Options) -> Options {
        self.0.extend(top.0);
        self
    }
}

/// The file `mysql_config_editor` keeps login paths in: `MYSQL_TEST_LOGIN_FILE`,
/// else `~/.mylogin.cnf`.
#[must_use]
pub fn login_path_file() -> Option<PathBuf> {
    std::env::var_os("MYSQL_TEST_LOGIN_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".mylogin.cnf")))
}

/// Reads login path `name` (and `[client]`) from `mysql_config_editor`'s
/// obfuscated file: 4 unused bytes, a 20-byte key folded by XOR into an
/// AES-128 key, then each line of an option file as a 4-byte
/// little-endian length and that many bytes of AES-128-ECB with PKCS#7
/// padding. Obfuscation, not secrecy: anyone who can read the file can read
/// the password, which is why the clients insist on mode 0600.
///
/// # Errors
/// [`OptionFileError::Read`], or [`OptionFileError::Malformed`] when the
/// file is not such a file or has no `[name]`.
pub fn read_login_path(path: &Path, name: &str) -> Result<Options, OptionFileError> {
    let bytes = std::fs::read(path).map_err(|source| OptionFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason| OptionFileError::Malformed {
        path: path.to_path_buf(),
        line: 0,
        reason,
    };
    let text =
        deobfuscate(&bytes).ok_or_else(|| bad("not a login-path file of mysql_config_editor"))?;
    if !text.lines().any(|l| l.trim() == format!("[{name}]")) {
        return Err(bad(
            "the login path is not in it (mysql_config_editor print --all lists them)",
        ));
    }
    let mut out = Options::default();
    parse_into(&text, path, &["client", name], &mut out, 0)?;
    Ok(out)
}

fn deobfuscate(bytes: &[u8]) -> Option<String> {
    use aes::cipher::{BlockDecrypt, KeyInit};
    let key = bytes.get(4..24)?;
    let mut rkey = [0u8; 16];
    for (i, b) in key.iter().enumerate() {
        rkey[i % 16] ^= b;
    }
    let aes = aes::Aes128::new(&rkey.into());
    let mut text = Vec::new();
    let mut rest = bytes.get(24..)?;
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let cipher = rest.get(4..4 + len)?;
        if len == 0 || len % 16 != 0 {
            return None;
        }
        let mut plain = cipher.to_vec();
        for block in plain.chunks_exact_mut(16) {
            aes.decrypt_block(block.into());
        }
        let pad = usize::from(*plain.last()?);
        if pad == 0 || pad > 16 || pad > plain.len() {
            return None;
        }
        plain.truncate(plain.len() - pad);
        text.extend_from_slice(&plain);
        rest = &rest[4 + len..];
    }
    String::from_utf8(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_quotes_and_last_value_wins() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("inc.cnf"), "[client]\nport=3310\n").unwrap();
        let f = d.path().join("my.cnf");
        std::fs::write(
            &f,
            "[mysqld]\nport=1\n[client]\nuser = xb\npassword=\"p#w\"\nsocket=/tmp/s # comment\n\
             !include inc.cnf\n[mariadb-backup]\nloose-lock-wait-timeout=5\n",
        )
        .unwrap();
        let o = read_groups(&f, &["client", "mariadb-backup"]).unwrap();
        assert_eq!(o.get("user").as_deref(), Some("xb"));
        assert_eq!(o.get("password").as_deref(), Some("p#w"));
        assert_eq!(o.get("socket").as_deref(), Some("/tmp/s"));
        assert_eq!(o.get("port").as_deref(), Some("3310"));
        assert_eq!(o.get("lock-wait-timeout").as_deref(), Some("5"));
        assert!(matches!(
            read_groups(&d.path().join("missing"), &["client"]),
            Err(OptionFileError::Read { .. })
        ));
        // Debian's layout: a directory of *.cnf, read in name order
        let conf = d.path().join("conf.d");
        std::fs::create_dir(&conf).unwrap();
        std::fs::write(conf.join("50-server.cnf"), "[mysqld]\ndatadir=/srv/a\n").unwrap();
        std::fs::write(conf.join("60-local.cnf"), "[mariadbd]\ndatadir=/srv/b\n").unwrap();
        std::fs::write(conf.join("README"), "[mysqld]\ndatadir=/not/read\n").unwrap();
        std::fs::write(&f, "[mysqld]\nuser=mysql\n!includedir conf.d\n").unwrap();
        let o = read_groups(&f, &["mysqld", "mariadbd"]).unwrap();
        assert_eq!(o.get("datadir").as_deref(), Some("/srv/b"));
        assert_eq!(o.get("user").as_deref(), Some("mysql"));
        std::fs::write(&f, "!include my.cnf\n").unwrap();
        let e = read_groups(&f, &["client"]).unwrap_err();
        assert!(e.to_string().contains("too deeply"), "{e}");
        std::fs::write(&f, "[client]\n= 1\n").unwrap();
        let e = read_groups(&f, &["client"]).unwrap_err();
        assert!(
            e.to_string().ends_with("line 2: option without a name"),
            "{e}"
        );
    }

    /// A file `mysql_config_editor` 9.7.4 wrote: `set --login-path=bk
    /// --host=127.0.0.1 --port=3999 --user=xb --password` (sekret;
    /// `my_print_defaults -s bk` reads the same four values).
    const MYLOGIN: &str = "0000000008100f070e140a1d1d07180e17140e1d12061e0a10000000a1b9f3467e30f65ae25aa2a48f30856910000000189748f56f0b03c02b17ec4b68e9824c20000000f945bdc680c12b030e6124418b465bf1720a2346dec3f67f1568254fe8b3750620000000d4c2c80181797c9e1e945e6a6d910bbfac8e436d60300b54f4512eb746e37b07100000005ecffa97952ecc882a275348e180343c";

    #[test]
    fn a_login_path_of_mysql_config_editor_reads_back() {
        let bytes: Vec<u8> = (0..MYLOGIN.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&MYLOGIN[i..i + 2], 16).unwrap())
            .collect();
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join(".mylogin.cnf");
        std::fs::write(&f, &bytes).unwrap();
        let o = read_login_path(&f, "bk").unwrap();
        assert_eq!(o.get("user").as_deref(), Some("xb"));
        assert_eq!(o.get("password").as_deref(), Some("sekret"));
        assert_eq!(o.get("host").as_deref(), Some("127.0.0.1"));
        assert_eq!(o.get("port").as_deref(), Some("3999"));
        assert!(matches!(
            read_login_path(&f, "other"),
            Err(OptionFileError::Malformed { .. })
        ));
        std::fs::write(&f, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(
            read_login_path(&f, "bk"),
            Err(OptionFileError::Malformed { .. })
        ));
        let base = Options(BTreeMap::from([
            ("user".into(), "a".into()),
            ("port".into(), "1".into()),
        ]));
        let top = Options(BTreeMap::from([("user".into(), "b".into())]));
        let both = base.overlay(top);
        assert_eq!(
            (both.get("user").as_deref(), both.get("port").as_deref()),
            (Some("b"), Some("1"))
        );
    }
}
