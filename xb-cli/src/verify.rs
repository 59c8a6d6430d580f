//! `xb-cli verify`: a backup (or a chain of them) checked without a server
//! (see `xb_core::verify`), and with `--restore-test` restored in a scratch
//! copy and every table checked by the server. Exit 0 when sound, 3 when a
//! check failed (each named, file by file), 1 when the backup cannot be
//! read at all.

use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;

/// Options of `xb-cli verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The backup directory, as taken (prepare changes its files). Several:
    /// a chain, the full first, then each incremental on the one before.
    #[arg(value_name = "DIR", required_unless_present = "stream")]
    pub dir: Vec<PathBuf>,
    /// Verify an xbstream instead (`-` for standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "dir")]
    pub stream: Option<PathBuf>,
    /// The backup an incremental DIR was taken on: its to_lsn must be DIR's from_lsn.
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Also restore the backup (the chain) in a scratch copy: prepare it
    /// with the matching server, which then runs CHECK TABLE on every table
    /// and shuts down. The backup itself is not changed.
    #[arg(long, conflicts_with_all = ["stream", "base"])]
    pub restore_test: bool,
    /// Where the restore test's copy goes (room for the whole backup); kept
    /// there when the test fails. Default: the system's temporary directory.
    #[arg(long, value_name = "DIR", requires = "restore_test")]
    pub scratch: Option<PathBuf>,
    #[command(flatten)]
    pub server: crate::prepare::ServerArgs,
    /// One JSON document on standard output instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Exit code when a check failed.
pub const FAILED: u8 = 3;

/// Runs `xb-cli verify`; returns the exit code.
///
/// # Errors
/// The backup cannot be read at all.
pub fn run(args: &VerifyArgs) -> anyhow::Result<u8> {
    let (what, mut report) = match (args.dir.as_slice(), &args.stream) {
        ([dir], _) => (
            dir.display().to_string(),
            xb_core::verify::verify_dir(dir, args.base.as_deref())?,
        ),
        ([first, .., last], _) => (
            format!("the chain {} … {}", first.display(), last.display()),
            xb_core::verify::verify_chain(&args.dir)?,
        ),
        ([], Some(f)) if f.as_os_str() != "-" => {
            let file = std::fs::File::open(f)
                .with_context(|| format!("cannot open stream {}", f.display()))?;
            (
                f.display().to_string(),
                xb_core::verify::verify_stream(BufReader::with_capacity(1 << 20, file))?,
            )
        }
        ([], _) => (
            "standard input".to_string(),
            xb_core::verify::verify_stream(BufReader::with_capacity(
                1 << 20,
                std::io::stdin().lock(),
            ))?,
        ),
    };
    if args.restore_test {
        if report.problems.is_empty() {
            crate::out::line(&format!(
                "restore test: preparing a copy of {what} and checking every table"
            ));
            let test = xb_core::verify::RestoreTest {
                scratch: args.scratch.clone().unwrap_or_else(std::env::temp_dir),
                server: args.server.apply(xb_core::prepare::PrepareOptions::new("")),
            };
            xb_core::verify::restore_test(&args.dir, &test, &mut report);
        } else {
            report
                .notes
                .push("no restore test: the backup failed the checks above".into());
        }
    }
    let sound = report.problems.is_empty();
    if args.json {
        let doc = serde_json::json!({
            "backup": what,
            "ok": sound,
            "report": report,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("report as JSON")?
        );
    } else {
        for p in &report.problems {
            println!("FAILED {}: {}", p.file, p.what);
        }
        for n in &report.notes {
            println!("note: {n}");
        }
        let restored = report
            .tables_checked
            .map(|n| format!(", {n} tables restored and checked"))
            .unwrap_or_default();
        println!(
            "{what}: {} files ({} bytes) against the manifest, {} InnoDB pages, redo to LSN {}{restored}: {}",
            report.files,
            report.bytes,
            report.pages,
            report.redo_checked_to,
            if sound {
                "OK".to_string()
            } else {
                format!("{} problem(s)", report.problems.len())
            }
        );
    }
    Ok(if sound { 0 } else { FAILED })
}
