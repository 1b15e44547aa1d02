//! Event-driven device waits (architecture: "device waits behind a small trait").
//!
//! A caller opens a [`Watch`] *before* it triggers the action (iSCSI login, SCSI
//! scan, device delete), then waits with [`wait_for`] or one of the readiness helpers
//! built on it. The condition is checked first, then re-checked after every event,
//! until the deadline (invariant 5: every wait has a deadline). There is no
//! sleep-polling: the real [`UdevEvents`] blocks in `poll(2)` on udev's netlink
//! socket, the fake [`ScriptedEvents`] replays scripted steps that change a fixture
//! tree and never sleeps.
//!
//! udev multicasts an event on its netlink group only after it has run its rules for
//! the device (database in `/run/udev/data`, `/dev` node and `/dev/disk/by-*` links
//! created or removed), so a re-check after an event sees udev's result.
//!
//! All host state is read through [`HostPaths`], so the helpers run on fixture trees.

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::scsi::{self, Hctl, ScsiDevice};
use super::{HostError, HostPaths, component, is_absent};

/// A source of device events: opens watches.
pub trait DeviceEvents: Send + Sync {
    /// Starts listening. Open the watch *before* triggering the action whose
    /// result you wait for, so no event is missed.
    fn watch(&self) -> Result<Box<dyn Watch>, HostError>;
}

/// An open subscription to device events.
pub trait Watch {
    /// Blocks until at least one relevant event arrived (all pending events are
    /// consumed; returns `true`) or `deadline` passed (`false`).
    fn next(&mut self, deadline: Instant) -> Result<bool, HostError>;
}

/// Why a wait ended without its condition becoming true.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed. `pending` says what was still missing (or, for a
    /// removal, still present) at the last check.
    #[error("timed out after {:.1}s waiting for {what}{}", .waited.as_secs_f64(), pending_suffix(.pending))]
    Deadline {
        what: String,
        waited: Duration,
        pending: Vec<String>,
    },
    /// Reading the host (or the event source) failed.
    #[error(transparent)]
    Host(#[from] HostError),
}

fn pending_suffix(pending: &[String]) -> String {
    if pending.is_empty() {
        String::new()
    } else {
        format!(" ({})", pending.join("; "))
    }
}

/// The result of one check inside a wait.
enum Progress<T> {
    Ready(T),
    /// Not yet; what is still missing (for the deadline error).
    Pending(Vec<String>),
}

/// Waits until `check` returns `Some`: checks first, then again after every event
/// from `watch`, until `deadline`. `what` names the awaited thing in the error
/// ("timed out after 30.0s waiting for {what}").
pub fn wait_for<T>(
    watch: &mut dyn Watch,
    deadline: Instant,
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>, HostError>,
) -> Result<T, WaitError> {
    wait_until(watch, deadline, what, || {
        Ok(match check()? {
            Some(value) => Progress::Ready(value),
            None => Progress::Pending(Vec::new()),
        })
    })
}

fn wait_until<T>(
    watch: &mut dyn Watch,
    deadline: Instant,
    what: &str,
    mut check: impl FnMut() -> Result<Progress<T>, HostError>,
) -> Result<T, WaitError> {
    let start = Instant::now();
    let timed_out = |pending| WaitError::Deadline {
        what: what.to_owned(),
        waited: start.elapsed(),
        pending,
    };
    let mut phase = crate::progress::Phase::new(format!("waiting for {what}"), deadline);
    loop {
        let pending = match check()? {
            Progress::Ready(value) => return Ok(value),
            Progress::Pending(pending) => pending,
        };
        // Checked here too: a steady stream of unrelated events must not keep the
        // wait going past its deadline.
        if Instant::now() >= deadline {
            return Err(timed_out(pending));
        }
        phase.set_detail(Some(pending.join("; ")));
        phase.tick();
        // Wake up for the next progress report too (then look again): a wait
        // reports while it lasts, not only when events come.
        let wake = deadline.min(phase.next_due());
        if !watch.next(wake)? {
            let now = Instant::now();
            if now >= wake && now < deadline {
                continue;
            }
            // One last look: if events were lost (socket overflow) the state may
            // still have changed. (A watch that returns before `wake` has nothing
            // more to tell: the scripted fake once its script is exhausted.)
            return match check()? {
                Progress::Ready(value) => Ok(value),
                Progress::Pending(pending) => Err(timed_out(pending)),
            };
        }
    }
}

// ---------------------------------------------------------------------------
// The real event source: udev's netlink monitor.

/// Device events from udev (netlink group "udev", subsystems `block`, `scsi`, `nvme`
/// and `ccw`):
/// each event arrives after udev has processed the device.
#[derive(Debug, Clone, Copy, Default)]
pub struct UdevEvents;

impl DeviceEvents for UdevEvents {
    fn watch(&self) -> Result<Box<dyn Watch>, HostError> {
        Ok(Box::new(UdevWatch::open()?))
    }
}

/// An open udev monitor socket (see [`UdevEvents`]).
pub struct UdevWatch {
    socket: udev::MonitorSocket,
}

