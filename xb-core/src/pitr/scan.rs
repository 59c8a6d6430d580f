//! Transaction boundaries in a binlog archive: the positions a restore may
//! stop at, each with its time and GTID, read one event at a time.
//!
//! A boundary is where a transaction ends: an `XID` event, a `COMMIT` or
//! `ROLLBACK` query after a `BEGIN`, a statement outside any `BEGIN` (DDL,
//! or a MariaDB standalone event), or a MySQL compressed transaction
//! payload. Stopping anywhere else would leave a transaction half applied.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::binlog::format::{self, Header};

use super::point::Gtid;

/// `QUERY_EVENT`.
const QUERY: u8 = 2;
/// MySQL's `TRANSACTION_PAYLOAD_EVENT`: a whole compressed transaction.
const PAYLOAD: u8 = 40;

/// The end of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    /// The binlog file.
    pub file: String,
    /// The offset just past the transaction's last event.
    pub end: u64,
    /// The timestamp of that event (seconds since the epoch).
    pub time: u32,
    /// The transaction's GTID, where the server gave it one.
    pub gtid: Option<Gtid>,
}

/// Why a file could not be read.
#[derive(Debug)]
pub struct ScanError {
    /// The file.
    pub file: String,
    /// What went wrong.
    pub reason: String,
}

/// Calls `f` with each boundary of `file` (in the archive `dir`) from
/// offset `from` on, until `f` returns false. Returns whether `f` asked to
/// stop.
///
/// # Errors
/// [`ScanError`] when the file cannot be read or is not a binlog file.
pub fn boundaries(
    dir: &Path,
    file: &str,
    from: u64,
    f: &mut dyn FnMut(&Boundary) -> bool,
) -> Result<bool, ScanError> {
    let err = |reason: String| ScanError {
        file: file.to_string(),
        reason,
    };
    let mut r = BufReader::with_capacity(
        1 << 20,
        File::open(dir.join(file)).map_err(|e| err(e.to_string()))?,
    );
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).map_err(|e| err(e.to_string()))?;
    if magic != format::MAGIC {
        return Err(err("no binlog magic".into()));
    }
    let mut at = 4u64;
    let mut checksummed = false;
    let mut in_txn = false;
    let mut gtid: Option<Gtid> = None;
    let mut event = Vec::new();
    loop {
        let mut head = [0u8; format::HEADER_LEN];
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(err(e.to_string())),
        }
        let Some(h) = Header::parse(&head) else {
            return Ok(false);
        };
        let size = u64::from(h.size);
        if size < format::HEADER_LEN as u64 {
            return Err(err(format!("an event at {at} claims {size} bytes")));
        }
        event.clear();
        event.extend_from_slice(&head);
        let body = usize::try_from(size).map_err(|e| err(e.to_string()))? - format::HEADER_LEN;
        event.resize(format::HEADER_LEN + body, 0);
        match r.read_exact(&mut event[format::HEADER_LEN..]) {
            Ok(()) => {}
            // a partial last event (the archiver was stopped mid-write)
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(err(e.to_string())),
        }
        at += size;
        if at <= from {
            if h.kind == format::FORMAT_DESCRIPTION {
                checksummed = format::fde_checksummed(&event);
            }
            continue;
        }
        let payload_end = event.len() - if checksummed { format::CHECKSUM_LEN } else { 0 };
        let body = event.get(format::HEADER_LEN..payload_end).unwrap_or(&[]);
        let ends = match h.kind {
            format::FORMAT_DESCRIPTION => {
                checksummed = format::fde_checksummed(&event);
                false
            }
            format::MYSQL_GTID => {
                gtid = mysql_gtid(body);
                false
            }
            format::MARIADB_GTID => {
                gtid = mariadb_gtid(body, h.server_id);
                // FL_STANDALONE: one event, no BEGIN/COMMIT around it
                in_txn = body.get(12).is_none_or(|f| f & 1 == 0);
                false
            }
            format::XID | PAYLOAD => true,
            QUERY => match query_text(body).as_deref() {
                Some("BEGIN") => {
                    in_txn = true;
                    false
                }
                Some("COMMIT" | "ROLLBACK") => true,
                _ => !in_txn,
            },
            _ => false,
        };
        if ends {
            in_txn = false;
            let b = Boundary {
                file: file.to_string(),
                end: at,
                time: h.timestamp,
                gtid: gtid.take(),
            };
            if !f(&b) {
                return Ok(true);
            }
        }
    }
}

/// MySQL `GTID_LOG_EVENT` body: flags (1), sid (16), gno (8).
fn mysql_gtid(body: &[u8]) -> Option<Gtid> {
    let sid: [u8; 16] = body.get(1..17)?.try_into().ok()?;
    let gno = u64::from_le_bytes(body.get(17..25)?.try_into().ok()?);
    Some(Gtid::MySql { sid, gno })
}

/// MariaDB `GTID_EVENT` body: sequence (8), domain (4), flags (1), ...;
/// the server id is the event header's.
fn mariadb_gtid(body: &[u8], server: u32) -> Option<Gtid> {
    let seq = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    Some(Gtid::MariaDb {
        domain,
        server,
        seq,
    })
}

/// The statement of a `QUERY_EVENT` body: thread id (4), exec time (4),
/// schema length (1), error code (2), status length (2), status, schema,
/// NUL, statement.
fn query_text(body: &[u8]) -> Option<String> {
    let schema_len = usize::from(*body.get(8)?);
    let status_len = usize::from(u16::from_le_bytes(body.get(11..13)?.try_into().ok()?));
    let start = 13 + status_len + schema_len + 1;
    Some(
        String::from_utf8_lossy(body.get(start..)?)
            .trim()
            .to_ascii_uppercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_body(text: &str) -> Vec<u8> {
        let mut b = vec![0u8; 13];
        b[8] = 1; // schema "d"
        b[11] = 2; // two bytes of status
        b.extend([9, 9]);
        b.extend(b"d\0");
        b.extend(text.as_bytes());
        b
    }

    #[test]
    fn query_events_give_their_statement() {
        assert_eq!(query_text(&query_body("BEGIN")).as_deref(), Some("BEGIN"));
        assert_eq!(query_text(&query_body("commit")).as_deref(), Some("COMMIT"));
        assert_eq!(query_text(&[0; 5]), None);
    }

    #[test]
    fn gtids_read_from_their_events() {
        let mut b = vec![1u8];
        b.extend([0xab; 16]);
        b.extend(7u64.to_le_bytes());
        assert_eq!(
            mysql_gtid(&b),
            Some(Gtid::MySql {
                sid: [0xab; 16],
                gno: 7
            })
        );
        let mut m = 42u64.to_le_bytes().to_vec();
        m.extend(3u32.to_le_bytes());
        m.push(0);
        assert_eq!(
            mariadb_gtid(&m, 9),
            Some(Gtid::MariaDb {
                domain: 3,
                server: 9,
                seq: 42
            })
        );
    }
}
