//! `aria_log_control`: the Aria engine's control file. It names the last
//! checkpoint (where recovery starts) and the last log file number (where
//! the log handler looks for the end of the log).
//!
//! A backup copies it before the tables, so its checkpoint is older than
//! every copied page; but the server may open new log files after that,
//! and a server started on the backup reads no log file past the number
//! the control file names. The backup's control file therefore keeps the
//! checkpoint as read and names the newest log file copied, which is what
//! mariadb-backup's prepare does in memory before its Aria recovery.
//!
//! Layout: a create-time part (magic `fe fe 0c`, version, UUID, the sizes
//! of both parts and the block size, little-endian, then a CRC-32 of what
//! precedes it), then a changeable part at the offset the create-time
//! size gives: a CRC-32 of the rest of the part, the checkpoint LSN (3-byte
//! file number, 4-byte offset), the last log file number, and more.

/// The first three bytes of the file.
const MAGIC: [u8; 3] = [0xfe, 0xfe, 0x0c];
const CREATE_SIZE_AT: usize = 20;
const CHANGEABLE_SIZE_AT: usize = 22;
/// In the changeable part: its checksum, the checkpoint LSN, the last log.
const CHECKSUM_SIZE: usize = 4;
const LSN_AT: usize = 4;
const FILENO_AT: usize = 11;
const CHANGEABLE_MIN: usize = FILENO_AT + 4;

/// Why a control file is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Not an Aria control file, or cut short.
    #[error("not an Aria control file ({0})")]
    NotControl(&'static str),
    /// A checksum does not match (torn write, or damage).
    #[error("the Aria control file's {0} checksum does not match")]
    Checksum(&'static str),
}

/// An Aria control file, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    bytes: Vec<u8>,
    changeable: usize,
}

impl Control {
    /// Reads a control file's bytes, checking both checksums.
    ///
    /// # Errors
    /// [`ControlError`] for anything else.
    pub fn parse(bytes: &[u8]) -> Result<Control, ControlError> {
        if bytes.len() < CHANGEABLE_SIZE_AT + 2 || bytes[..3] != MAGIC {
            return Err(ControlError::NotControl("no magic"));
        }
        let create = usize::from(u16::from_le_bytes([
            bytes[CREATE_SIZE_AT],
            bytes[CREATE_SIZE_AT + 1],
        ]));
        let changeable = usize::from(u16::from_le_bytes([
            bytes[CHANGEABLE_SIZE_AT],
            bytes[CHANGEABLE_SIZE_AT + 1],
        ]));
        if create < CHANGEABLE_SIZE_AT + 2 + CHECKSUM_SIZE
            || changeable < CHANGEABLE_MIN
            || bytes.len() < create + changeable
        {
            return Err(ControlError::NotControl("sizes out of range"));
        }
        let c = Control {
            bytes: bytes[..create + changeable].to_vec(),
            changeable: create,
        };
        let stored = |at: usize| {
            u32::from_le_bytes([
                c.bytes[at],
                c.bytes[at + 1],
                c.bytes[at + 2],
                c.bytes[at + 3],
            ])
        };
        if stored(create - CHECKSUM_SIZE) != crc32fast::hash(&c.bytes[..create - CHECKSUM_SIZE]) {
            return Err(ControlError::Checksum("create-time"));
        }
        if stored(create) != crc32fast::hash(&c.bytes[create + CHECKSUM_SIZE..]) {
            return Err(ControlError::Checksum("changeable"));
        }
        Ok(c)
    }

    /// The last checkpoint: log file number and offset in it.
    #[must_use]
    pub fn checkpoint(&self) -> (u32, u32) {
        let at = self.changeable + LSN_AT;
        let b = &self.bytes;
        (
            u32::from_le_bytes([b[at], b[at + 1], b[at + 2], 0]),
            u32::from_le_bytes([b[at + 3], b[at + 4], b[at + 5], b[at + 6]]),
        )
    }

    /// The number of the last log file.
    #[must_use]
    pub fn last_log(&self) -> u32 {
        let at = self.changeable + FILENO_AT;
        let b = &self.bytes;
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// The file's bytes with the last log file raised to `last_log` (never
    /// lowered), its checksum made anew; everything else as read.
    #[must_use]
    pub fn with_last_log(&self, last_log: u32) -> Vec<u8> {
        let mut out = self.bytes.clone();
        let n = last_log.max(self.last_log());
        let at = self.changeable + FILENO_AT;
        out[at..at + 4].copy_from_slice(&n.to_le_bytes());
        let sum = crc32fast::hash(&out[self.changeable + CHECKSUM_SIZE..]);
        out[self.changeable..self.changeable + CHECKSUM_SIZE].copy_from_slice(&sum.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::tests::unhex;

    /// A MariaDB 10.11.18 server's control file, written while its Aria log
    /// was in file 1, checkpoint at offset 0x064c67.
    const CONTROL: &str = "\
fefe0c017e88f742eec111f1822902fc000000011e0016000020057c26c51ee9\
196901000067 4c060001000000e30000000000000000";

    fn control() -> Vec<u8> {
        unhex(&CONTROL.replace(' ', ""))
    }

    #[test]
    fn a_servers_control_file_reads_and_its_last_log_is_raised() {
        let c = Control::parse(&control()).unwrap();
        assert_eq!(c.checkpoint(), (1, 0x064c67));
        assert_eq!(c.last_log(), 1);
        let raised = c.with_last_log(10);
        let again = Control::parse(&raised).unwrap();
        assert_eq!(again.last_log(), 10);
        assert_eq!(again.checkpoint(), (1, 0x064c67));
        // only the log number and the changeable checksum differ
        let diff: Vec<usize> = (0..raised.len())
            .filter(|&i| raised[i] != control()[i])
            .collect();
        assert!(
            diff.iter().all(|&i| (30..34).contains(&i) || i == 41),
            "{diff:?}"
        );
        // never lowered
        assert_eq!(
            Control::parse(&again.with_last_log(3)).unwrap().last_log(),
            10
        );
    }

    #[test]
    fn damaged_or_foreign_files_are_refused() {
        let mut b = control();
        b[45] ^= 1;
        assert_eq!(
            Control::parse(&b),
            Err(ControlError::Checksum("changeable"))
        );
        let mut b = control();
        b[5] ^= 1;
        assert_eq!(
            Control::parse(&b),
            Err(ControlError::Checksum("create-time"))
        );
        assert!(matches!(
            Control::parse(&control()[..40]),
            Err(ControlError::NotControl(_))
        ));
        assert!(matches!(
            Control::parse(b"not a control file at all, no"),
            Err(ControlError::NotControl(_))
        ));
    }
}
