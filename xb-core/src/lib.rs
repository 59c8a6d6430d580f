//! Backup orchestration: the [`plan::BackupPlan`] builder and its execution
//! against a live MySQL-family server, and [`prepare`].
//!
//! A backup runs its phases in one order for every server
//! ([`run`] has the list): discover → start the redo copy → protect DDL →
//! copy InnoDB → copy non-InnoDB → consistent point (lock, binlog/GTID,
//! LSN) → the redo copy reaches the point → release → metadata → finish.
//! What differs between servers is supplied by one trait, `Flavour`, with
//! one module per flavour: `run::mariadb` (MariaDB 10.5+) and `run::mysql`
//! (MySQL 8.0.30+). Engine steps are modules a flavour calls: `run::tokudb`
//! and [`run::rocksdb`].
//!
//! The crates below do the I/O and know the formats; this one reaches them
//! only through the seams in [`run::seams`] (the target, live-file
//! readers) and [`run::redo_copy`] (the redo feed and the backup's log
//! file), each returning typed errors that [`error::BackupError`] turns
//! into a stable exit code and a hint.

pub mod binlog;
pub mod checkpoints;
pub mod error;
pub mod optfile;
pub mod pitr;
pub mod plan;
pub mod prepare;
pub mod restore;
pub mod run;
pub mod verify;
