//! Finding and reading `.filters` files the way rootwrap does (every non-hidden regular
//! file in each `filters_path` directory, `[Filters]` section), but failing closed:
//! a file that rootwrap would crash on, that uses an unknown class or a malformed line,
//! or that an unprivileged user could have written is rejected with file:line and why.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::filter::{Filter, Origin};
use crate::ini::{self, IniErrorKind};
use crate::set::FilterSet;

/// How bad a finding is. Any `Error` makes the whole set unusable for deciding
/// (moord refuses to load it; `moor filters check` exits 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// One finding about the filter set, with its place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable short name for the kind of finding (e.g. `unknown-class`).
    pub code: &'static str,
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match self.line {
            Some(l) => write!(
                f,
                "{}:{l}: {sev}[{}]: {}",
                self.file.display(),
                self.code,
                self.message
            ),
            None => write!(
                f,
                "{}: {sev}[{}]: {}",
                self.file.display(),
                self.code,
                self.message
            ),
        }
    }
}

/// Who may own filter files and their directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// The uid that must own every file and directory: 0 (root, the default) in
    /// production; tests that do not run as root pass their own uid.
    pub trusted_owner: u32,
}

/// What loading produced: the usable filters (from files without errors), every
/// finding, and the files read in order.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub set: FilterSet,
    pub diagnostics: Vec<Diagnostic>,
    pub files: Vec<PathBuf>,
}

impl Loaded {
    /// True when nothing was rejected: the set is exactly what the files say.
    pub fn is_clean(&self) -> bool {
        !self
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

fn diag(
    severity: Severity,
    code: &'static str,
    file: &Path,
    line: Option<usize>,
    message: String,
) -> Diagnostic {
    Diagnostic {
        severity,
        code,
        file: file.to_path_buf(),
        line,
        message,
    }
}

/// Check owner and mode of a file or directory that decides what root may run.
fn check_trust(
    path: &Path,
    meta: &fs::Metadata,
    opts: &LoadOptions,
    what: &str,
) -> Option<Diagnostic> {
    let mode = meta.mode() & 0o7777;
    if meta.uid() != opts.trusted_owner {
        return Some(diag(
            Severity::Error,
            "untrusted-owner",
            path,
            None,
            format!(
                "{what} is owned by uid {}, not uid {}: anyone who owns it can grant root",
                meta.uid(),
                opts.trusted_owner
            ),
        ));
    }
    if mode & 0o022 != 0 {
        return Some(diag(
            Severity::Error,
            "writable",
            path,
            None,
            format!(
                "{what} has mode {mode:04o}: writable by group or others, who could grant themselves root"
            ),
        ));
    }
    None
}

/// Load every filter file under `filters_path`, in directory order, files sorted by
/// name (rootwrap uses the unsorted `os.listdir` order).
pub fn load(filters_path: &[PathBuf], opts: &LoadOptions) -> Loaded {
    let mut out = Loaded::default();
    for dir in filters_path {
        let meta = match fs::metadata(dir) {
            Ok(m) if m.is_dir() => m,
            Ok(_) => {
                out.diagnostics.push(diag(
                    Severity::Warning,
                    "not-a-directory",
                    dir,
                    None,
                    "not a directory; skipped (as rootwrap does)".into(),
                ));
                continue;
            }
            Err(e) => {
                out.diagnostics.push(diag(
                    Severity::Warning,
                    "missing-directory",
                    dir,
                    None,
                    format!("{e}; skipped (as rootwrap does)"),
                ));
                continue;
            }
        };
        if let Some(d) = check_trust(dir, &meta, opts, "filters directory") {
            out.diagnostics.push(d);
            continue;
        }
        let mut names: Vec<PathBuf> = match fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect(),
            Err(e) => {
                out.diagnostics.push(diag(
                    Severity::Error,
                    "unreadable",
                    dir,
                    None,
                    format!("cannot list: {e}"),
                ));
                continue;
            }
        };
        names.sort();
        for path in names {
            // os.path.isfile follows symlinks; so do we, and check the target's owner.
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => {
                    if let Some(d) = check_trust(&path, &m, opts, "filter file") {
                        out.diagnostics.push(d);
                        continue;
                    }
                }
                _ => continue,
            }
            out.files.push(path.clone());
            load_file(&path, &mut out);
        }
    }
    out
}

/// Read one file's `[Filters]`; on any error none of its filters are used.
fn load_file(path: &Path, out: &mut Loaded) {
    let text = match fs::read(path) {
        Ok(b) => match String::from_utf8(b) {
            Ok(t) => t,
            Err(e) => {
                out.diagnostics.push(diag(
                    Severity::Error,
                    "not-utf8",
                    path,
                    None,
                    format!(
                        "not UTF-8 at byte {} (rootwrap would crash)",
                        e.utf8_error().valid_up_to()
                    ),
                ));
                return;
            }
        },
        Err(e) => {
            out.diagnostics.push(diag(
                Severity::Error,
                "unreadable",
                path,
                None,
                format!("cannot read: {e}"),
            ));
            return;
        }
    };
    let (filters, diags) = parse_filters_text(&text, path);
    let failed = diags.iter().any(|d| d.severity == Severity::Error);
    out.diagnostics.extend(diags);
    if !failed {
        out.set.filters.extend(filters);
    }
}

/// Parse the text of one `.filters` file. Returns the filters and the findings; when a
/// finding is an error the caller must not use the filters.
pub fn parse_filters_text(text: &str, path: &Path) -> (Vec<Filter>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let ini = match ini::parse(text) {
        Ok(i) => i,
        Err(errs) => {
            for e in errs {
                let msg = match &e.kind {
                    IniErrorKind::MissingSectionHeader => {
                        "content before the first [section] header (rootwrap would crash)"
                            .to_string()
                    }
                    IniErrorKind::NotAnOption(l) => {
                        format!("not `name: Class, args…` (rootwrap would crash): {l:?}")
                    }
                };
                diags.push(diag(Severity::Error, "syntax", path, Some(e.line), msg));
            }
            return (Vec::new(), diags);
        }
    };
    for e in &ini.defaults.entries {
        diags.push(diag(
            Severity::Error,
            "default-section",
            path,
            Some(e.line),
            format!("key {:?} in [DEFAULT]: rootwrap would treat it as a filter in [Filters]; move it there", e.key),
        ));
    }
    let Some(section) = ini.section("Filters") else {
        diags.push(diag(
            Severity::Error,
            "no-filters-section",
            path,
            None,
            "no [Filters] section (rootwrap would crash)".into(),
        ));
        return (Vec::new(), diags);
    };
    for s in &ini.sections {
        if s.name != "Filters" {
            diags.push(diag(
                Severity::Warning,
                "ignored-section",
                path,
                Some(s.line),
                format!("section [{}] is ignored", s.name),
            ));
        }
    }
    for (key, first, later) in &section.duplicates {
        diags.push(diag(
            Severity::Warning,
            "duplicate-name",
            path,
            Some(*later),
            format!("filter {key:?} is defined again; line {first} is overridden (the last one wins, as in rootwrap)"),
        ));
    }
    let mut filters = Vec::new();
    for e in &section.entries {
        let origin = Origin {
            file: path.to_path_buf(),
            line: e.line,
        };
        match Filter::from_definition(&e.key, &e.value, origin) {
            Ok(f) => filters.push(f),
            Err(err) => diags.push(diag(
                Severity::Error,
                "bad-filter",
                path,
                Some(e.line),
                format!("{}: {err}", e.key),
            )),
        }
    }
    (filters, diags)
}
