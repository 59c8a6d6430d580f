//! Object storage (S3 and S3-compatible stores, Azure Blob, Google Cloud
//! Storage, `file://`) through the `object_store` crate: a backup written
//! straight into a bucket with the layout of a directory backup, and the
//! way back.

mod files;
mod location;
mod read;
mod rt;
mod sink;

pub use crate::manifest::{MANIFEST, Manifest, ManifestEntry};
pub use files::{Listed, ObjectFiles};
pub use location::{ObjectLocation, ObjectOptions, is_object_url};
pub use read::{ListedBackup, fetch, list_backups, read_objects};
pub use sink::ObjectSink;
