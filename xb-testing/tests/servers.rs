//! Every server flavour the project runs starts for real on 127.0.0.1 and
//! answers `SELECT VERSION()` over TCP through mysql_async.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use mysql_async::prelude::Queryable;
use xb_testing::server::{Flavor, TestServer};

async fn version_of(flavor: Flavor) -> String {
    let server = TestServer::start(flavor).expect("server starts");
    let mut conn = server.conn().await.expect("connect over TCP");
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.expect("query");
    conn.disconnect().await.expect("disconnect");
    version.expect("one row")
}

#[tokio::test]
async fn mariadb_10_11_answers_version() {
    let v = version_of(Flavor::MariaDb1011).await;
    assert!(v.starts_with("10.11.") && v.contains("MariaDB"), "{v}");
}

#[tokio::test]
async fn mariadb_10_5_answers_version() {
    let v = version_of(Flavor::MariaDb105).await;
    assert!(v.starts_with("10.5.") && v.contains("MariaDB"), "{v}");
}

#[tokio::test]
async fn mariadb_11_8_answers_version() {
    let v = version_of(Flavor::MariaDb118).await;
    assert!(v.starts_with("11.8.") && v.contains("MariaDB"), "{v}");
}

/// MySQL 9.7 authenticates with caching_sha2_password; the first login after
/// a restart needs the full exchange (TLS or RSA public-key retrieval).
#[tokio::test]
async fn mysql_9_7_answers_version_after_restart() {
    let mut server = TestServer::start(Flavor::MySql97).expect("server starts");
    server.restart().expect("restart empties the auth cache");
    let mut conn = server.conn().await.expect("connect after restart");
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.expect("query");
    let plugin: Option<String> = conn
        .query_first("SELECT plugin FROM mysql.user WHERE user='xb' AND host='%'")
        .await
        .expect("query");
    conn.disconnect().await.expect("disconnect");
    let v = version.expect("one row");
    assert!(v.starts_with("9.7."), "{v}");
    assert_eq!(plugin.as_deref(), Some("caching_sha2_password"));
}
