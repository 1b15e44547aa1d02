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

/// Raise the hard open-files limit to the kernel's ceiling (`fs.nr_open`) while
/// moord still holds CAP_SYS_RESOURCE, leaving the soft limit as it is. The tools
/// moord runs inherit it: multipath raises its own limit to `max_fds` (default: the
/// ceiling) and, without the capability, failed with "can't set open fds limit"
/// on stderr, in front of every real error. Returns the new hard limit when it
/// changed.
pub fn raise_nofile_hard_limit() -> Result<Option<u64>, PrivError> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let Some(ceiling) = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return Ok(None);
    };
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|x| PrivError::Caps(format!("getrlimit(RLIMIT_NOFILE): {x}")))?;
    if hard >= ceiling {
        return Ok(None);
    }
    setrlimit(Resource::RLIMIT_NOFILE, soft, ceiling)
        .map_err(|x| PrivError::Caps(format!("setrlimit(RLIMIT_NOFILE, hard {ceiling}): {x}")))?;
    Ok(Some(ceiling))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_nofile_limit_reaches_the_kernel_ceiling_as_root() {
        if !nix::unistd::geteuid().is_root() {
            return; // nothing is tried without root
        }
        use nix::sys::resource::{Resource, getrlimit};
        let ceiling: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let before = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let (soft, _) = before;
        if !caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_RESOURCE).unwrap() {
            // A container without the capability: refused, and nothing changed.
            if before.1 < ceiling {
                assert!(raise_nofile_hard_limit().is_err());
            }
            assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), before);
            return;
        }
        raise_nofile_hard_limit().unwrap();
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (soft, ceiling));
        // A second call has nothing left to do.
        assert_eq!(raise_nofile_hard_limit().unwrap(), None);
    }
}
