//! The metadata files a backup leaves beside the data, in exactly the shape
//! mariadb-backup 10.11 writes them, so its `--prepare` and the DBA's
//! scripts read ours as they read its own.

use super::seams::Target;
use super::server::ServerFacts;
use crate::error::BackupError;

/// Writes a small metadata file into the backup.
///
/// # Errors
/// [`BackupError::Target`].
pub fn write(target: &dyn Target, rel: &str, text: &str) -> Result<(), BackupError> {
    let mut f = target
        .create(rel, text.len() as u64)
        .map_err(BackupError::Target)?;
    f.write(text.as_bytes()).map_err(BackupError::Target)?;
    f.close().map_err(BackupError::Target)
}

/// `%Y-%m-%d %H:%M:%S` in UTC, now.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc(i64::try_from(secs).unwrap_or(0))
}

/// `%Y-%m-%d %H:%M:%S` in UTC of a Unix time (the civil-from-days conversion).
#[must_use]
pub fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A backup id in the shape of a UUID (time and process id; unique enough
/// to tell two backups apart in `xtrabackup_info`).
#[must_use]
pub fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let pid = u128::from(std::process::id());
    let v = nanos ^ (pid << 64);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Facts recorded in `xtrabackup_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoFacts {
    /// Backup id.
    pub uuid: String,
    /// The `--history` series name (empty without one).
    pub name: String,
    /// Command line, with secrets masked.
    pub tool_command: String,
    /// `SELECT VERSION()`.
    pub server_version: String,
    /// Local time the backup started, `%Y-%m-%d %H:%M:%S`.
    pub start_time: String,
    /// Local time it ended.
    pub end_time: String,
    /// Seconds the commit lock was held.
    pub lock_time: u64,
    /// Binlog file, position, GTID.
    pub binlog: Option<(String, u64, String)>,
    /// `to_lsn`.
    pub to_lsn: u64,
    /// An incremental backup's base LSN (`innodb_from_lsn`,
    /// `incremental = Y`).
    pub from_lsn: Option<u64>,
    /// `file` or `mbstream`.
    pub format: &'static str,
    /// Some databases or tables were left out.
    pub partial: bool,
    /// Data files are compressed.
    pub compressed: bool,
    /// Data files are encrypted.
    pub encrypted: bool,
    /// Percona XtraBackup 8.x's shape (adds `encrypted`), not mariadb-backup's.
    pub mysql: bool,
    /// `key = value` lines appended at the end (the TokuDB files included).
    pub extra: String,
}

impl InfoFacts {
    /// `binlog_pos` as the vendor tools write it (in `xtrabackup_info` and
    /// the history table); `None` without a binlog.
    #[must_use]
    pub fn binlog_pos(&self) -> Option<String> {
        self.binlog.as_ref().map(|(file, pos, gtid)| {
            format!("filename '{file}', position '{pos}', GTID of the last change '{gtid}'")
        })
    }

    /// The tool's version as `tool_version` and `ibbackup_version` give it.
    #[must_use]
    pub fn tool_version() -> String {
        format!("xb {}", env!("CARGO_PKG_VERSION"))
    }
}

/// `xtrabackup_info`.
#[must_use]
pub fn xtrabackup_info(f: &InfoFacts) -> String {
    let binlog_pos = f.binlog_pos().unwrap_or_default();
    let version = InfoFacts::tool_version();
    [
        ("uuid", f.uuid.clone()),
        ("name", f.name.clone()),
        ("tool_name", "xb-cli".into()),
        ("tool_command", f.tool_command.clone()),
        ("tool_version", version.clone()),
        ("ibbackup_version", version),
        ("server_version", f.server_version.clone()),
        ("start_time", f.start_time.clone()),
        ("end_time", f.end_time.clone()),
        ("lock_time", f.lock_time.to_string()),
        ("binlog_pos", binlog_pos),
        ("innodb_from_lsn", f.from_lsn.unwrap_or(0).to_string()),
        ("innodb_to_lsn", f.to_lsn.to_string()),
        ("partial", if f.partial { "Y" } else { "N" }.into()),
        (
            "incremental",
            if f.from_lsn.is_some() { "Y" } else { "N" }.into(),
        ),
        ("format", f.format.into()),
        (
            "compressed",
            if f.compressed { "compressed" } else { "N" }.into(),
        ),
    ]
    .into_iter()
    .chain(
        f.mysql
            .then(|| ("encrypted", if f.encrypted { "Y" } else { "N" }.into())),
    )
    .collect::<Vec<(&str, String)>>()
    .iter()
    .map(|(k, v)| format!("{k} = {v}\n"))
    .chain(std::iter::once(f.extra.clone()))
    .collect()
}

/// `xtrabackup_binlog_info`: `file<TAB>position<TAB>gtid`.
#[must_use]
pub fn binlog_info(file: &str, pos: u64, gtid: &str) -> String {
    format!("{file}\t{pos}\t{gtid}\n")
}

/// `backup-my.cnf`: the InnoDB layout prepare must start with.
#[must_use]
pub fn backup_my_cnf(s: &ServerFacts) -> String {
    if !s.mariadb {
        // Percona XtraBackup 8.x's keys that a MySQL 8.0.30+ server still has
        return format!(
            "# This options file was generated by xb.\n\n# The server\n[mysqld]\n\
             innodb_checksum_algorithm={}\ninnodb_data_file_path={}\ninnodb_page_size={}\n\
             innodb_undo_directory=./\n",
            s.checksum_algorithm, s.data_file_path, s.page_size,
        );
    }
    format!(
        "# This options file was generated by xb.\n\n# The server\n[mysqld]\n\
         innodb_checksum_algorithm={}\ninnodb_data_file_path={}\ninnodb_log_file_size={}\n\
         innodb_page_size={}\ninnodb_undo_directory=./\ninnodb_undo_tablespaces={}\n\
         innodb_compression_level={}\n",
        s.checksum_algorithm,
        s.data_file_path,
        s.log_file_size,
        s.page_size,
        s.undo_tablespaces,
        s.compression_level,
    )
}

/// Masks the values of secret options in a command line.
#[must_use]
pub fn mask_secrets(args: &[String]) -> String {
    let mut out = Vec::with_capacity(args.len());
    let mut mask_next = false;
    for a in args {
        if mask_next {
            out.push("...".to_string());
            mask_next = false;
            continue;
        }
        let secret = ["--password", "--encrypt-key", "-p"];
        match secret.iter().find(|s| a.starts_with(&format!("{s}="))) {
            Some(s) => out.push(format!("{s}=...")),
            None if a == "--password" || a == "--encrypt-key" => {
                out.push(a.clone());
                mask_next = true;
            }
            None if a.starts_with("-p") && a.len() > 2 => out.push("-p...".into()),
            None => out.push(a.clone()),
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_has_mariadb_backup_key_order() {
        let text = xtrabackup_info(&InfoFacts {
            name: String::new(),
            uuid: "u".into(),
            tool_command: "backup".into(),
            server_version: "10.11.18-MariaDB".into(),
            start_time: "2026-11-25 03:11:27".into(),
            end_time: "2026-11-25 03:11:28".into(),
            lock_time: 0,
            binlog: Some(("binlog.000001".into(), 780, "0-1-5".into())),
            to_lsn: 44760,
            from_lsn: None,
            format: "file",
            partial: false,
            compressed: false,
            encrypted: false,
            mysql: false,
            extra: String::new(),
        });
        let keys: Vec<&str> = text
            .lines()
            .map(|l| l.split(" = ").next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "uuid",
                "name",
                "tool_name",
                "tool_command",
                "tool_version",
                "ibbackup_version",
                "server_version",
                "start_time",
                "end_time",
                "lock_time",
                "binlog_pos",
                "innodb_from_lsn",
                "innodb_to_lsn",
                "partial",
                "incremental",
                "format",
                "compressed"
            ]
        );
        assert!(text.contains(
            "binlog_pos = filename 'binlog.000001', position '780', GTID of the last change '0-1-5'\n"
        ));
        assert!(text.contains("name = \n"));
        assert!(text.contains("innodb_from_lsn = 0\n") && text.contains("incremental = N\n"));
    }

    #[test]
    fn an_incremental_says_so_with_its_base() {
        let text = xtrabackup_info(&InfoFacts {
            name: String::new(),
            uuid: "u".into(),
            tool_command: "backup".into(),
            server_version: "9.7.0".into(),
            start_time: String::new(),
            end_time: String::new(),
            lock_time: 0,
            binlog: None,
            to_lsn: 900,
            from_lsn: Some(700),
            format: "xbstream",
            partial: false,
            compressed: false,
            encrypted: false,
            mysql: true,
            extra: String::new(),
        });
        assert!(text.contains("innodb_from_lsn = 700\n"), "{text}");
        assert!(text.contains("incremental = Y\n"), "{text}");
    }

    #[test]
    fn secrets_are_masked() {
        let args: Vec<String> = [
            "backup",
            "--password=s3cret",
            "--user",
            "xb",
            "--password",
            "x",
            "-pabc",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        let m = mask_secrets(&args);
        assert_eq!(m, "backup --password=... --user xb --password ... -p...");
        assert!(!m.contains("s3cret"));
    }
}
