//! The header at the start of an Aria index file (`.MAI`): a 24-byte file
//! header, the table's state, then its "base info" (fixed facts written
//! at CREATE). All integers in it are big-endian.
//!
//! Only what decides how the table can be copied is read: whether it was
//! born transactional, whether its pages carry checksums, its block size,
//! where the key pages start (`keystart`: the blocks before it are the
//! header, which has no page checksum), and the data file's record format.

/// The first four bytes of every Aria index file.
pub const MAGIC: [u8; 4] = [254, 254, 9, 3];

/// Bytes of the file header that precedes the state.
pub const FILE_HEADER: usize = 24;

/// Table option bit: pages carry a checksum (`PAGE_CHECKSUM=1`, the default).
const OPTION_PAGE_CHECKSUM: u16 = 2048;
/// Base-info extra option bit: the table is encrypted.
const EXTRA_OPTION_ENCRYPTED: u16 = 1;
/// `data_file_type` of `ROW_FORMAT=PAGE` tables, the only transactional kind.
const BLOCK_RECORD: u8 = 3;

/// Offsets inside the base info (after a 16-byte UUID and five 8-byte
/// sizes, six 4-byte lengths and ten 2-byte counts).
const BASE_KEYSTART: usize = 16;
const BASE_EXTRA_OPTIONS: usize = 90;
const BASE_BLOCK_SIZE: usize = 100;
const BASE_BORN_TRANSACTIONAL: usize = 106;
/// Bytes of base info that must be present to read the fields above.
const BASE_NEEDED: usize = BASE_BORN_TRANSACTIONAL + 1;

/// Bytes before the "used length" field of a key page: the page LSN and
/// transaction id on transactional tables, then key id and flag.
const LSN_STORE_SIZE: usize = 7;
const TRANSID_SIZE: usize = 6;
const KEYPAGE_KEYID_SIZE: usize = 1;
const KEYPAGE_FLAG_SIZE: usize = 1;
const KEYPAGE_USED_SIZE: usize = 2;

/// Bytes at the end of every checksummed page.
pub const CRC_SIZE: usize = 4;

/// Why an index file's header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer bytes than the header needs (a file being created, or not Aria).
    #[error("the Aria header is cut short: {have} of {need} bytes")]
    Short {
        /// Bytes given.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The file does not start with the Aria magic.
    #[error("not an Aria index file (magic {0:02x?})")]
    NotAria([u8; 4]),
    /// A field holds a value no server writes.
    #[error("the Aria header is not understood: {0}")]
    Invalid(&'static str),
}

/// What an index file says about how its table can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Created `TRANSACTIONAL=1`: its changes are in the Aria log.
    pub transactional: bool,
    /// Pages carry a CRC (`PAGE_CHECKSUM=1`).
    pub page_checksum: bool,
    /// Encrypted pages (`aria_encrypt_tables`): their CRC is over the
    /// decrypted page, which xb cannot read.
    pub encrypted: bool,
    /// `ROW_FORMAT=PAGE` (bitmap pages in the data file).
    pub block_record: bool,
    /// Block (page) size of both files.
    pub block_size: u32,
    /// Bytes of the index file before the first key page.
    pub keystart: u64,
    /// Bytes of a key page before (and including) its "used length" field.
    pub keypage_header: usize,
}

impl Capabilities {
    /// The header length to read first: the file header, which says how
    /// long the whole header is ([`Capabilities::header_len`]).
    pub const PROBE: usize = FILE_HEADER;

    /// How many bytes [`Capabilities::parse`] needs, from the first
    /// [`Capabilities::PROBE`] bytes of the file.
    ///
    /// # Errors
    /// [`HeaderError::Short`] or [`HeaderError::NotAria`].
    pub fn header_len(probe: &[u8]) -> Result<usize, HeaderError> {
        check_magic(probe)?;
        let header_length = usize::from(be16(probe, 6));
        let base_pos = usize::from(be16(probe, 12));
        Ok(header_length.max(base_pos + BASE_NEEDED))
    }

