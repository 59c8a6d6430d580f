//! The one trait between the orchestration and a server flavour.
//!
//! `run::backup` runs the phases in the seed's order; a [`Flavour`]
//! supplies the steps that differ between servers (how the redo log is
//! laid out, which statements protect DDL and block commits, where the
//! consistent point is read). Each flavour lives in its own module:
//! `run::mariadb` (MariaDB 10.5+) and `run::mysql` (MySQL 8.0.30+).
//! Engine steps that only some servers have are modules a flavour calls:
//! `run::tokudb` and [`super::rocksdb`].

use std::time::{Duration, Instant};

pub use super::api::LockSpan;
use super::data_copy::{CopyStats, Job, Kind, copy_jobs};
use super::feed::Feed;
use super::locks::Session;
use super::redo_copy::{RedoCopied, RedoCopier};
use super::server::ServerFacts;
use super::{Ctx, Progress};
use crate::checkpoints::Checkpoints;
use crate::error::BackupError;

/// How the backup's redo copy starts: its file in the backup, the header
/// written first, and the server's log followed from the latest checkpoint.
pub struct RedoPlan {
    /// Path of the redo file in the backup.
    pub file: String,
    /// The backup log file's own header.
    pub header: Vec<u8>,
    /// The server's log, positioned at the start checkpoint.
    pub feed: Feed,
}

/// The moment the backup restores to: read while commits were blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistentPoint {
    /// The redo copy must reach this LSN.
    pub lsn: u64,
    /// The server's checkpoint at that moment (`to_lsn`).
    pub checkpoint: u64,
    /// Binlog file, position and GTID set, if the binlog is on.
    pub binlog: Option<(String, u64, String)>,
}

/// What a [`LockSpan`] of DDL blocks.
pub const DDL: &str = "DDL";
/// What a [`LockSpan`] of commits blocks.
pub const COMMITS: &str = "commits";
/// What a [`LockSpan`] of read locks on non-transactional tables blocks.
pub const WRITES: &str = "writes to non-transactional tables";

/// What the steps found on the way, for the summary.
#[derive(Debug, Default)]
pub struct Found {
    /// Data files copied.
    pub stats: CopyStats,
    /// The TokuDB files, on servers with the TokuDB plugin.
    pub tokudb: Option<xb_tokudb::TokuManifest>,
    /// The tablespaces copied (see [`super::spaces::Copied`]).
    pub tablespaces: super::spaces::Copied,
    /// Space ids the server reported before the copy, by the device and
    /// inode of their files: the id of a copied file whose page 0 was not
    /// written yet (see [`super::ddl_fix`]).
    pub listed_ids: std::collections::HashMap<(u64, u64), u32>,
    commits_blocked_since: Option<Instant>,
    commits_blocked: Duration,
    /// When the backup's phases began, for [`LockSpan::taken_at`].
    pub started: Option<Instant>,
    /// The locks that blocked the server, in the order taken.
    pub locks: Vec<LockSpan>,
    /// Spans still open: what is blocked, by which statement, since when.
    open: Vec<(&'static str, String, Instant)>,
}

impl Found {
    /// Drops what was kept of each copied tablespace (its source path, its
    /// space id, the server's ids), once DDL during the copy is settled.
    pub fn forget_tablespaces(&mut self) {
        self.tablespaces = super::spaces::Copied::default();
        self.listed_ids = std::collections::HashMap::new();
        self.stats.spaces = Vec::new();
    }

    /// Nothing found yet; lock times count from now.
    #[must_use]
    pub fn starting_now() -> Self {
        Found {
            started: Some(Instant::now()),
            ..Found::default()
        }
    }

    fn block(&mut self, blocks: &'static str, lock: &str) {
        if !self.open.iter().any(|(b, _, _)| *b == blocks) {
            self.open.push((blocks, lock.to_string(), Instant::now()));
        }
    }

    fn unblock(&mut self, blocks: &'static str) {
        let Some(i) = self.open.iter().position(|(b, _, _)| *b == blocks) else {
            return;
        };
        let (blocks, lock, since) = self.open.remove(i);
        self.locks
            .push(self.span(blocks, lock, since, since.elapsed()));
    }

