//! Runbook: what `scripts/db.sh` says when it is used wrongly. Each case
//! exits non-zero with a sentence naming the problem, and touches nothing.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use std::net::TcpListener;
use std::process::Command;

use xb_testing::server::{Flavor, TestServer, db_script};

fn db(args: &[&str]) -> (bool, String) {
    let out = Command::new(db_script()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_port_taken_by_another_process_is_refused() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, err) = db(&["mariadb1011", "start", data.to_str().unwrap(), &port]);
    assert!(!ok);
    assert!(
        err.contains(&format!("port {port} is already in use")),
        "{err}"
    );
    assert!(!data.join("mysql").exists(), "nothing initialised");
}

#[test]
fn a_datadir_of_another_flavour_is_refused() {
    let mut s = TestServer::start(Flavor::MariaDb105).unwrap();
    s.stop().unwrap();
    let d = s.datadir().to_str().unwrap().to_string();
    let port = xb_testing::server::free_port().unwrap().to_string();
    let (ok, err) = db(&["mariadb1011", "start", &d, &port]);
    assert!(!ok);
    assert!(
        err.contains("belongs to flavor mariadb105, not mariadb1011"),
        "{err}"
    );
}

#[test]
fn a_non_empty_directory_that_is_no_datadir_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("precious.txt"), b"keep").unwrap();
    let port = xb_testing::server::free_port().unwrap().to_string();
    let (ok, err) = db(&["mariadb1011", "start", data.to_str().unwrap(), &port]);
    assert!(!ok);
    assert!(
        err.contains("is not empty but not an initialized mariadb1011 datadir"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 1);
}

#[test]
fn an_unknown_flavour_is_named() {
    let (ok, err) = db(&["postgres", "start", "/tmp/x", "1"]);
    assert!(!ok);
    assert!(err.contains("unknown flavour 'postgres'"), "{err}");
}
