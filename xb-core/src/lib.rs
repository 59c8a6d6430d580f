//! Backup orchestration: the `BackupPlan` builder and its execution against a
//! live MySQL-family server.

pub mod checkpoints;
pub mod plan;
pub mod prepare;
pub mod run;
