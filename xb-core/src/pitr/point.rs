//! The point a restore rolls forward to, as the user names it: a time, a
//! GTID, or a binlog position. Pure parsing.

use std::fmt;

/// Where to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// Every transaction committed at or before this second (UTC, seconds
    /// since the epoch; binlog timestamps have no finer grain).
    Time(u32),
    /// Up to and including this transaction.
    Gtid(Gtid),
    /// Up to the last transaction that ends at or before this position.
    Position {
        /// Binlog file name.
        file: String,
        /// Offset in it.
        pos: u64,
    },
}

/// One transaction's global id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gtid {
    /// MySQL: `uuid:number`.
    MySql {
        /// The source's `server_uuid`, as 16 bytes.
        sid: [u8; 16],
        /// The transaction number.
        gno: u64,
    },
    /// MariaDB: `domain-server-sequence`.
    MariaDb {
        /// Replication domain.
        domain: u32,
        /// The server that wrote it.
        server: u32,
        /// Sequence number.
        seq: u64,
    },
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::MySql { sid, gno } => {
                let h: String = sid.iter().map(|b| format!("{b:02x}")).collect();
                write!(
                    f,
                    "{}-{}-{}-{}-{}:{gno}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
            Gtid::MariaDb {
                domain,
                server,
                seq,
            } => write!(f, "{domain}-{server}-{seq}"),
        }
    }
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Until::Time(t) => write!(f, "{} UTC", format_time(*t)),
            Until::Gtid(g) => write!(f, "GTID {g}"),
            Until::Position { file, pos } => write!(f, "{file}:{pos}"),
        }
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS` (UTC; a `T` between date and time is
/// taken too) or `@SECONDS` since the epoch.
///
/// # Errors
/// A message saying which form is expected.
pub fn parse_time(text: &str) -> Result<u32, String> {
    let bad = || format!("'{text}': expected YYYY-MM-DD HH:MM:SS (UTC) or @SECONDS");
    if let Some(secs) = text.strip_prefix('@') {
        return secs.parse().map_err(|_| bad());
    }
    let t = text.trim().trim_end_matches('Z');
    let (date, time) = t.split_once([' ', 'T']).ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let c: Vec<i64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let ([y, mo, day], [h, mi, s]) = (d.as_slice(), c.as_slice()) else {
        return Err(bad());
    };
    if !(1..=12).contains(mo) || !(1..=31).contains(day) || *h > 23 || *mi > 59 || *s > 60 {
        return Err(bad());
    }
    let secs = days_from_civil(*y, *mo, *day) * 86_400 + h * 3600 + mi * 60 + s;
    u32::try_from(secs).map_err(|_| bad())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM:SS` of seconds since the epoch (UTC).
#[must_use]
pub fn format_time(t: u32) -> String {
    crate::run::meta::utc(i64::from(t))
}

/// Parses `uuid:N` (MySQL) or `domain-server-seq` (MariaDB).
///
/// # Errors
/// A message saying which forms are expected.
pub fn parse_gtid(text: &str) -> Result<Gtid, String> {
    let bad = || format!("'{text}': expected UUID:N (MySQL) or DOMAIN-SERVER-SEQ (MariaDB)");
    if let Some((uuid, n)) = text.split_once(':') {
        let hex: String = uuid.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 {
            return Err(bad());
        }
        let mut sid = [0u8; 16];
        for (i, b) in sid.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        return Ok(Gtid::MySql {
            sid,
            gno: n.parse().map_err(|_| bad())?,
        });
    }
    let parts: Vec<&str> = text.split('-').collect();
    let [d, s, q] = parts.as_slice() else {
        return Err(bad());
    };
    Ok(Gtid::MariaDb {
        domain: d.parse().map_err(|_| bad())?,
        server: s.parse().map_err(|_| bad())?,
        seq: q.parse().map_err(|_| bad())?,
    })
}

/// Parses `FILE:POS`.
///
/// # Errors
/// A message saying which form is expected.
pub fn parse_position(text: &str) -> Result<Until, String> {
    let (file, pos) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("'{text}': expected FILE:POS, e.g. binlog.000012:4711"))?;
    Ok(Until::Position {
        file: file.to_string(),
        pos: pos
            .parse()
            .map_err(|_| format!("'{text}': the position is not a number"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_and_print_back() {
        assert_eq!(parse_time("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_time("2026-12-03 16:20:05"), Ok(1_796_314_805));
        assert_eq!(parse_time("2026-12-03T16:20:05Z"), Ok(1_796_314_805));
        assert_eq!(parse_time("@1796314805"), Ok(1_796_314_805));
        assert_eq!(format_time(1_796_314_805), "2026-12-03 16:20:05");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00");
        assert!(parse_time("2026-13-01 00:00:00").is_err());
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn gtids_of_both_families_parse_and_print_back() {
        let m = "3e11fa47-71ca-11e1-9e33-c80aa9429562:23";
        assert_eq!(parse_gtid(m).unwrap().to_string(), m);
        assert_eq!(
            parse_gtid("0-1-42"),
            Ok(Gtid::MariaDb {
                domain: 0,
                server: 1,
                seq: 42
            })
        );
        assert!(parse_gtid("0-1").is_err());
        assert!(parse_gtid("zz:1").is_err());
    }

    #[test]
    fn positions_name_file_and_offset() {
        assert_eq!(
            parse_position("binlog.000003:4711"),
            Ok(Until::Position {
                file: "binlog.000003".into(),
                pos: 4711
            })
        );
        assert!(parse_position("binlog.000003").is_err());
    }
}
