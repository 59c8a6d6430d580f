//! The object-store sink against a real S3-compatible server (s3s-fs,
//! started by `scripts/objstore.sh`): what goes up comes back byte for
//! byte, checked; what the store loses or damages is named; a backup that
//! did not finish is never handed out.

use std::time::Duration;

use xb_sink::object::{MANIFEST, ObjectLocation, ObjectOptions, ObjectSink, fetch, list_backups};
use xb_sink::{Datasink, ExtractOptions, Manifested, SinkError};
use xb_testing::objstore::{S3_ACCESS_KEY, S3_SECRET_KEY, StoreKind, StoreServer};

const MARKER: &str = "xtrabackup_incomplete";

fn options(s3: &StoreServer, secret: &str) -> ObjectOptions {
    ObjectOptions::default()
        .with_part_size(5 << 20)
        .with_concurrency(3)
        .with_retries(2, Duration::from_secs(5))
        .with_config("aws_endpoint", &format!("http://127.0.0.1:{}", s3.port()))
        .with_config("aws_access_key_id", S3_ACCESS_KEY)
        .with_config("aws_secret_access_key", secret)
        .with_config("aws_region", "us-east-1")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[0] ^ seed)
        .collect()
}

/// A new backup at `loc`, recording its manifest as a backup does.
fn create(loc: ObjectLocation, opts: ObjectOptions) -> Result<Manifested<ObjectSink>, SinkError> {
    ObjectSink::create(loc, opts, MARKER).map(Manifested::new)
}

/// Writes the manifest, then finishes.
fn finish(sink: &Manifested<ObjectSink>) -> Result<(), SinkError> {
    sink.write_manifest(serde_json::Map::new())?;
    sink.finish()
}

fn upload(sink: &dyn Datasink, rel: &str, data: &[u8], piece: usize) {
    let mut f = sink.open(rel, data.len() as u64).expect("open");
    for p in data.chunks(piece) {
        f.write(p).expect("write");
    }
    f.close().expect("close");
}

#[test]
fn a_backup_goes_up_and_comes_back_checked() {
    let s3 = StoreServer::start(StoreKind::S3).expect("s3 server");
    s3.make_bucket("nightly").expect("bucket");
    let opts = options(&s3, S3_SECRET_KEY);
    let root = ObjectLocation::parse("s3://nightly/db1", &opts).expect("url");
    let loc = root.child("full-1");

    let sink = create(loc.clone(), opts.clone()).expect("created");
    // 23 MiB in 64 KiB writes: five parts of 5 MiB, the last one short
    let big = pattern(23 << 20, 7);
    upload(&sink, "ibdata1", &big, 64 << 10);
    upload(&sink, "db/t1.ibd", &pattern(16384 * 7, 1), 16384);
    upload(
        &sink,
        "xtrabackup_checkpoints",
        b"backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 4242\n",
        1 << 20,
    );
    upload(&sink, "db/stale.ibd", &pattern(100, 2), 100);
    upload(&sink, "empty", b"", 1);
    assert!(sink.remove("db/stale.ibd").expect("taken back"));

    // not finished yet: listed as incomplete, and never handed out
    let before = list_backups(&root, MARKER).expect("listing");
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(
        !before[0].complete,
        "listed complete before finish: {before:?}"
    );
    let early = tempfile::tempdir().expect("tmp");
    assert!(
        matches!(
            fetch(&loc, early.path(), &ExtractOptions::default(), MARKER),
            Err(SinkError::IncompleteBackup { .. })
        ),
        "an unfinished backup was fetched"
    );

    finish(&sink).expect("finished");
    let after = list_backups(&root, MARKER).expect("listing");
    assert_eq!(after.len(), 1, "{after:?}");
    let b = &after[0];
    assert!(b.complete, "{b:?}");
    assert_eq!(b.name, "full-1");
    assert!(
        b.checkpoints
            .as_deref()
            .is_some_and(|c| c.contains("to_lsn = 4242"))
    );
    assert_eq!(b.objects, 5, "four files and the manifest: {b:?}");
    assert!(b.bytes > 23 << 20, "{b:?}");

    let out = tempfile::tempdir().expect("tmp");
    let st = fetch(
        &loc,
        out.path(),
        &ExtractOptions::default().with_parallel(3),
        MARKER,
    )
    .expect("fetched");
    assert_eq!(st.files, 4);
    assert!(std::fs::read(out.path().join("ibdata1")).expect("ibdata1") == big);
    assert_eq!(
        std::fs::read(out.path().join("db/t1.ibd")).expect("t1"),
        pattern(16384 * 7, 1)
    );
    assert!(
        !out.path().join("db/stale.ibd").exists(),
        "a taken-back file came back"
    );
    assert!(out.path().join(MANIFEST).exists());

    // a damaged object is named, and not left behind looking whole
    let stored = s3.bucket_dir("nightly").join("db1/full-1/db/t1.ibd");
    let mut bytes = std::fs::read(&stored).expect("object file of s3s-fs");
    bytes[5000] ^= 0x40;
    std::fs::write(&stored, &bytes).expect("damaged");
    let out2 = tempfile::tempdir().expect("tmp");
    match fetch(&loc, out2.path(), &ExtractOptions::default(), MARKER) {
        Err(SinkError::ObjectMismatch { path, problem, .. }) => {
            assert_eq!(path, "db/t1.ibd");
            assert!(problem.contains("XXH3-128"), "{problem}");
        }
        other => panic!("a damaged object was not caught: {other:?}"),
    }
    assert!(!out2.path().join("db/t1.ibd").exists());

    // the same name again is refused: a rerun goes under a new name
    assert!(matches!(create(loc, opts), Err(SinkError::NotEmpty { .. })));
}