    fn span(&self, blocks: &'static str, lock: String, since: Instant, held: Duration) -> LockSpan {
        let taken_at = self
            .started
            .map_or(0.0, |s| since.saturating_duration_since(s).as_secs_f64());
        LockSpan {
            blocks,
            lock,
            taken_at,
            held: held.as_secs_f64(),
        }
    }

    /// Commits are blocked from now, by `lock` (BLOCK_COMMIT, a read lock).
    pub fn commits_blocked(&mut self, lock: &str) {
        self.commits_blocked_since.get_or_insert_with(Instant::now);
        self.block(COMMITS, lock);
    }

    /// Commits go on again.
    pub fn commits_unblocked(&mut self) {
        if let Some(t) = self.commits_blocked_since.take() {
            self.commits_blocked += t.elapsed();
        }
        self.unblock(COMMITS);
    }

    /// Commits were blocked for `d` (ending now) by `lock`, taken by a step
    /// that timed it itself.
    pub fn add_commits_blocked(&mut self, lock: &str, d: Duration) {
        self.commits_blocked += d;
        let since = Instant::now().checked_sub(d).unwrap_or_else(Instant::now);
        let span = self.span(COMMITS, lock.to_string(), since, d);
        self.locks.push(span);
    }

    /// Writes to the non-transactional tables are blocked from now, by
    /// `lock` (read locks on just those tables).
    pub fn writes_blocked(&mut self, lock: &str) {
        self.block(WRITES, lock);
    }

    /// Writes to the non-transactional tables go on again.
    pub fn writes_unblocked(&mut self) {
        self.unblock(WRITES);
    }

    /// DDL is blocked from now, by `lock`.
    pub fn ddl_blocked(&mut self, lock: &str) {
        self.block(DDL, lock);
    }

    /// DDL goes on again.
    pub fn ddl_unblocked(&mut self) {
        self.unblock(DDL);
    }

    /// Seconds commits were blocked.
    #[must_use]
    pub fn lock_seconds(&self) -> f64 {
        self.commits_blocked.as_secs_f64()
    }
}

/// What every step gets: the run's settings, the server session with what
/// it holds, progress, the running redo copier, and what was found so far.
pub struct Step<'a> {
    /// Settings and server facts.
    pub ctx: &'a Ctx,
    /// The main connection and the locks it holds.
    pub session: &'a mut Session,
    /// Progress events.
    pub progress: &'a dyn Progress,
    /// The redo copier while it runs: data copies stop as soon as it dies.
    pub copier: Option<&'a RedoCopier>,
    /// Figures for the summary.
    pub found: Found,
}

impl Step<'_> {
    /// Copies `jobs` from the live datadir, stopping if the redo copier dies.
    ///
    /// # Errors
    /// As [`copy_jobs`].
    pub fn copy(&mut self, jobs: Vec<Job>) -> Result<(), BackupError> {
        // every tablespace is taken as copied, and the ones that vanished
        // are taken back after: a list of them all beside the jobs was
        // 10 MB with 100,000 tables
        for j in jobs.iter().filter(|j| j.kind == Kind::Tablespace) {
            self.found
                .tablespaces
                .insert(&super::spaces::canonical(&j.src));
        }
        let stats = copy_jobs(self.ctx, self.progress, jobs, self.copier)?;
        for src in &stats.vanished_from {
            self.found
                .tablespaces
                .remove(&super::spaces::canonical(src));
        }
        self.found.stats.add(stats);
        Ok(())
    }

    /// Lets the redo copy reach the log the server has flushed so far
    /// (all but its last [`UNVOUCHED_TAIL`] bytes),
    /// before a lock that blocks DDL or commits is asked for: the lock then
    /// waits only for the log written since, not for the backlog a busy
    /// server (or a copier short of CPU beside the data copy) leaves.
    ///
    /// # Errors
    /// [`BackupError::Sql`].
    pub async fn catch_up_redo(&mut self) -> Result<(), BackupError> {
        let Some(copier) = self.copier else {
            return Ok(());
        };
        let flushed = super::server::flushed_lsn(self.session.conn()).await?;
        copier.vouch(flushed);
        // the copy holds back the block the log ends in until the end point
        // vouches for it: on a server that writes nothing more, that block
        // is never copied before the end, and waiting for it would only
        // spend the patience below (seen: 5 s under BLOCK_DDL, twice per
        // backup of an idle server)
        let reach = flushed.saturating_sub(UNVOUCHED_TAIL);
        let behind = reach.saturating_sub(copier.copied_lsn());
        if behind == 0 {
            return Ok(());
        }
        if behind >= 1 << 20 {
            self.progress.phase(&format!(
                "redo copy catches up ({} MiB behind) before the lock",
                behind >> 20
            ));
        }
        let patience = Duration::from_secs(5);
        if !tokio::task::block_in_place(|| copier.catch_up(reach, patience)) {
            let left = reach.saturating_sub(copier.copied_lsn());
            self.progress.phase(&format!(
                "warning: the redo copy made no progress for {}s, {} KiB short of the server's log: locking anyway",
                patience.as_secs(),
                left >> 10
            ));
        }
        Ok(())
    }

    /// `SET SESSION lock_wait_timeout` on the main connection.
    ///
    /// # Errors
    /// [`BackupError::Sql`].
    pub async fn set_lock_wait_timeout(&mut self) -> Result<(), BackupError> {
        super::server::set_lock_wait_timeout(self.session.conn(), self.ctx.lock_wait_timeout).await
    }
}