impl fmt::Debug for UdevWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::os::fd::AsRawFd;
        f.debug_struct("UdevWatch")
            .field("fd", &self.socket.as_raw_fd())
            .finish()
    }
}

fn monitor_error(action: &'static str) -> impl FnOnce(io::Error) -> HostError {
    move |source| HostError::Monitor { action, source }
}

impl UdevWatch {
    /// Opens the monitor and starts receiving.
    pub fn open() -> Result<Self, HostError> {
        let socket = udev::MonitorBuilder::new()
            .map_err(monitor_error("opening the netlink monitor"))?
            .match_subsystem("block")
            .and_then(|b| b.match_subsystem("scsi"))
            // NVMe controllers announce state changes (reconnected: `live`) here.
            .and_then(|b| b.match_subsystem("nvme"))
            // s390x CCW devices (a DASD freed from cio_ignore, set online or
            // offline) announce themselves here.
            .and_then(|b| b.match_subsystem("ccw"))
            .map_err(monitor_error("adding subsystem filters"))?
            .listen()
            .map_err(monitor_error("enabling receiving"))?;
        Ok(Self { socket })
    }
}

/// `remaining` in whole milliseconds, rounded up (so a wait never wakes just
/// before its deadline and spins), capped at the largest poll timeout.
fn poll_timeout(remaining: Duration) -> PollTimeout {
    PollTimeout::try_from(remaining.as_nanos().div_ceil(1_000_000)).unwrap_or(PollTimeout::MAX)
}

