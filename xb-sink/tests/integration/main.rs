//! Runbook-style checks of xb-sink: streams xb writes are read by the real
//! tools (mbstream, zstd, lz4), streams the real mariadb-backup writes are
//! read by xb, and no stream, however broken, escapes the target directory.
#![allow(clippy::unwrap_used)]

mod common;
mod encryption;
mod hostile;
mod mariadb_backup;
mod memory;
mod real_tools;
mod roundtrip;
