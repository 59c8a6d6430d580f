//! One output style for everything xb writes to standard error: every line
//! is `2026-12-03 08:55:01 xb: …`, whether it is a phase, a warning, an
//! error and its `hint:`, or an event the library logged through
//! `tracing`. A DBA reading a cron log sees one kind of line with one
//! clock, and a live progress bar on a terminal is lifted while a line is
//! written and drawn again under it, never broken by it.

use std::io::Write;
use std::sync::Mutex;

use indicatif::ProgressBar;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The bar being drawn, if any: lines are written around it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn bar() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    BAR.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Draws `bar` from now on; lines are written above it.
pub fn show_bar(bar_now: ProgressBar) {
    *bar() = Some(bar_now);
}

/// Takes the bar off the terminal (the copy ended, or failed).
pub fn clear_bar() {
    if let Some(b) = bar().take() {
        b.finish_and_clear();
    }
}

/// The local time as every line starts with it.
fn stamp() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Writes whole lines (each already stamped), lifting the bar around them.
fn write_lines(text: &str) {
    let write = || {
        let mut err = std::io::stderr().lock();
        // standard error gone (a closed pipe): nothing better to do
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    };
    let guard = bar();
    match guard.as_ref() {
        Some(b) if !b.is_hidden() => b.suspend(write),
        _ => write(),
    }
}

/// `… xb: {text}`: a phase, a result, a note.
pub fn line(text: &str) {
    write_lines(&stamped("", text));
}

/// `… xb: warning: {text}`.
pub fn warning(text: &str) {
    write_lines(&stamped("warning: ", text));
}

/// `… xb: error: {text}` and, when there is one, `… xb: hint: {hint}`.
pub fn error(text: &str, hint: Option<&str>) {
    let mut s = stamped("error: ", text);
    if let Some(h) = hint {
        s.push_str(&stamped("hint: ", h));
    }
    write_lines(&s);
}

/// Every line of `text` stamped, with `kind` after `xb: ` on each.
fn stamped(kind: &str, text: &str) -> String {
    let now = stamp();
    let mut s = String::with_capacity(text.len() + 32);
    for l in text.lines() {
        s.push_str(&now);
        s.push_str(" xb: ");
        s.push_str(kind);
        s.push_str(l);
        s.push('\n');
    }
    if text.is_empty() {
        s.push_str(&now);
        s.push_str(" xb: ");
        s.push_str(kind.trim_end());
        s.push('\n');
    }
    s
}

/// The `tracing` events of the library, in the same style: `xb: ` with the
/// level where it is not `info`, the message, then the fields as `k=v`.
pub struct Format;

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let kind = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::INFO => "",
            Level::DEBUG => "debug: ",
            Level::TRACE => "trace: ",
        };
        write!(w, "{} xb: {kind}", stamp())?;
        ctx.format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Where the `tracing` lines go: standard error, around the bar.
pub struct Stderr;

/// One event's text, written whole when `tracing` is done with it.
pub struct Pending(Vec<u8>);

impl Write for Pending {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            write_lines(&String::from_utf8_lossy(&self.0));
        }
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Pending;
    fn make_writer(&'a self) -> Pending {
        Pending(Vec::with_capacity(256))
    }
}

/// Sends the library's `tracing` events (filtered by `XB_LOG`, `info` if
/// unset) through [`Format`] to standard error.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("XB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(Stderr)
        .with_ansi(false)
        .event_format(Format)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_a_message_is_stamped_with_its_kind() {
        let s = stamped("hint: ", "first\nsecond");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2, "{s}");
        for (l, want) in lines.iter().zip(["first", "second"]) {
            let (time, rest) = l.split_at(19);
            assert!(
                chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S").is_ok(),
                "{l}"
            );
            assert_eq!(rest, format!(" xb: hint: {want}"));
        }
    }
}
