//! The common redo API opens every real server's log, tells its format, and
//! finds the same checkpoint the format's own reader does.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use xb_innodb::redo::{RedoFormat, RedoLog};
use xb_testing::server::{Flavor, TestServer};

#[test]
fn every_flavour_opens_behind_one_api() {
    for (flavor, format) in [
        (Flavor::MariaDb1011, RedoFormat::MariaDb108),
        (Flavor::MariaDb118, RedoFormat::MariaDb108),
        (Flavor::MariaDb105, RedoFormat::MariaDb105),
        (Flavor::MySql97, RedoFormat::MySql8030),
    ] {
        let mut s = TestServer::start(flavor).unwrap();
        s.stop().unwrap(); // a quiet log: the checkpoint does not move
        let mut log = RedoLog::open(s.datadir()).unwrap();
        assert_eq!(log.format(), format, "{flavor:?}");
        let cp = log.latest_checkpoint().unwrap();
        let (file, offset) = log.locate(cp).unwrap().unwrap();
        assert!(offset >= 2048, "{flavor:?} {file:?} {offset}");
        let mut scanner = log.scanner(cp);
        let end = scanner.poll(&mut log, &mut |_| Ok(())).unwrap();
        assert!(
            end >= cp,
            "{flavor:?}: scan from the checkpoint reaches {end} < {cp}"
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let err = RedoLog::open(empty.path()).unwrap_err();
    assert!(err.to_string().contains("no redo log"), "{err}");
    std::fs::write(empty.path().join("ib_logfile0"), [0xAB; 4096]).unwrap();
    let err = RedoLog::open(empty.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown redo format 0xabababab at offset 0"),
        "{err}"
    );
}
