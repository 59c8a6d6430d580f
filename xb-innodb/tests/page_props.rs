//! Properties of the page checks: random input never panics, and flipping
//! any byte a checksum covers is caught, for every algorithm and page size.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use proptest::prelude::*;
use xb_innodb::pagecheck::{SpaceMeta, Verdict, check_page};

#[derive(Debug, Clone, Copy)]
enum Algo {
    FullCrc32,
    Crc32,
    Innodb,
}

fn fold(bytes: &[u8]) -> u32 {
    let mut acc: u32 = 0;
    for &b in bytes {
        let b = u32::from(b);
        acc = (((acc ^ b ^ 1_653_893_711) << 8).wrapping_add(acc) ^ 1_463_735_687).wrapping_add(b);
    }
    acc
}

/// A valid page of `size` bytes, number `no`, filled from `seed`.
fn page(algo: Algo, size: usize, no: u32, seed: u8) -> (Vec<u8>, SpaceMeta) {
    let mut p = vec![0u8; size];
    p[4..8].copy_from_slice(&no.to_be_bytes());
    p[16..24].copy_from_slice(&(0x0102_0304_0506_0708u64 ^ u64::from(seed)).to_be_bytes());
    p[24..26].copy_from_slice(&17855u16.to_be_bytes());
    for (i, b) in p[38..size - 8].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ seed;
    }
    let ssize = size.trailing_zeros() - 9;
    let meta = |full: bool, flags: u32| SpaceMeta {
        space_id: 9,
        flags,
        physical_size: size,
        full_crc32: full,
        compressed: false,
        page_compressed: false,
    };
    match algo {
        Algo::FullCrc32 => {
            // the low LSN word closes the page, under the checksum
            let lsn_low = p[20..24].to_vec();
            p[size - 8..size - 4].copy_from_slice(&lsn_low);
            let c = crc32c::crc32c(&p[..size - 4]);
            p[size - 4..].copy_from_slice(&c.to_be_bytes());
            (p, meta(true, (1 << 4) | ssize))
        }
        Algo::Crc32 | Algo::Innodb => {
            let lsn_low = p[20..24].to_vec();
            p[size - 4..].copy_from_slice(&lsn_low);
            let f1 = match algo {
                Algo::Crc32 => crc32c::crc32c(&p[4..26]) ^ crc32c::crc32c(&p[38..size - 8]),
                _ => fold(&p[4..26]).wrapping_add(fold(&p[38..size - 8])),
            };
            p[0..4].copy_from_slice(&f1.to_be_bytes());
            // the legacy "old" checksum covers bytes 0..26, the new one included
            let f2 = match algo {
                Algo::Crc32 => f1,
                _ => fold(&p[..26]),
            };
            p[size - 8..size - 4].copy_from_slice(&f2.to_be_bytes());
            (p, meta(false, ssize << 6))
        }
    }
}

fn algo() -> impl Strategy<Value = Algo> {
    prop_oneof![Just(Algo::FullCrc32), Just(Algo::Crc32), Just(Algo::Innodb)]
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(4096usize),
        Just(8192),
        Just(16384),
        Just(32768),
        Just(65536)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn valid_pages_pass_and_a_flipped_covered_byte_fails(a in algo(), s in size(), no in 1u32..1000, seed in any::<u8>(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (p, meta) = page(a, s, no, seed);
        prop_assert_eq!(check_page(&p, &meta, no, false), Verdict::Valid);
        // crc32 and innodb leave 26..38 (flush LSN, space id) uncovered
        let mut i = at.index(s);
        if !matches!(a, Algo::FullCrc32) && (26..38).contains(&i) {
            i = 40;
        }
        let mut bad = p.clone();
        bad[i] ^= 1 << bit;
        prop_assert!(matches!(check_page(&bad, &meta, no, false), Verdict::Bad(_)), "{:?} {} flip at {}", a, s, i);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..70_000), full in any::<bool>()) {
        let _ = SpaceMeta::from_page0(&bytes, 16384);
        if let Ok(meta) = SpaceMeta::from_page0(&bytes, 16384) {
            let ps = meta.physical_size.min(bytes.len());
            let _ = check_page(&bytes[..ps], &meta, 0, false);
        }
        let meta = SpaceMeta { space_id: 1, flags: 0, physical_size: bytes.len(), full_crc32: full, compressed: !full, page_compressed: false };
        let _ = check_page(&bytes, &meta, 1, false);
    }
}
