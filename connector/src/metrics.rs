//! The connector's metrics, shared by every `moor` process on the host: volume
//! operations (attach, detach, extend) by protocol, operation and outcome, their
//! durations, the ones in flight and the ones abandoned by a process that died.
//!
//! Many short-lived processes (the lab runs 16 attaches at once) record into one
//! directory (default `/run/moor/metrics`, group `moor`, see docs/metrics.md):
//!
//! | file | |
//! |---|---|
//! | `moor.lock` | `flock(2)`ed exclusively around every update |
//! | `moor.state.json` | the counters and histograms (replaced atomically) |
//! | `moor.inflight.<pid>.<n>` | one per operation in flight, `flock`ed by its process for as long as it runs |
//! | `moor.prom` | the rendered metrics for node_exporter's textfile collector (replaced atomically, mode 0644) |
//!
//! A process that dies mid-operation leaves its in-flight file, but the kernel
//! drops its lock: the next update finds the file unlocked, counts the operation
//! as abandoned and removes it. No pid is trusted (pids are reused, and callers in
//! containers may not share a pid namespace).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moor_privhelper::prom::{Kind, Writer, bucket_index};
use serde::{Deserialize, Serialize};

/// Upper bounds (seconds) of the duration buckets: 50 ms … 10 min.
pub const BOUNDS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// The default directory (under the host root).
pub const DEFAULT_DIR: &str = "/run/moor/metrics";

const LOCK: &str = "moor.lock";
const STATE: &str = "moor.state.json";
const PROM: &str = "moor.prom";
const INFLIGHT: &str = "moor.inflight.";

/// How long an update waits for the lock before giving up (the volume operation
/// goes on without its metrics).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Why metrics were not recorded.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The directory does not exist: metrics are off (tmpfiles.d creates it).
    #[error("{} does not exist", .0.display())]
    NoDirectory(PathBuf),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is locked by another moor process; gave up after {:?}", path.display(), LOCK_WAIT)]
    Busy { path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MetricsError + '_ {
    move |source| MetricsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One (protocol, operation) pair's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Series {
    protocol: String,
    operation: String,
    outcomes: BTreeMap<String, u64>,
    /// Not cumulative; one more than [`BOUNDS`].
    buckets: Vec<u64>,
    /// In nanoseconds: an integer survives the JSON round trip exactly, so every
    /// rendering of the same state is byte-identical.
    #[serde(default)]
    sum_nanos: u64,
    #[serde(default)]
    abandoned: u64,
}

/// `moor.state.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct State {
    /// The bucket bounds the counts were made with (a change resets them).
    bounds: Vec<f64>,
    series: Vec<Series>,
}

impl State {
    fn series(&mut self, protocol: &str, operation: &str) -> &mut Series {
        let i = match self
            .series
            .iter()
            .position(|s| s.protocol == protocol && s.operation == operation)
        {
            Some(i) => i,
            None => {
                self.series.push(Series {
                    protocol: protocol.into(),
                    operation: operation.into(),
                    buckets: vec![0; BOUNDS.len() + 1],
                    ..Series::default()
                });
                self.series
                    .sort_by(|a, b| (&a.protocol, &a.operation).cmp(&(&b.protocol, &b.operation)));
                self.series
                    .iter()
                    .position(|s| s.protocol == protocol && s.operation == operation)
                    .unwrap_or(0)
            }
        };
        &mut self.series[i]
    }

