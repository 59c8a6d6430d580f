//! A small reader for MySQL option files (`--defaults-file`): the groups
//! xb cares about, `key = value` lines, `-`/`_` equivalence, quotes, comments
//! and `!include`. Later values win, as in the server's own reader.

use std::collections::BTreeMap;
use std::path::Path;

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
    base: &Path,
    groups: &[&str],
    out: &mut Options,
    depth: u32,
) -> anyhow::Result<()> {
    let mut active = false;
    for (no, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(inc) = line.strip_prefix("!include ") {
            anyhow::ensure!(depth < 10, "option files include each other too deeply");
            let p = base.join(inc.trim());
            let t = std::fs::read_to_string(&p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            parse_into(&t, p.parent().unwrap_or(base), groups, out, depth + 1)?;
            continue;
        }
        if line.starts_with("!includedir") {
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
        anyhow::ensure!(!k.is_empty(), "line {}: option without a name", no + 1);
        let k = k
            .strip_prefix("loose-")
            .or_else(|| k.strip_prefix("loose_"))
            .unwrap_or(k);
        out.0.insert(k.replace('-', "_"), v);
    }
    Ok(())
}

/// Reads `path`, keeping the options of `groups`.
///
/// # Errors
/// The file cannot be read, or a line is malformed.
pub fn read_groups(path: &Path, groups: &[&str]) -> anyhow::Result<Options> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read option file {}: {e}", path.display()))?;
    let mut out = Options::default();
    parse_into(
        &text,
        path.parent().unwrap_or(Path::new(".")),
        groups,
        &mut out,
        0,
    )?;
    Ok(out)
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
        assert!(read_groups(&d.path().join("missing"), &["client"]).is_err());
    }
}
