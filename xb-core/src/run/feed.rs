//! The server's redo log, of any format, as a feed for the redo copier.

use xb_innodb::redo::{RedoError, RedoLog, RedoScanner};

use super::redo_copy::RedoFeed;

/// Zero padding after the copied log: the server reads zero blocks as the
/// end of the log, and some servers want a minimum or rounded file size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    /// Nothing after the log (MariaDB 10.8+: the file may end anywhere).
    None,
    /// At least one zero block; the file (header `header` bytes + log) at
    /// least `min` bytes and a multiple of `multiple`.
    Blocks {
        /// Size of the file header in front of the log.
        header: u64,
        /// Smallest file size.
        min: u64,
        /// The file size is a multiple of this.
        multiple: u64,
    },
}

/// A redo log being followed from a checkpoint.
pub struct Feed {
    log: RedoLog,
    scanner: RedoScanner,
    start: u64,
    written: u64,
    pad: Pad,
}

impl Feed {
    /// Follows `log` from `checkpoint`.
    #[must_use]
    pub fn new(log: RedoLog, checkpoint: u64, pad: Pad) -> Self {
        let scanner = log.scanner(checkpoint);
        Feed {
            log,
            scanner,
            start: checkpoint,
            written: 0,
            pad,
        }
    }
}

impl RedoFeed for Feed {
    fn start_lsn(&self) -> u64 {
        self.start
    }

    fn poll(&mut self, out: &mut dyn FnMut(&[u8]) -> Result<(), String>) -> Result<u64, RedoError> {
        let written = &mut self.written;
        self.scanner.poll(&mut self.log, &mut |b| {
            *written += b.len() as u64;
            out(b)
        })
    }

    fn tail(&mut self, out: &mut dyn FnMut(&[u8]) -> Result<(), String>) -> Result<(), RedoError> {
        let written = &mut self.written;
        self.scanner.tail(&mut |b| {
            *written += b.len() as u64;
            out(b)
        })
    }

    fn trust_up_to(&mut self, lsn: u64) {
        self.scanner.trust_up_to(lsn);
    }

    fn stop_at(&mut self, lsn: u64) {
        self.scanner.stop_at(lsn);
    }

    fn stopped_because(&self) -> &'static str {
        self.scanner.stopped_because()
    }

    fn trailer(&self) -> Vec<u8> {
        match self.pad {
            Pad::None => Vec::new(),
            Pad::Blocks {
                header,
                min,
                multiple,
            } => {
                let used = header + self.written + 512;
                let size = used.max(min).div_ceil(multiple.max(512)) * multiple.max(512);
                vec![0u8; usize::try_from(size - header - self.written).unwrap_or(512)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rounds_the_file_and_always_leaves_a_zero_block() {
        let d = tempfile::tempdir().unwrap();
        let cp = xb_innodb::redo108::Checkpoint108 {
            lsn: 12_288,
            end_lsn: 12_288,
            offset: 4096,
        };
        let mut v = xb_innodb::redo108::backup_log_header(cp, "t");
        v.resize(12_288 + 65_536, 0);
        std::fs::write(d.path().join("ib_logfile0"), v).unwrap();
        let log = RedoLog::open(d.path()).unwrap();
        let mut f = Feed::new(
            log,
            12_288,
            Pad::Blocks {
                header: 2048,
                min: 0,
                multiple: 1 << 20,
            },
        );
        f.written = 5000;
        assert_eq!(2048 + 5000 + f.trailer().len() as u64, 1 << 20);
        f.written = (1 << 20) - 2048 - 100;
        assert_eq!(
            2048 + f.written + f.trailer().len() as u64,
            2 << 20,
            "room for a zero block"
        );
        f.pad = Pad::None;
        assert!(f.trailer().is_empty());
    }
}
