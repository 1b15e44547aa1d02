//! Per-target and per-volume locks shared by every moor process on the host
//! (os-brick §7 items 5 and 6: in-process locks did not protect multi-process
//! deployments, and one host-wide lock serialised every attach).
//!
//! A lock is `flock(2)` on a file in a lock directory (default `/run/moor/locks`,
//! group `moor`). Attach (login, scan, wait for the disk) and detach take their
//! target's lock exclusive, so a detach's logout or a failed attach's undo never
//! pulls a session from under another attach; volumes on different targets attach
//! in parallel. Each volume has its own exclusive lock. Shared mode exists for
//! readers. Waiting is bounded by the operation's deadline.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is locked by another moor operation; gave up after {waited:?}")]
    Timeout { what: String, waited: Duration },
}

/// Where lock files live.
#[derive(Debug, Clone)]
pub struct LockDir {
    dir: PathBuf,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Held {
    _file: File,
    pub name: String,
}

/// Shared or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

/// A file name for `key`: readable, and safe (no `/`, no leading dot).
fn file_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        s.insert(0, '_');
    }
    s.truncate(240);
    s
}

impl LockDir {
    pub fn new(dir: impl Into<PathBuf>) -> LockDir {
        LockDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Take lock `key` in `mode`, waiting until `deadline` at most. The wait backs
    /// off from 1 ms to 50 ms between attempts (flock has no timed wait).
    pub fn lock(&self, key: &str, mode: Mode, deadline: Instant) -> Result<Held, LockError> {
        let path = self.dir.join(file_name(key));
        let open = || {
            std::fs::create_dir_all(&self.dir)?;
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        };
        let file = open().map_err(|source| LockError::Open {
            path: path.clone(),
            source,
        })?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut phase = crate::progress::Phase::new(format!("waiting for lock {key:?}"), deadline);
        loop {
            let r = match mode {
                Mode::Shared => file.try_lock_shared(),
                Mode::Exclusive => file.try_lock(),
            };
            match r {
                Ok(()) => {
                    return Ok(Held {
                        _file: file,
                        name: key.to_string(),
                    });
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(source)) => {
                    return Err(LockError::Open { path, source });
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LockError::Timeout {
                    what: key.to_string(),
                    waited: now - start,
                });
            }
            phase.tick();
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let locks = LockDir::new(d.path().join("locks"));
        let soon = || Instant::now() + Duration::from_millis(30);
        let a = locks
            .lock("target iqn.x@1.2.3.4:3260", Mode::Shared, soon())
            .unwrap();
        let b = locks
            .lock("target iqn.x@1.2.3.4:3260", Mode::Shared, soon())
            .unwrap();
        let e = locks.lock("target iqn.x@1.2.3.4:3260", Mode::Exclusive, soon());
        assert!(matches!(e, Err(LockError::Timeout { .. })), "{e:?}");
        drop((a, b));
        let x = locks
            .lock("target iqn.x@1.2.3.4:3260", Mode::Exclusive, soon())
            .unwrap();
        assert!(
            locks
                .lock("target iqn.x@1.2.3.4:3260", Mode::Shared, soon())
                .is_err()
        );
        // Another key is independent.
        locks.lock("volume v1", Mode::Exclusive, soon()).unwrap();
        drop(x);
        assert_eq!(file_name("../x/y"), "_.._x_y");
    }
}
