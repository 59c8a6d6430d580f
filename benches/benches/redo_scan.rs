//! Redo scan + validate throughput per format, on synthetic logs in the
//! page cache (so the figure is the parser's, not the disk's).
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xb_innodb::{redo_classic, redo105, redo108, redo8030};

const LOG_BYTES: u64 = 64 << 20;

fn seal(v: &mut [u8], from: usize, at: usize) {
    let c = crc32c::crc32c(&v[from..at]);
    v[at..at + 4].copy_from_slice(&c.to_be_bytes());
}

fn hdr_no(lsn: u64) -> u32 {
    1 + ((lsn / 512) & 0x3FFF_FFFF) as u32
}

/// Full 512-byte blocks for `[start, start + n*512)`, CRC-32C sealed.
fn blocks(start: u64, n: u64) -> Vec<u8> {
    let mut v = vec![0u8; (n * 512) as usize];
    for (i, b) in v.chunks_exact_mut(512).enumerate() {
        let lsn = start + i as u64 * 512;
        b[0..4].copy_from_slice(&hdr_no(lsn).to_be_bytes());
        b[4..6].copy_from_slice(&512u16.to_be_bytes());
        for (j, x) in b[12..508].iter_mut().enumerate() {
            *x = (j as u64 ^ lsn) as u8;
        }
        seal(b, 0, 508);
    }
    v
}

/// A checkpoint block of the 10.5 format (number `no`, at `lsn`).
fn checkpoint_105(v: &mut [u8], no: u64, lsn: u64, start: u64) {
    let at = if no % 2 == 0 { 512 } else { 1536 };
    v[at..at + 512].fill(0);
    v[at..at + 8].copy_from_slice(&no.to_be_bytes());
    v[at + 8..at + 16].copy_from_slice(&lsn.to_be_bytes());
    v[at + 16..at + 24].copy_from_slice(&(2048 + lsn - start).to_be_bytes());
    seal(v, at, at + 508);
}

/// `checkpoint`: where the server's checkpoint is (the scan starts at the
/// log's first block either way).
fn write_105(dir: &Path, checkpoint: u64) -> std::path::PathBuf {
    let start = 8704u64;
    let mut v = vec![0u8; 2048];
    v[0..4].copy_from_slice(&redo105::FORMAT_10_5.to_be_bytes());
    v[8..16].copy_from_slice(&start.to_be_bytes());
    seal(&mut v, 0, 508);
    v[512..520].copy_from_slice(&1u64.to_be_bytes());
    v[520..528].copy_from_slice(&start.to_be_bytes());
    v[528..536].copy_from_slice(&2048u64.to_be_bytes());
    seal(&mut v, 512, 1020);
    v.extend(blocks(start, LOG_BYTES / 512));
    v.extend(vec![0u8; 512]);
    if checkpoint > start {
        checkpoint_105(&mut v, 3, checkpoint, start);
    }
    let p = dir.join("ib_logfile0");
    std::fs::write(&p, v).unwrap();
    p
}

fn write_8030(dir: &Path) -> std::path::PathBuf {
    let r = dir.join("#innodb_redo");
    std::fs::create_dir_all(&r).unwrap();
    let start = 16_384u64;
    let mut v = redo8030::backup_file_header(start, start, 7, "bench");
    v.extend(blocks(start, LOG_BYTES / 512));
    v.extend(vec![0u8; 16384]);
    std::fs::write(r.join("#ib_redo1"), v).unwrap();
    r
}

fn write_classic(dir: &Path) {
    let start = 8192u64;
    let data = LOG_BYTES / 2;
    for n in 0..2u64 {
        let mut v = vec![0u8; 2048];
        v[0..4].copy_from_slice(&1u32.to_be_bytes());
        v[8..16].copy_from_slice(&(start + n * data).to_be_bytes());
        seal(&mut v, 0, 508);
        if n == 0 {
            v[512..520].copy_from_slice(&1u64.to_be_bytes());
            v[520..528].copy_from_slice(&start.to_be_bytes());
            v[528..536].copy_from_slice(&2048u64.to_be_bytes());
            seal(&mut v, 512, 1020);
        }
        // the first lap fills the whole group: end of log after a second-lap block
        v.extend(blocks(start + n * data, data / 512));
        std::fs::write(dir.join(format!("ib_logfile{n}")), v).unwrap();
    }
}

