//! `xtrabackup_checkpoints`: the small text file that says what a backup is
//! (`backup_type`) and which LSNs it covers. Vendor tools read it, so it is
//! kept in their exact shape: one `key = value` line per key, fixed order.
//!
//! mariadb-backup 10.11 writes `backup_type`, `from_lsn`, `to_lsn`,
//! `last_lsn`, `recover_binlog_info`; Percona XtraBackup 8.x writes
//! `flushed_lsn` and more after `last_lsn`. Keys we do not model are kept in
//! place so a parse→render round trip changes nothing but what we set.

/// Parsed `xtrabackup_checkpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoints {
    /// `full-backuped`, `incremental`, `log-applied`, `full-prepared`.
    pub backup_type: String,
    /// Base LSN of an incremental backup; 0 for a full one.
    pub from_lsn: u64,
    /// Checkpoint LSN at the end of the backup (base of the next incremental).
    pub to_lsn: u64,
    /// End of the copied redo: the point in time the backup restores to.
    pub last_lsn: u64,
    /// Every line as `(key, value)` in file order, including the above.
    lines: Vec<(String, String)>,
}

impl Checkpoints {
    /// A full backup's checkpoints in mariadb-backup 10.11's key order.
    #[must_use]
    pub fn full_mariadb(to_lsn: u64, last_lsn: u64) -> Self {
        let lines = [
            ("backup_type", "full-backuped".to_string()),
            ("from_lsn", "0".into()),
            ("to_lsn", to_lsn.to_string()),
            ("last_lsn", last_lsn.to_string()),
            ("recover_binlog_info", "0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Checkpoints {
            backup_type: "full-backuped".into(),
            from_lsn: 0,
            to_lsn,
            last_lsn,
            lines,
        }
    }

    /// A full backup's checkpoints in Percona XtraBackup 8.x's key order.
    #[must_use]
    pub fn full_mysql(to_lsn: u64, last_lsn: u64) -> Self {
        let lines = [
            ("backup_type", "full-backuped".to_string()),
            ("from_lsn", "0".into()),
            ("to_lsn", to_lsn.to_string()),
            ("last_lsn", last_lsn.to_string()),
            ("flushed_lsn", "0".into()),
            ("redo_memory", "0".into()),
            ("redo_frames", "0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Checkpoints {
            backup_type: "full-backuped".into(),
            from_lsn: 0,
            to_lsn,
            last_lsn,
            lines,
        }
    }

    /// Parses the file's text.
    ///
    /// # Errors
    /// A sentence naming the bad line or the missing key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = Vec::new();
        for (no, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| {
                format!("line {}: expected `key = value`, found {line:?}", no + 1)
            })?;
            lines.push((k.trim().to_string(), v.trim().to_string()));
        }
        let get = |key: &str| {
            lines
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| format!("key {key} is missing"))
        };
        let num = |key: &str| -> Result<u64, String> {
            let v = get(key)?;
            v.parse()
                .map_err(|_| format!("{key} = {v:?} is not an unsigned number"))
        };
        Ok(Checkpoints {
            backup_type: get("backup_type")?.to_string(),
            from_lsn: num("from_lsn")?,
            to_lsn: num("to_lsn")?,
            last_lsn: num("last_lsn")?,
            lines: lines.clone(),
        })
    }

    /// The file's text, with the modelled fields updated in place.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.lines {
            let v = match k.as_str() {
                "backup_type" => self.backup_type.clone(),
                "from_lsn" => self.from_lsn.to_string(),
                "to_lsn" => self.to_lsn.to_string(),
                "last_lsn" => self.last_lsn.to_string(),
                _ => v.clone(),
            };
            out.push_str(&format!("{k} = {v}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MARIADB: &str = "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 1097839330\n\
                           last_lsn = 1111751376\nrecover_binlog_info = 0\n";

    #[test]
    fn mariadb_file_round_trips_byte_for_byte() {
        let cp = Checkpoints::parse(MARIADB).unwrap();
        assert_eq!(cp.to_lsn, 1_097_839_330);
        assert_eq!(cp.last_lsn, 1_111_751_376);
        assert_eq!(cp.render(), MARIADB);
        assert_eq!(
            Checkpoints::full_mariadb(1_097_839_330, 1_111_751_376).render(),
            MARIADB
        );
    }

    #[test]
    fn changing_the_type_keeps_order_and_unknown_keys() {
        let text = "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 5\nlast_lsn = 9\n\
                    flushed_lsn = 7\nredo_memory = 0\n";
        let mut cp = Checkpoints::parse(text).unwrap();
        cp.backup_type = "log-applied".into();
        assert_eq!(cp.render(), text.replace("full-backuped", "log-applied"));
    }

    #[test]
    fn missing_and_bad_keys_are_named() {
        assert_eq!(
            Checkpoints::parse("backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 1\n")
                .unwrap_err(),
            "key last_lsn is missing"
        );
        assert_eq!(
            Checkpoints::parse("backup_type = x\nfrom_lsn = 0\nto_lsn = -1\nlast_lsn = 2\n")
                .unwrap_err(),
            "to_lsn = \"-1\" is not an unsigned number"
        );
        assert!(
            Checkpoints::parse("garbage")
                .unwrap_err()
                .starts_with("line 1:")
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,400}") {
            let _ = Checkpoints::parse(&s);
        }
    }
}
