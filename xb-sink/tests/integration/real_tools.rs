//! Byte compatibility with the real tools: mbstream extracts our streams,
//! zstd and lz4 decompress our compressed files.

use std::process::Command;

use xb_sink::{Compress, Compression, ExtractOptions, LocalDir, XbStreamWriter};

use crate::common::{
    SharedBuf, assert_same_tree, mariadb_tool, read_tree, sample_files, write_files,
};

#[test]
fn mbstream_extracts_a_stream_written_by_xb_to_identical_files() {
    let files = sample_files();
    let out = SharedBuf::default();
    // a small coalescing size gives many interleaved chunks per file
    let sink = XbStreamWriter::with_chunk_size(Box::new(out.clone()), 100_000);
    write_files(&sink, &files, 33_333);
    let stream = out.bytes();

    let dir = tempfile::tempdir().unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &stream).unwrap();
    let res = mariadb_tool("mbstream")
        .args(["-x", "-C"])
        .arg(dir.path())
        .stdin(std::fs::File::open(file.path()).unwrap())
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "mbstream failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_same_tree(&read_tree(dir.path()), &files, "mbstream output");
}

fn decompress_with(cli: &str, file: &std::path::Path) -> Vec<u8> {
    let out = Command::new(cli)
        .args(["-d", "-c", "-q"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cli} -d {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn check_cli_decompresses(algo: Compression, cli: &str) {
    let files = sample_files();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("b");
    let sink = Compress::new(
        Box::new(LocalDir::create(&root).unwrap().without_sync()),
        algo,
        3,
    )
    .with_chunk_size(256 << 10);
    write_files(&sink, &files, 100_000);
    let on_disk = read_tree(&root);
    assert_eq!(on_disk.len(), files.len());
    for (name, data) in &files {
        let cname = format!("{name}{}", algo.extension());
        assert!(on_disk.contains_key(&cname), "{cname} missing");
        let plain = decompress_with(cli, &root.join(&cname));
        assert_eq!(&plain, data, "{cname} does not decompress to the original");
    }
}

#[test]
fn zstd_cli_decompresses_every_zst_file() {
    check_cli_decompresses(Compression::Zstd { level: 1 }, "zstd");
}

#[test]
fn lz4_cli_decompresses_every_lz4_file() {
    check_cli_decompresses(Compression::Lz4, "lz4");
}

#[test]
fn compressed_stream_extracts_with_decompression_to_the_originals() {
    for algo in [Compression::Zstd { level: 3 }, Compression::Lz4] {
        let files = sample_files();
        let out = SharedBuf::default();
        let sink = Compress::new(
            Box::new(XbStreamWriter::new(Box::new(out.clone()))),
            algo,
            2,
        )
        .with_chunk_size(300_000);
        write_files(&sink, &files, 77_777);
        let dir = tempfile::tempdir().unwrap();
        let opts = ExtractOptions::default().with_decompress(true);
        let st = xb_sink::extract(&out.bytes()[..], dir.path(), &opts).unwrap();
        assert_eq!(st.files, files.len() as u64);
        assert_eq!(read_tree(dir.path()), files, "{algo:?}");
        // without decompression the names keep their suffix
        let dir2 = tempfile::tempdir().unwrap();
        xb_sink::extract(&out.bytes()[..], dir2.path(), &ExtractOptions::default()).unwrap();
        assert!(
            read_tree(dir2.path())
                .keys()
                .all(|k| k.ends_with(algo.extension()))
        );
    }
}

#[test]
fn xb_extract_reads_the_zstd_cli_own_multi_frame_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::common::pagey(2 << 20, 9);
    std::fs::write(dir.path().join("a"), &data[..1 << 20]).unwrap();
    std::fs::write(dir.path().join("b"), &data[1 << 20..]).unwrap();
    let mut z = Vec::new();
    for part in ["a", "b"] {
        let o = Command::new("zstd")
            .args(["-c", "-q", "--content-size"])
            .arg(dir.path().join(part))
            .output()
            .unwrap();
        assert!(o.status.success());
        z.extend_from_slice(&o.stdout);
    }
    let out = SharedBuf::default();
    let sink = XbStreamWriter::new(Box::new(out.clone()));
    let mut f = xb_sink::Datasink::open(&sink, "t.ibd.zst", 0).unwrap();
    f.write(&z).unwrap();
    f.close().unwrap();
    xb_sink::Datasink::finish(&sink).unwrap();
    let target = dir.path().join("x");
    xb_sink::extract(
        &out.bytes()[..],
        &target,
        &ExtractOptions::default().with_decompress(true),
    )
    .unwrap();
    assert_eq!(std::fs::read(target.join("t.ibd")).unwrap(), data);
}