/// MariaDB 10.8+: mini-transactions of ~100-byte WRITE records;
/// `checkpoint` as for [`write_105`].
fn write_108(dir: &Path, checkpoint: u64) -> std::path::PathBuf {
    let first = 12_288u64;
    let size = 12_288 + LOG_BYTES + (1 << 20);
    let mut cp = redo108::Checkpoint108 {
        lsn: first,
        end_lsn: first,
        offset: 4096,
    };
    cp.end_lsn = first;
    let mut v = redo108::backup_log_header(cp, "bench");
    while (v.len() as u64) < 12_288 + LOG_BYTES {
        let mut mtr = Vec::with_capacity(120);
        for r in 0..4u8 {
            // a WRITE record (type 3) of 24 bytes: header + 23 payload bytes
            mtr.push(0x30 | 15);
            mtr.extend((0..15u8).map(|i| i.wrapping_add(r).max(2)));
        }
        let crc = crc32c::crc32c(&mtr);
        mtr.push(1); // sequence bit of the first lap
        mtr.extend(crc.to_be_bytes());
        v.extend(mtr);
    }
    v.resize(size as usize, 0);
    if checkpoint > first {
        v[8192..8192 + 64].fill(0);
        v[8192..8200].copy_from_slice(&checkpoint.to_be_bytes());
        v[8200..8208].copy_from_slice(&checkpoint.to_be_bytes());
        seal(&mut v, 8192, 8192 + 60);
    }
    let p = dir.join("ib_logfile0");
    std::fs::write(&p, v).unwrap();
    p
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("redo_scan");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(LOG_BYTES));

    // the server's checkpoint where the scan starts, or 48 MiB further on
    // (a copier catching up: far behind the checkpoint, but not lapped)
    for (name, checkpoint) in [
        ("mariadb_10_5_blocks", 8704),
        ("mariadb_10_5_behind_checkpoint", 8704 + (48 << 20)),
    ] {
        let d = tempfile::tempdir().unwrap();
        let p = write_105(d.path(), checkpoint);
        let log = redo105::Log105::open(&p).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut s = redo105::Scanner105::new(8704);
                let end = s.poll(&log, &mut |_| Ok(())).unwrap();
                assert!(end >= 8704 + LOG_BYTES);
            })
        });
    }

    let d = tempfile::tempdir().unwrap();
    let r = write_8030(d.path());
    let mut log = redo8030::Log8030::open(&r).unwrap();
    g.bench_function("mysql_8030_blocks", |b| {
        b.iter(|| {
            let mut s = redo8030::Scanner8030::new(16_384);
            let end = s.poll(&mut log, &mut |_| Ok(())).unwrap();
            assert!(end >= 16_384 + LOG_BYTES);
        })
    });

    let d = tempfile::tempdir().unwrap();
    write_classic(d.path());
    let log =
        redo_classic::LogClassic::open(d.path(), redo_classic::BlockChecksum::Crc32c).unwrap();
    g.bench_function("classic_blocks", |b| {
        b.iter(|| {
            let mut s = redo_classic::ScannerClassic::new(8192);
            let mut end = 0;
            while end < 8192 + LOG_BYTES - 512 {
                end = s.poll(&log, &mut |_| Ok(())).unwrap();
            }
        })
    });

    for (name, checkpoint) in [
        ("mariadb_10_8_mtrs", 12_288),
        ("mariadb_10_8_behind_checkpoint", 12_288 + (48 << 20)),
    ] {
        let d = tempfile::tempdir().unwrap();
        let p = write_108(d.path(), checkpoint);
        let log = redo108::Log108::open(&p).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut s = redo108::Scanner108::new(12_288);
                // a file no server writes: its last block is final
                s.trust_up_to(u64::MAX);
                let end = s.poll(&log, &mut |_| Ok(())).unwrap();
                assert!(end >= 12_288 + LOG_BYTES - 200);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