/// A file abandoned in the middle of its multipart upload (the copy failed
/// elsewhere) leaves no parts in the store: the upload is aborted.
#[test]
fn an_abandoned_multipart_upload_is_aborted() {
    let s3 = StoreServer::start(StoreKind::S3).expect("s3 server");
    s3.make_bucket("nightly").expect("bucket");
    let opts = options(&s3, S3_SECRET_KEY);
    let loc = ObjectLocation::parse("s3://nightly/abandoned", &opts).expect("url");
    let sink = create(loc, opts).expect("created");
    let data_root = s3
        .bucket_dir("nightly")
        .parent()
        .expect("data root")
        .to_path_buf();
    let parts = || {
        std::fs::read_dir(&data_root)
            .expect("data root")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
            .count()
    };
    let mut f = sink.open("ibdata1", 0).expect("open");
    for _ in 0..3 {
        f.write(&pattern(5 << 20, 9)).expect("a part");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while parts() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(parts() >= 2, "the parts never reached the store");
    drop(f);
    assert_eq!(parts(), 0, "parts of an abandoned upload stay in the store");
    assert!(
        !s3.bucket_dir("nightly").join("abandoned/ibdata1").exists(),
        "an abandoned upload became an object"
    );
}

/// An object the store lost after acknowledging it fails the final check,
/// and the backup keeps its incomplete marker.
#[test]
fn an_object_lost_after_its_upload_fails_the_final_listing() {
    let s3 = StoreServer::start(StoreKind::S3).expect("s3 server");
    s3.make_bucket("nightly").expect("bucket");
    let opts = options(&s3, S3_SECRET_KEY);
    let loc = ObjectLocation::parse("s3://nightly/lost", &opts).expect("url");
    let sink = create(loc.clone(), opts).expect("created");
    upload(&sink, "db/t1.ibd", &pattern(16384, 1), 16384);
    upload(&sink, "db/t2.ibd", &pattern(16384, 2), 16384);
    std::fs::remove_file(s3.bucket_dir("nightly").join("lost/db/t2.ibd")).expect("lost");
    match finish(&sink) {
        Err(SinkError::ObjectCheck { path, problem, .. }) => {
            assert_eq!(path, "db/t2.ibd");
            assert!(problem.contains("missing"), "{problem}");
        }
        other => panic!("a lost object passed the final check: {other:?}"),
    }
    assert!(
        s3.bucket_dir("nightly").join("lost").join(MARKER).exists(),
        "the incomplete marker went before the check passed"
    );
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_named() {
    let s3 = StoreServer::start(StoreKind::S3).expect("s3 server");
    s3.make_bucket("nightly").expect("bucket");
    let bad = options(&s3, "not-the-secret");
    let loc = ObjectLocation::parse("s3://nightly/x", &bad).expect("url");
    let e = create(loc, bad).expect_err("wrong secret accepted");
    assert!(matches!(e, SinkError::ObjectAuth { .. }), "{e}");
    assert!(e.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{e}");

    let good = options(&s3, S3_SECRET_KEY);
    let loc = ObjectLocation::parse("s3://no-such-bucket/x", &good).expect("url");
    let e = create(loc, good).expect_err("missing bucket accepted");
    assert!(matches!(e, SinkError::NoBucket { .. }), "{e}");
    assert!(e.to_string().contains("no-such-bucket"), "{e}");
}

#[test]
fn a_store_killed_mid_upload_fails_the_upload_and_the_backup_stays_incomplete() {
    let s3 = StoreServer::start(StoreKind::S3).expect("s3 server");
    s3.make_bucket("nightly").expect("bucket");
    let opts = options(&s3, S3_SECRET_KEY);
    let loc = ObjectLocation::parse("s3://nightly/cut", &opts).expect("url");
    let sink = create(loc.clone(), opts.clone()).expect("created");
    upload(&sink, "db/t1.ibd", &pattern(16384, 1), 16384);

    let mut f = sink.open("ibdata1", 0).expect("open");
    let piece = pattern(1 << 20, 3);
    for _ in 0..12 {
        f.write(&piece).expect("parts before the cut");
    }
    s3.kill().expect("killed");
    let mut failed = None;
    for _ in 0..12 {
        if let Err(e) = f.write(&piece) {
            failed = Some(e);
            break;
        }
    }
    let e = match failed {
        Some(e) => e,
        None => f.close().expect_err("an upload to a dead store completed"),
    };
    assert!(matches!(e, SinkError::ObjectStore { .. }), "{e}");
    assert!(e.to_string().contains("ibdata1"), "{e}");
    assert!(finish(&sink).is_err(), "a dead store's backup finished");

    // the store comes back: the backup is there, marked incomplete, and
    // refused; a rerun under a new name succeeds
    drop(sink);
    s3.restart().expect("restarted");
    let root = ObjectLocation::parse("s3://nightly", &opts).expect("url");
    let listed = list_backups(&root, MARKER).expect("listing");
    assert!(
        listed.iter().any(|b| b.name == "cut" && !b.complete),
        "the cut backup is not listed as incomplete: {listed:?}"
    );
    let out = tempfile::tempdir().expect("tmp");
    let e = fetch(&loc, out.path(), &ExtractOptions::default(), MARKER)
        .expect_err("an incomplete backup was fetched");
    assert!(matches!(e, SinkError::IncompleteBackup { .. }), "{e}");
    let rerun = create(root.child("cut-2"), opts).expect("a new name");
    upload(&rerun, "db/t1.ibd", &pattern(16384, 1), 16384);
    finish(&rerun).expect("the rerun finished");
}
