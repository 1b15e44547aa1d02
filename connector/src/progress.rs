//! Progress of long operations: device waits, lock waits, retry loops and
//! privileged steps that can take minutes (a multipath map flush, a DASD format).
//!
//! A [`Phase`] reports, as a tracing event with target [`TARGET`], how long it has
//! been waiting against its deadline: first after [`FIRST`] (short waits stay
//! silent), then every [`INTERVAL`], never once per poll. Every report has the same
//! structured fields:
//!
//! | field | |
//! |---|---|
//! | `phase` | what is being waited for (`waiting for SCSI disk 2:0:0:1`, `multipath.flush through moord`) |
//! | `elapsed_ms` | since the phase began |
//! | `deadline_ms` | the time the phase has in all (from its start to its deadline) |
//! | `attempt` | the retry loop's attempt, when there is one |
//! | `detail` | what is still missing, when the wait knows |
//! | `done` | `true` on the last event of a phase that reported (it ended, successfully or not) |
//!
//! How they are shown is up to the subscriber: the `moor` CLI keeps them as JSON
//! lines when stderr is not a terminal, and on a terminal rewrites one line in
//! place ([`ProgressLayer`] + [`ProgressLine`]), cleared when the phase ends or any
//! other message is printed.
//!
//! The progress of a privileged step is honest elapsed time: moord answers a
//! typed operation once, when its command has finished (dasdfmt's own progress
//! output is not streamed), so [`during`] reports from a helper thread while the
//! call blocks.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};

/// The tracing target of progress events.
pub const TARGET: &str = "moor::progress";

/// A phase reports for the first time after this long.
pub const FIRST: Duration = Duration::from_secs(2);

/// Then once per this long.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// One report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub phase: String,
    pub elapsed_ms: u64,
    pub deadline_ms: u64,
    pub attempt: Option<u32>,
    pub detail: Option<String>,
}

impl Report {
    fn emit(&self) {
        tracing::info!(
            target: TARGET,
            phase = %self.phase,
            elapsed_ms = self.elapsed_ms,
            deadline_ms = self.deadline_ms,
            attempt = self.attempt,
            detail = self.detail.as_deref(),
            "{}: {} s of {} s",
            self.phase,
            self.elapsed_ms / 1000,
            self.deadline_ms.div_ceil(1000),
        );
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A wait that reports its progress (see the module documentation). Reports only
/// when asked ([`Phase::tick`]) and due; the end of a phase that reported is
/// reported when it is dropped.
#[derive(Debug)]
pub struct Phase {
    name: String,
    start: Instant,
    deadline: Instant,
    next: Instant,
    interval: Duration,
    attempt: Option<u32>,
    detail: Option<String>,
    reported: bool,
}

impl Phase {
    /// A phase beginning now, ending at `deadline` at the latest.
    pub fn new(name: impl Into<String>, deadline: Instant) -> Phase {
        Phase::starting(name, Instant::now(), deadline, FIRST, INTERVAL)
    }

    /// A phase beginning at `start`, first due after `first`, then every
    /// `interval` (tests drive it with made-up instants).
    pub fn starting(
        name: impl Into<String>,
        start: Instant,
        deadline: Instant,
        first: Duration,
        interval: Duration,
    ) -> Phase {
        Phase {
            name: name.into(),
            start,
            deadline,
            next: start + first,
            interval: interval.max(Duration::from_millis(1)),
            attempt: None,
            detail: None,
            reported: false,
        }
    }

    /// When the next report is due.
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// The retry loop's current attempt.
    pub fn set_attempt(&mut self, attempt: u32) {
        self.attempt = Some(attempt);
    }

    /// What is still missing (shown with the next report).
    pub fn set_detail(&mut self, detail: Option<String>) {
        self.detail = detail.filter(|d| !d.is_empty());
    }

    /// The report due at `now`, if one is; schedules the next one (a phase that
    /// was not asked for a while reports once, not once per missed interval).
    pub fn due(&mut self, now: Instant) -> Option<Report> {
        if now < self.next {
            return None;
        }
        while self.next <= now {
            self.next += self.interval;
        }
        self.reported = true;
        Some(Report {
            phase: self.name.clone(),
            elapsed_ms: ms(now.saturating_duration_since(self.start)),
            deadline_ms: ms(self.deadline.saturating_duration_since(self.start)),
            attempt: self.attempt,
            detail: self.detail.clone(),
        })
    }

    /// Report now if a report is due.
    pub fn tick(&mut self) {
        if let Some(r) = self.due(Instant::now()) {
            r.emit();
        }
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if self.reported {
            tracing::info!(
                target: TARGET,
                phase = %self.name,
                elapsed_ms = ms(self.start.elapsed()),
                deadline_ms = ms(self.deadline.saturating_duration_since(self.start)),
                done = true,
                "{}: done after {:.1} s",
                self.name,
                self.start.elapsed().as_secs_f64(),
            );
        }
    }
}

/// Run `f` (a call that blocks, e.g. a privileged step moord answers when its
/// command has finished) while a helper thread reports `phase` against
/// `deadline`. Nothing is reported when `f` returns within [`FIRST`].
pub fn during<R>(phase: impl Into<String>, deadline: Instant, f: impl FnOnce() -> R) -> R {
    let name = phase.into();
    let (stop, stopped) = channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut p = Phase::new(name, deadline);
            loop {
                let wait = p.next_due().saturating_duration_since(Instant::now());
                match stopped.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => p.tick(),
                    _ => break,
                }
            }
        });
        let r = f();
        drop(stop);
        r
    })
}

