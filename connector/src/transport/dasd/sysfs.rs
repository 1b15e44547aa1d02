//! What sysfs and procfs show of a DASD (kernel `drivers/s390/cio/device.c`,
//! `drivers/s390/block/dasd_devmap.c`, `drivers/s390/cio/blacklist.c`):
//!
//! ```text
//! /proc/cio_ignore                       ignored device numbers: one "0.S.DDDD" or
//!                                        "0.S.DDDD-0.S.DDDD" range per line
//! /sys/bus/ccw/devices/0.0.b100 -> ../../../devices/css0/0.0.0023/0.0.b100
//!     online            0 | 1                          (the CCW device)
//!     cutype, devtype   3990/e9, 3390/0c
//!     availability      good | boxed | no path | no device
//!     driver -> ../../../../bus/ccw/drivers/dasd-eckd
//!     status            unknown (offline) | new | detected | basic | unformatted
//!                       | ready | online                 (the DASD driver's state)
//!     uid               IBM.750000000DXP71.2300.05 (empty while offline)
//!     alias             1 for a PAV alias (0 while offline)
//!     vendor, discipline, readonly, use_diag, eer_enabled, safe_offline, …
//!     block/dasdX/      the disk, only while online (not for an alias):
//!         dev, size (512-byte sectors), dasdX1/ … (partitions)
//! /sys/block/dasdX -> ../devices/css0/0.0.0023/0.0.b100/block/dasdX
//! ```
//!
//! The uid and alias flag come from the device itself, so they can only be read
//! while it is online.

use crate::host::{HostError, HostPaths};
use crate::types::CcwBusId;

/// The DASD discipline driver of ECKD devices (FICON-attached 3390 volumes).
pub const ECKD_DRIVER: &str = "dasd-eckd";

/// A CCW device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CcwDevice {
    pub busid: CcwBusId,
    /// `online` is `1`.
    pub online: bool,
    /// The bound driver's name (`dasd-eckd`), if any.
    pub driver: Option<String>,
    /// `cutype`, `devtype`, `availability` as printed.
    pub cutype: Option<String>,
    pub devtype: Option<String>,
    pub availability: Option<String>,
    /// The DASD driver's `status` (absent without a DASD driver).
    pub status: Option<String>,
    /// `uid`; `None` when empty (offline) or absent.
    pub uid: Option<String>,
    /// `alias` is `1`.
    pub alias: bool,
    /// The disk (`block/dasdX`), while online.
    pub disk: Option<String>,
}

impl CcwDevice {
    /// The DASD driver is done setting the device up: `online` (formatted) or
    /// `unformatted` (what a device reaches once online, see `dasd_devmap.c`).
    pub fn settled(&self) -> bool {
        matches!(self.status.as_deref(), Some("online" | "unformatted"))
    }

    pub fn unformatted(&self) -> bool {
        self.status.as_deref() == Some("unformatted")
    }

    /// What the device shows, for messages: `online, status unformatted, uid …`.
    pub fn describe(&self) -> String {
        format!(
            "online={} driver={} status={} uid={}",
            u8::from(self.online),
            self.driver.as_deref().unwrap_or("none"),
            self.status.as_deref().unwrap_or("none"),
            self.uid.as_deref().unwrap_or("none"),
        )
    }
}

/// `/sys/bus/ccw/devices/<busid>` (a canonical bus id: one path component).
pub fn ccw_rel(busid: CcwBusId) -> String {
    format!("bus/ccw/devices/{busid}")
}

fn attr(paths: &HostPaths, busid: CcwBusId, name: &str) -> Result<Option<String>, HostError> {
    Ok(paths
        .read_attr(&paths.sys(&format!("{}/{name}", ccw_rel(busid))))?
        .map(|v| v.trim().to_string()))
}

/// The CCW device `busid`, or `None` if it is not registered (not in the I/O
/// configuration, or ignored by `cio_ignore`).
pub fn ccw_device(paths: &HostPaths, busid: CcwBusId) -> Result<Option<CcwDevice>, HostError> {
    let dir = paths.sys(&ccw_rel(busid));
    if paths.resolve(&dir)?.is_none() {
        return Ok(None);
    }
    let driver = match std::fs::read_link(dir.join("driver")) {
        Ok(t) => t.file_name().and_then(|n| n.to_str()).map(String::from),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            None
        }
        Err(source) => {
            return Err(HostError::Resolve {
                path: dir.join("driver"),
                source,
            });
        }
    };
    let online = match attr(paths, busid, "online")?.as_deref() {
        Some("1") => true,
        Some("0") | None => false,
        Some(other) => {
            return Err(HostError::Invalid {
                path: dir.join("online"),
                reason: format!("not 0 or 1: {other:?}"),
            });
        }
    };
    let disk = paths
        .list_prefixed(&dir.join("block"), "dasd")?
        .into_iter()
        .next();
    Ok(Some(CcwDevice {
        busid,
        online,
        driver,
        cutype: attr(paths, busid, "cutype")?,
        devtype: attr(paths, busid, "devtype")?,
        availability: attr(paths, busid, "availability")?,
        status: attr(paths, busid, "status")?,
        uid: attr(paths, busid, "uid")?.filter(|u| !u.is_empty()),
        alias: attr(paths, busid, "alias")?.as_deref() == Some("1"),
        disk,
    }))
}

