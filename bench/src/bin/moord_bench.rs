//! Latency and throughput of moord requests against a plain fork/exec floor, as the
//! caller sees them: N calls from T threads (each with its own connection, started
//! together on a barrier), bounded by count and time. Prints one JSON object;
//! bench/moord.sh runs it as an unprivileged user and puts it next to oslo.rootwrap,
//! the rootwrap daemon and oslo.privsep.
//!
//! ```text
//! moord_bench MODE [--threads T] [--count N] [--secs S] [--warmup W]
//!             [--socket PATH] [--key FILE] [--argv PROG,ARG…]
//! MODE: ping | exec | connect (moord) | fork (std::process::Command, no moord)
//! ```

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use moor_bench::stats;
use moor_privhelper::client::{Client, read_key_file};
use moor_privhelper::ops::ExecArgs;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `ping` over an authenticated connection.
    Ping,
    /// `exec` of `argv` (default `/bin/true`) over an authenticated connection.
    Exec,
    /// Connect, handshake (peer credentials + HMAC both ways), hang up.
    Connect,
    /// The floor: spawn `argv` directly, stdin null, stdout and stderr piped.
    Fork,
}

#[derive(Debug, Clone)]
struct Opts {
    mode: Mode,
    threads: usize,
    count: usize,
    secs: f64,
    warmup: usize,
    socket: PathBuf,
    key: Option<PathBuf>,
    argv: Vec<String>,
}

fn parse() -> anyhow::Result<Opts> {
    let mut it = std::env::args().skip(1);
    let mode = match it.next().as_deref() {
        Some("ping") => Mode::Ping,
        Some("exec") => Mode::Exec,
        Some("connect") => Mode::Connect,
        Some("fork") => Mode::Fork,
        other => bail!(
            "usage: moord_bench ping|exec|connect|fork [--threads T] [--count N] [--secs S] [--warmup W] [--socket P] [--key F] [--argv PROG,ARG…] (got {other:?})"
        ),
    };
    let mut o = Opts {
        mode,
        threads: 1,
        count: 2000,
        secs: 10.0,
        warmup: 20,
        socket: PathBuf::from("/run/moor/moord.sock"),
        key: None,
        argv: vec!["/bin/true".into()],
    };
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--threads" => o.threads = v.parse::<usize>()?.max(1),
            "--count" => o.count = v.parse::<usize>()?.max(1),
            "--secs" => o.secs = v.parse()?,
            "--warmup" => o.warmup = v.parse()?,
            "--socket" => o.socket = v.into(),
            "--key" => o.key = Some(v.into()),
            "--argv" => o.argv = v.split(',').map(str::to_string).collect(),
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(o)
}

/// What one caller thread measured.
#[derive(Debug, Default)]
struct ThreadResult {
    samples: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    start: Option<Instant>,
    end: Option<Instant>,
}

/// One call of the measured operation on this thread's connection (if any).
fn call(
    o: &Opts,
    key: Option<&[u8]>,
    client: &mut Option<Client>,
    exec: &ExecArgs,
) -> anyhow::Result<()> {
    match o.mode {
        Mode::Ping => client.as_mut().context("no connection")?.ping()?,
        Mode::Exec => {
            let r = client.as_mut().context("no connection")?.exec(exec)?;
            if r.exit_code != Some(0) {
                bail!("exit {:?} signal {:?}", r.exit_code, r.signal);
            }
        }
        Mode::Connect => drop(Client::connect(&o.socket, key)?),
        Mode::Fork => {
            let out = Command::new(&o.argv[0])
                .args(&o.argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()?;
            if !out.status.success() {
                bail!("{:?}: {}", o.argv, out.status);
            }
        }
    }
    Ok(())
}

fn caller(
    o: Arc<Opts>,
    key: Option<Arc<Vec<u8>>>,
    quota: usize,
    barrier: Arc<Barrier>,
) -> anyhow::Result<ThreadResult> {
    let key = key.as_deref().map(Vec::as_slice);
    let mut client = match o.mode {
        Mode::Ping | Mode::Exec => Some(Client::connect(&o.socket, key)?),
        Mode::Connect | Mode::Fork => None,
    };
    let exec = ExecArgs {
        argv: o.argv.clone(),
        ..ExecArgs::default()
    };
    // Warm-up: first connection, page faults, the daemon's worker threads.
    for _ in 0..o.warmup {
        call(&o, key, &mut client, &exec).context("warm-up call")?;
    }
    let mut r = ThreadResult {
        samples: Vec::with_capacity(quota),
        ..ThreadResult::default()
    };
    barrier.wait();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.secs);
    r.start = Some(start);
    let mut last = start;
    while r.samples.len() + r.errors < quota && last < deadline {
        let t = Instant::now();
        let res = call(&o, key, &mut client, &exec);
        last = Instant::now();
        match res {
            Ok(()) => r.samples.push(last - t),
            Err(e) => {
                r.errors += 1;
                r.first_error.get_or_insert_with(|| format!("{e:#}"));
                if r.errors > 100 {
                    break;
                }
            }
        }
    }
    r.end = Some(last);
    Ok(r)
}

fn main() -> anyhow::Result<()> {
    let o = Arc::new(parse()?);
    let key = match &o.key {
        Some(p) => Some(Arc::new(
            read_key_file(p)
                .with_context(|| format!("reading {}", p.display()))?
                .to_vec(),
        )),
        None => None,
    };
    let barrier = Arc::new(Barrier::new(o.threads));
    let handles: Vec<_> = (0..o.threads)
        .map(|i| {
            // Split the count evenly; the first threads take the remainder.
            let quota = o.count / o.threads + usize::from(i < o.count % o.threads);
            let (o, key, barrier) = (o.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || caller(o, key, quota, barrier))
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("caller thread panicked"))??,
        );
    }
    let start = results
        .iter()
        .filter_map(|r| r.start)
        .min()
        .context("no thread started")?;
    let end = results
        .iter()
        .filter_map(|r| r.end)
        .max()
        .context("no thread ended")?;
    let wall = (end - start).as_secs_f64();
    let errors: usize = results.iter().map(|r| r.errors).sum();
    let first_error = results.iter().find_map(|r| r.first_error.clone());
    let mut samples: Vec<Duration> = results.into_iter().flat_map(|r| r.samples).collect();
    let n = samples.len();
    let mean_us = if n == 0 {
        0.0
    } else {
        samples.iter().map(Duration::as_secs_f64).sum::<f64>() / n as f64 * 1e6
    };
    let s = stats(&mut samples);
    let mode = match o.mode {
        Mode::Ping => "ping",
        Mode::Exec => "exec",
        Mode::Connect => "connect",
        Mode::Fork => "fork",
    };
    let out = json!({
        "mode": mode,
        "argv": if matches!(o.mode, Mode::Exec | Mode::Fork) { json!(o.argv) } else { json!(null) },
        "threads": o.threads,
        "calls": n,
        "errors": errors,
        "first_error": first_error,
        "median_us": s.median.as_secs_f64() * 1e6,
        "p99_us": s.p99.as_secs_f64() * 1e6,
        "mean_us": mean_us,
        "calls_per_s": if wall > 0.0 { n as f64 / wall } else { 0.0 },
        "wall_s": wall,
        "caller_uid": real_uid(),
    });
    println!("{out}");
    Ok(())
}

/// The real uid, from /proc (the bench has no libc dependency).
fn real_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
