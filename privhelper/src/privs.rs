//! Shrinking moord's privileges before the async runtime starts (capset acts per
//! thread, so this must run while the process has one thread): bounding set down to
//! the keep-list (so the tools moord runs are confined too), effective and permitted
//! to the keep-list, inheritable and ambient cleared, no_new_privs set. moord stays
//! uid 0 because iscsid only talks to root.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability};

#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    #[error("unknown capability {0:?}")]
    Unknown(String),
    #[error("must be single-threaded to drop privileges (found {0} threads)")]
    Threads(usize),
    #[error("{0}")]
    Caps(String),
}

pub fn parse_caps(names: &[String]) -> Result<HashSet<Capability>, PrivError> {
    names
        .iter()
        .map(|n| Capability::from_str(n).map_err(|_| PrivError::Unknown(n.clone())))
        .collect()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Apply the keep-list. Returns `Ok(false)` (nothing done) when not running as root.
pub fn confine(keep: &HashSet<Capability>) -> Result<bool, PrivError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(false);
    }
    let n = threads();
    if n != 1 {
        return Err(PrivError::Threads(n));
    }
    let e = |what: &str, err: caps::errors::CapsError| PrivError::Caps(format!("{what}: {err}"));
    // Bounding set first, while CAP_SETPCAP is still effective.
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|x| e("bounding set", x))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|x| e("ambient set", x))?;
    caps::clear(None, CapSet::Inheritable).map_err(|x| e("inheritable set", x))?;
    let current = caps::read(None, CapSet::Permitted).map_err(|x| e("permitted set", x))?;
    let target: HashSet<Capability> = keep.intersection(&current).copied().collect();
    // Effective must stay a subset of permitted: shrink it first.
    caps::set(None, CapSet::Effective, &target).map_err(|x| e("effective set", x))?;
    caps::set(None, CapSet::Permitted, &target).map_err(|x| e("permitted set", x))?;
    nix::sys::prctl::set_no_new_privs()
        .map_err(|x| PrivError::Caps(format!("no_new_privs: {x}")))?;
    Ok(true)
}
