//! moord's metrics: requests by operation and outcome, an operation duration
//! histogram per operation, refusals by the stage that refused, connections, and
//! the gauges the server keeps anyway (in flight, queued, running, open
//! connections). Rendered in the Prometheus text format ([`crate::prom`]) for the
//! `metrics` operation and the textfile (`metrics_textfile`), see docs/metrics.md.
//!
//! Recording is a handful of relaxed atomic increments in tables sized at start
//! (operations come from the fixed [`OPS`] table, outcomes from the audit's fixed
//! list): no lock and no allocation on the request path. Label values are never
//! taken from a caller's text (an unknown operation name is counted as `other`).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ops::OPS;
use crate::prom::{Kind, Writer, bucket_index};

/// The audit record's outcomes (docs/protocol.md, "Audit records"), in this order.
pub const OUTCOMES: &[&str] = &[
    "ok",
    "failed",
    "timeout",
    "client-gone",
    "denied",
    "forbidden",
    "bad-request",
    "busy",
    "identity-mismatch",
    "precondition-failed",
    "error",
];

/// Upper bounds (seconds) of the operation duration buckets: 1 ms … 5 min.
pub const BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// Where a caller or request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not allowed to connect (`allow_uids`/`allow_gids`, SO_PEERCRED).
    Peer,
    /// HMAC proof missing or wrong.
    Hmac,
    /// Any other handshake failure: malformed or late auth message.
    Handshake,
    /// The policy does not allow the operation (`forbidden`).
    Policy,
    /// The filters do not allow the planned command or write (`denied`).
    Filter,
    /// Malformed frames or messages, unknown operations, invalid arguments,
    /// duplicate request ids.
    BadRequest,
    /// An identity guard or precondition refused (`identity_mismatch`,
    /// `precondition_failed`).
    Guard,
}

const STAGES: &[(Stage, &str)] = &[
    (Stage::Peer, "peer"),
    (Stage::Hmac, "hmac"),
    (Stage::Handshake, "handshake"),
    (Stage::Policy, "policy"),
    (Stage::Filter, "filter"),
    (Stage::BadRequest, "bad_request"),
    (Stage::Guard, "guard"),
];

/// Why a connection was closed before the handshake (other than a denial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` reached (`busy`).
    Limit,
    /// The kernel could not tell who the peer is.
    NoCredentials,
}

/// Values the server keeps itself, read when rendering.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub in_flight: usize,
    pub queued: usize,
    pub running: usize,
    pub connections: usize,
    pub max_concurrent_ops: usize,
    pub max_queued_ops: usize,
    pub max_connections: usize,
    /// `false` in the last textfile written at shutdown.
    pub up: bool,
}

/// The counters. One per daemon, shared by every connection.
#[derive(Debug)]
pub struct Metrics {
    start: SystemTime,
    /// `(OPS.len() + 1) × OUTCOMES.len()`; the last row is `other`.
    requests: Box<[AtomicU64]>,
    /// `(OPS.len() + 1) × (BOUNDS.len() + 1)`, not cumulative.
    buckets: Box<[AtomicU64]>,
    /// Microseconds, per operation.
    sum_us: Box<[AtomicU64]>,
    denials: [AtomicU64; 7],
    accepted: AtomicU64,
    refused: [AtomicU64; 2],
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    last_reload_ok: AtomicBool,
    /// Unix seconds of the last successful (re)load; the start at first.
    last_reload_success: AtomicU64,
}

fn counters(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The row of operation `op` (`OPS.len()` for an unknown one).
pub fn op_index(op: &str) -> usize {
    OPS.iter().position(|e| e.name == op).unwrap_or(OPS.len())
}

fn op_name(i: usize) -> &'static str {
    OPS.get(i).map(|e| e.name).unwrap_or("other")
}

fn outcome_index(outcome: &str) -> usize {
    OUTCOMES
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or(OUTCOMES.len() - 1)
}

