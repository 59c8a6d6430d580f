//! Page validation throughput per checksum algorithm (in memory).
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xb_innodb::pagecheck::{SpaceMeta, Verdict, check_page};

const PAGE: usize = 16384;
const PAGES: usize = 2048; // 32 MiB

fn fold(bytes: &[u8]) -> u32 {
    let mut acc: u32 = 0;
    for &b in bytes {
        let b = u32::from(b);
        acc = (((acc ^ b ^ 1_653_893_711) << 8).wrapping_add(acc) ^ 1_463_735_687).wrapping_add(b);
    }
    acc
}

fn pages(algo: &str) -> (Vec<u8>, SpaceMeta) {
    let mut buf = vec![0u8; PAGE * PAGES];
    for (no, p) in buf.chunks_exact_mut(PAGE).enumerate() {
        p[4..8].copy_from_slice(&(no as u32).to_be_bytes());
        p[16..24].copy_from_slice(&(no as u64 * 977).to_be_bytes());
        p[24..26].copy_from_slice(&17855u16.to_be_bytes());
        for (i, b) in p[38..PAGE - 8].iter_mut().enumerate() {
            *b = (i ^ no) as u8;
        }
        match algo {
            "full_crc32" => {
                let c = crc32c::crc32c(&p[..PAGE - 4]);
                p[PAGE - 4..].copy_from_slice(&c.to_be_bytes());
            }
            _ => {
                let low = p[20..24].to_vec();
                p[PAGE - 4..].copy_from_slice(&low);
                let f1 = if algo == "crc32" {
                    crc32c::crc32c(&p[4..26]) ^ crc32c::crc32c(&p[38..PAGE - 8])
                } else {
                    fold(&p[4..26]).wrapping_add(fold(&p[38..PAGE - 8]))
                };
                p[0..4].copy_from_slice(&f1.to_be_bytes());
                let f2 = if algo == "crc32" { f1 } else { fold(&p[..26]) };
                p[PAGE - 8..PAGE - 4].copy_from_slice(&f2.to_be_bytes());
            }
        }
    }
    let full = algo == "full_crc32";
    let meta = SpaceMeta {
        space_id: 5,
        flags: if full { 0x15 } else { 0 },
        physical_size: PAGE,
        full_crc32: full,
        compressed: false,
        page_compressed: false,
    };
    (buf, meta)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("page_validate");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((PAGE * PAGES) as u64));
    for algo in ["full_crc32", "crc32", "innodb"] {
        let (buf, meta) = pages(algo);
        g.bench_function(algo, |b| {
            b.iter(|| {
                for (no, p) in buf.chunks_exact(PAGE).enumerate() {
                    assert_eq!(check_page(p, &meta, no as u32, false), Verdict::Valid);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
