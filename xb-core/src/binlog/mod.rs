//! The binary log archive: the source's binlog files copied as they are
//! written, so a restore can replay them past a backup's point
//! (point-in-time recovery).
//!
//! [`format`] is the file format (pure), [`archive`] the archiver that
//! follows a server over the replication protocol, [`remote`] its copy in
//! object storage.

pub mod archive;
pub mod format;
pub mod remote;

pub use archive::{ArchiveError, ArchiveOptions, ArchiveStatus, run};
