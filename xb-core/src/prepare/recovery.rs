//! Recovery by the real server: start its binary on the backup with the
//! backup's InnoDB settings and nothing that could change data, wait until
//! redo apply has finished (the server is ready), shut it down cleanly.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PrepareOptions;
use super::error::{PrepareError, io_err};

/// The `[mysqld]` lines of backup-my.cnf (InnoDB layout of the source).
fn backup_settings(dir: &Path) -> Result<String, PrepareError> {
    let file = dir.join("backup-my.cnf");
    let text = fs::read_to_string(&file).map_err(io_err(&file))?;
    // `loose-`: a setting this server version lacks is skipped, not fatal
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| format!("loose-{l}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn log_tail(file: &Path) -> String {
    let text = fs::read_to_string(file).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// Runs the server on the backup until it is ready, then stops it cleanly.
pub(super) fn recover_with_server(
    opts: &PrepareOptions,
    dir: &Path,
    server: &Path,
) -> Result<Duration, PrepareError> {
    let run = tempfile::Builder::new()
        .prefix("xb-prepare-")
        .tempdir()
        .map_err(io_err(Path::new("/tmp")))?;
    let cnf = run.path().join("prepare.cnf");
    let err_log = run.path().join("server.err");
    let mut text = String::new();
    if let Some(extra) = &opts.server_defaults_file {
        text.push_str(&format!("!include {}\n", extra.display()));
    }
    text.push_str("[mysqld]\n");
    text.push_str(&backup_settings(dir)?);
    let uid_root = fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    text.push_str(&format!(
        "\ndatadir={}\ntmpdir={}\nsocket={}\npid-file={}\nlog-error={}\nskip-networking\nskip-log-bin\n\
         loose-skip-slave-start\nloose-skip-replica-start\ninnodb-buffer-pool-size={}\n{}",
        dir.display(),
        // its own tmpdir: a starting server deletes every '#sql*' file in
        // its tmpdir, which would hurt another server sharing /tmp
        run.path().display(),
        run.path().join("s.sock").display(),
        run.path().join("s.pid").display(),
        err_log.display(),
        opts.use_memory,
        if uid_root { "user=root\n" } else { "" },
    ));
    fs::write(&cnf, text).map_err(io_err(&cnf))?;

    let started = Instant::now();
    let mut child = Command::new(server)
        .arg(format!("--defaults-file={}", cnf.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_err(server))?;
    let failed = |reason: String| PrepareError::ServerFailed {
        dir: dir.to_path_buf(),
        reason,
        log_tail: log_tail(&err_log),
    };
    // Ready means recovery has finished: the server only accepts
    // connections after redo apply.
    loop {
        if let Some(status) = child.try_wait().map_err(io_err(server))? {
            return Err(failed(format!(
                "the server exited during recovery ({status})"
            )));
        }
        let log = fs::read_to_string(&err_log).unwrap_or_default();
        if log.contains("ready for connections") {
            break;
        }
        if started.elapsed() > opts.timeout {
            stop_child(&mut child);
            return Err(failed(format!(
                "recovery did not finish within {:?}",
                opts.timeout
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = terminate(&mut child, opts.timeout).map_err(&failed)?;
    let log = fs::read_to_string(&err_log).unwrap_or_default();
    if !status.success() || !log.contains("Shutdown complete") {
        return Err(failed(format!("unclean shutdown ({status})")));
    }
    // Keep the server's account of the recovery with the backup.
    let keep = dir.join("xb_prepare.log");
    fs::copy(&err_log, &keep).map_err(io_err(&keep))?;
    Ok(started.elapsed())
}

/// Sends SIGTERM (a clean shutdown for mysqld/mariadbd) and waits.
fn terminate(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus, String> {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !kill.success() {
        return Err(format!("kill -TERM {} failed", child.id()));
    }
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if t0.elapsed() > timeout => {
                stop_child(child);
                return Err("the server did not shut down in time".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for the server: {e}")),
        }
    }
}

fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