/// Log below the server's flushed LSN that [`Step::catch_up_redo`] does
/// not wait for: more than the block the log ends in (512 bytes to 4 KiB),
/// which the copy hands out only once the end point vouches for it, and
/// little enough that the lock after the catch-up waits for no backlog.
pub const UNVOUCHED_TAIL: u64 = 64 << 10;

/// The non-InnoDB files of a datadir, by when they must be copied.
#[derive(Debug, Default)]
pub struct NonInnodb {
    /// Non-transactional tables and table metadata (MyISAM, CSV, `.frm`, ...).
    pub tables: Vec<Job>,
    /// Aria tables, control file and logs (crash-safe; when each is copied
    /// is the flavour's choice).
    pub aria: Vec<Job>,
}

/// The steps a server flavour supplies, in the order the orchestration
/// calls them (see `run::backup`).
pub trait Flavour: Send {
    /// Phase 2: the backup's redo file and the server's log to follow.
    ///
    /// # Errors
    /// The log cannot be opened, or is not of this flavour's format.
    fn redo(&mut self, facts: &ServerFacts) -> Result<RedoPlan, BackupError>;

    /// Phase 3: from here no DDL changes the set of tablespaces under the
    /// copy (or, with per-table locks, the tables being copied).
    async fn protect_ddl(&mut self, step: &mut Step<'_>) -> Result<(), BackupError>;

    /// Whether [`Flavour::after_innodb`] reads its `copied` list; when not,
    /// it is given an empty one and the copy of the list is saved.
    fn looks_at_copied(&self) -> bool {
        false
    }

    /// Phase 4, after the tablespaces listed at the start were copied:
    /// tablespaces the DDL protection did not cover (created meanwhile).
    /// `copied` holds the tablespaces copied so far (empty unless
    /// [`Flavour::looks_at_copied`]).
    async fn after_innodb(
        &mut self,
        _step: &mut Step<'_>,
        _copied: &[Job],
    ) -> Result<(), BackupError> {
        Ok(())
    }

    /// Phase 5: copy the non-InnoDB files under the lock they need.
    async fn copy_non_innodb(
        &mut self,
        step: &mut Step<'_>,
        files: NonInnodb,
    ) -> Result<(), BackupError>;

    /// Phase 6: commits are blocked; read binlog coordinates, GTID and LSN.
    async fn consistent_point(
        &mut self,
        step: &mut Step<'_>,
    ) -> Result<ConsistentPoint, BackupError>;

    /// `xtrabackup_checkpoints` for this point and the copied redo, in the
    /// shape the flavour's vendor tool writes.
    fn checkpoints(&self, point: &ConsistentPoint, copied: &RedoCopied) -> Checkpoints;

    /// Phase 8: release what the server holds for the backup.
    async fn release(&mut self, step: &mut Step<'_>) -> Result<(), BackupError>;

    /// Phase 9: copies that need no lock any more (a RocksDB checkpoint).
    async fn after_release(&mut self, _step: &mut Step<'_>) -> Result<(), BackupError> {
        Ok(())
    }
}