    /// Reads the capabilities from the start of an index file.
    ///
    /// # Errors
    /// [`HeaderError`] when `head` is not a whole Aria header.
    pub fn parse(head: &[u8]) -> Result<Capabilities, HeaderError> {
        let need = Self::header_len(head)?;
        if head.len() < need {
            return Err(HeaderError::Short {
                have: head.len(),
                need,
            });
        }
        let options = be16(head, 4);
        let base = usize::from(be16(head, 12));
        let block_size = u32::from(be16(head, base + BASE_BLOCK_SIZE));
        if block_size == 0 || !block_size.is_power_of_two() || block_size < 1024 {
            return Err(HeaderError::Invalid(
                "block size is not a power of two ≥ 1024",
            ));
        }
        let keystart = be64(head, base + BASE_KEYSTART);
        let transactional = head[base + BASE_BORN_TRANSACTIONAL] != 0;
        let keypage_header = if transactional {
            LSN_STORE_SIZE + TRANSID_SIZE
        } else {
            0
        } + KEYPAGE_KEYID_SIZE
            + KEYPAGE_FLAG_SIZE
            + KEYPAGE_USED_SIZE;
        Ok(Capabilities {
            transactional,
            page_checksum: options & OPTION_PAGE_CHECKSUM != 0,
            encrypted: be16(head, base + BASE_EXTRA_OPTIONS) & EXTRA_OPTION_ENCRYPTED != 0,
            block_record: head[22] == BLOCK_RECORD,
            block_size,
            keystart,
            keypage_header,
        })
    }

    /// Can the table be copied while the server writes it? Transactional
    /// (its changes are logged), page-checksummed (torn reads are seen),
    /// `ROW_FORMAT=PAGE`, and not encrypted (xb cannot check an encrypted
    /// page's checksum).
    #[must_use]
    pub fn online_backup_safe(&self) -> bool {
        self.transactional && self.page_checksum && self.block_record && !self.encrypted
    }

    /// Data-file pages one bitmap page covers, the bitmap included: every
    /// page whose number is a multiple of this is a bitmap page.
    #[must_use]
    pub fn bitmap_pages_covered(&self) -> u64 {
        // each 6 bytes of a bitmap describe 16 pages (3 bits each)
        (u64::from(self.block_size) - CRC_SIZE as u64) / 6 * 16 + 1
    }

    /// Index-file blocks that make up the header (no page checksum).
    #[must_use]
    pub fn header_blocks(&self) -> u64 {
        self.keystart / u64::from(self.block_size)
    }
}

/// Where the state, after the file header, keeps the LSNs that fence off
/// older log records: after `open_count` and `changed` (2 bytes each), the
/// table's create/rename LSN, then "state is of horizon", then the LSN
/// below which recovery skips every record for the table (7 bytes each).
const CREATE_RENAME_AT: usize = FILE_HEADER + 4;
const SKIP_REDO_AT: usize = CREATE_RENAME_AT + 14;
/// Bytes of the index header that [`RedoFences::read`] needs.
pub const FENCES_LEN: usize = SKIP_REDO_AT + 7;

/// The LSNs an Aria table's header sets when an operation makes its older
/// log records inapplicable: CREATE, RENAME, TRUNCATE (which empties the
/// files in place), REPAIR, OPTIMIZE, a bulk load into an empty table.
/// Ordinary writes leave them alone (they move only the horizon between
/// them), so a change between two reads means the table was rebuilt or
/// emptied in between, even where its files kept their inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedoFences {
    /// LSN of the table's creation or last rename.
    pub create_rename: [u8; 7],
    /// Records before this LSN are not applied to the table.
    pub skip_redo: [u8; 7],
}

impl RedoFences {
    /// Reads the fences from the start of an index file.
    ///
    /// # Errors
    /// [`HeaderError::Short`] or [`HeaderError::NotAria`].
    pub fn read(head: &[u8]) -> Result<RedoFences, HeaderError> {
        check_magic(head)?;
        if head.len() < FENCES_LEN {
            return Err(HeaderError::Short {
                have: head.len(),
                need: FENCES_LEN,
            });
        }
        let mut create_rename = [0u8; 7];
        create_rename.copy_from_slice(&head[CREATE_RENAME_AT..CREATE_RENAME_AT + 7]);
        let mut skip_redo = [0u8; 7];
        skip_redo.copy_from_slice(&head[SKIP_REDO_AT..SKIP_REDO_AT + 7]);
        Ok(RedoFences {
            create_rename,
            skip_redo,
        })
    }
}

