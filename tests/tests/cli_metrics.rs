//! The connector's shared metrics as the `moor` CLI keeps them: many `moor
//! connect` processes at once recording into one directory under its lock, a
//! process killed in the middle of an operation counted as abandoned, dry runs not
//! recorded, `moor metrics`, and the log format switch. No root and no moord: the
//! operations fail at once (moord is unreachable), which is an outcome too.
//!
//! Binary: `$MOOR_BIN`, or `target/debug/moor` built once with cargo.

#[allow(dead_code)]
mod cli_common;
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli_common::{Run, moor_bin};
use serde_json::json;

/// The value of `name{labels}` in the exposition text (checked strictly).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let samples = moor_privhelper::prom::check(text)
        .unwrap_or_else(|e| panic!("bad exposition: {e}\n{text}"));
    moor_privhelper::prom::sample_value(&samples, name, labels)
}

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["root", "metrics"] {
            std::fs::create_dir(dir.path().join(d)).expect("mkdir");
        }
        let props = json!({"driver_volume_type": "iscsi",
            "data": {"target_portal": "192.0.2.10:3260",
                     "target_iqn": "iqn.2010-10.org.openstack:volume-1", "target_lun": 1}});
        std::fs::write(
            dir.path().join("ci.json"),
            serde_json::to_vec(&props).expect("JSON"),
        )
        .expect("write");
        Scratch { dir }
    }

    fn s(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `moor connect iscsi …` with the scratch directories (moord unreachable).
    fn connect(&self, extra: &[&str]) -> Command {
        self.connect_to("metrics", extra)
    }

    /// [`Scratch::connect`] recording into scratch directory `metrics`.
    fn connect_to(&self, metrics: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(moor_bin());
        c.args(["connect", "iscsi", "--host-root"])
            .arg(self.s("root"))
            .arg("--lock-dir")
            .arg(self.s("locks"))
            .arg("--attachments-dir")
            .arg(self.s("attachments"))
            .arg("--metrics-dir")
            .arg(self.s(metrics))
            .args(extra)
            .env_remove("MOOR_LOG")
            .env_remove("MOOR_KEY_FILE")
            .env_remove("MOOR_METRICS_DIR")
            .env_remove("MOOR_LOG_FORMAT")
            .env("MOOR_SOCKET", self.dir.path().join("no-moord.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn prom(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("metrics/moor.prom")).expect("moor.prom")
    }

    /// `moor metrics ARGS…` against the scratch directory (moord unreachable).
    fn metrics(&self, args: &[&str]) -> Run {
        let out = Command::new(moor_bin())
            .arg("metrics")
            .args(args)
            .env("MOOR_METRICS_DIR", self.s("metrics"))
            .env("MOOR_SOCKET", self.dir.path().join("no-moord.sock"))
            .env_remove("MOOR_KEY_FILE")
            .stdin(Stdio::null())
            .output()
            .expect("run moor metrics");
        Run::from(out)
    }
}

fn run(mut c: Command) -> Run {
    let out = c.output().expect("run moor");
    Run::from(out)
}

const CONNECT: [(&str, &str); 2] = [("protocol", "iscsi"), ("operation", "connect")];

#[test]
fn concurrent_processes_record_every_operation_and_dry_runs_are_not_recorded() {
    let s = Scratch::new();
    let props = s.s("ci.json");
    let children: Vec<_> = (0..16)
        .map(|_| {
            s.connect(&["--properties", &props])
                .spawn()
                .expect("spawn moor")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("cannot reach moord"), "{err}");
        assert!(!err.contains("metrics not recorded"), "{err}");
    }
    let text = s.prom();
    let failed = [CONNECT[0], CONNECT[1], ("outcome", "failed")];
    assert_eq!(
        value(&text, "moor_volume_operations_total", &failed),
        Some(16.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "moor_volume_operation_duration_seconds_count",
            &CONNECT
        ),
        Some(16.0)
    );
    assert_eq!(
        value(&text, "moor_volume_operations_in_flight", &CONNECT),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "moor_volume_operations_abandoned_total", &CONNECT),
        Some(0.0)
    );

    // A dry run plans, and is not recorded.
    let r = run(s.connect(&["--properties", &props, "--dry-run"]));
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(s.prom(), text);

    // `moor metrics`: the connector's part; moord is unreachable, which is said
    // on stderr and makes the exit status 1 (unless it is left out).
    let r = s.metrics(&[]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("moord metrics"), "{r}");
    assert_eq!(
        value(&r.stdout, "moor_volume_operations_total", &failed),
        Some(16.0)
    );
    let r = s.metrics(&["--no-moord"]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.stdout, text);
}

#[test]
fn a_process_killed_mid_operation_is_counted_as_abandoned() {
    let s = Scratch::new();
    // Reading the connection properties from a stdin that never ends: the
    // operation is in flight until the process is killed.
    let mut c = s.connect(&["--properties", "-"]);
    c.stdin(Stdio::piped());
    let mut child = c.spawn().expect("spawn moor");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(s.dir.path().join("metrics/moor.prom"));
        if text.is_ok_and(|t| value(&t, "moor_volume_operations_in_flight", &CONNECT) == Some(1.0))
        {
            break;
        }
        assert!(Instant::now() < deadline, "never in flight");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill");
    let _ = child.wait();
    // The next update (here `moor metrics`) finds it abandoned.
    let r = s.metrics(&["--no-moord"]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(
        value(
            &r.stdout,
            "moor_volume_operations_abandoned_total",
            &CONNECT
        ),
        Some(1.0),
        "{r}"
    );
    assert_eq!(
        value(&r.stdout, "moor_volume_operations_in_flight", &CONNECT),
        Some(0.0)
    );
    assert_eq!(
        value(
            &r.stdout,
            "moor_volume_operation_oldest_in_flight_start_time_seconds",
            &CONNECT
        ),
        None
    );
    let left: Vec<_> = std::fs::read_dir(s.dir.path().join("metrics"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("moor.inflight."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn without_a_metrics_directory_nothing_is_recorded_and_nothing_fails() {
    let s = Scratch::new();
    let props = s.s("ci.json");
    let r = run(s.connect_to("not-there", &["--properties", &props]));
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("cannot reach moord"), "{r}");
    assert!(!r.stderr.contains("metrics"), "{r}");
    assert!(!Path::new(&s.s("not-there")).exists());
    let r = s.metrics(&["--no-moord", "--textfile-dir", &s.s("not-there")]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("no connector metrics"), "{r}");
}

#[test]
fn log_format_json_or_human() {
    let s = Scratch::new();
    let props = s.s("ci.json");
    // Not a terminal: JSON lines by default and with --log-format json. (Without a
    // metrics directory there is at least one debug message.)
    for extra in [&[][..], &["--log-format", "json"][..]] {
        let mut c = s.connect_to("not-there", &["--properties", &props]);
        c.args(extra).env("MOOR_LOG", "debug");
        let r = run(c);
        let logs: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| !l.starts_with("moor: "))
            .collect();
        assert!(!logs.is_empty(), "{r}");
        for l in logs {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{r}"));
            assert!(v.get("level").is_some(), "{l}");
        }
    }
    // --log-format human (or MOOR_LOG_FORMAT=human): readable lines, no JSON.
    let mut c = s.connect_to("not-there", &["--properties", &props]);
    c.env("MOOR_LOG", "debug").env("MOOR_LOG_FORMAT", "human");
    let r = run(c);
    let logs: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("moor: "))
        .collect();
    assert!(!logs.is_empty(), "{r}");
    assert!(logs.iter().all(|l| !l.starts_with('{')), "{r}");
    assert!(logs.iter().any(|l| l.contains("DEBUG")), "{r}");
    let r = run({
        let mut c = s.connect(&["--properties", &props]);
        c.args(["--log-format", "yaml"]);
        c
    });
    assert_eq!(r.code, Some(2), "{r}");
}