/// Every DASD that is online now, driven by dasd-eckd and showing a uid, sorted by
/// bus id. Offline devices are skipped: their uid is empty, and reading it is all
/// this does (it never sets a device online).
pub fn online_dasds(paths: &HostPaths) -> Result<Vec<CcwDevice>, HostError> {
    let mut out = Vec::new();
    let names = paths
        .list_dir(&paths.sys("bus/ccw/devices"))?
        .unwrap_or_default();
    for name in names {
        let Ok(busid) = name.parse::<CcwBusId>() else {
            continue;
        };
        // Only the canonical name is the device itself (`b100` would parse too).
        if busid.to_string() != name {
            continue;
        }
        // Most registered devices are offline: skip them before reading the rest.
        if attr(paths, busid, "online")?.as_deref() != Some("1") {
            continue;
        }
        if let Some(d) = ccw_device(paths, busid)?
            && d.online
            && d.driver.as_deref() == Some(ECKD_DRIVER)
            && d.uid.is_some()
        {
            out.push(d);
        }
    }
    out.sort_by_key(|d| d.busid);
    Ok(out)
}

/// One range of `/proc/cio_ignore`: subchannel set `ssid`, device numbers
/// `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgnoredRange {
    pub css: u8,
    pub ssid: u8,
    pub from: u16,
    pub to: u16,
}

fn parse_id(s: &str) -> Option<(u8, u8, u16)> {
    let mut it = s.split('.');
    let (css, ssid, devno) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || devno.len() != 4 {
        return None;
    }
    Some((
        u8::from_str_radix(css, 16).ok()?,
        u8::from_str_radix(ssid, 16).ok()?,
        u16::from_str_radix(devno, 16).ok()?,
    ))
}

/// The ranges of `/proc/cio_ignore` as the kernel prints them (`0.0.0000-0.0.b0ff`,
/// `0.1.b100`); a line that does not parse is an error naming it.
pub fn parse_cio_ignore(text: &str) -> Result<Vec<IgnoredRange>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (a, b) = line.split_once('-').unwrap_or((line, line));
        match (parse_id(a), parse_id(b)) {
            (Some((c1, s1, from)), Some((c2, s2, to))) if c1 == c2 && s1 == s2 && from <= to => out
                .push(IgnoredRange {
                    css: c1,
                    ssid: s1,
                    from,
                    to,
                }),
            _ => return Err(format!("not a device number range: {line:?}")),
        }
    }
    Ok(out)
}

/// The ranges as `/proc/cio_ignore` prints them.
pub fn render_cio_ignore(ranges: &[IgnoredRange]) -> String {
    ranges
        .iter()
        .map(|r| {
            if r.from == r.to {
                format!("{:x}.{:x}.{:04x}\n", r.css, r.ssid, r.from)
            } else {
                format!(
                    "{:x}.{:x}.{:04x}-{:x}.{:x}.{:04x}\n",
                    r.css, r.ssid, r.from, r.css, r.ssid, r.to
                )
            }
        })
        .collect()
}

/// Whether `busid` is on the channel subsystem's ignore list (`/proc/cio_ignore`);
/// `None` when that file does not exist (no s390 common I/O layer here).
pub fn cio_ignored(paths: &HostPaths, busid: CcwBusId) -> Result<Option<bool>, HostError> {
    let path = paths.proc("cio_ignore");
    let Some(text) = paths.read_attr(&path)? else {
        return Ok(None);
    };
    let ranges = parse_cio_ignore(&text).map_err(|reason| HostError::Invalid {
        path: path.clone(),
        reason,
    })?;
    let id = busid.to_string();
    let (css, ssid, devno) = parse_id(&id).ok_or_else(|| HostError::Invalid {
        path,
        reason: format!("bus id {id} does not parse back"),
    })?;
    Ok(Some(ranges.iter().any(|r| {
        r.css == css && r.ssid == ssid && (r.from..=r.to).contains(&devno)
    })))
}

/// The partitions of disk `disk` (`dasdb1`, …), sorted by number.
pub fn partitions(paths: &HostPaths, disk: &str) -> Result<Vec<String>, HostError> {
    let mut parts: Vec<(u32, String)> = paths
        .list_prefixed(&paths.sys(&format!("block/{disk}")), disk)?
        .into_iter()
        .filter_map(|n| {
            let num = n.strip_prefix(disk)?.parse::<u32>().ok()?;
            Some((num, n))
        })
        .collect();
    parts.sort();
    Ok(parts.into_iter().map(|(_, n)| n).collect())
}

/// udev's by-path link of the DASD (`systemd`'s path_id for the ccw bus):
/// `/dev/disk/by-path/ccw-<busid>`.
pub fn by_path(busid: CcwBusId) -> String {
    format!("/dev/disk/by-path/ccw-{busid}")
}

/// The by-path link of partition `n`: `/dev/disk/by-path/ccw-<busid>-part<n>`.
pub fn by_path_part(busid: CcwBusId, n: u32) -> String {
    format!("{}-part{n}", by_path(busid))
}

/// The file name `link` (`/dev/...`) points at, if it is a symlink under the host
/// root.
pub fn link_target(paths: &HostPaths, link: &str) -> Result<Option<String>, HostError> {
    let rel = link.strip_prefix("/dev/").unwrap_or(link);
    let path = paths.dev(rel);
    match std::fs::read_link(&path) {
        Ok(t) => Ok(t.file_name().and_then(|n| n.to_str()).map(String::from)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::InvalidInput
            ) =>
        {
            Ok(None)
        }
        Err(source) => Err(HostError::Resolve { path, source }),
    }
}

#[cfg(test)]
#[path = "sysfs_tests.rs"]
mod tests;