fn check_magic(probe: &[u8]) -> Result<(), HeaderError> {
    if probe.len() < FILE_HEADER {
        return Err(HeaderError::Short {
            have: probe.len(),
            need: FILE_HEADER,
        });
    }
    let magic = [probe[0], probe[1], probe[2], probe[3]];
    if magic == MAGIC {
        Ok(())
    } else {
        Err(HeaderError::NotAria(magic))
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The first 384 bytes of `a.t.MAI` as MariaDB 10.11.18 wrote it for
    /// `CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(200),
    /// KEY(v)) ENGINE=Aria TRANSACTIONAL=1` (a server of this project's).
    pub(crate) const TRANSACTIONAL: &str = "\
fefe09030c02020c00d7008701070002000002000000030300000100010000c95f0600010000c95f0600010000c95f06\
00000000000000000000000000000000000000000000000000ffffffffffffffff000000000000000000000000000020\
000000000000002000000000000000000000000000000000000000000000000000000000000000000000000000000001\
000000000000000000ff00ffffffffffffffffffffffffffffffffffffffffffffffff00000000000000006b10d14200\
00000000000003000000006b10d142000000000000000000000000000000000000000000000000000000000000000000\
0000000000f03f00000000000000000000000000000000a94920e6eebf11f197c602fc00000001000000000000200000\
0000000000000000000000000000000000550000000000000000000000000000000000000000d2000000d60000000b00\
0000e3000000230003000100040001000200000001000100000008200005060201010000010000200000d80000000000";

    /// The same server's `a.nt.MAI`: `(id INT PRIMARY KEY) ENGINE=Aria TRANSACTIONAL=0`.
    const NOT_TRANSACTIONAL: &str = "\
fefe0903080001aa00d7008700ef00010000010000000303000000000000000000000000000000000000000000000000\
00000000000000000000000000000000000000000000000000ffffffffffffffff000000000000000000000000000020\
000000000000002000000000000000000000000000000000000000000000000000000000000000000000000000000000\
000000000000000000ff00ffffffffffffffffffffffffffffffff00000000000000006b10d134000000000000000100\
0000006b10d13400000000000000000000000000000000000000000000000000000000000000000000f03f00000000a9\
4920e6eebf11f197c602fc0000000100000000000020000000000000000000000000000000000000007f800000000000\
000000000000000000000000000005000000080000000a000000090000000f0001000100040000000000000001000100\
000008200005050100000000000000200000100000000000000000000000000000000000000001010001200000090009";

    pub(crate) fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_transactional_table_written_by_mariadb_is_online_backup_safe() {
        let head = unhex(TRANSACTIONAL);
        // the header is 524 bytes; the fields read end within the first 384
        assert_eq!(Capabilities::header_len(&head[..24]).unwrap(), 524);
        let cap = Capabilities::parse(&head[..384]).unwrap_err();
        assert_eq!(
            cap,
            HeaderError::Short {
                have: 384,
                need: 524
            }
        );
        let mut whole = head.clone();
        whole.resize(524, 0);
        let cap = Capabilities::parse(&whole).unwrap();
        assert_eq!(
            cap,
            Capabilities {
                transactional: true,
                page_checksum: true,
                encrypted: false,
                block_record: true,
                block_size: 8192,
                keystart: 8192,
                keypage_header: 17,
            }
        );
        assert!(cap.online_backup_safe());
        assert_eq!(cap.header_blocks(), 1);
        assert_eq!(cap.bitmap_pages_covered(), 21_825);
    }

    #[test]
    fn the_redo_fences_are_read_from_the_state() {
        let head = unhex(TRANSACTIONAL);
        let f = RedoFences::read(&head).unwrap();
        // file 1, offset 0x065fc9 (lsn_store: 3 bytes file, 4 bytes offset)
        assert_eq!(f.create_rename, [1, 0, 0, 0xc9, 0x5f, 0x06, 0]);
        assert_eq!(f.skip_redo, [1, 0, 0, 0xc9, 0x5f, 0x06, 0]);
        assert!(matches!(
            RedoFences::read(&head[..40]),
            Err(HeaderError::Short { .. })
        ));
    }

    #[test]
    fn a_non_transactional_table_is_not_online_backup_safe() {
        let mut head = unhex(NOT_TRANSACTIONAL);
        head.resize(Capabilities::header_len(&head).unwrap(), 0);
        let cap = Capabilities::parse(&head).unwrap();
        assert!(!cap.transactional);
        assert_eq!(cap.keypage_header, 4);
        assert!(!cap.online_backup_safe());
    }

    #[test]
    fn other_files_and_cut_headers_are_refused_by_name() {
        assert!(matches!(
            Capabilities::header_len(b"\xfe\xfe\x07\x01 not an aria file"),
            Err(HeaderError::Short { .. })
        ));
        assert_eq!(
            Capabilities::header_len(&[0u8; 24]),
            Err(HeaderError::NotAria([0; 4]))
        );
        let mut head = unhex(TRANSACTIONAL);
        head.resize(524, 0);
        // block size 0
        head[263 + BASE_BLOCK_SIZE] = 0;
        head[263 + BASE_BLOCK_SIZE + 1] = 0;
        assert!(matches!(
            Capabilities::parse(&head),
            Err(HeaderError::Invalid(_))
        ));
    }
}