// ---------------------------------------------------------------------------
// Showing progress on a terminal.

struct LineState<W> {
    out: W,
    /// A progress line is on the screen (no newline after it yet).
    shown: bool,
}

/// Erase the current terminal line and return to its start.
const CLEAR: &str = "\r\x1b[2K";

/// A terminal's stderr shared by the log formatter and the progress line: one
/// progress line, rewritten in place, is cleared before any other output (as the
/// log formatter's writer, see [`MakeWriter`]) so messages never land on it.
pub struct ProgressLine<W: Write + Send> {
    state: Arc<Mutex<LineState<W>>>,
    width: usize,
}

impl<W: Write + Send> Clone for ProgressLine<W> {
    fn clone(&self) -> Self {
        ProgressLine {
            state: self.state.clone(),
            width: self.width,
        }
    }
}

impl<W: Write + Send> std::fmt::Debug for ProgressLine<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressLine")
            .field("width", &self.width)
            .finish()
    }
}

impl ProgressLine<std::io::Stderr> {
    /// stderr, lines cut to `$COLUMNS - 1` characters (79 without it): a longer
    /// line would wrap and `\r` could not rewrite it.
    pub fn stderr() -> Self {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|c| *c > 20)
            .map_or(79, |c| c - 1);
        ProgressLine::new(std::io::stderr(), width)
    }
}

impl<W: Write + Send> ProgressLine<W> {
    pub fn new(out: W, width: usize) -> Self {
        ProgressLine {
            state: Arc::new(Mutex::new(LineState { out, shown: false })),
            width,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LineState<W>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Show `text` as the progress line (replacing the previous one).
    pub fn show(&self, text: &str) {
        let mut st = self.lock();
        let line: String = text.chars().take(self.width).collect();
        let _ = write!(st.out, "{CLEAR}{line}");
        let _ = st.out.flush();
        st.shown = true;
    }

    /// Remove the progress line, if one is shown.
    pub fn clear(&self) {
        let mut st = self.lock();
        clear_shown(&mut st);
    }

    /// The output, for tests.
    pub fn with_output<R>(&self, f: impl FnOnce(&W) -> R) -> R {
        f(&self.lock().out)
    }
}

fn clear_shown<W: Write>(st: &mut LineState<W>) {
    if st.shown {
        let _ = write!(st.out, "{CLEAR}");
        let _ = st.out.flush();
        st.shown = false;
    }
}

/// A log message's writer: the progress line is cleared first, and stays off
/// the screen until the message is written (the lock is held until then).
pub struct LineWriter<'a, W: Write> {
    state: MutexGuard<'a, LineState<W>>,
}

impl<W: Write> std::fmt::Debug for LineWriter<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineWriter")
    }
}

