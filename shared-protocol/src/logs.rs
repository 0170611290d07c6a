//! The party's log: stderr, one line per request (and the odd warning), as
//! `2026-12-01T21:14:48.781253Z INFO GET /token 200 395µs`. Written for
//! speed, since every request pays for its line: the timestamp's date part
//! is formatted once a second, and a writer thread batches lines into few
//! system calls.

use std::cell::RefCell;
use std::fmt;

use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Starts the log; SQL text only at warn and above (`RUST_LOG` overrides).
/// If stderr cannot keep up, lines past 128,000 waiting are dropped rather
/// than the server slowed. Keep the guard: it flushes what is left when the
/// party stops.
pub fn init_tracing() -> WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let (writer, guard) =
        NonBlockingBuilder::default().thread_name("log-writer").finish(std::io::BufWriter::new(std::io::stderr()));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).event_format(Line).try_init();
    guard
}

/// `<RFC 3339 time, µs> <LEVEL> <message> <fields>`, no colours.
struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        write_time(&mut w)?;
        write!(w, " {:>5} ", event.metadata().level())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

thread_local! {
    /// The last second formatted on this thread: (seconds, `YYYY-MM-DDTHH:MM:SS`).
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

fn write_time(w: &mut Writer<'_>) -> fmt::Result {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != now.as_secs() {
            let mut full = String::with_capacity(32);
            tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut full))?;
            *text = full.get(..19).unwrap_or(&full).to_owned();
            *second = now.as_secs();
        }
        write!(w, "{text}.{:06}Z", now.subsec_micros())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_time_level_message() {
        let mut out = String::new();
        write_time(&mut Writer::new(&mut out)).unwrap();
        // 2026-12-01T21:14:48.781253Z
        assert_eq!(out.len(), 27, "{out}");
        assert_eq!((&out[4..5], &out[10..11], &out[19..20], &out[26..]), ("-", "T", ".", "Z"), "{out}");
        let mut again = String::new();
        write_time(&mut Writer::new(&mut again)).unwrap();
        assert!(again >= out, "time moves forward: {out} then {again}");
    }
}