/// The refusal stage of an audit outcome, if it is one.
pub fn stage_of(outcome: &str) -> Option<Stage> {
    match outcome {
        "denied" => Some(Stage::Filter),
        "forbidden" => Some(Stage::Policy),
        "bad-request" => Some(Stage::BadRequest),
        "identity-mismatch" | "precondition-failed" => Some(Stage::Guard),
        _ => None,
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let rows = OPS.len() + 1;
        let start = SystemTime::now();
        Metrics {
            start,
            requests: counters(rows * OUTCOMES.len()),
            buckets: counters(rows * (BOUNDS.len() + 1)),
            sum_us: counters(rows),
            denials: Default::default(),
            accepted: AtomicU64::new(0),
            refused: Default::default(),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_reload_ok: AtomicBool::new(true),
            last_reload_success: AtomicU64::new(unix_secs(start) as u64),
        }
    }

    /// One finished request of operation row `op` ([`op_index`]) with its audit
    /// outcome; a refusal outcome also counts as a denial at its stage.
    pub fn request(&self, op: usize, outcome: &str, took: Duration) {
        let op = op.min(OPS.len());
        self.requests[op * OUTCOMES.len() + outcome_index(outcome)].fetch_add(1, Relaxed);
        let b = bucket_index(BOUNDS, took.as_secs_f64());
        self.buckets[op * (BOUNDS.len() + 1) + b].fetch_add(1, Relaxed);
        self.sum_us[op].fetch_add(took.as_micros() as u64, Relaxed);
        if let Some(stage) = stage_of(outcome) {
            self.deny(stage);
        }
    }

    /// A refusal outside a request (connection or handshake, malformed frames).
    pub fn deny(&self, stage: Stage) {
        let i = STAGES.iter().position(|(s, _)| *s == stage).unwrap_or(0);
        self.denials[i].fetch_add(1, Relaxed);
    }

    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    pub fn refused(&self, why: Refused) {
        let i = match why {
            Refused::Limit => 0,
            Refused::NoCredentials => 1,
        };
        self.refused[i].fetch_add(1, Relaxed);
    }

    /// A SIGHUP reload finished: `ok` when the new set was taken.
    pub fn reloaded(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Relaxed);
            self.last_reload_success
                .store(unix_secs(SystemTime::now()) as u64, Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Relaxed);
        }
        self.last_reload_ok.store(ok, Relaxed);
    }

    /// Everything, in the text exposition format.
    pub fn render(&self, g: &Gauges) -> String {
        let mut w = Writer::new();
        let gauge = |w: &mut Writer, name: &str, help: &str, v: f64| {
            w.family(name, Kind::Gauge, help);
            w.sample(name, &[], v);
        };
        w.family(
            "moord_build_info",
            Kind::Gauge,
            "moord's version (always 1).",
        );
        w.sample(
            "moord_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        gauge(
            &mut w,
            "moord_up",
            "1 while moord runs; 0 in the textfile written when it stopped.",
            if g.up { 1.0 } else { 0.0 },
        );
        gauge(
            &mut w,
            "moord_start_time_seconds",
            "When moord started, in seconds since the Unix epoch.",
            unix_secs(self.start).floor(),
        );
        gauge(
            &mut w,
            "moord_uptime_seconds",
            "Seconds since moord started.",
            SystemTime::now()
                .duration_since(self.start)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
                .floor(),
        );

        let name = "moord_requests_total";
        w.family(
            name,
            Kind::Counter,
            "Requests answered, by operation and audit outcome (an operation name moord does not know is op=\"other\").",
        );
        for op in 0..=OPS.len() {
            for (k, outcome) in OUTCOMES.iter().enumerate() {
                let v = self.requests[op * OUTCOMES.len() + k].load(Relaxed);
                if v > 0 {
                    w.sample(name, &[("op", op_name(op)), ("outcome", outcome)], v as f64);
                }
            }
        }

        let name = "moord_request_duration_seconds";
        w.family(
            name,
            Kind::Histogram,
            "Time from reading a request to its audit record, by operation (every outcome; waiting for a slot included).",
        );
        let width = BOUNDS.len() + 1;
        for op in 0..=OPS.len() {
            let counts: Vec<u64> = self.buckets[op * width..(op + 1) * width]
                .iter()
                .map(|c| c.load(Relaxed))
                .collect();
            if counts.iter().all(|c| *c == 0) {
                continue;
            }
            let sum = self.sum_us[op].load(Relaxed) as f64 / 1e6;
            w.histogram(name, &[("op", op_name(op))], BOUNDS, &counts, sum);
        }

        let name = "moord_denials_total";
        w.family(
            name,
            Kind::Counter,
            "Callers and requests refused, by the stage that refused them: peer (may not connect), hmac, handshake, policy (forbidden), filter (denied), bad_request, guard (identity or precondition).",
        );
        for (i, (_, stage)) in STAGES.iter().enumerate() {
            w.sample(
                name,
                &[("stage", stage)],
                self.denials[i].load(Relaxed) as f64,
            );
        }

        let name = "moord_connections_accepted_total";
        w.family(name, Kind::Counter, "Connections accepted.");
        w.sample(name, &[], self.accepted.load(Relaxed) as f64);
        let name = "moord_connections_refused_total";
        w.family(
            name,
            Kind::Counter,
            "Connections closed before the handshake: limit (max_connections reached) or no_credentials (the kernel could not tell the peer). Callers not allowed to connect are moord_denials_total{stage=\"peer\"}.",
        );
        for (i, reason) in ["limit", "no_credentials"].iter().enumerate() {
            w.sample(
                name,
                &[("reason", reason)],
                self.refused[i].load(Relaxed) as f64,
            );
        }

        for (name, help, v) in [
            ("moord_connections", "Connections open now.", g.connections),
            (
                "moord_connections_max",
                "max_connections.",
                g.max_connections,
            ),
            (
                "moord_requests_in_flight",
                "Requests being handled now (queued and running included).",
                g.in_flight,
            ),
            (
                "moord_ops_queued",
                "Operations waiting for a concurrency slot now.",
                g.queued,
            ),
            ("moord_ops_queued_max", "max_queued_ops.", g.max_queued_ops),
            (
                "moord_ops_running",
                "Commands running now (concurrency slots in use).",
                g.running,
            ),
            (
                "moord_ops_running_max",
                "max_concurrent_ops.",
                g.max_concurrent_ops,
            ),
        ] {
            gauge(&mut w, name, help, v as f64);
        }

        let name = "moord_config_reloads_total";
        w.family(
            name,
            Kind::Counter,
            "SIGHUP reloads, by result (failed: the previous set was kept).",
        );
        w.sample(
            name,
            &[("result", "ok")],
            self.reloads_ok.load(Relaxed) as f64,
        );
        w.sample(
            name,
            &[("result", "failed")],
            self.reloads_failed.load(Relaxed) as f64,
        );
        gauge(
            &mut w,
            "moord_config_last_reload_successful",
            "1 if the last reload (or the start) took the new configuration, 0 if it kept the old one.",
            if self.last_reload_ok.load(Relaxed) {
                1.0
            } else {
                0.0
            },
        );
        gauge(
            &mut w,
            "moord_config_last_reload_success_timestamp_seconds",
            "When the configuration in use was loaded, in seconds since the Unix epoch.",
            self.last_reload_success.load(Relaxed) as f64,
        );
        w.finish()
    }
}