    fn observe(&mut self, protocol: &str, operation: &str, outcome: &str, took: Duration) {
        let s = self.series(protocol, operation);
        *s.outcomes.entry(outcome.to_string()).or_default() += 1;
        let b = bucket_index(BOUNDS, took.as_secs_f64());
        if let Some(c) = s.buckets.get_mut(b) {
            *c += 1;
        }
        s.sum_nanos = s
            .sum_nanos
            .saturating_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// An operation in flight, as its file says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Marker {
    protocol: String,
    operation: String,
    pid: u32,
    /// Seconds since the Unix epoch.
    started: f64,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The metrics directory.
#[derive(Debug, Clone)]
pub struct MetricsDir {
    dir: PathBuf,
}

/// A held `moor.lock`.
struct Locked {
    _file: File,
}

/// An operation being recorded: its in-flight file, locked while it runs. Finish
/// it with [`InFlight::finish`]; dropped unfinished (a panic), it counts as
/// abandoned at the next update, like a process that died.
#[derive(Debug)]
pub struct InFlight {
    dir: MetricsDir,
    path: PathBuf,
    _file: File,
    protocol: String,
    operation: String,
    started: Instant,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl MetricsDir {
    pub fn new(dir: impl Into<PathBuf>) -> MetricsDir {
        MetricsDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The rendered file (`moor.prom`).
    pub fn prom_path(&self) -> PathBuf {
        self.dir.join(PROM)
    }

    fn check_dir(&self) -> Result<(), MetricsError> {
        match std::fs::metadata(&self.dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(MetricsError::NoDirectory(self.dir.clone())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(MetricsError::NoDirectory(self.dir.clone()))
            }
            Err(e) => Err(io_err(&self.dir)(e)),
        }
    }

    /// `moor.lock`, exclusively. Opened read-only when it exists (flock needs no
    /// write access, and the file may belong to another caller of group moor).
    fn lock(&self) -> Result<Locked, MetricsError> {
        let path = self.dir.join(LOCK);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o664)
                    .open(&path)
                    .map_err(io_err(&path))?;
                // Group-writable whatever the umask, like every file here.
                let _ = f.set_permissions(std::fs::Permissions::from_mode(0o664));
                f
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let give_up = Instant::now() + LOCK_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Locked { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < give_up => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => return Err(MetricsError::Busy { path }),
                Err(TryLockError::Error(e)) => return Err(io_err(&path)(e)),
            }
        }
    }

    /// The state; a missing file is an empty state, an unreadable one (a crash
    /// cannot leave one: it is replaced atomically) is started afresh with a warning.
    fn load(&self) -> State {
        let path = self.dir.join(STATE);
        let mut state = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(path = %path.display(), "metrics state unreadable, starting afresh: {e}");
                    State::default()
                }
            },
            Err(_) => State::default(),
        };
        if state.bounds != BOUNDS {
            if !state.series.is_empty() {
                tracing::info!("metrics buckets changed: duration histograms start afresh");
            }
            state.bounds = BOUNDS.to_vec();
            for s in &mut state.series {
                s.buckets = vec![0; BOUNDS.len() + 1];
                s.sum_nanos = 0;
            }
        }
        for s in &mut state.series {
            s.buckets.resize(BOUNDS.len() + 1, 0);
        }
        state
    }

    /// Replace `name` with `bytes`: a new file in the directory renamed over it.
    fn replace(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), MetricsError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.write_all(bytes)?;
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io_err(&path))
    }

    /// The operations in flight. Files no process holds any more are operations
    /// abandoned by a process that died: counted in `state` and removed.
    fn sweep(&self, state: &mut State) -> Result<Vec<Marker>, MetricsError> {
        let mut alive = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(io_err(&self.dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(INFLIGHT) {
                continue;
            }
            let path = entry.path();
            let Ok(file) = File::open(&path) else {
                continue; // finished and removed since the listing
            };
            let marker = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Marker>(&b).ok());
            match file.try_lock_shared() {
                Err(TryLockError::WouldBlock) => {
                    if let Some(m) = marker {
                        alive.push(m);
                    }
                }
                Ok(()) => {
                    if let Some(m) = &marker {
                        tracing::warn!(
                            protocol = %m.protocol,
                            operation = %m.operation,
                            pid = m.pid,
                            "a moor process ended in the middle of a volume operation (counted as abandoned)"
                        );
                        state.series(&m.protocol, &m.operation).abandoned += 1;
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Err(TryLockError::Error(_)) => {}
            }
        }
        alive.sort_by(|a, b| a.started.total_cmp(&b.started));
        Ok(alive)
    }

    /// Under the lock: sweep, change the state, save it and render `moor.prom`.
    /// Returns the rendered text.
    fn update(&self, change: impl FnOnce(&mut State)) -> Result<String, MetricsError> {
        let _lock = self.lock()?;
        let mut state = self.load();
        change(&mut state);
        let in_flight = self.sweep(&mut state)?;
        let json = serde_json::to_vec(&state).map_err(|e| MetricsError::Io {
            path: self.dir.join(STATE),
            source: io::Error::other(e),
        })?;
        self.replace(STATE, &json, 0o664)?;
        let text = render(&state, &in_flight);
        self.replace(PROM, text.as_bytes(), 0o644)?;
        Ok(text)
    }

    /// Start recording an operation: its in-flight file is created and locked, and
    /// `moor.prom` shows it in flight.
    pub fn start(&self, protocol: &str, operation: &str) -> Result<InFlight, MetricsError> {
        self.check_dir()?;
        let started = Instant::now();
        let marker = Marker {
            protocol: protocol.into(),
            operation: operation.into(),
            pid: std::process::id(),
            started: unix_now(),
        };
        let path = self.dir.join(format!(
            "{INFLIGHT}{}.{}",
            marker.pid,
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut inflight = None;
        self.update(|_| {
            // Created under the lock: a sweep never sees it before it is locked.
            let made = (|| {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .open(&path)?;
                f.try_lock().map_err(|e| match e {
                    TryLockError::Error(e) => e,
                    TryLockError::WouldBlock => io::Error::from(io::ErrorKind::WouldBlock),
                })?;
                f.write_all(&serde_json::to_vec(&marker).map_err(io::Error::other)?)?;
                Ok::<File, io::Error>(f)
            })();
            inflight = Some(made);
        })?;
        let file = match inflight {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                let _ = std::fs::remove_file(&path);
                return Err(io_err(&path)(e));
            }
            None => return Err(io_err(&path)(io::Error::other("not created"))),
        };
        Ok(InFlight {
            dir: self.clone(),
            path,
            _file: file,
            protocol: protocol.into(),
            operation: operation.into(),
            started,
        })
    }

    /// Sweep abandoned operations, render `moor.prom` afresh and return it.
    pub fn refresh(&self) -> Result<String, MetricsError> {
        self.check_dir()?;
        self.update(|_| {})
    }
}

impl InFlight {
    /// The operation ended with `outcome` (`ok`, `failed`, a detach's `clean`,
    /// `clean-with-data-loss` or `leftovers`); its duration is the time since
    /// [`MetricsDir::start`].
    pub fn finish(self, outcome: &str) -> Result<(), MetricsError> {
        let took = self.started.elapsed();
        self.finish_after(outcome, took)
    }

    /// [`InFlight::finish`] with a given duration.
    pub fn finish_after(self, outcome: &str, took: Duration) -> Result<(), MetricsError> {
        let (protocol, operation) = (self.protocol.clone(), self.operation.clone());
        let path = self.path.clone();
        self.dir
            .update(|s| {
                // Still holding its lock, so no sweep counts it as abandoned.
                let _ = std::fs::remove_file(&path);
                s.observe(&protocol, &operation, outcome, took);
            })
            .map(|_| ())
    }
}

/// The exposition text of `state` with `in_flight`.
fn render(state: &State, in_flight: &[Marker]) -> String {
    let mut w = Writer::new();
    let name = "moor_volume_operations_total";
    w.family(
        name,
        Kind::Counter,
        "moor connect/disconnect/extend runs that ended, by protocol, operation and outcome (ok, failed; a detach: clean, clean-with-data-loss, leftovers, failed).",
    );
    for s in &state.series {
        for (outcome, n) in &s.outcomes {
            w.sample(
                name,
                &[
                    ("protocol", &s.protocol),
                    ("operation", &s.operation),
                    ("outcome", outcome),
                ],
                *n as f64,
            );
        }
    }
    let name = "moor_volume_operation_duration_seconds";
    w.family(
        name,
        Kind::Histogram,
        "Duration of moor connect/disconnect/extend runs that ended (every outcome), by protocol and operation.",
    );
    for s in &state.series {
        if s.buckets.iter().all(|b| *b == 0) {
            continue;
        }
        w.histogram(
            name,
            &[("protocol", &s.protocol), ("operation", &s.operation)],
            BOUNDS,
            &s.buckets,
            s.sum_nanos as f64 / 1e9,
        );
    }
    // In flight: every pair seen so far (0 when none runs) and those running now.
    let mut running: BTreeMap<(&str, &str), (u64, f64)> = BTreeMap::new();
    for s in &state.series {
        running.insert((&s.protocol, &s.operation), (0, f64::INFINITY));
    }
    for m in in_flight {
        let e = running
            .entry((&m.protocol, &m.operation))
            .or_insert((0, f64::INFINITY));
        e.0 += 1;
        e.1 = e.1.min(m.started);
    }
    let name = "moor_volume_operations_in_flight";
    w.family(
        name,
        Kind::Gauge,
        "moor connect/disconnect/extend runs going on when the file was written.",
    );
    for ((p, o), (n, _)) in &running {
        w.sample(name, &[("protocol", p), ("operation", o)], *n as f64);
    }
    let name = "moor_volume_operation_oldest_in_flight_start_time_seconds";
    w.family(
        name,
        Kind::Gauge,
        "Start (seconds since the Unix epoch) of the oldest run going on, by protocol and operation (absent when none).",
    );
    for ((p, o), (n, t)) in &running {
        if *n > 0 {
            w.sample(name, &[("protocol", p), ("operation", o)], t.floor());
        }
    }
    let name = "moor_volume_operations_abandoned_total";
    w.family(
        name,
        Kind::Counter,
        "Runs whose process ended without finishing them (killed, crashed); found at the next update.",
    );
    for s in &state.series {
        w.sample(
            name,
            &[("protocol", &s.protocol), ("operation", &s.operation)],
            s.abandoned as f64,
        );
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_privhelper::prom::{Sample, check};

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        moor_privhelper::prom::sample_value(samples, name, labels)
    }

    fn prom(d: &MetricsDir) -> Vec<Sample> {
        let text = std::fs::read_to_string(d.prom_path()).expect("moor.prom");
        check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn records_outcomes_durations_and_in_flight() {
        let t = tempfile::tempdir().unwrap();
        let d = MetricsDir::new(t.path());
        let a = d.start("iscsi", "connect").unwrap();
        let b = d.start("iscsi", "connect").unwrap();
        let s = prom(&d);
        let lab = [("protocol", "iscsi"), ("operation", "connect")];
        assert_eq!(
            value(&s, "moor_volume_operations_in_flight", &lab),
            Some(2.0)
        );
        assert!(
            value(
                &s,
                "moor_volume_operation_oldest_in_flight_start_time_seconds",
                &lab
            )
            .is_some()
        );
        a.finish_after("ok", Duration::from_millis(700)).unwrap();
        b.finish_after("failed", Duration::from_secs(700)).unwrap();
        d.start("iscsi", "disconnect")
            .unwrap()
            .finish_after("leftovers", Duration::from_millis(30))
            .unwrap();
        let s = prom(&d);
        let ok = [
            ("protocol", "iscsi"),
            ("operation", "connect"),
            ("outcome", "ok"),
        ];
        assert_eq!(value(&s, "moor_volume_operations_total", &ok), Some(1.0));
        assert_eq!(
            value(
                &s,
                "moor_volume_operations_total",
                &[
                    ("protocol", "iscsi"),
                    ("operation", "disconnect"),
                    ("outcome", "leftovers")
                ]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "moor_volume_operations_in_flight", &lab),
            Some(0.0)
        );
        assert_eq!(
            value(
                &s,
                "moor_volume_operation_oldest_in_flight_start_time_seconds",
                &lab
            ),
            None
        );
        let bucket = |le: &str| {
            value(
                &s,
                "moor_volume_operation_duration_seconds_bucket",
                &[("protocol", "iscsi"), ("operation", "connect"), ("le", le)],
            )
        };
        assert_eq!(bucket("0.5"), Some(0.0));
        assert_eq!(bucket("1"), Some(1.0));
        assert_eq!(bucket("600"), Some(1.0));
        assert_eq!(bucket("+Inf"), Some(2.0));
        let sum = value(&s, "moor_volume_operation_duration_seconds_sum", &lab).unwrap();
        assert!((sum - 700.7).abs() < 1e-6, "{sum}");
        // The state and the in-flight files are gone; only the 4 files stay.
        let mut names: Vec<String> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["moor.lock", "moor.prom", "moor.state.json"]);
        use std::os::unix::fs::MetadataExt;
        let mode = |n: &str| std::fs::metadata(t.path().join(n)).unwrap().mode() & 0o777;
        assert_eq!(mode("moor.prom"), 0o644);
        assert_eq!(mode("moor.state.json"), 0o664);
        assert_eq!(mode("moor.lock"), 0o664);
    }

    #[test]
    fn an_operation_whose_process_died_is_counted_as_abandoned_once() {
        let t = tempfile::tempdir().unwrap();
        let d = MetricsDir::new(t.path());
        let alive = d.start("nvmeof", "connect").unwrap();
        // What a killed process leaves: its file, with nobody holding a lock on it.
        let dead = Marker {
            protocol: "fibre_channel".into(),
            operation: "disconnect".into(),
            pid: 999_999,
            started: 1.0,
        };
        std::fs::write(
            t.path().join("moor.inflight.999999.0"),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        // Dropped without finishing (a panic): its lock goes with it.
        drop(d.start("iscsi", "extend").unwrap());
        d.refresh().unwrap();
        let s = prom(&d);
        let fc = [("protocol", "fibre_channel"), ("operation", "disconnect")];
        assert_eq!(
            value(&s, "moor_volume_operations_abandoned_total", &fc),
            Some(1.0)
        );
        assert_eq!(
            value(
                &s,
                "moor_volume_operations_abandoned_total",
                &[("protocol", "iscsi"), ("operation", "extend")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "moor_volume_operations_in_flight", &fc),
            Some(0.0)
        );
        let nv = [("protocol", "nvmeof"), ("operation", "connect")];
        assert_eq!(
            value(&s, "moor_volume_operations_in_flight", &nv),
            Some(1.0)
        );
        assert!(!t.path().join("moor.inflight.999999.0").exists());
        // Counted once.
        d.refresh().unwrap();
        assert_eq!(
            value(&prom(&d), "moor_volume_operations_abandoned_total", &fc),
            Some(1.0)
        );
        alive.finish("ok").unwrap();
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let t = tempfile::tempdir().unwrap();
        let d = MetricsDir::new(t.path());
        let threads: u32 = 8;
        let each: u32 = 12;
        std::thread::scope(|s| {
            for i in 0..threads {
                let d = d.clone();
                s.spawn(move || {
                    let protocol = if i % 2 == 0 { "iscsi" } else { "nvmeof" };
                    for k in 0..each {
                        let r = d.start(protocol, "connect").unwrap();
                        let outcome = if k % 3 == 0 { "failed" } else { "ok" };
                        r.finish_after(outcome, Duration::from_millis(10 * u64::from(k)))
                            .unwrap();
                    }
                });
            }
        });
        let s = prom(&d);
        let total: f64 = s
            .iter()
            .filter(|(n, _, _)| n == "moor_volume_operations_total")
            .map(|x| x.2)
            .sum();
        assert_eq!(total, f64::from(threads * each));
        for p in ["iscsi", "nvmeof"] {
            let lab = [("protocol", p), ("operation", "connect")];
            assert_eq!(
                value(&s, "moor_volume_operation_duration_seconds_count", &lab),
                Some(f64::from(threads / 2 * each))
            );
            assert_eq!(
                value(&s, "moor_volume_operations_in_flight", &lab),
                Some(0.0)
            );
            assert_eq!(
                value(&s, "moor_volume_operations_abandoned_total", &lab),
                Some(0.0)
            );
        }
    }

    #[test]
    fn a_missing_directory_turns_recording_off_and_odd_labels_are_escaped() {
        let t = tempfile::tempdir().unwrap();
        let missing = MetricsDir::new(t.path().join("nope"));
        assert!(matches!(
            missing.start("iscsi", "connect"),
            Err(MetricsError::NoDirectory(_))
        ));
        let d = MetricsDir::new(t.path());
        d.start("we\"ird\\", "connect")
            .unwrap()
            .finish("ok")
            .unwrap();
        let s = prom(&d);
        assert!(
            s.iter()
                .any(|(_, l, _)| l.get("protocol").map(String::as_str) == Some("we\"ird\\"))
        );
        // A damaged state file starts afresh instead of failing the operation.
        std::fs::write(t.path().join(STATE), b"{not json").unwrap();
        d.start("iscsi", "connect").unwrap().finish("ok").unwrap();
        let s = prom(&d);
        assert_eq!(
            value(
                &s,
                "moor_volume_operations_total",
                &[
                    ("protocol", "iscsi"),
                    ("operation", "connect"),
                    ("outcome", "ok")
                ]
            ),
            Some(1.0)
        );
    }
}
