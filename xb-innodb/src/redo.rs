//! One API over every redo format: open the redo of a datadir, read its
//! latest checkpoint, map an LSN to a file and offset, and scan forward.
//!
//! | format | servers | module |
//! |---|---|---|
//! | classic 512-byte blocks in `ib_logfile0..N` | MySQL 5.7, 8.0.0–8.0.29; MariaDB 10.2–10.4 | [`crate::redo_classic`] |
//! | "PHYS", one `ib_logfile0` of blocks | MariaDB 10.5–10.7 | [`crate::redo105`] |
//! | "Phys", one `ib_logfile0` of mini-transactions | MariaDB 10.8+ | [`crate::redo108`] |
//! | `#innodb_redo/#ib_redoN` of blocks | MySQL 8.0.30+ | [`crate::redo8030`] |

use std::path::{Path, PathBuf};

use crate::be::be32;
use crate::redo_classic::{
    BlockChecksum, ClassicError, FORMAT_ENCRYPTED, LogClassic, ScannerClassic,
};
use crate::redo105::{FORMAT_10_5, Log105, Redo105Error, Scanner105};
use crate::redo108::{FORMAT_10_8, Log108, Redo108Error, Scanner108};
use crate::redo8030::{Log8030, Redo8030Error, Scanner8030};

/// Which redo format a log is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedoFormat {
    /// Classic multi-file blocks.
    Classic,
    /// MariaDB 10.5–10.7.
    MariaDb105,
    /// MariaDB 10.8+.
    MariaDb108,
    /// MySQL 8.0.30+.
    MySql8030,
}

