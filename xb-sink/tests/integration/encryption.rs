//! xbcrypt: encrypted (and compressed-then-encrypted) files round-trip
//! through a stream with the key, and fail clearly with the wrong key.

use xb_sink::{
    Compress, Compression, Encrypt, EncryptKey, ExtractOptions, SinkError, XbStreamWriter,
};

use crate::common::{SharedBuf, read_tree, sample_files, write_files};

const KEY: &str = "6f0c3a9d2e7b4f15a8c1d0e9b7a65432";

#[test]
fn compressed_then_encrypted_files_are_named_and_restored_like_xtrabackup() {
    let files = sample_files();
    let out = SharedBuf::default();
    let key = EncryptKey::from_arg(KEY).unwrap();
    let enc = Encrypt::new(
        Box::new(XbStreamWriter::new(Box::new(out.clone()))),
        key.clone(),
        2,
    );
    let sink = Compress::new(Box::new(enc), Compression::Lz4, 2);
    write_files(&sink, &files, 50_000);
    let stream = out.bytes();
    // nothing of the plaintext survives
    assert!(!stream.windows(14).any(|w| w == b"tool_name = xb"));

    let raw = tempfile::tempdir().unwrap();
    xb_sink::extract(&stream[..], raw.path(), &ExtractOptions::default()).unwrap();
    let raw_tree = read_tree(raw.path());
    assert!(
        raw_tree.contains_key("db1/t1.ibd.lz4.xbcrypt"),
        "{:?}",
        raw_tree.keys()
    );
    assert!(raw_tree.values().all(|v| v.starts_with(b"XBCRYP03")));

    let d = tempfile::tempdir().unwrap();
    let opts = ExtractOptions::default()
        .with_decompress(true)
        .with_key(Some(key));
    xb_sink::extract(&stream[..], d.path(), &opts).unwrap();
    assert_eq!(read_tree(d.path()), files);

    let wrong = EncryptKey::from_arg(&"11".repeat(32)).unwrap();
    let d = tempfile::tempdir().unwrap();
    let e = xb_sink::extract(
        &stream[..],
        d.path(),
        &ExtractOptions::default().with_key(Some(wrong)),
    )
    .unwrap_err();
    assert!(matches!(e, SinkError::Decrypt { .. }), "{e}");
    assert!(e.to_string().contains("wrong key"), "{e}");
}

#[test]
fn key_files_are_read_raw() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("key");
    std::fs::write(&p, [9u8; 32]).unwrap();
    assert!(EncryptKey::from_file(&p).is_ok());
    std::fs::write(&p, b"0123456789abcdef0123456789abcdef\n").unwrap();
    let e = EncryptKey::from_file(&p).unwrap_err();
    assert!(e.to_string().contains("key file"), "{e}");
}