impl<W: Write> Write for LineWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.state.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.state.out.flush()
    }
}

impl<'a, W: Write + Send + 'a> MakeWriter<'a> for ProgressLine<W> {
    type Writer = LineWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        let mut state = self.lock();
        clear_shown(&mut state);
        LineWriter { state }
    }
}

/// Fields of a progress event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    pub phase: String,
    pub elapsed_ms: u64,
    pub deadline_ms: u64,
    pub attempt: Option<u64>,
    pub detail: Option<String>,
    pub done: bool,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "phase" => self.phase = format!("{value:?}"),
            "detail" => self.detail = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "phase" => self.phase = value.to_string(),
            "detail" => self.detail = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "elapsed_ms" => self.elapsed_ms = value,
            "deadline_ms" => self.deadline_ms = value,
            "attempt" => self.attempt = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, u64::try_from(value).unwrap_or(0));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "done" {
            self.done = value;
        }
    }
}

/// The progress line of one report:
/// `moor: waiting for SCSI disk 2:0:0:1 [===>      ] 12s/120s attempt 3 (no block device yet)`.
pub fn render(f: &Fields) -> String {
    const BAR: usize = 10;
    // A phase without time left shows a full bar.
    let filled = (f.elapsed_ms.min(f.deadline_ms) * BAR as u64)
        .checked_div(f.deadline_ms)
        .map_or(BAR, |n| usize::try_from(n).unwrap_or(BAR));
    let mut bar = "=".repeat(filled);
    if filled < BAR {
        bar.push('>');
        bar.push_str(&" ".repeat(BAR - filled - 1));
    }
    let mut s = format!(
        "moor: {} [{bar}] {}s/{}s",
        f.phase,
        f.elapsed_ms / 1000,
        f.deadline_ms.div_ceil(1000)
    );
    if let Some(a) = f.attempt {
        let _ = write!(s, " attempt {a}");
    }
    if let Some(d) = &f.detail {
        let _ = write!(s, " ({d})");
    }
    s
}

/// Shows [`TARGET`] events on a [`ProgressLine`] (a `done` event clears it).
/// Other events are left to the log formatter, which should not print progress
/// events itself (filter out [`TARGET`]) and should write through the same
/// [`ProgressLine`].
#[derive(Debug)]
pub struct ProgressLayer<W: Write + Send> {
    line: ProgressLine<W>,
}

impl<W: Write + Send> ProgressLayer<W> {
    pub fn new(line: ProgressLine<W>) -> Self {
        ProgressLayer { line }
    }
}

impl<S: Subscriber, W: Write + Send + 'static> Layer<S> for ProgressLayer<W> {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if f.done {
            self.line.clear();
        } else {
            self.line.show(&render(&f));
        }
    }
}

