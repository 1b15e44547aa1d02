//! What each filter allows in plain words, how risky it is, and the lint findings an
//! administrator should act on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::filter::{Class, Filter, PathConstraint, Spec};
use crate::load::{Diagnostic, Loaded, Severity};

/// How much a filter hands out, from "a narrow, checked operation" to "root".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        })
    }
}

/// Tools that, given free arguments as root, read or write any file, run any program
/// or change any permission: a filter that lets their arguments through is root.
pub const ROOT_EQUIVALENT_TOOLS: &[&str] = &[
    "tee",
    "dd",
    "cp",
    "mv",
    "rm",
    "ln",
    "chmod",
    "chown",
    "chgrp",
    "cat",
    "install",
    "truncate",
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "csh",
    "env",
    "python",
    "python3",
    "perl",
    "ruby",
    "find",
    "xargs",
    "tar",
    "rsync",
    "sed",
    "awk",
    "vi",
    "vim",
    "less",
    "more",
    "nice",
    "ionice",
    "cgexec",
    "su",
    "sudo",
    "nsenter",
    "chroot",
    "systemctl",
    "mount",
    "umount",
    "mkfs",
    "qemu-img",
    "privsep-helper",
    "kill",
    "setfacl",
    "touch",
    "mkdir",
    "rmdir",
    "unlink",
    "gzip",
    "qzip",
    "mkfs.ext4",
    "mkfs.xfs",
    "socat",
    "nc",
    "ssh",
    "scp",
    "lvm",
    "tgt-admin",
];

/// A filter as `moor filters list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
    pub class: Class,
    pub run_as: String,
    pub allows: String,
    pub risk: Risk,
    pub risk_reasons: Vec<String>,
}

fn tool_name(exec: &str) -> &str {
    exec.rsplit('/').next().unwrap_or(exec)
}

fn is_root_equivalent(exec: &str) -> bool {
    let t = tool_name(exec);
    ROOT_EQUIVALENT_TOOLS.contains(&t) || t.starts_with("python") || t.starts_with("mkfs")
}

/// Does a pattern accept arbitrary text somewhere (so it may admit paths it did not
/// mean to)?
fn is_wildcard(p: &str) -> bool {
    p.contains(".*")
        || p.contains(".+")
        || p.contains("\\S")
        || p.contains("[^")
        || p.contains('.') && p.contains('*')
}

/// Top-level `|` outside groups and sets: rootwrap anchors only the last branch.
pub fn has_unparenthesised_alternation(p: &str) -> bool {
    let (mut depth, mut in_set, mut esc) = (0i32, false, false);
    let mut chars = p.chars().peekable();
    let mut set_start = false;
    while let Some(c) = chars.next() {
        if esc {
            esc = false;
            set_start = false;
            continue;
        }
        match c {
            '\\' => esc = true,
            '[' if !in_set => {
                in_set = true;
                set_start = true;
                if chars.peek() == Some(&'^') {
                    chars.next();
                }
                continue;
            }
            ']' if in_set && !set_start => in_set = false,
            '(' if !in_set => depth += 1,
            ')' if !in_set => depth -= 1,
            '|' if !in_set && depth == 0 => return true,
            _ => {}
        }
        set_start = false;
    }
    false
}

