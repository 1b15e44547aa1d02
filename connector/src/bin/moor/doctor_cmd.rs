//! `moor doctor` (host conformance and leftovers) and `moor cleanup` (remove the
//! leftovers through the detach paths).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use moor_connector::attachments::Registry;
use moor_connector::doctor::{self, Check, Cleaner, Doctor, Probe, Report, Status};
use moor_connector::exec::{Daemon, Privileged};
use moor_connector::host::HostPaths;
use moor_connector::host::udev::UdevEvents;
use moor_connector::lock::LockDir;
use moor_privhelper::client::read_key_file;

/// Exit status when the doctor found a failed check or a leftover, or a cleanup
/// left something.
const EXIT_FINDINGS: u8 = 4;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Debug, Args)]
pub struct HostArgs {
    /// Read sysfs, /dev, /etc, /proc and /run under DIR (fixture trees, containers).
    #[arg(long, value_name = "DIR", default_value = "/")]
    host_root: PathBuf,
    /// Directory of moor's attachment records.
    #[arg(long, value_name = "DIR", default_value = "/run/moor/attachments")]
    attachments_dir: PathBuf,
    /// Directory for per-target and per-volume lock files.
    #[arg(long, value_name = "DIR", default_value = "/run/moor/locks")]
    lock_dir: PathBuf,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct CleanupArgs {
    /// Print the verified plan: every action with the typed operations it would
    /// run (the detach paths against a dry run); nothing is changed.
    #[arg(long)]
    plan: bool,
    /// Run the plan: each action through the same identity-checked path as a
    /// detach; anything in use is skipped.
    #[arg(long)]
    apply: bool,
}

#[derive(Debug, Args)]
pub struct CleanupCmd {
    #[command(flatten)]
    mode: CleanupArgs,
    /// Only the actions with these ids (as `--plan` numbered them).
    #[arg(long = "only", value_name = "ID", value_delimiter = ',')]
    only: Vec<usize>,
    /// Deadline of each action, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    host: HostArgs,
}

/// `program --version` with a 5 s limit, as the caller (no privilege needed).
struct CommandProbe;

impl Probe for CommandProbe {
    fn version(&self, program: &str) -> Option<String> {
        let mut child = Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
        let out = child.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
    }
}

/// moord, when it answers; the reason when it does not.
fn daemon(socket: &Path, key_file: Option<&PathBuf>) -> (Option<Daemon>, Check) {
    let key = match key_file.map(|p| read_key_file(p)) {
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            return (
                None,
                moord_check(Status::Warn, format!("key file unreadable: {e}")),
            );
        }
        None => None,
    };
    let d = Daemon::new(socket, key).with_reply_timeout(Duration::from_secs(30));
    match d.check() {
        Ok(()) => (
            Some(d),
            moord_check(Status::Ok, format!("answers on {}", socket.display())),
        ),
        Err(e) => (
            None,
            moord_check(
                Status::Warn,
                format!(
                    "{e}: who has a device open cannot be checked, so cleanup removes no device"
                ),
            ),
        ),
    }
}

fn moord_check(status: Status, detail: String) -> Check {
    Check {
        name: "moord",
        status,
        detail,
        hint: (status != Status::Ok).then(|| {
            "run as a member of the moor group with --key-file (see packaging/README.md)"
                .to_string()
        }),
    }
}

fn examine(host: &HostArgs, socket: &Path, key_file: Option<&PathBuf>) -> (Report, Option<Daemon>) {
    let paths = HostPaths::under(&host.host_root);
    let registry = Registry::new(&host.attachments_dir);
    let (moord, check) = daemon(socket, key_file);
    let doctor = Doctor {
        paths: &paths,
        registry: &registry,
        probe: &CommandProbe,
        privileged: moord.as_ref().map(|d| d as &dyn Privileged),
    };
    let mut report = doctor.examine();
    *report
        .summary
        .entry(format!(
            "checks_{}",
            serde_json::to_value(check.status)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ))
        .or_insert(0) += 1;
    report.checks.push(check);
    (report, moord)
}

pub fn doctor(args: DoctorArgs, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode> {
    let (report, _) = examine(&args.host, socket, key_file);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", doctor::render(&report));
    }
    Ok(if report.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}

pub fn cleanup(args: CleanupCmd, socket: &Path, key_file: Option<&PathBuf>) -> Result<ExitCode> {
    let (report, moord) = examine(&args.host, socket, key_file);
    let mut actions = doctor::plan(&report.leftovers);
    if !args.only.is_empty() {
        for id in &args.only {
            if !actions.iter().any(|a| a.id == *id) {
                bail!("no action {id} in the plan (run `moor cleanup --plan`)");
            }
        }
        actions.retain(|a| args.only.contains(&a.id));
    }
    let Some(moord) = moord else {
        if args.mode.apply {
            bail!("moord does not answer: nothing can be removed (`moor doctor` says why)");
        }
        // A plan without moord: every removal is skipped as unverifiable, and
        // the dry run still shows the operations.
        return finish(&args, &actions, None);
    };
    finish(&args, &actions, Some(&moord))
}

fn finish(
    args: &CleanupCmd,
    actions: &[doctor::Action],
    moord: Option<&Daemon>,
) -> Result<ExitCode> {
    let events = UdevEvents;
    let nothing = NoDaemon;
    let cleaner = Cleaner {
        paths: HostPaths::under(&args.host.host_root),
        privileged: moord.map(|d| d as &dyn Privileged).unwrap_or(&nothing),
        events: &events,
        locks: LockDir::new(&args.host.lock_dir),
        registry: Registry::new(&args.host.attachments_dir),
        timeout: Duration::from_secs(args.timeout),
    };
    let tty = std::io::stderr().is_terminal();
    let mut outcomes = Vec::new();
    for a in actions {
        let o = if args.mode.apply {
            if tty {
                eprintln!(
                    "moor: [{}/{}] {:?} {}",
                    a.id,
                    actions.len(),
                    a.action,
                    a.what
                );
            }
            tracing::info!(id = a.id, action = ?a.action, what = %a.what, "cleanup");
            cleaner.apply(a)
        } else {
            cleaner.preview(a)
        };
        outcomes.push(o);
    }
    let left = outcomes
        .iter()
        .any(|o| matches!(o.status, "skipped" | "failed" | "incomplete"));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "mode": if args.mode.apply { "apply" } else { "plan" },
                "actions": outcomes,
            }))
            .context("printing the outcome")?
        );
    } else if outcomes.is_empty() {
        println!("nothing to clean up");
    } else {
        for o in &outcomes {
            println!("{:>3}. {:<10} {:?}: {}", o.id, o.status, o.action, o.what);
            if let Some(r) = &o.reason {
                println!("     {r}");
            }
            for op in &o.operations {
                println!("       {op}");
            }
            if !o.detail.is_null() {
                println!("     {}", o.detail);
            }
        }
    }
    // A plan with nothing skipped exits 0; an applied cleanup exits 0 only when
    // every action was done.
    Ok(if left {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

/// Stands in for moord when it does not answer: every call fails (a plan then
/// shows its operations through the dry run, which never calls it).
struct NoDaemon;

impl Privileged for NoDaemon {
    fn call(
        &self,
        op: &'static str,
        _: serde_json::Value,
        _: &dyn std::fmt::Debug,
        _: Duration,
    ) -> Result<serde_json::Value, moor_connector::exec::PrivError> {
        Err(moor_connector::exec::PrivError::Unavailable {
            socket: String::new(),
            message: format!("{op}: moord does not answer"),
        })
    }
}