/// Whether `meta` is a progress event (for the log formatter's filter).
pub fn is_progress(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == TARGET
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn phase_reports_first_after_the_delay_then_once_per_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Phase::starting("waiting for x", t0, t0 + s(120), s(2), s(2));
        // Polled every 100 ms for 7 s: reports at 2, 4 and 6 s only.
        let mut reports = Vec::new();
        for i in 0..70 {
            let now = t0 + Duration::from_millis(100 * i);
            if let Some(r) = p.due(now) {
                reports.push(r.elapsed_ms);
            }
        }
        assert_eq!(reports, [2000, 4000, 6000]);
        // Not asked for 10 s: one report, and the next is an interval later.
        p.set_attempt(3);
        p.set_detail(Some("no block device yet".into()));
        let r = p.due(t0 + s(16)).expect("due");
        assert_eq!(r.elapsed_ms, 16000);
        assert_eq!(r.deadline_ms, 120_000);
        assert_eq!(r.attempt, Some(3));
        assert_eq!(r.detail.as_deref(), Some("no block device yet"));
        assert!(p.due(t0 + s(17)).is_none());
        assert_eq!(p.next_due(), t0 + s(18));
        // A short wait never reports.
        let mut quick = Phase::starting("q", t0, t0 + s(5), s(2), s(2));
        assert!(quick.due(t0 + Duration::from_millis(1999)).is_none());
    }

    #[test]
    fn render_shows_phase_bar_time_attempt_and_detail() {
        let f = Fields {
            phase: "waiting for SCSI disk 2:0:0:1".into(),
            elapsed_ms: 12_400,
            deadline_ms: 120_000,
            attempt: Some(3),
            detail: Some("no block device yet".into()),
            done: false,
        };
        assert_eq!(
            render(&f),
            "moor: waiting for SCSI disk 2:0:0:1 [=>        ] 12s/120s attempt 3 (no block device yet)"
        );
        let late = Fields {
            phase: "p".into(),
            elapsed_ms: 130_000,
            deadline_ms: 120_000,
            ..Fields::default()
        };
        assert_eq!(render(&late), "moor: p [==========] 130s/120s");
    }

    /// A writer the test can read after the subscriber wrote to it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn terminal_line_is_rewritten_in_place_and_cleared_before_messages_and_at_the_end() {
        let out = Shared::default();
        let line = ProgressLine::new(out.clone(), 60);
        let subscriber = tracing_subscriber::registry()
            .with(ProgressLayer::new(line.clone()))
            .with(
                tracing_subscriber::fmt::layer()
                    .without_time()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(line.clone())
                    .with_filter(tracing_subscriber::filter::filter_fn(|m| !is_progress(m))),
            );
        tracing::subscriber::with_default(subscriber, || {
            let t0 = Instant::now();
            let mut p = Phase::starting(
                "waiting for removal of sdb",
                t0,
                t0 + Duration::from_secs(30),
                Duration::ZERO,
                Duration::from_secs(2),
            );
            p.due(t0).expect("due").emit();
            p.due(t0 + Duration::from_secs(2)).expect("due").emit();
            tracing::warn!("a message");
            p.due(t0 + Duration::from_secs(4)).expect("due").emit();
            drop(p);
            tracing::info!("after");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let parts: Vec<&str> = text.split(CLEAR).collect();
        assert_eq!(parts[0], "", "{text:?}");
        assert!(
            parts[1].starts_with("moor: waiting for removal of sdb [>")
                && parts[1].ends_with("0s/30s"),
            "{text:?}"
        );
        assert!(parts[2].ends_with("2s/30s"), "{text:?}");
        // Cleared before the message, which is a line of its own.
        assert_eq!(parts[3].trim_start(), "WARN a message\n", "{text:?}");
        // The progress line is back, then cleared by the end of the phase, before
        // the next message.
        assert!(parts[4].ends_with("4s/30s"), "{text:?}");
        assert_eq!(parts[5].trim_start(), "INFO after\n", "{text:?}");
        assert_eq!(parts.len(), 6, "{text:?}");
        // Never longer than the width.
        assert!(
            parts
                .iter()
                .all(|p| p.lines().all(|l| l.chars().count() <= 60))
        );
    }

    #[test]
    fn json_keeps_progress_as_structured_fields() {
        let out = Shared::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer({
                    let o = out.clone();
                    move || o.clone()
                }),
        );
        tracing::subscriber::with_default(subscriber, || {
            let t0 = Instant::now();
            let mut p = Phase::starting(
                "multipath.flush through moord",
                t0,
                t0 + Duration::from_secs(60),
                Duration::ZERO,
                Duration::from_secs(2),
            );
            p.set_attempt(2);
            p.due(t0 + Duration::from_millis(1500)).expect("due").emit();
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["target"], TARGET);
        assert_eq!(lines[0]["phase"], "multipath.flush through moord");
        assert_eq!(lines[0]["elapsed_ms"], 1500);
        assert_eq!(lines[0]["deadline_ms"], 60_000);
        assert_eq!(lines[0]["attempt"], 2);
        assert_eq!(lines[1]["done"], true);
    }
}
