//! The few facts about the host that a decision needs: whether an executable exists,
//! the canonical form of a path, and which program a process runs. Behind a trait so
//! tests can fake them.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub trait System: std::fmt::Debug {
    /// A regular file with an execute bit (what `os.access(X_OK)` answers for root,
    /// minus directories).
    fn is_executable(&self, path: &Path) -> bool;
    /// `os.access(path, X_OK)` would succeed for root but `path` is not a runnable
    /// file: a directory, or another non-regular file with an execute bit. rootwrap
    /// stops its `exec_dirs` search at such an entry (and then fails to run it), so
    /// moor stops there too rather than run a program further down the list.
    fn blocks_exec_search(&self, _path: &Path) -> bool {
        false
    }
    /// A regular file (following symlinks), as `os.path.isfile`.
    fn is_file(&self, path: &Path) -> bool;
    /// `os.path.realpath` (non-strict) of an absolute path; `None` on a symlink loop.
    fn realpath(&self, path: &str) -> Option<String>;
    /// The target of `/proc/PID/exe`, raw.
    fn proc_exe(&self, pid: u32) -> Option<String>;
}

/// The real host.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSystem;

impl System for RealSystem {
    fn is_executable(&self, path: &Path) -> bool {
        fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }

    fn blocks_exec_search(&self, path: &Path) -> bool {
        fs::metadata(path)
            .is_ok_and(|m| m.is_dir() || (!m.is_file() && m.permissions().mode() & 0o111 != 0))
    }

    fn is_file(&self, path: &Path) -> bool {
        fs::metadata(path).is_ok_and(|m| m.is_file())
    }

    fn realpath(&self, path: &str) -> Option<String> {
        realpath_with(path, |p| {
            let m = fs::symlink_metadata(p).ok()?;
            if m.file_type().is_symlink() {
                fs::read_link(p)
                    .ok()
                    .map(|t| t.to_string_lossy().into_owned())
            } else {
                None
            }
        })
    }

    fn proc_exe(&self, pid: u32) -> Option<String> {
        fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }
}

/// posixpath.realpath for absolute paths with `readlink` supplied: resolves symlinks
/// component by component, handles `..` on the resolved prefix, keeps components that
/// do not exist. Returns `None` for a symlink loop (Python would return a half-resolved
/// path; moor refuses to decide on it).
pub fn realpath_with(path: &str, readlink: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut seen: HashMap<String, Option<String>> = HashMap::new();
    let mut budget = 4096u32;
    let out = join_real(String::new(), path, &readlink, &mut seen, &mut budget)?;
    Some(if out.is_empty() { "/".to_string() } else { out })
}

fn join_real(
    mut path: String,
    rest: &str,
    readlink: &impl Fn(&str) -> Option<String>,
    seen: &mut HashMap<String, Option<String>>,
    budget: &mut u32,
) -> Option<String> {
    let mut rest = rest;
    if let Some(r) = rest.strip_prefix('/') {
        rest = r;
        path = String::new(); // "" stands for "/" while building
    }
    for name in rest.split('/') {
        if name.is_empty() || name == "." {
            continue;
        }
        if name == ".." {
            // Paths built here are absolute, so split off the last component.
            match path.rfind('/') {
                Some(i) => path.truncate(i),
                None => path.clear(),
            }
            continue;
        }
        *budget = budget.checked_sub(1)?;
        let newpath = format!("{path}/{name}");
        let Some(target) = readlink(&newpath) else {
            path = newpath;
            continue;
        };
        if let Some(known) = seen.get(&newpath) {
            // A link we are still resolving is a loop.
            path = known.clone()?;
            continue;
        }
        seen.insert(newpath.clone(), None);
        let base = if target.starts_with('/') {
            String::new()
        } else {
            path.clone()
        };
        path = join_real(base, &target, readlink, seen, budget)?;
        seen.insert(newpath, Some(path.clone()));
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(map: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = map
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |p: &str| m.get(p).cloned()
    }

    #[test]
    fn resolves_like_python() {
        let l = links(&[("/a/link", "../b"), ("/abs", "/x/y"), ("/x/y", "z")]);
        assert_eq!(realpath_with("/a/link/c", &l).as_deref(), Some("/b/c"));
        assert_eq!(realpath_with("/abs/../q", &l).as_deref(), Some("/x/q"));
        assert_eq!(realpath_with("/abs", &l).as_deref(), Some("/x/z"));
        assert_eq!(realpath_with("//a//./b/../c/", &l).as_deref(), Some("/a/c"));
        assert_eq!(realpath_with("/..", &l).as_deref(), Some("/"));
        assert_eq!(realpath_with("/", &l).as_deref(), Some("/"));
    }

    #[test]
    fn loops_are_refused() {
        let l = links(&[("/a", "/b"), ("/b", "/a")]);
        assert_eq!(realpath_with("/a/x", &l), None);
    }
}
