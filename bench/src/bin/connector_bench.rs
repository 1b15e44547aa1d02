//! moor-connector as a library, in one process (as a Rust host agent would use it),
//! the counterpart of `bench/osbrick_driver.py`: the same attach/detach cycles and
//! the same N-volume batch with one thread per volume. Privileged steps go to moord.
//!
//! usage: connector_bench SOCKET KEY_FILE single PROPS.json ITERATIONS
//!        connector_bench SOCKET KEY_FILE batch PROPS1.json PROPS2.json ...
//! prints one JSON object with timings in milliseconds.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use moor_connector::attachments::Registry;
use moor_connector::exec::Daemon;
use moor_connector::host::HostPaths;
use moor_connector::host::udev::UdevEvents;
use moor_connector::lock::LockDir;
use moor_connector::transport::iscsi::{IscsiConnector, IscsiProps, Options};
use serde_json::{Value, json};

fn props(path: &str) -> Result<IscsiProps> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let data = v.get("data").cloned().unwrap_or(v);
    Ok(IscsiProps::from_connection_info(&data)?)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        bail!("usage: connector_bench SOCKET KEY_FILE single PROPS N | batch PROPS...");
    }
    let key = moor_privhelper::client::read_key_file(Path::new(&args[2]))
        .context("reading the key file")?;
    let moord = Daemon::new(Path::new(&args[1]), Some(key));
    moord.check()?;
    let events = UdevEvents;
    let c = IscsiConnector {
        paths: HostPaths::system(),
        privileged: &moord,
        events: &events,
        locks: LockDir::new("/run/moor/locks"),
        registry: Registry::new("/run/moor/attachments"),
        options: Options::default(),
    };
    let out = match args[3].as_str() {
        "single" => {
            let p = props(&args[4])?;
            let n: usize = args.get(5).map_or(Ok(5), |s| s.parse())?;
            let (mut attach, mut detach) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let t0 = Instant::now();
                let info = c.connect(&p)?;
                let t1 = Instant::now();
                c.disconnect(&p, &info, false, false)?;
                attach.push(ms(t1 - t0));
                detach.push(ms(t1.elapsed()));
            }
            json!({"attach_ms": attach, "detach_ms": detach})
        }
        "batch" => {
            let all = args[4..]
                .iter()
                .map(|a| props(a))
                .collect::<Result<Vec<_>>>()?;
            let t0 = Instant::now();
            let infos: Vec<_> = std::thread::scope(|s| {
                let hs: Vec<_> = all.iter().map(|p| s.spawn(|| c.connect(p))).collect();
                hs.into_iter()
                    .map(|h| h.join().map_err(|_| anyhow::anyhow!("thread panicked")))
                    .collect::<Result<Vec<_>>>()
            })?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
            let attach = ms(t0.elapsed());
            let t1 = Instant::now();
            std::thread::scope(|s| {
                let hs: Vec<_> = all
                    .iter()
                    .zip(&infos)
                    .map(|(p, i)| s.spawn(|| c.disconnect(p, i, false, false)))
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().map_err(|_| anyhow::anyhow!("thread panicked")))
                    .collect::<Result<Vec<_>>>()
            })?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
            json!({"attach_ms": attach, "detach_ms": ms(t1.elapsed()), "volumes": infos.len()})
        }
        other => bail!("unknown mode {other}"),
    };
    println!("{out}");
    Ok(())
}
