//! The binary log's on-disk format, as far as an archive needs it: the
//! file's magic, each event's common header, the checksum, and the few
//! events that say where the stream is (rotate, format description). Pure:
//! bytes in, facts out; no I/O.
//!
//! Layout (MySQL and MariaDB alike, binlog version 4): a file is the magic
//! `\xfebin` then events back to back. Every event starts with a 19-byte
//! header: timestamp (4), type (1), server id (4), event size (4, the
//! whole event), `log_pos` (4, the file offset just past this event) and
//! flags (2). With `binlog_checksum=CRC32` every event ends with the
//! CRC-32 of all its other bytes. `log_pos` is what lets an archive prove
//! it holds a file without a gap: each event must end exactly where the
//! file had grown to plus its size.

/// The first four bytes of every binlog file.
pub const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
/// Bytes of the common event header.
pub const HEADER_LEN: usize = 19;
/// Bytes of a CRC-32 event checksum.
pub const CHECKSUM_LEN: usize = 4;

/// `ROTATE_EVENT`: names the next file (real, at a file's end) or the file
/// the stream is in (artificial, at the start of a dump).
pub const ROTATE: u8 = 4;
/// `STOP_EVENT`: the server shut down; the next file follows its restart.
pub const STOP: u8 = 3;
/// `FORMAT_DESCRIPTION_EVENT`: the first event of every file.
pub const FORMAT_DESCRIPTION: u8 = 15;
/// `XID_EVENT`: an InnoDB transaction's commit.
pub const XID: u8 = 16;
/// `HEARTBEAT_LOG_EVENT`: sent by the dump thread while idle, never in a file.
pub const HEARTBEAT: u8 = 27;
/// MySQL's `HEARTBEAT_LOG_EVENT_V2`.
pub const HEARTBEAT_V2: u8 = 41;
/// MySQL's `GTID_LOG_EVENT`.
pub const MYSQL_GTID: u8 = 33;
/// MariaDB's `GTID_EVENT`.
pub const MARIADB_GTID: u8 = 162;

/// `LOG_EVENT_ARTIFICIAL_F`: made up by the dump thread, not in the file.
pub const ARTIFICIAL: u16 = 0x20;

/// The common header of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Seconds since the epoch when the statement began.
    pub timestamp: u32,
    /// Event type.
    pub kind: u8,
    /// The server that wrote it first.
    pub server_id: u32,
    /// Bytes of the whole event, header and checksum included.
    pub size: u32,
    /// File offset just past the event; 0 for some made-up events.
    pub log_pos: u32,
    /// Flags.
    pub flags: u16,
}

impl Header {
    /// Reads the header at the start of `b`; `None` when `b` is shorter
    /// than a header.
    #[must_use]
    pub fn parse(b: &[u8]) -> Option<Header> {
        let h = b.get(..HEADER_LEN)?;
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Some(Header {
            timestamp: u32_at(0),
            kind: h[4],
            server_id: u32_at(5),
            size: u32_at(9),
            log_pos: u32_at(13),
            flags: u16::from_le_bytes([h[17], h[18]]),
        })
    }

    /// An event the dump thread made up for the replica's sake: the
    /// rotate naming the file at the start of a dump, the format
    /// description re-sent when a dump starts mid-file, heartbeats. None
    /// of these is in the server's file, so none goes into the archive.
    #[must_use]
    pub fn is_made_up(&self) -> bool {
        self.flags & ARTIFICIAL != 0
            || self.log_pos == 0
            || self.kind == HEARTBEAT
            || self.kind == HEARTBEAT_V2
    }
}

/// The next file a rotate event names, and the position in it.
#[must_use]
pub fn rotate_target(event: &[u8], checksummed: bool) -> Option<(u64, String)> {
    let end = event
        .len()
        .checked_sub(if checksummed { CHECKSUM_LEN } else { 0 })?;
    let body = event.get(HEADER_LEN..end)?;
    let pos = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let name = String::from_utf8(body.get(8..)?.to_vec()).ok()?;
    Some((pos, name))
}

/// Does a format description event say that events carry a CRC-32? The
/// algorithm is the byte before the event's own checksum (0 off, 1
/// CRC-32). Every server xb archives (MySQL 5.6+, MariaDB 10.2+) writes
/// that byte; a format description event always has the checksum.
#[must_use]
pub fn fde_checksummed(event: &[u8]) -> bool {
    event
        .len()
        .checked_sub(CHECKSUM_LEN + 1)
        .and_then(|i| event.get(i))
        .is_some_and(|alg| *alg == 1)
}

/// Is the CRC-32 at the end of `event` the one of its other bytes?
#[must_use]
pub fn checksum_ok(event: &[u8]) -> bool {
    let Some(split) = event.len().checked_sub(CHECKSUM_LEN) else {
        return false;
    };
    let (body, sum) = event.split_at(split);
    let stored = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
    crc32fast::hash(body) == stored
}

/// The number of a binlog file name (`binlog.000012` → 12), which orders
/// the files of one server.
#[must_use]
pub fn file_number(name: &str) -> Option<u64> {
    name.rsplit_once('.').and_then(|(_, n)| n.parse().ok())
}

/// What the whole events at the start of a binlog file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeEvents {
    /// Where the last whole event ends (4 with none): an archive cut off
    /// mid-event (a kill, a full disk) resumes from there.
    pub end: u64,
    /// The last whole event's type.
    pub last_kind: Option<u8>,
    /// The first format description event's timestamp.
    pub fde_time: Option<u32>,
}