/// Errors of any format.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RedoError {
    /// No redo log found where one was expected.
    #[error("{dir}: no redo log (neither #innodb_redo/ nor ib_logfile0)")]
    Missing {
        /// The directory searched.
        dir: PathBuf,
    },
    /// A format this crate does not read.
    #[error("{file}: unknown redo format {format:#010x} at offset 0")]
    Unknown {
        /// The file.
        file: PathBuf,
        /// The format id found.
        format: u32,
    },
    /// The log is encrypted (MySQL or Percona encryption information in the
    /// header, or a MariaDB format id with the encryption flag): refused,
    /// since its blocks cannot be read without the key.
    #[error("{file}: the redo log is encrypted ({marker}); encrypted redo cannot be read")]
    Encrypted {
        /// The file whose header says so.
        file: PathBuf,
        /// What says so.
        marker: String,
    },
    /// I/O reading the format id.
    #[error("{file}: {reason}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// Classic format error.
    #[error(transparent)]
    Classic(#[from] ClassicError),
    /// MariaDB 10.5 format error.
    #[error(transparent)]
    MariaDb105(#[from] Redo105Error),
    /// MariaDB 10.8+ format error.
    #[error(transparent)]
    MariaDb108(#[from] Redo108Error),
    /// MySQL 8.0.30+ format error.
    #[error(transparent)]
    MySql8030(#[from] Redo8030Error),
}

impl RedoError {
    /// True when the server overwrote log the reader still needed (the
    /// reader fell more than the log's capacity behind): the one failure a
    /// faster copy or a larger log would have avoided.
    #[must_use]
    pub fn is_overwritten(&self) -> bool {
        matches!(
            self,
            RedoError::Classic(ClassicError::Overwritten { .. })
                | RedoError::MariaDb105(Redo105Error::Overwritten { .. })
                | RedoError::MariaDb108(Redo108Error::Overwritten { .. })
                | RedoError::MySql8030(Redo8030Error::Overwritten { .. })
        )
    }
}

/// Reads from offset 0 until `buf` is full or the file ends; returns the
/// bytes read.
fn read_up_to(f: &std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match std::os::unix::fs::FileExt::read_at(f, &mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// An open redo log of any format.
#[derive(Debug)]
pub enum RedoLog {
    /// Classic multi-file blocks.
    Classic(LogClassic),
    /// MariaDB 10.5–10.7.
    MariaDb105(Log105),
    /// MariaDB 10.8+.
    MariaDb108(Log108),
    /// MySQL 8.0.30+.
    MySql8030(Log8030),
}

impl RedoLog {
    /// Opens the redo log in `dir` (the datadir, or `innodb_log_group_home_dir`),
    /// telling the format from what is there.
    ///
    /// # Errors
    /// No log, an encrypted log ([`RedoError::Encrypted`]), an unknown format
    /// (naming file and offset), or the format's own error.
    pub fn open(dir: &Path) -> Result<Self, RedoError> {
        let mysql = dir.join("#innodb_redo");
        if mysql.is_dir() {
            return match Log8030::open(&mysql) {
                Ok(log) => Ok(RedoLog::MySql8030(log)),
                Err(Redo8030Error::Encrypted { file, marker }) => {
                    Err(RedoError::Encrypted { file, marker })
                }
                Err(e) => Err(e.into()),
            };
        }
        let file = dir.join("ib_logfile0");
        if !file.exists() {
            return Err(RedoError::Missing {
                dir: dir.to_path_buf(),
            });
        }
        // the format id, and MariaDB 10.8's encryption word at offset 48 when
        // the file is that long (a short file still gets its format named)
        let mut head = [0u8; 52];
        let got = std::fs::File::open(&file)
            .and_then(|f| read_up_to(&f, &mut head))
            .map_err(|e| RedoError::Io {
                file: file.clone(),
                reason: e.to_string(),
            })?;
        if got < 4 {
            return Err(RedoError::Io {
                file: file.clone(),
                reason: format!("{got} bytes, shorter than a format id"),
            });
        }
        let format = be32(&head, 0);
        let mariadb = format & !FORMAT_ENCRYPTED;
        let encrypted = |marker: String| RedoError::Encrypted {
            file: file.clone(),
            marker,
        };
        if format & FORMAT_ENCRYPTED != 0
            && matches!(mariadb, FORMAT_10_5 | FORMAT_10_8 | 103 | 104)
        {
            return Err(encrypted(format!(
                "MariaDB format {format:#010x} at offset 0"
            )));
        }
        // MariaDB 10.8+ may keep the plain format id and mark encryption
        // by the key information right after the creator
        if format == FORMAT_10_8 && be32(&head, 48) != 0 {
            return Err(encrypted(
                "MariaDB encryption information at offset 48".into(),
            ));
        }
        match format {
            FORMAT_10_8 => Ok(RedoLog::MariaDb108(Log108::open(&file)?)),
            FORMAT_10_5 => Ok(RedoLog::MariaDb105(Log105::open(&file)?)),
            1..=5 | 103 | 104 => match LogClassic::open(dir, BlockChecksum::Any) {
                Ok(log) => Ok(RedoLog::Classic(log)),
                Err(ClassicError::Encrypted { file, marker }) => {
                    Err(RedoError::Encrypted { file, marker })
                }
                Err(e) => Err(e.into()),
            },
            format => Err(RedoError::Unknown { file, format }),
        }
    }

    /// The format.
    #[must_use]
    pub fn format(&self) -> RedoFormat {
        match self {
            RedoLog::Classic(_) => RedoFormat::Classic,
            RedoLog::MariaDb105(_) => RedoFormat::MariaDb105,
            RedoLog::MariaDb108(_) => RedoFormat::MariaDb108,
            RedoLog::MySql8030(_) => RedoFormat::MySql8030,
        }
    }

    /// LSN of the latest valid checkpoint, read from the files now.
    ///
    /// # Errors
    /// I/O, or no valid checkpoint.
    pub fn latest_checkpoint(&mut self) -> Result<u64, RedoError> {
        Ok(match self {
            RedoLog::Classic(l) => l.latest_checkpoint()?.lsn,
            RedoLog::MariaDb105(l) => l.latest_checkpoint()?.lsn,
            RedoLog::MariaDb108(l) => l.latest_checkpoint()?.lsn,
            RedoLog::MySql8030(l) => l.latest_checkpoint()?.lsn,
        })
    }

    /// File and offset holding `lsn`, or `None` when no file holds it (MySQL:
    /// recycled or not yet written).
    ///
    /// # Errors
    /// I/O reading the checkpoint (the classic format calibrates with it).
    pub fn locate(&mut self, lsn: u64) -> Result<Option<(PathBuf, u64)>, RedoError> {
        Ok(match self {
            RedoLog::Classic(l) => {
                let cp = l.latest_checkpoint()?;
                let loc = l.locate(&cp, lsn);
                Some((PathBuf::from(format!("ib_logfile{}", loc.file)), loc.offset))
            }
            RedoLog::MariaDb105(l) => Some((PathBuf::from("ib_logfile0"), l.offset_of(lsn))),
            RedoLog::MariaDb108(l) => Some((PathBuf::from("ib_logfile0"), l.offset_of(lsn))),
            RedoLog::MySql8030(l) => {
                l.refresh()?;
                l.file_of(lsn).map(|f| {
                    (
                        f.path.clone(),
                        crate::redo8030::HEADER_SIZE + (lsn - f.start_lsn),
                    )
                })
            }
        })
    }

    /// A scanner starting at `lsn` (a checkpoint LSN, or where a previous scan stopped).
    #[must_use]
    pub fn scanner(&self, lsn: u64) -> RedoScanner {
        match self {
            RedoLog::Classic(_) => RedoScanner::Classic(ScannerClassic::new(lsn)),
            RedoLog::MariaDb105(_) => RedoScanner::MariaDb105(Scanner105::new(lsn)),
            RedoLog::MariaDb108(_) => RedoScanner::MariaDb108(Scanner108::new(lsn)),
            RedoLog::MySql8030(_) => RedoScanner::MySql8030(Scanner8030::new(lsn)),
        }
    }
}

/// An incremental scan of any format.
#[derive(Debug)]
pub enum RedoScanner {
    /// Classic.
    Classic(ScannerClassic),
    /// MariaDB 10.5.
    MariaDb105(Scanner105),
    /// MariaDB 10.8+.
    MariaDb108(Scanner108),
    /// MySQL 8.0.30+.
    MySql8030(Scanner8030),
}

impl RedoScanner {
    /// Reads on from where the last call stopped; validated log goes to
    /// `out` in order. Returns the end of valid log seen.
    ///
    /// # Errors
    /// I/O, overwritten log, `out`'s error, or a scanner of another format
    /// than `log` (a caller's mistake, reported rather than ignored).
    pub fn poll(
        &mut self,
        log: &mut RedoLog,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, RedoError> {
        Ok(match (self, log) {
            (RedoScanner::Classic(s), RedoLog::Classic(l)) => s.poll(l, out)?,
            (RedoScanner::MariaDb105(s), RedoLog::MariaDb105(l)) => s.poll(l, out)?,
            (RedoScanner::MariaDb108(s), RedoLog::MariaDb108(l)) => s.poll(l, out)?,
            (RedoScanner::MySql8030(s), RedoLog::MySql8030(l)) => s.poll(l, out)?,
            (_, l) => {
                return Err(RedoError::Io {
                    file: PathBuf::from(format!("{:?} log", l.format())),
                    reason: "scanner of another format".into(),
                });
            }
        })
    }

    /// The server has written and flushed its log up to `lsn`: a format
    /// that holds back the end of the log while the server may still
    /// rewrite it (MariaDB 10.8+) may hand out everything up to there.
    pub fn trust_up_to(&mut self, lsn: u64) {
        if let RedoScanner::MariaDb108(s) = self {
            s.trust_up_to(lsn);
        }
    }

    /// The copy ends at `lsn` (the backup's consistent point): a format
    /// whose server keeps committing while the point is read (MySQL
    /// 8.0.30+) cuts its log there; see [`crate::redo8030::Scanner8030::stop_at`].
    /// MariaDB's point is read with commits blocked, so its log needs no cut.
    pub fn stop_at(&mut self, lsn: u64) {
        if let RedoScanner::MySql8030(s) = self {
            s.stop_at(lsn);
        }
    }

    /// Why the last poll ended where it did, in words for an error message
    /// about a copy that stopped advancing.
    #[must_use]
    pub fn stopped_because(&self) -> &'static str {
        use crate::be::BlockStop;
        use crate::redo_classic::StopClassic;
        use crate::redo108::Stop108;
        let block = |b: &BlockStop| match b {
            BlockStop::End => "the next block holds no newer log",
            BlockStop::Partial => "the last block is only partly written",
            BlockStop::BadChecksum { .. } => "the next block fails its checksum (torn or corrupt)",
        };
        match self {
            RedoScanner::Classic(s) => match s.stop {
                StopClassic::End => "the next block holds no newer log",
                StopClassic::BadChecksum(_) => {
                    "the next block fails its checksum (torn or corrupt)"
                }
            },
            RedoScanner::MariaDb105(s) => block(&s.stop),
            RedoScanner::MySql8030(s) => block(&s.stop),
            RedoScanner::MariaDb108(s) => match s.stop {
                Stop108::End => "the log ends there (nothing newer written)",
                Stop108::Incomplete => "the mini-transaction there is not completely written",
                Stop108::StaleLap => "the bytes there belong to the previous lap over the log",
                Stop108::BadChecksum => {
                    "the mini-transaction there fails its CRC-32C (torn or corrupt)"
                }
                Stop108::Corrupt => "a malformed record or an oversized mini-transaction",
            },
        }
    }

    /// At the end of a copy: the partly written last block (block formats).
    ///
    /// # Errors
    /// `out`'s error.
    pub fn tail(
        &mut self,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), RedoError> {
        match self {
            RedoScanner::Classic(s) => s.tail(out)?,
            RedoScanner::MariaDb105(s) => s.tail(out)?,
            RedoScanner::MariaDb108(_) => {}
            RedoScanner::MySql8030(s) => s.tail(out)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(dir: &Path) -> (PathBuf, String) {
        match RedoLog::open(dir) {
            Err(RedoError::Encrypted { file, marker }) => (file, marker),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn encrypted_logs_of_every_format_are_refused_as_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let log0 = dir.path().join("ib_logfile0");
        // MariaDB 10.2–10.7: the format id with bit 31
        for format in [104, FORMAT_10_5, FORMAT_10_8] {
            let mut h = vec![0u8; 4096];
            h[0..4].copy_from_slice(&(format | FORMAT_ENCRYPTED).to_be_bytes());
            std::fs::write(&log0, &h).unwrap();
            let (file, marker) = refused(dir.path());
            assert_eq!(file, log0);
            assert!(marker.contains("MariaDB format"), "{marker}");
        }
        // MariaDB 10.8+: the key information after the creator
        let mut h = vec![0u8; 4096];
        h[0..4].copy_from_slice(&FORMAT_10_8.to_be_bytes());
        h[48..52].copy_from_slice(&1u32.to_be_bytes());
        std::fs::write(&log0, &h).unwrap();
        assert!(refused(dir.path()).1.contains("offset 48"));
        // MySQL 8.0.30+: the encryption magic in a #ib_redoN header
        let redo = dir.path().join("#innodb_redo");
        std::fs::create_dir(&redo).unwrap();
        let mut h = vec![0u8; 4096];
        h[0..4].copy_from_slice(&crate::redo8030::FORMAT_8_0_30.to_be_bytes());
        h[1072..1075].copy_from_slice(b"lCC");
        std::fs::write(redo.join("#ib_redo7"), &h).unwrap();
        let (file, marker) = refused(dir.path());
        assert!(file.ends_with("#ib_redo7"), "{}", file.display());
        assert!(marker.contains("\"lCC\" at offset 1072"), "{marker}");
        let text = RedoLog::open(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains("#ib_redo7: the redo log is encrypted"),
            "{text}"
        );
    }
}
