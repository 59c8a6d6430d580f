//! InnoDB on-disk formats needed by a hot physical backup: the redo log
//! (checkpoint lookup, LSN → file offset, log scanning and validation) and
//! tablespace pages (page size, checksums, LSN, torn-read detection).
//!
//! This crate is pure: no SQL, no threads. Live files are read with
//! positioned reads (never mmap: a live file can shrink under us).
pub mod be;
pub mod delta;
pub mod direct;
pub mod iobuf;
pub mod pagecheck;
pub mod pagereader;
pub mod pagetrack;
pub mod redo;
pub mod redo105;
pub mod redo105_names;
pub mod redo108;
pub mod redo108_names;
pub mod redo8030;
pub mod redo_classic;
pub mod redo_classic_backup;
pub mod redo_sizes;
