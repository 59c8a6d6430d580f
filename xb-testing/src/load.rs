//! A write load that a test drives itself while a backup runs.
//!
//! It plays the part sysbench `oltp_write_only` plays in a DBA's rehearsal:
//! several connections run small transactions (insert, update, delete) on
//! InnoDB tables, and optionally write MyISAM and Aria tables too, until told
//! to stop. Every committed change reaches the binlog, so a restore can be
//! rolled forward to the source's final state and compared table by table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, Pool};

/// What the load writes to.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Schema holding the tables (created if missing).
    pub schema: String,
    /// Number of InnoDB tables `sbtest1..N`.
    pub innodb_tables: usize,
    /// Rows inserted into each table by [`prepare`].
    pub rows_per_table: usize,
    /// Also write a MyISAM table `my1`.
    pub non_innodb: bool,
    /// Also write an Aria table `aria1` (MariaDB only).
    pub aria: bool,
    /// Also write a MyRocks table `rocks1` (the ROCKSDB plugin must be loaded).
    pub rocksdb: bool,
    /// Concurrent writer connections.
    pub writers: usize,
    /// Length of the `pad` column: larger rows make the data set grow faster.
    pub pad_len: usize,
    /// Create the InnoDB tables with `DATA DIRECTORY` = this absolute
    /// directory, so their files live outside the datadir.
    pub data_directory: Option<std::path::PathBuf>,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            schema: "xbload".into(),
            innodb_tables: 4,
            rows_per_table: 2_000,
            non_innodb: false,
            aria: false,
            rocksdb: false,
            writers: 4,
            pad_len: 60,
            data_directory: None,
        }
    }
}

/// Counters of what the load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Transactions committed.
    pub commits: u64,
}

fn table_names(spec: &LoadSpec) -> Vec<(String, &'static str)> {
    let mut names: Vec<(String, &'static str)> = (1..=spec.innodb_tables)
        .map(|i| (format!("sbtest{i}"), "InnoDB"))
        .collect();
    if spec.non_innodb {
        names.push(("my1".into(), "MyISAM"));
    }
    if spec.aria {
        names.push(("aria1".into(), "Aria"));
    }
    if spec.rocksdb {
        names.push(("rocks1".into(), "ROCKSDB"));
    }
    names
}

/// Creates the schema and tables and fills them (idempotent: drops first).
///
/// # Errors
/// The driver's error.
pub async fn prepare(opts: Opts, spec: &LoadSpec) -> Result<(), mysql_async::Error> {
    let mut conn = mysql_async::Conn::new(opts).await?;
    let s = &spec.schema;
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{s}`"))
        .await?;
    conn.query_drop(format!("CREATE DATABASE `{s}`")).await?;
    for (t, engine) in table_names(spec) {
        let place = match &spec.data_directory {
            Some(d) if engine == "InnoDB" => format!(" DATA DIRECTORY = '{}'", d.display()),
            _ => String::new(),
        };
        conn.query_drop(format!(
            "CREATE TABLE `{s}`.`{t}` (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', \
             pad VARCHAR(2000) NOT NULL DEFAULT '', KEY k_1 (k)) ENGINE={engine}{place}"
        ))
        .await?;
        let mut done = 0;
        while done < spec.rows_per_table {
            let n = (spec.rows_per_table - done).min(500);
            let values: Vec<String> = (0..n)
                .map(|i| {
                    let v = done + i;
                    format!(
                        "({}, '{}', REPEAT('p{}', {}))",
                        v * 7 % 1000,
                        v,
                        v % 10,
                        spec.pad_len / 2
                    )
                })
                .collect();
            conn.query_drop(format!(
                "INSERT INTO `{s}`.`{t}` (k, c, pad) VALUES {}",
                values.join(",")
            ))
            .await?;
            done += n;
        }
    }
    conn.disconnect().await?;
    Ok(())
}

/// A running write load; stop it with [`WriteLoad::stop`].
#[derive(Debug)]
pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), mysql_async::Error>>>,
    pool: Pool,
}

impl WriteLoad {
    /// Starts `spec.writers` writer tasks on the current tokio runtime.
    #[must_use]
    pub fn start(opts: Opts, spec: &LoadSpec) -> WriteLoad {
        let pool = Pool::new(opts);
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let tables = table_names(spec);
        let tasks = (0..spec.writers)
            .map(|w| {
                let pool = pool.clone();
                let stop = Arc::clone(&stop);
                let commits = Arc::clone(&commits);
                let tables = tables.clone();
                let schema = spec.schema.clone();
                let pad = spec.pad_len;
                tokio::spawn(async move {
                    writer(pool, w, &schema, &tables, pad, &stop, &commits).await
                })
            })
            .collect();
        WriteLoad {
            stop,
            commits,
            tasks,
            pool,
        }
    }

    /// Transactions committed so far.
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` more transactions have committed (so a test
    /// knows the load really runs during the step it cares about).
    pub async fn wait_for_commits(&self, n: u64) {
        let target = self.commits() + n;
        while self.commits() < target && !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stops the writers and waits for them; the first writer error, if any.
    ///
    /// # Errors
    /// The first error a writer hit (a load that silently died would make a
    /// backup-under-load test prove nothing).
    pub async fn stop(self) -> Result<LoadStats, mysql_async::Error> {
        self.stop.store(true, Ordering::Relaxed);
        let mut first_err = None;
        for t in self.tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(join) => {
                    first_err.get_or_insert(mysql_async::Error::Other(Box::new(join)));
                }
            }
        }
        self.pool.disconnect().await?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(LoadStats {
                commits: self.commits.load(Ordering::Relaxed),
            }),
        }
    }
}

