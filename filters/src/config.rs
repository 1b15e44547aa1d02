//! Where filters and executables live: `filters_path` and `exec_dirs`, given as flags
//! or read from a rootwrap.conf (`[DEFAULT]` section).

use std::path::{Path, PathBuf};

use crate::ini;

/// The directories rootwrap's default `exec_dirs` comes from when sudo's `secure_path`
/// is in force. moor never consults `$PATH`.
pub const DEFAULT_EXEC_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub filters_path: Vec<PathBuf>,
    pub exec_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{what}: entry {entry:?} is not an absolute path without surrounding spaces (rootwrap would resolve it against the caller's working directory)"
    )]
    BadDir { what: &'static str, entry: String },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// Split a comma-separated directory list as rootwrap does (`split(",")`, no strip),
/// refusing entries that rootwrap would treat as relative.
pub fn parse_dir_list(s: &str, what: &'static str) -> Result<Vec<PathBuf>, ConfigError> {
    if s.is_empty() {
        return Err(ConfigError::Empty { what });
    }
    s.split(',')
        .map(|e| {
            if e.starts_with('/')
                && e.trim() == e
                && !e.contains('\0')
                && !e.split('/').any(|c| c == "..")
            {
                Ok(PathBuf::from(e))
            } else {
                Err(ConfigError::BadDir {
                    what,
                    entry: e.to_string(),
                })
            }
        })
        .collect()
}

impl Config {
    /// Read `filters_path` and `exec_dirs` from a rootwrap.conf.
    pub fn from_rootwrap_conf(path: &Path) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let ini = ini::parse(&text).map_err(|errs| {
            err(errs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "))
        })?;
        let get = |key: &str| ini.defaults.get(key).map(|e| e.value.clone());
        let filters_path =
            get("filters_path").ok_or_else(|| err("no filters_path in [DEFAULT]".into()))?;
        let exec_dirs = match get("exec_dirs") {
            Some(v) => parse_dir_list(&v, "exec_dirs")?,
            None => default_exec_dirs(),
        };
        Ok(Config {
            filters_path: parse_dir_list(&filters_path, "filters_path")?,
            exec_dirs,
        })
    }
}

pub fn default_exec_dirs() -> Vec<PathBuf> {
    DEFAULT_EXEC_DIRS.iter().map(PathBuf::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_lists_refuse_what_rootwrap_would_make_relative() {
        assert_eq!(
            parse_dir_list("/a,/b", "x").unwrap(),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert!(parse_dir_list("/a, /b", "x").is_err());
        assert!(parse_dir_list("/a,b", "x").is_err());
        assert!(parse_dir_list("/a,", "x").is_err());
        assert!(parse_dir_list("/a/../b", "x").is_err());
        assert!(parse_dir_list("", "x").is_err());
    }
}
