//! Object storage on the command line: the options every command that
//! talks to a store shares, and `xb-cli list`.

use std::time::Duration;

use anyhow::Context;
use xb_core::checkpoints::Checkpoints;
use xb_core::prepare::INCOMPLETE_MARKER;
use xb_core::run::meta::utc;
use xb_sink::object::{ObjectLocation, ObjectOptions, list_backups};

/// How xb talks to an object store. Credentials are never options: they
/// come from each cloud's environment variables and config files
/// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials with
/// AWS_PROFILE, AWS_ENDPOINT_URL for S3-compatible stores;
/// AZURE_STORAGE_ACCOUNT_NAME/AZURE_STORAGE_ACCOUNT_KEY;
/// GOOGLE_APPLICATION_CREDENTIALS).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Multipart part size in MiB (at least 5); a file up to this size is
    /// one PUT. Memory: (copy threads + 2 + --object-concurrency) parts at most.
    #[arg(long, default_value_t = 8, value_name = "MIB", value_parser = clap::value_parser!(u16).range(5..=5120))]
    pub object_part_size: u16,
    /// Parts uploaded at once over the whole backup.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub object_concurrency: u16,
    /// Give up on a request that keeps failing with a retryable error
    /// (5xx, 429, a broken connection) after this many seconds of retries
    /// with backoff. Other errors are not retried.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub object_retry_timeout: u64,
}

impl StoreArgs {
    /// The library's options.
    pub fn options(&self) -> ObjectOptions {
        ObjectOptions::default()
            .with_part_size(usize::from(self.object_part_size) << 20)
            .with_concurrency(usize::from(self.object_concurrency))
            .with_retries(10, Duration::from_secs(self.object_retry_timeout))
    }

    /// Parses a location URL with these options.
    ///
    /// # Errors
    /// The URL cannot be used (the error says why).
    pub fn location(&self, url: &str) -> Result<ObjectLocation, xb_sink::SinkError> {
        ObjectLocation::parse(url, &self.options())
    }
}

/// Options of `xb-cli list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Where the backups are: s3://BUCKET/PREFIX, azure://CONTAINER/PREFIX,
    /// gs://BUCKET/PREFIX or file:///DIR.
    #[arg(value_name = "URL")]
    pub url: String,
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// One row of the listing.
#[derive(Debug, serde::Serialize)]
struct Row {
    name: String,
    complete: bool,
    backup_type: Option<String>,
    from_lsn: Option<u64>,
    to_lsn: Option<u64>,
    objects: u64,
    bytes: u64,
    last_modified: i64,
}

/// Runs `xb-cli list`.
///
/// # Errors
/// The store's error (it names the location and the fix).
pub fn list(args: &ListArgs) -> anyhow::Result<()> {
    let loc = args.store.location(&args.url)?;
    let backups = list_backups(&loc, INCOMPLETE_MARKER)?;
    let rows: Vec<Row> = backups
        .into_iter()
        .map(|b| {
            let cp = b
                .checkpoints
                .as_deref()
                .and_then(|t| Checkpoints::parse(t).ok());
            Row {
                name: b.name,
                complete: b.complete,
                backup_type: cp.as_ref().map(|c| c.backup_type.clone()),
                from_lsn: cp.as_ref().map(|c| c.from_lsn),
                to_lsn: cp.as_ref().map(|c| c.to_lsn),
                objects: b.objects,
                bytes: b.bytes,
                last_modified: b.last_modified,
            }
        })
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).context("listing as JSON")?
        );
        return Ok(());
    }
    println!(
        "{:<32} {:<10} {:<14} {:>14} {:>14} {:>12} {:<20}",
        "NAME", "STATE", "TYPE", "FROM_LSN", "TO_LSN", "SIZE", "TIME (UTC)"
    );
    for r in &rows {
        let lsn = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
        println!(
            "{:<32} {:<10} {:<14} {:>14} {:>14} {:>12} {:<20}",
            r.name,
            if r.complete { "complete" } else { "INCOMPLETE" },
            r.backup_type.as_deref().unwrap_or("-"),
            lsn(r.from_lsn),
            lsn(r.to_lsn),
            human(r.bytes),
            utc(r.last_modified),
        );
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    let mut v = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 {
            return format!("{v:.1} {unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.1} TiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_as_people_write_them() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_796_281_200), "2026-12-03 07:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(human(512), "512.0 B");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
