//! The party's log: stderr, one line per request (and the odd warning), as
//! `2026-12-01T21:14:48.781253Z INFO GET /token 200 395µs`. Written for
//! speed, since every request pays for its line: the timestamp's date part
//! is formatted once a second, and lines are appended to a buffer that a
//! writer thread hands to stderr every few milliseconds in one write. A
//! channel that wakes its reader for each line (as tracing-appender's does)
//! cost a futex wake, two context switches and a `write(2)` per request: 5-10%
//! of the token endpoint on one core.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::locks;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// How often the writer thread hands the buffer to stderr: what a crash can lose.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// The most the buffer holds; past it lines are dropped (and counted) rather
/// than the server slowed or its memory grown, if stderr cannot keep up.
const MAX_BUFFERED: usize = 4 * 1024 * 1024;

/// Starts the log; SQL text only at warn and above (`RUST_LOG` overrides).
/// Keep the guard: dropping it writes what is left.
pub fn init_tracing() -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let (writer, guard) = batched(io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).event_format(Line).try_init();
    guard
}

/// A log buffer shared by every thread that logs and the one that writes it out.
#[derive(Default)]
struct Buffer {
    lines: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stopping: AtomicBool,
}

impl Buffer {
    fn append(&self, line: &[u8]) {
        let mut lines = locks::lock(&self.lines);
        if lines.len() + line.len() > MAX_BUFFERED {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            lines.extend_from_slice(line);
        }
    }

    /// Swaps the buffered lines into `spare` (so both allocations are reused).
    fn take(&self, spare: &mut Vec<u8>) {
        spare.clear();
        std::mem::swap(&mut *locks::lock(&self.lines), spare);
    }
}

/// The [`MakeWriter`] the subscriber writes each formatted line through.
#[derive(Clone)]
struct BatchWriter(Arc<Buffer>);

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        &self.0
    }
}

impl Write for &Buffer {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stops the writer thread when dropped, after it wrote out what was buffered.
pub struct LogGuard {
    buffer: Arc<Buffer>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.buffer.stopping.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A writer for the subscriber and the guard of the thread that moves its
/// lines to `out` every [`FLUSH_EVERY`].
fn batched<W: Write + Send + 'static>(mut out: W) -> (BatchWriter, LogGuard) {
    let buffer = Arc::new(Buffer::default());
    let shared = buffer.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            let mut batch = Vec::new();
            loop {
                std::thread::park_timeout(FLUSH_EVERY);
                let stopping = shared.stopping.load(Ordering::Relaxed);
                shared.take(&mut batch);
                let dropped = shared.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let _ = writeln!(batch, "{dropped} log lines dropped: the log could not keep up");
                }
                // A log that cannot be written has nowhere to report it.
                let _ = out.write_all(&batch).and_then(|()| out.flush());
                if stopping {
                    return;
                }
            }
        })
        .ok();
    (BatchWriter(buffer.clone()), LogGuard { buffer, thread })
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

    /// What the writer thread wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone());
        for i in 0..1000 {
            writer.make_writer().write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
    }

    #[test]
    fn past_the_buffer_limit_lines_are_dropped_and_counted() {
        let buffer = Buffer::default();
        let line = vec![b'x'; 1024];
        for _ in 0..MAX_BUFFERED / 1024 + 10 {
            buffer.append(&line);
        }
        assert_eq!(buffer.lines.lock().unwrap().len(), MAX_BUFFERED);
        assert_eq!(buffer.dropped.load(Ordering::Relaxed), 10);
        let mut spare = Vec::new();
        buffer.take(&mut spare);
        assert_eq!((spare.len(), buffer.lines.lock().unwrap().len()), (MAX_BUFFERED, 0));
    }
}
