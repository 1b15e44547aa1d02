//! Differential test: moor's filter engine against the real oslo.rootwrap 7.10.0.
//!
//! `tests/difftest/cases.py` generates the cases (synthetic ones for every filter class,
//! loader quirks and adversarial inputs, plus cases derived from the real filter files
//! in `../shared/data/filters` or `$MOOR_SHARED_DIR/data/filters` when present);
//! `tests/difftest/oracle.py` runs each case through rootwrap's own code and through
//! `moor filters check`, and fails on any difference that no documented deviation
//! (docs/filters.md) explains, or on any moor allow that rootwrap would not give.
//!
//! Needs `python3` with the `venv` module and access to PyPI: a virtualenv with
//! `oslo.rootwrap==7.10.0` is created once at `target/difftest-venv` (guarded by a lock
//! so that parallel test binaries do not race). If that fails the test fails with the
//! pip log; it never skips.
//!
//! Environment:
//! * `MOOR_BIN`: use this moor binary instead of building `cargo build -p moor-connector --bin moor`;
//! * `MOOR_DIFFTEST_PYTHON`: a Python that already has oslo.rootwrap 7.10.0 (skips the venv);
//! * `MOOR_SHARED_DIR`: where the shared folder is (default: `<repo>/../shared`);
//! * `MOOR_DIFFTEST_ONLY`: a regular expression on case ids, to run a subset.
//!
//! The per-case report is written to `target/difftest-report.json`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const ROOTWRAP_VERSION: &str = "7.10.0";

mod common;
use common::{repo_root, target_dir};

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A lock held by creating a directory (atomic); stale after 20 minutes.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: PathBuf) -> DirLock {
        let start = Instant::now();
        loop {
            match fs::create_dir(&path) {
                Ok(()) => return DirLock(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > Duration::from_secs(20 * 60));
                    if stale {
                        let _ = fs::remove_dir(&path);
                        continue;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(30 * 60),
                        "timed out waiting for the lock {}",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("cannot create lock {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

fn python_has_rootwrap(python: &Path) -> bool {
    let check = format!(
        "import importlib.metadata as m, oslo_rootwrap.wrapper; \
         assert m.version('oslo.rootwrap') == '{ROOTWRAP_VERSION}', m.version('oslo.rootwrap')"
    );
    Command::new(python)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python that runs the oracle: a venv with oslo.rootwrap, created on first use.
fn oracle_python() -> PathBuf {
    if let Some(p) = std::env::var_os("MOOR_DIFFTEST_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            python_has_rootwrap(&p),
            "MOOR_DIFFTEST_PYTHON={} lacks oslo.rootwrap {ROOTWRAP_VERSION}",
            p.display()
        );
        return p;
    }
    let target = target_dir();
    fs::create_dir_all(&target).expect("create target dir");
    let venv = target.join("difftest-venv");
    let python = venv.join("bin").join("python");
    let log = target.join("difftest-venv.log");
    let _lock = DirLock::acquire(target.join("difftest-venv.lock"));
    if python_has_rootwrap(&python) {
        return python;
    }
    let _ = fs::remove_dir_all(&venv);
    let mut logf = fs::File::create(&log).expect("create venv log");
    let run = |cmd: &mut Command, what: &str, logf: &mut fs::File| {
        let _ = writeln!(logf, "$ {cmd:?}");
        let out = logf.try_clone().expect("dup log");
        let err = logf.try_clone().expect("dup log");
        let status = cmd.stdout(out).stderr(err).stdin(Stdio::null()).status();
        match status {
            Ok(s) if s.success() => {}
            other => panic!(
                "{what} failed ({other:?}); the differential test needs python3 with venv and PyPI access.\n\
                 Last lines of {}:\n{}",
                log.display(),
                tail(&log, 40)
            ),
        }
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
        &mut logf,
    );
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            &format!("oslo.rootwrap=={ROOTWRAP_VERSION}"),
        ]),
        "pip install oslo.rootwrap",
        &mut logf,
    );
    assert!(
        python_has_rootwrap(&python),
        "oslo.rootwrap {ROOTWRAP_VERSION} is not importable after pip install; log tail:\n{}",
        tail(&log, 40)
    );
    python
}

/// The moor binary: $MOOR_BIN, or built here with cargo.
fn moor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOOR_BIN") {
        return PathBuf::from(p);
    }
    common::cargo_build(&["-p", "moor-connector", "--bin", "moor"]);
    let bin = target_dir().join("debug").join("moor");
    assert!(
        bin.is_file(),
        "{} not found after cargo build",
        bin.display()
    );
    bin
}

/// A private copy of the binary, so that a concurrent `cargo build` replacing
/// target/debug/moor cannot pull it away in the middle of the run.
struct PrivateCopy(PathBuf);

impl PrivateCopy {
    fn of(bin: &Path) -> PrivateCopy {
        let dir = std::env::temp_dir().join(format!("moor-difftest-bin-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create private bin dir");
        let copy = dir.join("moor");
        fs::copy(bin, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", bin.display()));
        PrivateCopy(copy)
    }
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn moor_agrees_with_oslo_rootwrap() {
    let python = oracle_python();
    let moor_copy = PrivateCopy::of(&moor_bin());
    let moor = &moor_copy.0;
    let dir = repo_root().join("tests").join("difftest");

    let cases = Command::new(&python)
        .arg(dir.join("cases.py"))
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .expect("run cases.py");
    assert!(
        cases.status.success(),
        "cases.py failed:\n{}",
        String::from_utf8_lossy(&cases.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&cases.stderr));

    let report = target_dir().join("difftest-report.json");
    let mut cmd = Command::new(&python);
    cmd.arg(dir.join("oracle.py"))
        .arg("--moor")
        .arg(moor)
        .arg("--report")
        .arg(&report);
    if let Some(only) = std::env::var_os("MOOR_DIFFTEST_ONLY") {
        cmd.arg("--only").arg(only).args(["--min-cases", "0"]);
    }
    let mut child = cmd
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run oracle.py");
    let mut stdin = child.stdin.take().expect("oracle stdin");
    let input = cases.stdout;
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for oracle.py");
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if !stderr.is_empty() {
        eprintln!("{stderr}");
    }
    assert!(
        out.status.success(),
        "moor disagrees with oslo.rootwrap {ROOTWRAP_VERSION} (details: {}):\n{stdout}\n{stderr}",
        report.display()
    );
    assert!(
        stdout.contains("difftest: PASS"),
        "oracle.py did not report PASS:\n{stdout}"
    );
}