fn quote_patterns(ps: &[crate::pyre::Regex]) -> String {
    ps.iter()
        .map(|p| format!("/{}/", p.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the filter allows, in words, and how risky that is.
pub fn describe(f: &Filter) -> Listing {
    let mut reasons = Vec::new();
    let exec = f.exec_path.as_str();
    let user = f.run_as.as_str();
    let (allows, mut risk) = match &f.spec {
        Spec::Command => {
            let r = if is_root_equivalent(exec) {
                reasons.push(format!(
                    "`{}` with free arguments can read, write or run anything as {user}",
                    tool_name(exec)
                ));
                Risk::Critical
            } else {
                reasons.push("arguments are not checked at all".into());
                Risk::High
            };
            (format!("runs {exec} as {user} with any arguments"), r)
        }
        Spec::RegExp(ps) => {
            let mut r = Risk::Low;
            for p in ps.iter().skip(1) {
                if is_wildcard(p.as_str()) {
                    r = r.max(Risk::Medium);
                    reasons.push(format!("/{}/ accepts free text", p.as_str()));
                }
                if has_unparenthesised_alternation(p.as_str()) {
                    r = r.max(Risk::Medium);
                    reasons.push(format!(
                        "/{}/ has a top-level `|` that rootwrap anchors on one side only",
                        p.as_str()
                    ));
                }
            }
            if ps.is_empty() {
                reasons.push("no patterns: never matches".into());
            }
            (
                format!(
                    "runs {exec} as {user} when the whole command matches {}",
                    quote_patterns(ps)
                ),
                r,
            )
        }
        Spec::ChainingRegExp(ps) => {
            reasons.push(format!(
                "runs any command that another {user} filter allows, behind a prefix"
            ));
            (
                format!(
                    "runs {exec} as {user} with a prefix matching {} followed by a command that another {user} filter allows",
                    quote_patterns(ps)
                ),
                if is_root_equivalent(exec) {
                    Risk::High
                } else {
                    Risk::Medium
                },
            )
        }
        Spec::Path(cs) => {
            let mut r = Risk::Low;
            let parts: Vec<String> = cs
                .iter()
                .map(|c| match c {
                    PathConstraint::Pass => {
                        r = r.max(Risk::Medium);
                        reasons.push("a `pass` argument is not checked".into());
                        "anything".to_string()
                    }
                    PathConstraint::Equal(s) => format!("exactly {s:?}"),
                    PathConstraint::Within(b) => {
                        if b == "/" {
                            r = Risk::Critical;
                            reasons.push("a path constraint of `/` admits every file".into());
                        }
                        format!("a path inside {b} (canonicalised)")
                    }
                })
                .collect();
            if is_root_equivalent(exec) && r < Risk::Medium {
                r = Risk::Medium;
                reasons.push(format!(
                    "`{}` changes files inside the allowed directories",
                    tool_name(exec)
                ));
            }
            (
                format!(
                    "runs {exec} as {user} with {} argument(s): {}",
                    cs.len(),
                    parts.join(", ")
                ),
                r,
            )
        }
        Spec::Kill { target, signals } => {
            let sig = if signals.is_empty() {
                "the default signal".to_string()
            } else {
                signals.join(", ")
            };
            let r = if target.starts_with('/') {
                Risk::Low
            } else {
                reasons.push("relative target: any program of that name in exec_dirs".into());
                Risk::Medium
            };
            (
                format!("sends {sig} as {user} to processes running {target}"),
                r,
            )
        }
        Spec::ReadFile { path } => {
            let r = if path.contains("shadow") || path.contains("ssh") || path.contains("key") {
                reasons.push("reads a secret file".into());
                Risk::High
            } else {
                Risk::Low
            };
            (format!("lets root read {path} (`cat {path}`)"), r)
        }
        Spec::Ip => {
            reasons.push(
                "any `ip` command except `netns exec` and batch mode: full control of networking"
                    .into(),
            );
            (
                format!(
                    "runs {exec} as {user} with any arguments except `netns exec` and batch mode"
                ),
                Risk::High,
            )
        }
        Spec::Env { vars } => {
            let v: Vec<String> = vars.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
            reasons.push("arguments after the command are not checked".into());
            let r = if is_root_equivalent(exec) {
                Risk::Critical
            } else {
                Risk::High
            };
            (
                format!(
                    "runs {exec} as {user} with environment {} (values pinned by moor) and any arguments",
                    v.join(" ")
                ),
                r,
            )
        }
        Spec::Chaining => {
            reasons.push("a bare ChainingFilter never matches".into());
            (
                "nothing (a bare ChainingFilter never matches)".to_string(),
                Risk::Low,
            )
        }
        Spec::IpNetnsExec => {
            reasons.push("runs any root-allowed command inside any network namespace".into());
            (
                "runs `ip netns exec NS COMMAND` as root when COMMAND passes another root filter"
                    .to_string(),
                Risk::High,
            )
        }
        Spec::WriteFile { path, content } => {
            let mut r = Risk::Low;
            if is_wildcard(path.as_str()) {
                r = Risk::Medium;
                reasons.push(format!(
                    "path pattern /{}/ accepts free text",
                    path.as_str()
                ));
            }
            if is_wildcard(content.as_str()) {
                r = r.max(Risk::Medium);
                reasons.push(format!(
                    "content pattern /{}/ accepts free text",
                    content.as_str()
                ));
            }
            (
                format!(
                    "lets moord write content matching /{}/ to files matching /{}/",
                    content.as_str(),
                    path.as_str()
                ),
                r,
            )
        }
    };
    if user != "root" && risk > Risk::Medium {
        // Still uid-changing and group-keeping in rootwrap; moord drops groups too.
        risk = Risk::Medium.max(risk);
    }
    Listing {
        name: f.name.clone(),
        file: f.origin.file.clone(),
        line: f.origin.line,
        class: f.class,
        run_as: f.run_as.clone(),
        allows,
        risk,
        risk_reasons: reasons,
    }
}

fn finding(f: &Filter, severity: Severity, code: &'static str, message: String) -> Diagnostic {
    Diagnostic {
        severity,
        code,
        file: f.origin.file.clone(),
        line: Some(f.origin.line),
        message: format!("{}: {message}", f.name),
    }
}

/// Loader findings plus what an auditor should look at in the loaded filters.
pub fn lint(loaded: &Loaded) -> Vec<Diagnostic> {
    let mut out = loaded.diagnostics.clone();
    let mut names: BTreeMap<&str, &Filter> = BTreeMap::new();
    for f in &loaded.set.filters {
        if let Some(prev) = names.insert(f.name.as_str(), f)
            && prev.origin.file != f.origin.file
        {
            out.push(finding(
                f,
                Severity::Warning,
                "duplicate-name",
                format!(
                    "also defined at {}; both are active, first in load order wins",
                    prev.origin
                ),
            ));
        }
        let tool = tool_name(&f.exec_path);
        match &f.spec {
            Spec::Command if is_root_equivalent(&f.exec_path) => out.push(finding(
                f,
                Severity::Error,
                "root-equivalent",
                format!("CommandFilter on `{tool}` lets any arguments through: equivalent to unrestricted root. Use a RegExpFilter or PathFilter, or a typed moord operation"),
            )),
            Spec::Command => out.push(finding(
                f,
                Severity::Warning,
                "free-arguments",
                format!("CommandFilter on `{tool}` does not check arguments"),
            )),
            Spec::Env { vars } => {
                let sev = if is_root_equivalent(&f.exec_path) { Severity::Error } else { Severity::Warning };
                out.push(finding(
                    f,
                    sev,
                    "env-filter",
                    format!(
                        "EnvFilter passes any arguments to `{tool}`; rootwrap does not check the values of {} (moor pins them)",
                        vars.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ));
                for (n, v) in vars {
                    if v.is_empty() {
                        out.push(finding(
                            f,
                            Severity::Info,
                            "env-empty-value",
                            format!("{n}= has no value: rootwrap accepts any value here, moor accepts only an empty one"),
                        ));
                    }
                }
            }
            Spec::RegExp(ps) | Spec::ChainingRegExp(ps) => {
                if ps.is_empty() && f.class == Class::RegExpFilter {
                    out.push(finding(f, Severity::Warning, "never-matches", "RegExpFilter without patterns never matches".into()));
                }
                for (i, p) in ps.iter().enumerate() {
                    let s = p.as_str();
                    if has_unparenthesised_alternation(s) {
                        out.push(finding(
                            f,
                            Severity::Warning,
                            "alternation-anchor",
                            format!("pattern {i} /{s}/: rootwrap appends `$` so only the last branch is end-anchored; write /({s})/"),
                        ));
                    }
                    if s.starts_with('/') && is_wildcard(s) && !s.contains("(?!") {
                        out.push(finding(
                            f,
                            Severity::Warning,
                            "dotdot",
                            format!("pattern {i} /{s}/ admits `..` under rootwrap (moor refuses `..` components when matching)"),
                        ));
                    }
                    if s.contains(' ') {
                        out.push(finding(
                            f,
                            Severity::Warning,
                            "space-in-pattern",
                            format!("pattern {i} /{s}/ contains a space but matches a single argument"),
                        ));
                    }
                }
                if f.class == Class::ChainingRegExpFilter {
                    out.push(finding(
                        f,
                        Severity::Warning,
                        "chaining",
                        format!("`{tool}` runs any command another {} filter allows; rootwrap checks only the chained command's basename (moor checks it as given)", f.run_as),
                    ));
                }
            }
            Spec::Chaining => out.push(finding(f, Severity::Warning, "never-matches", "a bare ChainingFilter never matches".into())),
            Spec::IpNetnsExec => out.push(finding(
                f,
                Severity::Warning,
                "chaining",
                "IpNetnsExecFilter runs any root-allowed command in a namespace; rootwrap checks only the basename of that command".into(),
            )),
            Spec::Path(cs) => {
                if cs.iter().any(|c| matches!(c, PathConstraint::Within(b) if b == "/")) {
                    out.push(finding(f, Severity::Error, "path-root", "a PathFilter base of `/` admits every file".into()));
                }
                if cs.is_empty() {
                    out.push(finding(f, Severity::Warning, "never-matches", "PathFilter without constraints never matches".into()));
                }
            }
            Spec::Kill { target, .. } if !target.starts_with('/') => out.push(finding(
                f,
                Severity::Warning,
                "kill-relative",
                format!("KillFilter target {target:?} is relative: any program of that name in exec_dirs qualifies"),
            )),
            Spec::Ip => out.push(finding(
                f,
                Severity::Warning,
                "ip",
                "IpFilter allows every `ip` command but `netns exec`; rootwrap also allows batch mode (`ip -b FILE`), which moor refuses".into(),
            )),
            _ => {}
        }
        if f.run_as != "root" && !matches!(f.spec, Spec::ReadFile { .. } | Spec::WriteFile { .. }) {
            out.push(finding(
                f,
                Severity::Info,
                "run-as",
                format!("runs as {:?}; rootwrap keeps gid 0 and root's groups for it, moord sets the user's groups", f.run_as),
            ));
        }
    }
    out.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternation_detection() {
        assert!(has_unparenthesised_alternation("--getsize64|--flushbufs"));
        assert!(!has_unparenthesised_alternation(
            "(--getsize64|--flushbufs)"
        ));
        assert!(!has_unparenthesised_alternation("[|]x"));
        assert!(!has_unparenthesised_alternation("a\\|b"));
        assert!(!has_unparenthesised_alternation("[]|]"));
        assert!(has_unparenthesised_alternation("(a)|b"));
    }
}