/// Walks the event headers of a binlog file of `len` bytes, skipping the
/// bodies (memory stays one header, however large the file), up to the
/// first event that is cut off or whose `log_pos` disagrees with where it
/// ends. `None` for a file without the binlog magic.
///
/// # Errors
/// The reads or seeks failed.
pub fn whole_events<R: std::io::Read + std::io::Seek>(
    r: &mut std::io::BufReader<R>,
    len: u64,
) -> std::io::Result<Option<WholeEvents>> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    if len < 4 {
        return Ok(None);
    }
    r.read_exact(&mut magic)?;
    if magic != MAGIC {
        return Ok(None);
    }
    let mut w = WholeEvents {
        end: 4,
        last_kind: None,
        fde_time: None,
    };
    let mut head = [0u8; HEADER_LEN];
    while w.end + HEADER_LEN as u64 <= len {
        r.read_exact(&mut head)?;
        let Some(h) = Header::parse(&head) else { break };
        let size = u64::from(h.size);
        if size < HEADER_LEN as u64 || w.end + size > len || u64::from(h.log_pos) != w.end + size {
            break;
        }
        if h.kind == FORMAT_DESCRIPTION && w.fde_time.is_none() {
            w.fde_time = Some(h.timestamp);
        }
        w.last_kind = Some(h.kind);
        w.end += size;
        let body = i64::try_from(size).unwrap_or(i64::MAX) - HEADER_LEN as i64;
        r.seek_relative(body)?;
    }
    Ok(Some(w))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event of `kind` ending at `end`, body `body`, with a CRC-32.
    pub(crate) fn event(kind: u8, end: u32, flags: u16, body: &[u8]) -> Vec<u8> {
        let size = (HEADER_LEN + body.len() + CHECKSUM_LEN) as u32;
        let mut e = Vec::new();
        e.extend(1_700_000_000u32.to_le_bytes());
        e.push(kind);
        e.extend(7u32.to_le_bytes());
        e.extend(size.to_le_bytes());
        e.extend(end.to_le_bytes());
        e.extend(flags.to_le_bytes());
        e.extend(body);
        let sum = crc32fast::hash(&e);
        e.extend(sum.to_le_bytes());
        e
    }

    #[test]
    fn a_header_reads_back_its_fields() {
        let e = event(XID, 123, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let h = Header::parse(&e).unwrap();
        assert_eq!(
            (h.timestamp, h.kind, h.server_id, h.size, h.log_pos, h.flags),
            (1_700_000_000, XID, 7, 31, 123, 0)
        );
        assert!(!h.is_made_up());
        assert!(checksum_ok(&e));
        let mut bad = e.clone();
        bad[20] ^= 1;
        assert!(!checksum_ok(&bad));
        assert_eq!(Header::parse(&e[..18]), None);
    }

    #[test]
    fn made_up_events_are_told_apart() {
        let fake_rotate = event(ROTATE, 0, ARTIFICIAL, b"");
        assert!(Header::parse(&fake_rotate).unwrap().is_made_up());
        let resent_fde = event(FORMAT_DESCRIPTION, 0, 0, b"");
        assert!(Header::parse(&resent_fde).unwrap().is_made_up());
        let beat = event(HEARTBEAT, 500, 0, b"");
        assert!(Header::parse(&beat).unwrap().is_made_up());
    }

    #[test]
    fn the_format_description_says_whether_events_are_checksummed() {
        let with = event(FORMAT_DESCRIPTION, 124, 0, &[0, 0, 0, 1]);
        assert!(fde_checksummed(&with));
        let without = event(FORMAT_DESCRIPTION, 124, 0, &[0, 0, 0, 0]);
        assert!(!fde_checksummed(&without));
    }

    #[test]
    fn a_rotate_names_the_next_file() {
        let mut body = 4u64.to_le_bytes().to_vec();
        body.extend(b"binlog.000008");
        let e = event(ROTATE, 900, 0, &body);
        assert_eq!(rotate_target(&e, true), Some((4, "binlog.000008".into())));
    }

    #[test]
    fn a_cut_off_file_resumes_after_its_last_whole_event() {
        let walk = |bytes: &[u8]| {
            let mut r = std::io::BufReader::new(std::io::Cursor::new(bytes.to_vec()));
            whole_events(&mut r, bytes.len() as u64).unwrap()
        };
        let mut f = MAGIC.to_vec();
        let a = event(FORMAT_DESCRIPTION, 4 + 27, 0, &[0, 0, 0, 1]);
        f.extend(&a);
        let b = event(XID, (f.len() + 31) as u32, 0, &[0; 8]);
        f.extend(&b);
        let whole = f.len() as u64;
        let w = walk(&f).unwrap();
        assert_eq!(w.end, whole);
        assert_eq!(w.last_kind, Some(XID));
        assert_eq!(w.fde_time, Some(1_700_000_000));
        // half an event more: still the end of the second
        let c = event(XID, (f.len() + 31) as u32, 0, &[0; 8]);
        f.extend(&c[..10]);
        assert_eq!(walk(&f).unwrap().end, whole);
        // an event whose log_pos disagrees with where it ends is not whole
        let mut g = MAGIC.to_vec();
        g.extend(event(XID, 999, 0, &[0; 4]));
        assert_eq!(
            walk(&g),
            Some(WholeEvents {
                end: 4,
                last_kind: None,
                fde_time: None
            })
        );
        assert_eq!(walk(b"nope"), None);
    }
}
