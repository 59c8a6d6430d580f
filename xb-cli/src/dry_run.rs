//! `backup --dry-run`: the checks and the plan, printed for a DBA (or as
//! JSON with `--json`), and an exit code a script can act on.

use std::time::Duration;

use xb_core::plan::BackupPlan;
use xb_core::run::dry_run::{DryRun, Verdict};

use crate::out;

/// How long the server's redo rate is sampled.
const REDO_SAMPLE: Duration = Duration::from_secs(3);

/// Exit code of a dry run whose checks found a problem.
pub const PROBLEMS: u8 = 3;

/// Runs the dry run of `plan`; returns the exit code.
pub async fn run(plan: &BackupPlan, json: bool) -> u8 {
    out::line(&format!(
        "dry run: checking, and sampling the server's redo for {} s; nothing is copied or locked",
        REDO_SAMPLE.as_secs()
    ));
    let d = match plan.dry_run(REDO_SAMPLE).await {
        Ok(d) => d,
        Err(e) => {
            crate::backup::print_failure(&e, None);
            return e.code();
        }
    };
    print(&d);
    if json {
        match serde_json::to_string(&d) {
            Ok(j) => println!("{j}"),
            Err(e) => out::error(&format!("cannot render the dry run as JSON: {e}"), None),
        }
    }
    if d.has_problems() { PROBLEMS } else { 0 }
}

fn mib(b: u64) -> u64 {
    b >> 20
}

fn print(d: &DryRun) {
    let t = d.total();
    out::line(&format!(
        "server {} with its datadir at {}",
        d.server_version, d.datadir
    ));
    out::line(&format!(
        "would copy {} files, {} MiB: InnoDB {} files {} MiB, other engines and metadata {} files {} MiB, Aria {} files {} MiB; and the redo written meanwhile",
        t.files,
        mib(t.bytes),
        d.innodb.files,
        mib(d.innodb.bytes),
        d.non_innodb.files,
        mib(d.non_innodb.bytes),
        d.aria.files,
        mib(d.aria.bytes)
    ));
    for l in &d.locks {
        out::line(&format!(
            "would lock {}: blocks {}; {}",
            l.lock, l.blocks, l.when
        ));
    }
    for c in &d.checks {
        let text = format!("{}: {}", c.name, c.detail);
        match c.verdict {
            Verdict::Ok => out::line(&format!("ok: {text}")),
            Verdict::Warning => out::warning(&text),
            Verdict::Problem => out::error(&text, None),
        }
        if let (Some(h), true) = (&c.hint, c.verdict != Verdict::Ok) {
            out::line(&format!("hint: {h}"));
        }
    }
    let problems = d
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Problem)
        .count();
    if problems == 0 {
        out::line("dry run: nothing in the way of the backup");
    } else {
        out::line(&format!(
            "dry run: {problems} problem(s): the backup would fail or could not be restored"
        ));
    }
}