/// Runs `statements` (in a transaction when the engine has them).
async fn transaction(
    conn: &mut mysql_async::Conn,
    transactional: bool,
    statements: &[String],
) -> Result<(), mysql_async::Error> {
    if transactional {
        conn.query_drop("START TRANSACTION").await?;
    }
    for s in statements {
        conn.query_drop(s).await?;
    }
    if transactional {
        conn.query_drop("COMMIT").await?;
    }
    Ok(())
}

/// One writer: a loop of small mixed transactions over all tables.
async fn writer(
    pool: Pool,
    w: usize,
    schema: &str,
    tables: &[(String, &'static str)],
    pad: usize,
    stop: &AtomicBool,
    commits: &AtomicU64,
) -> Result<(), mysql_async::Error> {
    let mut conn = pool.get_conn().await?;
    // A cheap deterministic sequence per writer (no RNG dependency needed).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while !stop.load(Ordering::Relaxed) {
        let (t, engine) = &tables[usize::try_from(next() % tables.len() as u64).unwrap_or(0)];
        let id = next() % 2000 + 1;
        let k = next() % 1000;
        let transactional = matches!(*engine, "InnoDB" | "ROCKSDB");
        let statements = [
            format!("UPDATE `{schema}`.`{t}` SET k = k + 1 WHERE id = {id}"),
            format!(
                "UPDATE `{schema}`.`{t}` SET c = CONCAT('w{w}-', {k}) WHERE id = {}",
                (id + 17) % 2000 + 1
            ),
            format!(
                "DELETE FROM `{schema}`.`{t}` WHERE id = {}",
                (id + 101) % 2000 + 1
            ),
            format!(
                "INSERT INTO `{schema}`.`{t}` (k, c, pad) VALUES ({k}, 'ins-{w}', REPEAT('q', {pad}))"
            ),
        ];
        match transaction(&mut conn, transactional, &statements).await {
            Ok(()) => {}
            // a deadlock or lock wait timeout rolls the transaction back: an
            // application retries, and so does the load
            Err(mysql_async::Error::Server(e)) if e.code == 1213 || e.code == 1205 => {
                conn.query_drop("ROLLBACK").await?;
                continue;
            }
            Err(e) => return Err(e),
        }
        commits.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
