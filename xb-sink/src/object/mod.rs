//! Object storage (S3 and S3-compatible stores, Azure Blob, Google Cloud
//! Storage, `file://`) through the `object_store` crate: a backup written
//! straight into a bucket with the layout of a directory backup, and the
//! way back.

mod location;
mod manifest;
mod read;
mod rt;
mod sink;

pub use location::{ObjectLocation, ObjectOptions, is_object_url};
pub use manifest::{MANIFEST, Manifest, ManifestEntry};
pub use read::{ListedBackup, fetch, list_backups, read_object};
pub use sink::ObjectSink;
