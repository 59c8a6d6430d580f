//! `xb-cli verify`: a backup checked without a server (see
//! `xb_core::verify`). Exit 0 when sound, 3 when a check failed (each named,
//! file by file), 1 when the backup cannot be read at all.

use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;

/// Options of `xb-cli verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The backup directory, as taken (prepare changes its files).
    #[arg(value_name = "DIR", required_unless_present = "stream")]
    pub dir: Option<PathBuf>,
    /// Verify an xbstream instead (`-` for standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "dir")]
    pub stream: Option<PathBuf>,
    /// The backup an incremental DIR was taken on: its to_lsn must be DIR's from_lsn.
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
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
    let (what, report) = match (&args.dir, &args.stream) {
        (Some(dir), _) => (
            dir.display().to_string(),
            xb_core::verify::verify_dir(dir, args.base.as_deref())?,
        ),
        (None, Some(f)) if f.as_os_str() != "-" => {
            let file = std::fs::File::open(f)
                .with_context(|| format!("cannot open stream {}", f.display()))?;
            (
                f.display().to_string(),
                xb_core::verify::verify_stream(BufReader::with_capacity(1 << 20, file))?,
            )
        }
        (None, _) => (
            "standard input".to_string(),
            xb_core::verify::verify_stream(BufReader::with_capacity(
                1 << 20,
                std::io::stdin().lock(),
            ))?,
        ),
    };
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
        println!(
            "{what}: {} files ({} bytes) against the manifest, {} InnoDB pages, redo to LSN {}: {}",
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
