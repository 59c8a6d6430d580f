//! `--use-memory=auto` (the default): the recovery server's buffer pool
//! sized to the redo it applies.
//!
//! The server applies the log in batches that fit its buffer pool. With a
//! backup carrying 1.2 GB of redo (`benches/e2e/prepare_redo.sh`), 256 MiB
//! took three batches and 45 s, 100 MiB 55 s, 1 GiB 29 s, where
//! `mariadb-backup --prepare` took 33 s at its default of 100 MiB: its
//! prepare keeps more of the parsed log per batch than the server does. So
//! the pool is as large as the log to apply, within bounds: never under
//! 256 MiB, never over half of the memory available now, nor over 1 GiB.
//!
//! Why no more than 1 GiB: on a fast disk (2026-12-03, three rounds) the
//! same backup took 20–27 s at 256 MiB and at 1 GiB alike, and 26–30 s
//! with the pool as large as its 1,177 MiB of redo: past 1 GiB a larger
//! pool cost time here instead of saving it.

/// The setting that asks for the size to be chosen.
pub const AUTO: &str = "auto";

const FLOOR: u64 = 256 << 20;
const CEILING: u64 = 1 << 30;
/// The cap when the memory available cannot be read.
const UNKNOWN_CAP: u64 = 1 << 30;

/// The buffer pool, in bytes, for applying `redo` bytes of log when
/// `available` bytes of memory are free (`None`: not known).
#[must_use]
pub fn auto_size(redo: u64, available: Option<u64>) -> u64 {
    let cap = available
        .map_or(UNKNOWN_CAP, |a| a / 2)
        .clamp(FLOOR, CEILING);
    redo.next_multiple_of(1 << 20).clamp(FLOOR, cap)
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The server's `innodb-buffer-pool-size` for `setting` (`auto` or a size
/// the server reads, such as `1G`) and `redo` bytes of log to apply.
#[must_use]
pub fn resolve(setting: &str, redo: u64) -> String {
    if setting.eq_ignore_ascii_case(AUTO) {
        format!("{}M", auto_size(redo, available()) >> 20)
    } else {
        setting.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn the_pool_follows_the_redo_within_its_bounds() {
        // a little redo: the floor
        assert_eq!(auto_size(10 * MIB, Some(16 * GIB)), 256 * MIB);
        // 700 MB of redo on a machine with room: all of it, whole MiB
        assert_eq!(auto_size(700 * MIB + 5, Some(16 * GIB)), 701 * MIB);
        // never over half of what is available
        assert_eq!(auto_size(3 * GIB, Some(GIB)), 512 * MIB);
        // nor over 1 GiB, however much is free
        assert_eq!(auto_size(1_176 * MIB, Some(256 * GIB)), GIB);
        // unknown memory: at most 1 GiB
        assert_eq!(auto_size(3 * GIB, None), GIB);
        // a machine short of memory still gets the floor
        assert_eq!(auto_size(3 * GIB, Some(100 * MIB)), 256 * MIB);
    }

    #[test]
    fn a_size_given_is_passed_on_and_auto_is_chosen() {
        assert_eq!(resolve("512M", 10 * GIB), "512M");
        let chosen = resolve("AUTO", 300 * MIB);
        let mib: u64 = chosen.trim_end_matches('M').parse().unwrap();
        assert!((256..=300).contains(&mib), "{chosen}");
    }
}
