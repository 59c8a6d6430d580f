//! A SQL session with the prepare server while it is up on the recovered
//! backup (`--export`, `verify --restore-test`): root over the private
//! socket (the server runs with `skip-grant-tables` and no networking),
//! opened once recovered transactions have rolled back, on a runtime of
//! its own (prepare is synchronous).

use std::path::Path;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use super::error::{PrepareError, io_err};

/// The error of session step `step` on the backup in `dir`.
pub(super) fn failed(
    dir: &Path,
    step: &'static str,
) -> impl Fn(mysql_async::Error) -> PrepareError {
    let dir = dir.to_path_buf();
    move |source| PrepareError::Export {
        dir: dir.clone(),
        step,
        source,
    }
}

/// Runs `work` on a session with the server listening on `socket` (the
/// backup in `dir`), once no recovered transaction is left or `timeout`
/// passed, and closes the session.
///
/// # Errors
/// [`PrepareError::Export`] when the session fails, and `work`'s errors.
pub(super) fn on_recovered<T>(
    socket: &Path,
    dir: &Path,
    timeout: Duration,
    work: impl AsyncFnOnce(&mut Conn) -> Result<T, PrepareError>,
) -> Result<T, PrepareError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err(dir))?;
    rt.block_on(async {
        let opts = OptsBuilder::default()
            .user(Some("root"))
            .socket(Some(socket.to_string_lossy().into_owned()));
        let mut conn = Conn::new(opts)
            .await
            .map_err(failed(dir, "connecting to the prepare server"))?;
        wait_for_rollback(&mut conn, timeout).await.map_err(failed(
            dir,
            "waiting for recovered transactions to roll back",
        ))?;
        let out = work(&mut conn).await?;
        conn.disconnect()
            .await
            .map_err(failed(dir, "closing the SQL session"))?;
        Ok(out)
    })
}

/// Waits until no recovered transaction is left (the server rolls them
/// back in the background once it accepts connections), so what the
/// session reads holds committed rows only.
async fn wait_for_rollback(conn: &mut Conn, timeout: Duration) -> Result<(), mysql_async::Error> {
    let t0 = Instant::now();
    loop {
        let n: Option<u64> = conn
            .query_first("SELECT COUNT(*) FROM information_schema.INNODB_TRX")
            .await?;
        if n.unwrap_or(0) == 0 {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            tracing::warn!(
                ?timeout,
                "recovered transactions still rolling back; going on anyway"
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