impl Watch for UdevWatch {
    fn next(&mut self, deadline: Instant) -> Result<bool, HostError> {
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            let revents = match poll(&mut fds, poll_timeout(remaining)) {
                Ok(0) => PollFlags::empty(),
                Ok(_) => fds[0].revents().unwrap_or(PollFlags::empty()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(monitor_error("poll")(e.into())),
            };
            if revents.contains(PollFlags::POLLNVAL) {
                return Err(monitor_error("poll")(Errno::EBADF.into()));
            }
            if !revents.is_empty() {
                // Drain everything pending (the socket is non-blocking).
                let received = self.socket.iter().count();
                // POLLERR: the receive buffer overflowed and events were lost;
                // report "something happened" so the caller re-checks.
                if received > 0 || revents.contains(PollFlags::POLLERR) {
                    return Ok(true);
                }
                // A datagram libudev discarded (filter or sender check): keep waiting.
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The fake event source for tests.

/// One scripted event: a change to a fixture tree.
pub type Step = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Script {
    steps: VecDeque<Step>,
    ran: usize,
    watches: usize,
}

/// A fake [`DeviceEvents`] that replays a script: each [`Watch::next`] runs the next
/// step (e.g. creates `/sys/block/sdb` in a fixture tree) and returns `true`; once
/// the script is exhausted it returns `false` at once, whatever the deadline (tests
/// never sleep). Clones share the script; all watches consume the same steps.
#[derive(Clone, Default)]
pub struct ScriptedEvents {
    script: Arc<Mutex<Script>>,
}

impl fmt::Debug for ScriptedEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let script = self.lock();
        f.debug_struct("ScriptedEvents")
            .field("remaining", &script.steps.len())
            .field("ran", &script.ran)
            .field("watches", &script.watches)
            .finish()
    }
}

impl ScriptedEvents {
    /// An empty script (every `next()` reports the deadline).
    pub fn new() -> Self {
        Self::default()
    }

    /// A script of `steps`, run in order.
    pub fn from_steps(steps: impl IntoIterator<Item = Step>) -> Self {
        let events = Self::new();
        events.lock().steps.extend(steps);
        events
    }

    /// Appends a step.
    #[must_use]
    pub fn then(self, step: impl FnOnce() + Send + 'static) -> Self {
        self.lock().steps.push_back(Box::new(step));
        self
    }

    /// How many steps have run.
    pub fn steps_run(&self) -> usize {
        self.lock().ran
    }

    /// How many steps have not run yet.
    pub fn remaining(&self) -> usize {
        self.lock().steps.len()
    }

    /// How many watches were opened.
    pub fn watches_opened(&self) -> usize {
        self.lock().watches
    }

    fn lock(&self) -> MutexGuard<'_, Script> {
        // A step that panicked (a failing test) leaves the queue itself intact.
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DeviceEvents for ScriptedEvents {
    fn watch(&self) -> Result<Box<dyn Watch>, HostError> {
        self.lock().watches += 1;
        Ok(Box::new(ScriptedWatch {
            events: self.clone(),
        }))
    }
}

/// A watch on [`ScriptedEvents`].
#[derive(Debug)]
pub struct ScriptedWatch {
    events: ScriptedEvents,
}

impl Watch for ScriptedWatch {
    fn next(&mut self, _deadline: Instant) -> Result<bool, HostError> {
        // Take the step out first so it runs without the lock held.
        let Some(step) = self.events.lock().steps.pop_front() else {
            return Ok(false);
        };
        step();
        self.events.lock().ran += 1;
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// Readiness checks and waits.

/// Whether `path` exists, without following a final symlink (a dangling link
/// counts as present).
fn exists(path: &Path) -> Result<bool, HostError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if is_absent(&e) => Ok(false),
        Err(source) => Err(HostError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The `major:minor` of block device `name` (`/sys/block/<name>/dev`); `None` if
/// the device (or the attribute) does not exist.
pub fn block_devnum(paths: &HostPaths, name: &str) -> Result<Option<(u32, u32)>, HostError> {
    let path = paths.sys(&format!("block/{}/dev", component(name)?));
    let Some(text) = paths.read_attr(&path)? else {
        return Ok(None);
    };
    let parse = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    match text.split_once(':') {
        Some((major, minor)) => match (parse(major), parse(minor)) {
            (Some(major), Some(minor)) => Ok(Some((major, minor))),
            _ => Err(HostError::Invalid {
                path,
                reason: format!("not a major:minor device number: {text:?}"),
            }),
        },
        None => Err(HostError::Invalid {
            path,
            reason: format!("not a major:minor device number: {text:?}"),
        }),
    }
}

/// `Ok(())` if udev has finished with block device `name`, else what is missing.
fn udev_state(paths: &HostPaths, name: &str) -> Result<Result<(), String>, HostError> {
    let Some((major, minor)) = block_devnum(paths, name)? else {
        let path = paths.sys(&format!("block/{name}/dev"));
        return Ok(Err(format!("{} does not exist", path.display())));
    };
    let db = paths.run(&format!("udev/data/b{major}:{minor}"));
    if exists(&db)? {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "udev has not processed {name} yet (no {})",
            db.display()
        )))
    }
}

/// Property `key` (an `E:KEY=VALUE` line) of block device `name` in udev's
/// database (`/run/udev/data/b<major>:<minor>`, world-readable): what udev's blkid
/// builtin found, e.g. `ID_FS_TYPE`. `None` when the device, its entry or the
/// property is missing.
pub fn udev_property(
    paths: &HostPaths,
    name: &str,
    key: &str,
) -> Result<Option<String>, HostError> {
    let Some((major, minor)) = block_devnum(paths, name)? else {
        return Ok(None);
    };
    let Some(db) = paths.read_attr(&paths.run(&format!("udev/data/b{major}:{minor}")))? else {
        return Ok(None);
    };
    Ok(db.lines().find_map(|l| {
        l.strip_prefix("E:")
            .and_then(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.to_owned())
    }))
}

/// Whether block device `name` exists in `/sys/block` and udev has finished with it
/// (its database entry `/run/udev/data/b<major>:<minor>` exists, which is what
/// libudev's `is_initialized` checks).
pub fn udev_initialized(paths: &HostPaths, name: &str) -> Result<bool, HostError> {
    Ok(udev_state(paths, name)?.is_ok())
}

/// The whole-disk block device (`sdX`) of the SCSI device at `hctl`, from the
/// kernel's bus-wide index `/sys/bus/scsi/devices/H:C:T:L/block/` (the same for
/// every transport: iSCSI, FC, scsi_debug); `None` until the kernel has created it.
pub fn scsi_block_name(paths: &HostPaths, hctl: Hctl) -> Result<Option<String>, HostError> {
    let dir = paths.sys(&format!("bus/scsi/devices/{hctl}/block"));
    Ok(paths
        .list_dir(&dir)?
        .and_then(|names| names.into_iter().next()))
}

/// Waits until the SCSI disk at `hctl` exists, has a WWID and udev has finished
/// with it (so its `/dev` node and by-id links exist).
pub fn wait_for_scsi_disk(
    paths: &HostPaths,
    watch: &mut dyn Watch,
    hctl: Hctl,
    deadline: Instant,
) -> Result<ScsiDevice, WaitError> {
    wait_until(watch, deadline, &format!("SCSI disk {hctl}"), || {
        let Some(name) = scsi_block_name(paths, hctl)? else {
            let dir = paths.sys(&format!("bus/scsi/devices/{hctl}/block"));
            return Ok(Progress::Pending(vec![format!(
                "no block device in {} yet",
                dir.display()
            )]));
        };
        let mut pending = Vec::new();
        let wwid = scsi::block_wwid(paths, &name)?;
        if wwid.is_none() {
            let path = paths.sys(&format!("block/{name}/device/wwid"));
            pending.push(format!("{name} has no WWID yet ({})", path.display()));
        }
        if let Err(why) = udev_state(paths, &name)? {
            pending.push(why);
        }
        Ok(match wwid {
            Some(wwid) if pending.is_empty() => Progress::Ready(ScsiDevice {
                hctl,
                name,
                wwid: Some(wwid),
            }),
            _ => Progress::Pending(pending),
        })
    })
}

use moor_types::is_disk_or_partition;

/// What is left of block device `name`: `/sys/block/<name>`, `/dev/<name>` and every
/// `/dev/disk/by-*/*` symlink pointing at it or one of its partitions. Empty once the
/// kernel and udev are done with the removal.
pub fn removal_leftovers(paths: &HostPaths, name: &str) -> Result<Vec<PathBuf>, HostError> {
    let name = component(name)?;
    let mut left = Vec::new();
    for path in [paths.sys(&format!("block/{name}")), paths.dev(name)] {
        if exists(&path)? {
            left.push(path);
        }
    }
    let disk = paths.dev("disk");
    for kind in paths.list_prefixed(&disk, "by-")? {
        let dir = disk.join(kind);
        for entry in paths.list_dir(&dir)?.unwrap_or_default() {
            let link = dir.join(entry);
            let target = match fs::read_link(&link) {
                Ok(target) => target,
                // Not a symlink, or removed since the listing.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput || is_absent(&e) => continue,
                Err(source) => return Err(HostError::Resolve { path: link, source }),
            };
            if target
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| is_disk_or_partition(name, n))
            {
                left.push(link);
            }
        }
    }
    Ok(left)
}

/// Waits until block device `name` is gone: `/sys/block/<name>` removed by the
/// kernel, `/dev/<name>` and all `/dev/disk/by-*` links to it (or its partitions)
/// removed by udev. On the deadline the error lists exactly what is still there.
pub fn wait_for_removal(
    paths: &HostPaths,
    watch: &mut dyn Watch,
    name: &str,
    deadline: Instant,
) -> Result<(), WaitError> {
    wait_until(watch, deadline, &format!("removal of {name}"), || {
        let left = removal_leftovers(paths, name)?;
        if left.is_empty() {
            return Ok(Progress::Ready(()));
        }
        Ok(Progress::Pending(
            left.iter()
                .map(|p| format!("{} still present", p.display()))
                .collect(),
        ))
    })
}

/// Waits until block device `name` has a device-mapper holder (`dm-N`, e.g. the
/// multipath map over it) and udev has finished with that holder; returns `dm-N`.
pub fn wait_for_dm_holder(
    paths: &HostPaths,
    watch: &mut dyn Watch,
    name: &str,
    deadline: Instant,
) -> Result<String, WaitError> {
    wait_until(watch, deadline, &format!("a dm holder of {name}"), || {
        let Some(dm) = scsi::holder_dm(paths, name)? else {
            let dir = paths.sys(&format!("block/{name}/holders"));
            return Ok(Progress::Pending(vec![format!(
                "no dm-* in {} yet",
                dir.display()
            )]));
        };
        Ok(match udev_state(paths, &dm)? {
            Ok(()) => Progress::Ready(dm),
            Err(why) => Progress::Pending(vec![why]),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Component;

    /// A far deadline: scripted waits never reach it (the fake does not sleep).
    fn far() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    fn hctl(s: &str) -> Hctl {
        s.parse().unwrap()
    }

    /// `to` relative to the directory of `link` (both absolute, same root), as
    /// sysfs and udev write their links.
    fn relative(link: &Path, to: &Path) -> PathBuf {
        let from: Vec<Component> = link.parent().unwrap().components().collect();
        let to: Vec<Component> = to.components().collect();
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        let mut rel = PathBuf::new();
        for _ in common..from.len() {
            rel.push("..");
        }
        for c in &to[common..] {
            rel.push(c);
        }
        rel
    }

    fn symlink(link: &Path, to: &Path) {
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(relative(link, to), link).unwrap();
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A fixture tree shaped like the kernel's software-iSCSI sysfs layout (see
    /// `connector/testdata/README.md`) plus `/sys/bus/scsi/devices`, `/dev` and
    /// udev's `/run/udev/data`.
    #[derive(Clone)]
    struct Tree {
        root: PathBuf,
    }

    impl Tree {
        fn new(dir: &tempfile::TempDir) -> Self {
            Self {
                root: dir.path().to_owned(),
            }
        }

        fn paths(&self) -> HostPaths {
            HostPaths::under(&self.root)
        }

        fn scsi_dir(&self, h: Hctl) -> PathBuf {
            self.root.join(format!(
                "sys/devices/platform/host{}/session1/target{}/{h}",
                h.host,
                h.target()
            ))
        }

        /// The kernel adds SCSI device `h` with block device `name` (`major:minor`),
        /// without a WWID yet.
        fn add_disk(&self, h: Hctl, name: &str, devnum: &str) {
            let sd = self.scsi_dir(h);
            let block = sd.join("block").join(name);
            write(&sd.join("state"), "running\n");
            write(&block.join("dev"), &format!("{devnum}\n"));
            write(&block.join("size"), "2097152\n");
            fs::create_dir_all(block.join("holders")).unwrap();
            symlink(&block.join("device"), &sd);
            symlink(&self.root.join("sys/block").join(name), &block);
            symlink(&self.root.join(format!("sys/bus/scsi/devices/{h}")), &sd);
        }

        fn set_wwid(&self, h: Hctl, wwid: &str) {
            write(&self.scsi_dir(h).join("wwid"), &format!("{wwid}\n"));
        }

        /// udev processes `name`: database entry, `/dev` node, by-id links.
        fn udev_add(&self, name: &str, devnum: &str, links: &[&str]) {
            write(&self.root.join(format!("run/udev/data/b{devnum}")), "");
            write(&self.root.join("dev").join(name), "");
            for link in links {
                symlink(
                    &self.root.join("dev/disk").join(link),
                    &self.root.join("dev").join(name),
                );
            }
        }

        fn remove(&self, rel: &str) {
            let path = self.root.join(rel);
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                fs::remove_dir_all(&path).unwrap();
            } else {
                fs::remove_file(&path).unwrap();
            }
        }

        /// A dm device over `slaves` (as the fixture generator's `mk_dm`).
        fn add_dm(&self, n: u32, slaves: &[&str]) {
            let dm = self.root.join(format!("sys/devices/virtual/block/dm-{n}"));
            write(&dm.join("dev"), &format!("254:{n}\n"));
            write(&dm.join("dm/name"), "mpatha\n");
            symlink(&self.root.join(format!("sys/block/dm-{n}")), &dm);
            for slave in slaves {
                let sp = fs::canonicalize(self.root.join("sys/block").join(slave)).unwrap();
                symlink(&dm.join("slaves").join(slave), &sp);
                symlink(&sp.join(format!("holders/dm-{n}")), &dm);
            }
        }
    }

    fn tree() -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        let tree = Tree::new(&dir);
        (dir, tree)
    }

    const WWID: &str = "naa.600a09803830447a4f244c4657616f6f";
    const UDEV_WWID: &str = "3600a09803830447a4f244c4657616f6f";

    fn deadline_parts(err: WaitError) -> (String, Duration, Vec<String>) {
        match err {
            WaitError::Deadline {
                what,
                waited,
                pending,
            } => (what, waited, pending),
            other => panic!("expected a deadline error, got {other:?}"),
        }
    }

    #[test]
    fn scripted_steps_run_in_order_then_exhaust() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = (log.clone(), log.clone());
        let events = ScriptedEvents::new()
            .then(move || a.lock().unwrap().push(1))
            .then(move || b.lock().unwrap().push(2));
        let mut watch = events.watch().unwrap();
        assert_eq!(events.watches_opened(), 1);
        assert!(watch.next(far()).unwrap());
        assert_eq!(events.steps_run(), 1);
        assert!(watch.next(far()).unwrap());
        let start = Instant::now();
        assert!(
            !watch.next(far()).unwrap(),
            "exhausted script ends the wait"
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(events.steps_run(), 2);
        assert_eq!(events.remaining(), 0);
        assert_eq!(*log.lock().unwrap(), [1, 2]);
        let from_steps = ScriptedEvents::from_steps([Box::new(|| {}) as Step]);
        assert_eq!(from_steps.remaining(), 1);
        assert!(format!("{from_steps:?}").contains("remaining: 1"));
    }

    #[test]
    fn wait_for_rechecks_after_every_event() {
        let events = ScriptedEvents::from_steps((0..5).map(|_| Box::new(|| {}) as Step));
        let mut watch = events.watch().unwrap();
        let mut checks = 0;
        let got = wait_for(&mut *watch, far(), "the third check", || {
            checks += 1;
            Ok((checks == 3).then_some("done"))
        })
        .unwrap();
        assert_eq!(got, "done");
        assert_eq!(checks, 3);
        assert_eq!(events.steps_run(), 2);
        assert_eq!(events.remaining(), 3);
    }

    #[test]
    fn wait_for_already_true_needs_no_event() {
        let events = ScriptedEvents::new().then(|| panic!("no event should be consumed"));
        let mut watch = events.watch().unwrap();
        // Even with a deadline already passed.
        assert_eq!(
            wait_for(&mut *watch, Instant::now(), "x", || Ok(Some(7))).unwrap(),
            7
        );
        assert_eq!(events.steps_run(), 0);
    }

    #[test]
    fn wait_for_deadline_and_host_errors() {
        let mut watch = ScriptedEvents::new().watch().unwrap();
        let err = wait_for(&mut *watch, Instant::now(), "the moon", || Ok(None::<()>)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("timed out after ") && msg.ends_with("s waiting for the moon"),
            "{msg}"
        );
        // An exhausted script with a far deadline ends at once too.
        let err = wait_for(&mut *watch, far(), "the sun", || Ok(None::<()>)).unwrap_err();
        assert!(matches!(err, WaitError::Deadline { .. }), "{err}");
        // A failing check stops the wait with the host error.
        let err = wait_for(&mut *watch, far(), "x", || -> Result<Option<()>, _> {
            Err(component("..").unwrap_err())
        })
        .unwrap_err();
        assert!(
            matches!(err, WaitError::Host(HostError::Component { .. })),
            "{err}"
        );
    }

    #[test]
    fn udev_property_reads_the_database_entry() {
        let (_dir, t) = tree();
        let p = t.paths();
        assert_eq!(udev_property(&p, "sdb", "ID_FS_TYPE").unwrap(), None);
        t.add_disk(hctl("3:0:0:1"), "sdb", "8:16");
        t.udev_add("sdb", "8:16", &[]);
        assert_eq!(udev_property(&p, "sdb", "ID_FS_TYPE").unwrap(), None);
        write(
            &t.root.join("run/udev/data/b8:16"),
            "S:disk/by-id/x\nE:ID_FS_UUID=0e1f\nE:ID_FS_TYPE=linux_raid_member\nG:systemd\n",
        );
        assert_eq!(
            udev_property(&p, "sdb", "ID_FS_TYPE").unwrap().as_deref(),
            Some("linux_raid_member")
        );
        assert_eq!(udev_property(&p, "sdb", "ID_FS").unwrap(), None);
    }

    #[test]
    fn udev_initialized_needs_sysfs_and_udev_database() {
        let (_dir, t) = tree();
        let p = t.paths();
        let h = hctl("3:0:0:1");
        assert!(!udev_initialized(&p, "sdb").unwrap());
        t.add_disk(h, "sdb", "8:16");
        assert_eq!(block_devnum(&p, "sdb").unwrap(), Some((8, 16)));
        assert!(!udev_initialized(&p, "sdb").unwrap());
        t.udev_add("sdb", "8:16", &[]);
        assert!(udev_initialized(&p, "sdb").unwrap());
        // A database entry for another device number does not count.
        t.udev_add("sdc", "8:32", &[]);
        assert!(!udev_initialized(&p, "sdc").unwrap());
        assert!(udev_initialized(&p, "../sdb").is_err());
    }

    #[test]
    fn bad_dev_attribute_is_an_error_naming_the_path() {
        let (_dir, t) = tree();
        let p = t.paths();
        for (name, bad) in [
            ("sdq", "8-16"),
            ("sdr", "8:x"),
            ("sds", "+8:16"),
            ("sdt", ""),
        ] {
            write(&t.root.join(format!("sys/block/{name}/dev")), bad);
            let err = block_devnum(&p, name).unwrap_err();
            assert!(
                err.to_string().contains(&format!("sys/block/{name}/dev")),
                "{err}"
            );
            assert!(udev_initialized(&p, name).is_err());
        }
    }

    #[test]
    fn scsi_disk_appears_after_events() {
        let (_dir, t) = tree();
        let p = t.paths();
        let h = hctl("3:0:0:1");
        let (t1, t2, t3) = (t.clone(), t.clone(), t.clone());
        let events = ScriptedEvents::new()
            // The kernel adds the SCSI device and its block device.
            .then(move || t1.add_disk(h, "sdb", "8:16"))
            // The WWID is readable (VPD 0x83 fetched).
            .then(move || t2.set_wwid(h, WWID))
            // udev has run its rules.
            .then(move || t3.udev_add("sdb", "8:16", &["by-id/wwn-0x600a098"]))
            .then(|| panic!("the wait should have ended"));
        let mut watch = events.watch().unwrap();
        let dev = wait_for_scsi_disk(&p, &mut *watch, h, far()).unwrap();
        assert_eq!(
            dev,
            ScsiDevice {
                hctl: h,
                name: "sdb".into(),
                wwid: Some(UDEV_WWID.into()),
            }
        );
        assert_eq!(events.steps_run(), 3);
        assert_eq!(events.remaining(), 1);
    }

    #[test]
    fn scsi_disk_already_present_needs_no_event() {
        let (_dir, t) = tree();
        let h = hctl("2:0:0:256");
        t.add_disk(h, "sdd", "8:48");
        t.set_wwid(h, "eui.wwid1");
        t.udev_add("sdd", "8:48", &[]);
        let events = ScriptedEvents::new().then(|| panic!("no event needed"));
        let mut watch = events.watch().unwrap();
        let dev = wait_for_scsi_disk(&t.paths(), &mut *watch, h, Instant::now()).unwrap();
        assert_eq!(dev.name, "sdd");
        assert_eq!(dev.wwid.as_deref(), Some("2wwid1"));
        assert_eq!(events.steps_run(), 0);
    }

    #[test]
    fn scsi_disk_never_appears_is_a_deadline_error() {
        let (_dir, t) = tree();
        let h = hctl("3:0:0:9");
        // Another LUN on the same target does not satisfy the wait.
        t.add_disk(hctl("3:0:0:1"), "sdb", "8:16");
        let mut watch = ScriptedEvents::new().watch().unwrap();
        let err = wait_for_scsi_disk(&t.paths(), &mut *watch, h, Instant::now()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("waiting for SCSI disk 3:0:0:9"), "{msg}");
        assert!(msg.contains("no block device in "), "{msg}");
        assert!(msg.contains("sys/bus/scsi/devices/3:0:0:9/block"), "{msg}");
        let (what, waited, pending) = deadline_parts(err);
        assert_eq!(what, "SCSI disk 3:0:0:9");
        assert!(waited < Duration::from_secs(5));
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn scsi_disk_deadline_says_what_is_missing() {
        let (_dir, t) = tree();
        let h = hctl("3:0:0:1");
        t.add_disk(h, "sdb", "8:16");
        let mut watch = ScriptedEvents::new().watch().unwrap();
        let err = wait_for_scsi_disk(&t.paths(), &mut *watch, h, far()).unwrap_err();
        let (_, _, pending) = deadline_parts(err);
        assert_eq!(pending.len(), 2, "{pending:?}");
        assert!(pending[0].starts_with("sdb has no WWID yet"), "{pending:?}");
        assert!(
            pending[0].ends_with("sys/block/sdb/device/wwid)"),
            "{pending:?}"
        );
        assert!(
            pending[1].starts_with("udev has not processed sdb yet")
                && pending[1].ends_with("run/udev/data/b8:16)"),
            "{pending:?}"
        );
        // With the WWID but without udev's database entry it is still not ready.
        t.set_wwid(h, WWID);
        let err = wait_for_scsi_disk(&t.paths(), &mut *watch, h, far()).unwrap_err();
        let (_, _, pending) = deadline_parts(err);
        assert_eq!(pending.len(), 1, "{pending:?}");
    }

    #[test]
    fn scsi_block_name_uses_bus_index() {
        let (_dir, t) = tree();
        let p = t.paths();
        t.add_disk(hctl("3:0:0:1"), "sdb", "8:16");
        t.add_disk(hctl("3:0:0:2"), "sdc", "8:32");
        assert_eq!(
            scsi_block_name(&p, hctl("3:0:0:2")).unwrap().as_deref(),
            Some("sdc")
        );
        assert_eq!(scsi_block_name(&p, hctl("3:0:0:3")).unwrap(), None);
        assert_eq!(scsi_block_name(&p, hctl("4:0:0:1")).unwrap(), None);
    }

    /// sdb fully attached: kernel device, udev node and links (disk and partition),
    /// plus sda's link which must never count as sdb's.
    fn attached(t: &Tree) {
        t.add_disk(hctl("3:0:0:1"), "sdb", "8:16");
        t.set_wwid(hctl("3:0:0:1"), WWID);
        t.udev_add(
            "sdb",
            "8:16",
            &[
                "by-id/wwn-0x600a09803830447a4f244c4657616f6f",
                "by-id/scsi-3600a09803830447a4f244c4657616f6f",
                "by-path/ip-192.0.2.10:3260-iscsi-iqn.2024-01.example:tgt-lun-1",
            ],
        );
        t.udev_add(
            "sdb1",
            "8:17",
            &["by-id/wwn-0x600a09803830447a4f244c4657616f6f-part1"],
        );
        t.udev_add("sda", "8:0", &["by-id/wwn-0x5000c500a1b2c3d4"]);
        t.udev_add("sdba", "67:96", &["by-id/wwn-0x5000c500a1b2c3d5"]);
    }

    #[test]
    fn removal_completes_after_events() {
        let (_dir, t) = tree();
        attached(&t);
        let p = t.paths();
        assert_eq!(removal_leftovers(&p, "sdb").unwrap().len(), 6);
        let (t1, t2) = (t.clone(), t.clone());
        let events = ScriptedEvents::new()
            // The kernel removes the SCSI device.
            .then(move || {
                t1.remove("sys/devices/platform/host3/session1/target3:0:0/3:0:0:1");
                t1.remove("sys/block/sdb");
                t1.remove("sys/bus/scsi/devices/3:0:0:1");
            })
            // udev removes nodes and links.
            .then(move || {
                for rel in [
                    "dev/sdb",
                    "dev/sdb1",
                    "dev/disk/by-id/wwn-0x600a09803830447a4f244c4657616f6f",
                    "dev/disk/by-id/wwn-0x600a09803830447a4f244c4657616f6f-part1",
                    "dev/disk/by-id/scsi-3600a09803830447a4f244c4657616f6f",
                    "dev/disk/by-path/ip-192.0.2.10:3260-iscsi-iqn.2024-01.example:tgt-lun-1",
                ] {
                    t2.remove(rel);
                }
            });
        let mut watch = events.watch().unwrap();
        wait_for_removal(&p, &mut *watch, "sdb", far()).unwrap();
        assert_eq!(events.steps_run(), 2);
        // Other disks' links are untouched and never counted.
        assert!(removal_leftovers(&p, "sdb").unwrap().is_empty());
        assert_eq!(removal_leftovers(&p, "sda").unwrap().len(), 2);
    }

    #[test]
    fn removal_deadline_lists_exactly_what_is_left() {
        let (_dir, t) = tree();
        attached(&t);
        let p = t.paths();
        let t1 = t.clone();
        let events = ScriptedEvents::new().then(move || {
            t1.remove("sys/block/sdb");
            t1.remove("dev/sdb");
            t1.remove("dev/sdb1");
            t1.remove("dev/disk/by-id/wwn-0x600a09803830447a4f244c4657616f6f");
            t1.remove("dev/disk/by-path/ip-192.0.2.10:3260-iscsi-iqn.2024-01.example:tgt-lun-1");
        });
        let mut watch = events.watch().unwrap();
        let err = wait_for_removal(&p, &mut *watch, "sdb", far()).unwrap_err();
        let msg = err.to_string();
        let (what, _, pending) = deadline_parts(err);
        assert_eq!(what, "removal of sdb");
        let root = t.root.display();
        assert_eq!(
            pending,
            [
                format!(
                    "{root}/dev/disk/by-id/scsi-3600a09803830447a4f244c4657616f6f still present"
                ),
                format!(
                    "{root}/dev/disk/by-id/wwn-0x600a09803830447a4f244c4657616f6f-part1 still present"
                ),
            ]
        );
        assert!(msg.contains("waiting for removal of sdb ("), "{msg}");
        assert!(
            msg.contains("scsi-3600a09803830447a4f244c4657616f6f still present; "),
            "{msg}"
        );
        assert_eq!(events.steps_run(), 1);
    }

    #[test]
    fn removal_with_nothing_there_needs_no_event() {
        let (_dir, t) = tree();
        let mut watch = ScriptedEvents::new().watch().unwrap();
        wait_for_removal(&t.paths(), &mut *watch, "sdz", Instant::now()).unwrap();
        assert!(wait_for_removal(&t.paths(), &mut *watch, "..", Instant::now()).is_err());
    }

    #[test]
    fn partition_names() {
        assert!(is_disk_or_partition("sdb", "sdb"));
        assert!(is_disk_or_partition("sdb", "sdb1"));
        assert!(is_disk_or_partition("sdb", "sdb15"));
        assert!(!is_disk_or_partition("sdb", "sdba"));
        assert!(!is_disk_or_partition("sdb", "sdba1"));
        assert!(!is_disk_or_partition("sdb", "sda"));
        assert!(is_disk_or_partition("nvme0n1", "nvme0n1p2"));
        assert!(!is_disk_or_partition("nvme0n1", "nvme0n12"));
        assert!(!is_disk_or_partition("nvme0n1", "nvme0n1p"));
        assert!(is_disk_or_partition("dm-1", "dm-1p1"));
        assert!(!is_disk_or_partition("dm-1", "dm-10"));
    }

    #[test]
    fn dm_holder_appears_after_events() {
        let (_dir, t) = tree();
        t.add_disk(hctl("3:0:0:1"), "sdb", "8:16");
        let (t1, t2) = (t.clone(), t.clone());
        let events = ScriptedEvents::new()
            .then(move || t1.add_dm(3, &["sdb"]))
            .then(move || t2.udev_add("dm-3", "254:3", &["by-id/dm-name-mpatha"]));
        let mut watch = events.watch().unwrap();
        let dm = wait_for_dm_holder(&t.paths(), &mut *watch, "sdb", far()).unwrap();
        assert_eq!(dm, "dm-3");
        assert_eq!(events.steps_run(), 2);
    }

    #[test]
    fn dm_holder_never_appears_is_a_deadline_error() {
        let (_dir, t) = tree();
        t.add_disk(hctl("3:0:0:1"), "sdb", "8:16");
        let mut watch = ScriptedEvents::new().watch().unwrap();
        let err = wait_for_dm_holder(&t.paths(), &mut *watch, "sdb", Instant::now()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("waiting for a dm holder of sdb (no dm-* in "),
            "{msg}"
        );
        assert!(msg.contains("sys/block/sdb/holders yet)"), "{msg}");
    }

    #[test]
    fn poll_timeout_rounds_up() {
        assert_eq!(i32::from(poll_timeout(Duration::ZERO)), 0);
        assert_eq!(i32::from(poll_timeout(Duration::from_nanos(1))), 1);
        assert_eq!(i32::from(poll_timeout(Duration::from_millis(250))), 250);
        assert_eq!(
            i32::from(poll_timeout(Duration::from_secs(u64::MAX))),
            i32::MAX
        );
    }

    /// The real monitor: a watch opens and `next` returns by its deadline. Skipped
    /// (with a printed reason) only where netlink sockets are not permitted.
    #[test]
    fn udev_watch_honours_short_deadline() {
        let mut watch = match UdevEvents.watch() {
            Ok(watch) => watch,
            Err(HostError::Monitor { source, .. })
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                eprintln!(
                    "SKIPPED udev_watch_honours_short_deadline: netlink not permitted here: {source}"
                );
                return;
            }
            Err(e) => panic!("opening the udev monitor: {e}"),
        };
        for wait in [Duration::ZERO, Duration::from_millis(150)] {
            let start = Instant::now();
            let deadline = start + wait;
            let event = watch.next(deadline).unwrap();
            let now = Instant::now();
            // `true` only if a real device event arrived meanwhile.
            if !event {
                assert!(now >= deadline, "returned before the deadline");
            }
            assert!(
                now - start < wait + Duration::from_secs(5),
                "overran the deadline"
            );
        }
    }
}
