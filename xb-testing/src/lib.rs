//! Test support for xb: real database servers started on 127.0.0.1 by the
//! project's own `scripts/db.sh`, one fresh instance per test.

pub mod fixtures;
pub mod load;
pub mod objstore;
pub mod server;
pub mod vendor;
pub mod verify;
