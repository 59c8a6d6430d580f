//! Writer → reader round trips of arbitrary file sets, through every filter.

use std::collections::BTreeMap;

use proptest::prelude::*;
use xb_sink::{Compress, Compression, Datasink, ExtractOptions, Throttle, XbStreamWriter};

use crate::common::{SharedBuf, read_tree, write_files};

fn file_sets() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    let name = "[a-z]{1,8}(/[a-z0-9_][a-z0-9_.]{0,7}){0,2}";
    proptest::collection::btree_map(name, proptest::collection::vec(any::<u8>(), 0..5000), 0..8)
        .prop_filter("a name may not be both a file and a directory", |m| {
            m.keys()
                .all(|a| !m.keys().any(|b| b.starts_with(&format!("{a}/"))))
        })
}

fn round_trip(
    files: &BTreeMap<String, Vec<u8>>,
    wrap: impl Fn(Box<dyn Datasink>) -> Box<dyn Datasink>,
    opts: &ExtractOptions,
    piece: usize,
    chunk: usize,
) -> BTreeMap<String, Vec<u8>> {
    let out = SharedBuf::default();
    let sink = wrap(Box::new(XbStreamWriter::with_chunk_size(
        Box::new(out.clone()),
        chunk,
    )));
    write_files(sink.as_ref(), files, piece);
    let d = tempfile::tempdir().unwrap();
    let st = xb_sink::extract(&out.bytes()[..], d.path(), opts).unwrap();
    assert_eq!(st.files, files.len() as u64);
    read_tree(d.path())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn plain_streams_round_trip(files in file_sets(), piece in 1usize..3000, chunk in 0usize..4000, parallel in 0usize..4) {
        let opts = ExtractOptions::default().with_parallel(parallel);
        prop_assert_eq!(round_trip(&files, |s| s, &opts, piece, chunk), files);
    }

    #[test]
    fn compressed_streams_round_trip(files in file_sets(), piece in 1usize..3000, frame in 1usize..9000, lz4 in any::<bool>(), parallel in 0usize..4) {
        let algo = if lz4 { Compression::Lz4 } else { Compression::Zstd { level: 1 } };
        let opts = ExtractOptions::default().with_decompress(true).with_parallel(parallel);
        let got = round_trip(&files, |s| Box::new(Compress::new(s, algo, 2).with_chunk_size(frame)), &opts, piece, 1000);
        prop_assert_eq!(got, files);
    }

    #[test]
    fn throttled_streams_round_trip(files in file_sets()) {
        let got = round_trip(&files, |s| Box::new(Throttle::new(s, 1 << 30)), &ExtractOptions::default(), 512, 100);
        prop_assert_eq!(got, files);
    }
}

#[test]
fn throttle_holds_the_rate() {
    let out = SharedBuf::default();
    let sink = Throttle::new(
        Box::new(XbStreamWriter::new(Box::new(out.clone()))),
        4 << 20,
    );
    let t = std::time::Instant::now();
    let mut f = sink.open("f", 0).unwrap();
    for _ in 0..8 {
        f.write(&[1u8; 256 << 10]).unwrap();
    }
    f.close().unwrap();
    sink.finish().unwrap();
    // 2 MiB at 4 MiB/s takes about half a second
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(out.bytes().len() > 2 << 20);
}