/// Replace `path` with `text` atomically: a new file in the same directory
/// (`O_EXCL|O_NOFOLLOW`: a symlink or file someone placed at the temporary name is
/// not followed or reused), mode 0644, renamed over `path`. Readers (node_exporter)
/// see the old or the new file, never half of one.
pub fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
    };
    let mut f = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Left by an earlier moord with this pid, or planted: unlink (never
            // follows a symlink) and create afresh.
            std::fs::remove_file(&tmp)?;
            open()?
        }
        r => r?,
    };
    let written = f
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|()| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::check;

    fn value(samples: &[crate::prom::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        crate::prom::sample_value(samples, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?}"))
    }

    #[test]
    fn renders_requests_histograms_denials_and_gauges() {
        let m = Metrics::new();
        let ping = op_index("ping");
        m.request(ping, "ok", Duration::from_micros(40));
        m.request(ping, "ok", Duration::from_millis(3));
        m.request(op_index("exec"), "denied", Duration::from_micros(200));
        m.request(
            op_index("no.such.op"),
            "bad-request",
            Duration::from_micros(10),
        );
        m.request(op_index("block.flush"), "ok", Duration::from_secs(400));
        m.deny(Stage::Hmac);
        m.accepted();
        m.refused(Refused::Limit);
        m.reloaded(false);
        let text = m.render(&Gauges {
            in_flight: 2,
            queued: 1,
            running: 1,
            connections: 3,
            max_concurrent_ops: 16,
            max_queued_ops: 1024,
            max_connections: 4096,
            up: true,
        });
        let s = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let req = "moord_requests_total";
        assert_eq!(value(&s, req, &[("op", "ping"), ("outcome", "ok")]), 2.0);
        assert_eq!(
            value(&s, req, &[("op", "exec"), ("outcome", "denied")]),
            1.0
        );
        assert_eq!(
            value(&s, req, &[("op", "other"), ("outcome", "bad-request")]),
            1.0
        );
        let b = "moord_request_duration_seconds_bucket";
        assert_eq!(value(&s, b, &[("op", "ping"), ("le", "0.001")]), 1.0);
        assert_eq!(value(&s, b, &[("op", "ping"), ("le", "0.005")]), 2.0);
        assert_eq!(value(&s, b, &[("op", "ping"), ("le", "+Inf")]), 2.0);
        // Beyond the last bound: only +Inf has it.
        assert_eq!(value(&s, b, &[("op", "block.flush"), ("le", "300")]), 0.0);
        assert_eq!(value(&s, b, &[("op", "block.flush"), ("le", "+Inf")]), 1.0);
        let sum = value(&s, "moord_request_duration_seconds_sum", &[("op", "ping")]);
        assert!((sum - 0.00304).abs() < 1e-9, "{sum}");
        let d = "moord_denials_total";
        assert_eq!(value(&s, d, &[("stage", "filter")]), 1.0);
        assert_eq!(value(&s, d, &[("stage", "bad_request")]), 1.0);
        assert_eq!(value(&s, d, &[("stage", "hmac")]), 1.0);
        assert_eq!(value(&s, d, &[("stage", "peer")]), 0.0);
        assert_eq!(value(&s, "moord_ops_queued", &[]), 1.0);
        assert_eq!(value(&s, "moord_requests_in_flight", &[]), 2.0);
        assert_eq!(
            value(
                &s,
                "moord_connections_refused_total",
                &[("reason", "limit")]
            ),
            1.0
        );
        assert_eq!(value(&s, "moord_config_last_reload_successful", &[]), 0.0);
        assert_eq!(
            value(&s, "moord_config_reloads_total", &[("result", "failed")]),
            1.0
        );
        assert_eq!(value(&s, "moord_up", &[]), 1.0);
        // Operations nobody asked for are not listed.
        assert!(!text.contains("op=\"iscsi.login\""));
    }

    #[test]
    fn textfile_is_replaced_atomically_and_never_through_a_planted_link() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("moord.prom");
        write_textfile(&path, "a 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 1\n");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        // A symlink planted at the temporary name is replaced, not followed.
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let tmp = d
            .path()
            .join(format!(".moord.prom.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write_textfile(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        assert!(!tmp.exists());
        assert!(write_textfile(&d.path().join("no/such/dir/x.prom"), "").is_err());
    }
}
