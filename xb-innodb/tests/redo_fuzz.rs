//! Random bytes into every redo parser: never a panic, never an unbounded
//! allocation, whatever the file holds. Half of the cases get a valid
//! header, so the checkpoint and scanning code runs on garbage too.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use proptest::prelude::*;
use xb_innodb::{redo_classic, redo105, redo108, redo8030};

/// Stores the CRC-32C of `v[from..at]` at `at`, if the buffer is that long.
fn seal(v: &mut [u8], from: usize, at: usize) {
    if v.len() >= at + 4 {
        let c = crc32c::crc32c(&v[from..at]);
        v[at..at + 4].copy_from_slice(&c.to_be_bytes());
    }
}

/// Random bytes with a valid header of `format` and, where the format has
/// them, valid checkpoint blocks pointing into the random log, so the
/// scanners run over garbage.
fn header(format: u32, body: Vec<u8>) -> Vec<u8> {
    let mut v = body;
    if v.len() < 512 {
        return v;
    }
    v[0..4].copy_from_slice(&format.to_be_bytes());
    v[4..8].fill(0);
    let lsn: u64 = 12_288 + u64::from(v[100]) * 7;
    v[8..16].copy_from_slice(&lsn.to_be_bytes());
    seal(&mut v, 0, 508);
    match format {
        redo108::FORMAT_10_8 if v.len() >= 4096 + 64 => {
            v[4096..4104].copy_from_slice(&lsn.to_be_bytes());
            v[4104..4112].copy_from_slice(&lsn.to_be_bytes());
            v[4112..4156].fill(0);
            seal(&mut v, 4096, 4156);
        }
        _ if v.len() >= 1024 => {
            v[512..520].copy_from_slice(&1u64.to_be_bytes());
            v[520..528].copy_from_slice(&lsn.to_be_bytes());
            v[528..536].copy_from_slice(&2048u64.to_be_bytes());
            seal(&mut v, 512, 1020);
        }
        _ => {}
    }
    v
}

fn exercise(bytes: &[u8], valid_header: bool) {
    let d = tempfile::tempdir().unwrap();
    // MariaDB 10.8+
    let f = d.path().join("ib_logfile0");
    std::fs::write(
        &f,
        if valid_header {
            header(redo108::FORMAT_10_8, bytes.to_vec())
        } else {
            bytes.to_vec()
        },
    )
    .unwrap();
    if let Ok(log) = redo108::Log108::open(&f) {
        if let Ok(cp) = log.latest_checkpoint() {
            let _ = redo108::Scanner108::new(cp.lsn).poll(&log, &mut |_| Ok(()));
        }
        let _ = redo108::Scanner108::new(log.first_lsn()).poll(&log, &mut |_| Ok(()));
    }
    // MariaDB 10.5
    std::fs::write(
        &f,
        if valid_header {
            header(redo105::FORMAT_10_5, bytes.to_vec())
        } else {
            bytes.to_vec()
        },
    )
    .unwrap();
    if let Ok(log) = redo105::Log105::open(&f) {
        if let Ok(cp) = log.latest_checkpoint() {
            let _ = redo105::Scanner105::new(cp.lsn).poll(&log, &mut |_| Ok(()));
        }
    }
    // classic group
    std::fs::write(
        &f,
        if valid_header {
            header(1, bytes.to_vec())
        } else {
            bytes.to_vec()
        },
    )
    .unwrap();
    if let Ok(log) = redo_classic::LogClassic::open(d.path(), redo_classic::BlockChecksum::Any) {
        if let Ok(cp) = log.latest_checkpoint() {
            let _ = redo_classic::ScannerClassic::new(cp.lsn).poll(&log, &mut |_| Ok(()));
        }
    }
    // MySQL 8.0.30+
    let r = d.path().join("#innodb_redo");
    std::fs::create_dir(&r).unwrap();
    std::fs::write(
        r.join("#ib_redo7"),
        if valid_header {
            header(redo8030::FORMAT_8_0_30, bytes.to_vec())
        } else {
            bytes.to_vec()
        },
    )
    .unwrap();
    if let Ok(mut log) = redo8030::Log8030::open(&r) {
        if let Ok(cp) = log.latest_checkpoint() {
            let _ = redo8030::Scanner8030::new(cp.lsn).poll(&mut log, &mut |_| Ok(()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40_000), valid in any::<bool>()) {
        exercise(&bytes, valid);
    }
}
