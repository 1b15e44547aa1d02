//! The filter classes of oslo.rootwrap (and moor's `WriteFileFilter`), built from a
//! definition line and matched against an argv.
//!
//! Matching follows `oslo_rootwrap/filters.py` 7.10 step by step, including its quirks
//! that are safe (EnvFilter popping a leading `env` from the shared argv, PathFilter
//! returning canonical paths). Where rootwrap is exploitable moor is stricter; each such
//! place is marked `DEVIATION` and listed in docs/filters.md.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::pyre::{MatchError, Regex};
use crate::system::System;

/// Where a filter was defined.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The filter classes moor understands: rootwrap's ten plus `WriteFileFilter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Class {
    CommandFilter,
    RegExpFilter,
    PathFilter,
    KillFilter,
    ReadFileFilter,
    IpFilter,
    EnvFilter,
    ChainingFilter,
    IpNetnsExecFilter,
    ChainingRegExpFilter,
    WriteFileFilter,
}

impl Class {
    pub const ALL: [Class; 11] = [
        Class::CommandFilter,
        Class::RegExpFilter,
        Class::PathFilter,
        Class::KillFilter,
        Class::ReadFileFilter,
        Class::IpFilter,
        Class::EnvFilter,
        Class::ChainingFilter,
        Class::IpNetnsExecFilter,
        Class::ChainingRegExpFilter,
        Class::WriteFileFilter,
    ];

    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::CommandFilter => "CommandFilter",
            Class::RegExpFilter => "RegExpFilter",
            Class::PathFilter => "PathFilter",
            Class::KillFilter => "KillFilter",
            Class::ReadFileFilter => "ReadFileFilter",
            Class::IpFilter => "IpFilter",
            Class::EnvFilter => "EnvFilter",
            Class::ChainingFilter => "ChainingFilter",
            Class::IpNetnsExecFilter => "IpNetnsExecFilter",
            Class::ChainingRegExpFilter => "ChainingRegExpFilter",
            Class::WriteFileFilter => "WriteFileFilter",
        }
    }

    /// Chaining filters only allow a command whose tail passes a leaf filter.
    pub fn is_chaining(self) -> bool {
        matches!(
            self,
            Class::ChainingFilter | Class::IpNetnsExecFilter | Class::ChainingRegExpFilter
        )
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One constraint of a PathFilter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathConstraint {
    /// `pass`: any value, passed as is.
    Pass,
    /// An absolute base directory: the canonical value must lie inside it.
    Within(String),
    /// Any other string: the value must be equal.
    Equal(String),
}

/// Class-specific, validated arguments.
#[derive(Debug, Clone)]
pub enum Spec {
    Command,
    /// Patterns for every argv element, argv[0] included.
    RegExp(Vec<Regex>),
    Path(Vec<PathConstraint>),
    Kill {
        target: String,
        signals: Vec<String>,
    },
    ReadFile {
        path: String,
    },
    Ip,
    /// Leading `NAME=VALUE` definitions in filter order and the command after them.
    Env {
        vars: Vec<(String, String)>,
    },
    Chaining,
    IpNetnsExec,
    /// Patterns for the prefix of the command; the rest must pass a leaf filter.
    ChainingRegExp(Vec<Regex>),
    WriteFile {
        path: Regex,
        content: Regex,
    },
}

/// A loaded filter.
#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    pub origin: Origin,
    pub class: Class,
    /// The user the command runs as (`root` for ReadFileFilter and WriteFileFilter).
    pub run_as: String,
    /// What rootwrap calls `exec_path`: the executable as written (after EnvFilter's
    /// substitution); `/bin/kill` for KillFilter, `/bin/cat` for ReadFileFilter, empty
    /// for WriteFileFilter.
    pub exec_path: String,
    /// The arguments after `run_as` as written (rootwrap's `self.args`).
    pub args: Vec<String>,
    pub spec: Spec,
    /// `basename(exec_path)`, computed once: argv[0] is compared with it for every
    /// filter on every decision.
    exec_base: String,
    /// The executable found last time, for the same `exec_dirs` (rootwrap caches it
    /// on the filter object too). A reload builds new filters, so a new cache.
    resolved: ExecCache,
}

/// A found executable, keyed by the `exec_dirs` it was found with. Cloning a filter
/// starts an empty cache.
#[derive(Debug, Default)]
struct ExecCache(std::sync::Mutex<Option<(u64, PathBuf)>>);

impl Clone for ExecCache {
    fn clone(&self) -> Self {
        ExecCache::default()
    }
}

/// A key for an `exec_dirs` list.
pub fn dirs_key(dirs: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dirs.hash(&mut h);
    h.finish()
}

/// Why a definition line cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("unknown filter class {0:?} (rootwrap skips such lines; moor rejects the file)")]
    UnknownClass(String),
    #[error("{class} needs {needed}, got {got} argument(s) (rootwrap would crash on this line)")]
    TooFewArguments {
        class: Class,
        needed: &'static str,
        got: usize,
    },
    #[error("{class} takes {expected}, got {got} argument(s)")]
    WrongArgumentCount {
        class: Class,
        expected: &'static str,
        got: usize,
    },
    #[error("run_as {0:?} is not a valid user name")]
    BadUser(String),
    #[error("executable {0:?} is empty, has a `..` component or contains whitespace or NUL")]
    BadExecutable(String),
    #[error("pattern {index} {pattern:?} does not compile: {message}")]
    BadPattern {
        index: usize,
        pattern: String,
        message: String,
    },
    #[error(
        "EnvFilter executable {0:?} contains \"env\" but is not `env`: rootwrap would silently replace it by the command after the variables"
    )]
    EnvSubstring(String),
    #[error(
        "EnvFilter on `env` names no command after its variables, so it would allow `env` with any command"
    )]
    EnvWithoutCommand,
    #[error("EnvFilter names variable {0:?} twice (rootwrap's matching breaks on this)")]
    EnvDuplicate(String),
    #[error("EnvFilter variable definition {0:?} has an empty or invalid name")]
    EnvBadName(String),
    #[error("{0} must be an absolute path without `..` components: {1:?}")]
    BadPath(&'static str, String),
}

fn valid_user(user: &str) -> bool {
    // POSIX portable user names (plus a trailing `$` as on Samba machine accounts).
    let body = user.strip_suffix('$').unwrap_or(user);
    !body.is_empty()
        && !body.starts_with('-')
        && body.len() <= 64
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_exec(exec: &str) -> bool {
    !exec.is_empty()
        && !exec.chars().any(|c| c.is_whitespace() || c == '\0')
        && !exec.split('/').any(|c| c == "..")
}

fn compile_patterns(
    patterns: &[String],
    first_index: usize,
) -> Result<Vec<Regex>, DefinitionError> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Regex::new(p).map_err(|e| DefinitionError::BadPattern {
                index: i + first_index,
                pattern: p.clone(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// `_extract_env`: names of the leading arguments that contain `=`.
fn leading_env(args: &[String]) -> impl Iterator<Item = (&str, &str)> {
    args.iter().map_while(|a| a.split_once('='))
}

fn basename(path: &str) -> &str {
    // os.path.basename: everything after the last '/'.
    path.rsplit('/').next().unwrap_or(path)
}

impl Filter {
    /// Build a filter from its definition: `value.split(',')`, each piece stripped, as
    /// rootwrap's `load_filters` does. `name` is the (lower-cased) key.
    pub fn from_definition(
        name: &str,
        value: &str,
        origin: Origin,
    ) -> Result<Filter, DefinitionError> {
        let parts: Vec<String> = value
            .split(',')
            .map(|s| crate::ini::py_strip(s).to_string())
            .collect();
        let class_name = parts.first().map(String::as_str).unwrap_or("");
        let class = Class::from_name(class_name)
            .ok_or_else(|| DefinitionError::UnknownClass(class_name.to_string()))?;
        let rest = &parts[1..];
        let too_few = |needed| DefinitionError::TooFewArguments {
            class,
            needed,
            got: rest.len(),
        };
        let (exec_path, run_as, args): (String, String, Vec<String>) = match class {
            Class::KillFilter => {
                if rest.len() < 2 {
                    return Err(too_few("a user and a target executable"));
                }
                ("/bin/kill".into(), rest[0].clone(), rest[1..].to_vec())
            }
            Class::ReadFileFilter => {
                if rest.is_empty() {
                    return Err(too_few("a file path"));
                }
                // Extra arguments are ignored by rootwrap, as here.
                ("/bin/cat".into(), "root".into(), rest[1..].to_vec())
            }
            Class::WriteFileFilter => {
                if rest.len() != 2 {
                    return Err(DefinitionError::WrongArgumentCount {
                        class,
                        expected: "exactly 2 (path pattern, content pattern)",
                        got: rest.len(),
                    });
                }
                (String::new(), "root".into(), rest.to_vec())
            }
            _ => {
                if rest.len() < 2 {
                    return Err(too_few("an executable and a user"));
                }
                (rest[0].clone(), rest[1].clone(), rest[2..].to_vec())
            }
        };
        if !valid_user(&run_as) {
            return Err(DefinitionError::BadUser(run_as));
        }
        if class != Class::WriteFileFilter && !valid_exec(&exec_path) {
            return Err(DefinitionError::BadExecutable(exec_path));
        }
        let mut exec_path = exec_path;
        let spec = match class {
            Class::CommandFilter => Spec::Command,
            Class::RegExpFilter => Spec::RegExp(compile_patterns(&args, 0)?),
            Class::ChainingRegExpFilter => Spec::ChainingRegExp(compile_patterns(&args, 0)?),
            Class::PathFilter => Spec::Path(
                args.iter()
                    .map(|a| {
                        if a == "pass" {
                            PathConstraint::Pass
                        } else if a.starts_with('/') {
                            PathConstraint::Within(a.clone())
                        } else {
                            PathConstraint::Equal(a.clone())
                        }
                    })
                    .collect(),
            ),
            Class::KillFilter => Spec::Kill {
                target: args[0].clone(),
                signals: args[1..].to_vec(),
            },
            Class::ReadFileFilter => Spec::ReadFile {
                path: rest[0].clone(),
            },
            Class::IpFilter => Spec::Ip,
            Class::ChainingFilter => Spec::Chaining,
            Class::IpNetnsExecFilter => Spec::IpNetnsExec,
            Class::EnvFilter => {
                let mut vars: Vec<(String, String)> = Vec::new();
                for (n, v) in leading_env(&args) {
                    if n.is_empty() || n.contains(|c: char| c.is_whitespace()) {
                        return Err(DefinitionError::EnvBadName(format!("{n}={v}")));
                    }
                    if vars.iter().any(|(m, _)| m == n) {
                        return Err(DefinitionError::EnvDuplicate(n.to_string()));
                    }
                    vars.push((n.to_string(), v.to_string()));
                }
                if exec_path.contains("env") && vars.len() < args.len() {
                    // DEVIATION: rootwrap tests `"env" in exec_path`, a substring, so
                    // `/opt/venv/bin/tool` is silently replaced. Only `env` itself may be.
                    if basename(&exec_path) != "env" {
                        return Err(DefinitionError::EnvSubstring(exec_path));
                    }
                    exec_path = args[vars.len()].clone();
                    if !valid_exec(&exec_path) {
                        return Err(DefinitionError::BadExecutable(exec_path));
                    }
                } else if basename(&exec_path) == "env" {
                    // DEVIATION: `EnvFilter, env, root, A=` lets `env A=x env sh` through.
                    return Err(DefinitionError::EnvWithoutCommand);
                }
                Spec::Env { vars }
            }
            Class::WriteFileFilter => {
                let p = compile_patterns(&args, 0)?;
                let mut it = p.into_iter();
                match (it.next(), it.next()) {
                    (Some(path), Some(content)) => Spec::WriteFile { path, content },
                    _ => {
                        return Err(DefinitionError::WrongArgumentCount {
                            class,
                            expected: "2",
                            got: args.len(),
                        });
                    }
                }
            }
        };
        let exec_base = basename(&exec_path).to_string();
        let resolved = ExecCache::default();
        Ok(Filter {
            name: name.to_string(),
            origin,
            class,
            run_as,
            exec_path,
            args,
            spec,
            exec_base,
            resolved,
        })
    }

    /// `get_exec`: the executable that would run, resolved through `exec_dirs` when the
    /// filter names it relatively. Never `$PATH`.
    pub fn resolve_exec(&self, exec_dirs: &[PathBuf], sys: &dyn System) -> Option<PathBuf> {
        self.resolve_exec_keyed(exec_dirs, dirs_key(exec_dirs), sys)
    }

    /// [`Filter::resolve_exec`] with the key of `exec_dirs` computed by the caller.
    /// Successes are cached (as rootwrap does), failures are looked up again.
    pub fn resolve_exec_keyed(
        &self,
        exec_dirs: &[PathBuf],
        key: u64,
        sys: &dyn System,
    ) -> Option<PathBuf> {
        let mut cache = self.resolved.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, p)) = cache.as_ref()
            && *k == key
        {
            return Some(p.clone());
        }
        let found = self.search_exec(exec_dirs, sys)?;
        *cache = Some((key, found.clone()));
        Some(found)
    }

    fn search_exec(&self, exec_dirs: &[PathBuf], sys: &dyn System) -> Option<PathBuf> {
        if self.class == Class::WriteFileFilter {
            return None;
        }
        if self.exec_path.starts_with('/') {
            let p = PathBuf::from(&self.exec_path);
            return sys.is_executable(&p).then_some(p);
        }
        for d in exec_dirs {
            let p = join(d, &self.exec_path);
            if sys.is_executable(&p) {
                return Some(p);
            }
            // rootwrap's search ends at the first entry os.access(X_OK) accepts.
            if sys.blocks_exec_search(&p) {
                return None;
            }
        }
        None
    }

    /// `CommandFilter.match`: argv[0] equals the executable's basename or the
    /// executable as written.
    fn command_matches(&self, arg0: Option<&String>) -> bool {
        arg0.is_some_and(|a| *a == self.exec_base || *a == self.exec_path)
    }

    /// Match `argv` as rootwrap's `f.match(userargs)` does. EnvFilter may pop a leading
    /// `env` from `argv`, which later filters then see, exactly as in rootwrap. A miss
    /// carries no text (deciding stays allocation-free); [`Filter::explain`] words it.
    pub fn matches(&self, argv: &mut Vec<String>, ctx: &MatchContext<'_>) -> Result<(), Miss> {
        match &self.spec {
            Spec::Command | Spec::Chaining => {
                if self.command_matches(argv.first()) {
                    Ok(())
                } else {
                    Err(Miss::new(0, Why::Command))
                }
            }
            Spec::RegExp(patterns) => {
                if argv.is_empty() || argv.len() != patterns.len() {
                    let named = match (patterns.first(), argv.first()) {
                        (Some(p), Some(a)) => matches!(p.full_match(a), Ok(true)),
                        _ => false,
                    };
                    return Err(Miss::new(
                        if named { 30 } else { 0 },
                        Why::Count {
                            want: patterns.len(),
                            at_least: false,
                        },
                    ));
                }
                match_patterns(patterns, argv)
            }
            Spec::ChainingRegExp(patterns) => {
                if argv.is_empty() || patterns.len() > argv.len() {
                    return Err(Miss::new(
                        0,
                        Why::Count {
                            want: patterns.len() + 1,
                            at_least: true,
                        },
                    ));
                }
                match_patterns(patterns, &argv[..patterns.len()])
            }
            Spec::Path(constraints) => self.path_matches(constraints, argv, ctx),
            Spec::Kill { target, signals } => kill_matches(target, signals, argv, ctx),
            Spec::ReadFile { path } => {
                if argv.len() == 2 && argv[0] == "cat" && argv[1] == *path {
                    Ok(())
                } else if argv.first().is_some_and(|a| a == "cat") {
                    Err(Miss::new(40, Why::ReadFileOnly))
                } else {
                    Err(Miss::new(0, Why::Command))
                }
            }
            Spec::Ip => ip_matches(argv),
            Spec::Env { vars } => self.env_matches(vars, argv),
            Spec::IpNetnsExec => {
                if self.run_as == "root"
                    && argv.len() >= 4
                    && argv[0] == "ip"
                    && NETNS_WORDS.contains(&argv[1].as_str())
                    && EXEC_WORDS.contains(&argv[2].as_str())
                {
                    Ok(())
                } else {
                    Err(Miss::new(0, Why::NotNetnsExec))
                }
            }
            Spec::WriteFile { .. } => Err(Miss::new(0, Why::WriteOnly)),
        }
    }

    fn path_matches(
        &self,
        constraints: &[PathConstraint],
        argv: &[String],
        ctx: &MatchContext<'_>,
    ) -> Result<(), Miss> {
        if argv.len() < 2 || !self.command_matches(argv.first()) {
            return Err(Miss::new(0, Why::Command));
        }
        if argv.len() - 1 != constraints.len() {
            return Err(Miss::new(
                30,
                Why::Count {
                    want: constraints.len() + 1,
                    at_least: false,
                },
            ));
        }
        for (i, (c, v)) in constraints.iter().zip(&argv[1..]).enumerate() {
            let n = i + 1;
            let score = 40 + n as u32;
            match c {
                PathConstraint::Pass => {}
                PathConstraint::Equal(s) => {
                    if s != v {
                        return Err(Miss::new(score, Why::NotEqual(n)));
                    }
                }
                PathConstraint::Within(base) => {
                    // DEVIATION: rootwrap resolves relative values against the caller's
                    // working directory; moor refuses them.
                    if !v.starts_with('/') {
                        return Err(Miss::new(score, Why::Relative(n)));
                    }
                    let Some(real) = ctx.sys.realpath(v) else {
                        return Err(Miss::new(score, Why::Loop(n)));
                    };
                    // DEVIATION: rootwrap uses os.path.commonprefix, a string prefix, so
                    // `/base2` is "within" `/base`. moor compares whole components.
                    if !path_within(&real, base) {
                        return Err(Miss::new(score, Why::Outside(n)));
                    }
                }
            }
        }
        Ok(())
    }

    fn env_matches(&self, vars: &[(String, String)], argv: &mut Vec<String>) -> Result<(), Miss> {
        if argv.is_empty() {
            return Err(Miss::new(0, Why::Command));
        }
        // rootwrap pops a leading `env` from the caller's list itself; later filters and
        // the final command see the shortened list. Reproduced on purpose.
        if argv[0] == "env" {
            argv.remove(0);
        }
        if argv.len() < self.args.len() {
            return Err(Miss::new(
                0,
                Why::Count {
                    want: self.args.len(),
                    at_least: true,
                },
            ));
        }
        // rootwrap compares the *set* of leading NAME= names with the filter's (whose
        // names are distinct). Equal sets mean the command sits right after them.
        let user = || argv.iter().map_while(|a| a.split_once('='));
        let same_names = !vars.is_empty()
            && user().all(|(n, _)| vars.iter().any(|(m, _)| m == n))
            && vars.iter().all(|(m, _)| user().any(|(n, _)| n == m));
        if !same_names {
            let named = argv.iter().any(|a| self.command_matches(Some(a)));
            return Err(Miss::new(if named { 30 } else { 0 }, Why::EnvNames));
        }
        if !self.command_matches(argv.get(vars.len())) {
            return Err(Miss::new(0, Why::Command));
        }
        // DEVIATION: rootwrap compares names only; moor pins each value to the filter's
        // (an empty value in the filter admits only an empty value).
        for (n, v) in user() {
            if vars.iter().any(|(m, want)| m == n && want != v) {
                return Err(Miss::new(35, Why::EnvValue));
            }
        }
        Ok(())
    }

    /// Words for a miss of this filter on `argv` (the command as the caller gave it).
    pub fn explain(&self, why: &Why, argv: &[String], ctx: &MatchContext<'_>) -> String {
        let arg = |i: usize| argv.get(i).map(String::as_str).unwrap_or("");
        let what = |i: usize| {
            if i == 0 {
                "command".to_string()
            } else {
                format!("argument {i}")
            }
        };
        let patterns = match &self.spec {
            Spec::RegExp(p) | Spec::ChainingRegExp(p) => p.as_slice(),
            _ => &[],
        };
        match why {
            Why::Command => format!(
                "command {:?} is not {:?}",
                arg(0),
                basename(&self.exec_path)
            ),
            Why::Count {
                want,
                at_least: false,
            } => {
                format!(
                    "expects {want} argument(s) including the command, got {}",
                    argv.len()
                )
            }
            Why::Count {
                want,
                at_least: true,
            } => format!("expects at least {want} argument(s), got {}", argv.len()),
            Why::Pattern(i) => format!(
                "{} {:?} does not match /{}/",
                what(*i),
                arg(*i),
                patterns.get(*i).map(Regex::as_str).unwrap_or("")
            ),
            Why::StepLimit(i) => format!(
                "{} {:?}: pattern exceeded its backtracking limit",
                what(*i),
                arg(*i)
            ),
            Why::DotDot(i) => format!("{} {:?} has a `..` path component", what(*i), arg(*i)),
            Why::NotEqual(i) => match &self.spec {
                Spec::Path(c) => match c.get(i - 1) {
                    Some(PathConstraint::Equal(s)) => {
                        format!("argument {i} must be {s:?}, got {:?}", arg(*i))
                    }
                    _ => format!("argument {i} does not match"),
                },
                _ => format!("argument {i} does not match"),
            },
            Why::Relative(i) => format!("argument {i} {:?} is not an absolute path", arg(*i)),
            Why::Loop(i) => format!(
                "argument {i} {:?} cannot be resolved (symlink loop)",
                arg(*i)
            ),
            Why::Outside(i) => {
                let base = match &self.spec {
                    Spec::Path(c) => match c.get(i - 1) {
                        Some(PathConstraint::Within(b)) => b.as_str(),
                        _ => "",
                    },
                    _ => "",
                };
                let real = ctx.sys.realpath(arg(*i)).unwrap_or_default();
                format!(
                    "argument {i} {:?} resolves to {real:?}, which is not inside {base:?}",
                    arg(*i)
                )
            }
            Why::Kill(k) => k.clone(),
            Why::ReadFileOnly => match &self.spec {
                Spec::ReadFile { path } => format!("only `cat {path}` is allowed"),
                _ => "only one file may be read".into(),
            },
            Why::IpBatch(i) => format!(
                "argument {i} {:?} is ip's batch mode, which can run `netns exec`",
                arg(*i)
            ),
            Why::IpNetnsExec => "`ip netns exec` is not allowed by IpFilter".into(),
            Why::EnvNames => match &self.spec {
                Spec::Env { vars } => format!(
                    "variables must be exactly {:?}",
                    vars.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
                ),
                _ => "variables do not match".into(),
            },
            Why::EnvValue => match &self.spec {
                Spec::Env { vars } => format!(
                    "variable values are pinned: {}",
                    vars.iter()
                        .map(|(n, v)| format!("{n}={v:?}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                _ => "variable values do not match".into(),
            },
            Why::NotNetnsExec => "needs `ip netns exec NS COMMAND…` run as root".into(),
            Why::WriteOnly => "WriteFileFilter only allows file writes, not commands".into(),
            Why::NoChained => "no command to chain".into(),
            Why::Chain(s) => s.clone(),
        }
    }

    /// The arguments a chaining filter hands to the leaf check (`exec_args`).
    /// DEVIATION: rootwrap basenames the first element and so checks a different
    /// program than it runs (`nice /tmp/evil/cat` passes as `cat`); moor keeps it as is.
    pub fn chained_args(&self, argv: &[String]) -> Vec<String> {
        match &self.spec {
            Spec::IpNetnsExec => argv.get(4..).map(<[String]>::to_vec).unwrap_or_default(),
            Spec::ChainingRegExp(p) => argv
                .get(p.len()..)
                .map(<[String]>::to_vec)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// How many leading argv elements belong to the chaining command itself.
    pub fn chain_prefix_len(&self) -> usize {
        match &self.spec {
            Spec::IpNetnsExec => 4,
            Spec::ChainingRegExp(p) => p.len(),
            _ => 0,
        }
    }

    /// `get_command` and `get_environment` for a matched (non-chaining) filter, given
    /// the argv as the matching left it and the resolved executable.
    pub fn command(
        &self,
        argv: &[String],
        exec: &Path,
        sys: &dyn System,
    ) -> (Vec<String>, BTreeMap<String, String>) {
        let exec = exec.to_string_lossy().into_owned();
        let mut env = BTreeMap::new();
        let mut cmd = vec![exec];
        match &self.spec {
            Spec::Path(constraints) => {
                for (c, v) in constraints.iter().zip(argv.iter().skip(1)) {
                    match c {
                        PathConstraint::Within(_) => {
                            cmd.push(sys.realpath(v).unwrap_or_else(|| v.clone()))
                        }
                        _ => cmd.push(v.clone()),
                    }
                }
            }
            Spec::Env { .. } => {
                let mut args: &[String] = argv;
                if args.first().is_some_and(|a| a == "env") {
                    args = &args[1..];
                }
                for a in args {
                    let Some((n, v)) = a.split_once('=') else {
                        break;
                    };
                    if !n.is_empty() && !v.is_empty() {
                        env.insert(n.to_string(), v.to_string());
                    }
                }
                let pos = args
                    .iter()
                    .position(|a| !a.contains('='))
                    .unwrap_or(args.len());
                cmd.extend(args.iter().skip(pos + 1).cloned());
            }
            _ => cmd.extend(argv.iter().skip(1).cloned()),
        }
        (cmd, env)
    }
}

/// Per-decision inputs for matching.
#[derive(Debug)]
pub struct MatchContext<'a> {
    pub exec_dirs: &'a [PathBuf],
    /// [`dirs_key`] of `exec_dirs`.
    pub dirs_key: u64,
    pub sys: &'a dyn System,
}

/// Why a filter did not match, with a score for "how close" (higher is closer) so that
/// a denial can name the nearest filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub score: u32,
    pub why: Why,
}

impl Miss {
    pub fn new(score: u32, why: Why) -> Miss {
        Miss { score, why }
    }
}

/// The kinds of miss; argument indices refer to the caller's argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    Command,
    Count {
        want: usize,
        at_least: bool,
    },
    Pattern(usize),
    StepLimit(usize),
    DotDot(usize),
    NotEqual(usize),
    Relative(usize),
    Loop(usize),
    Outside(usize),
    /// KillFilter misses are rare and already worded.
    Kill(String),
    ReadFileOnly,
    IpBatch(usize),
    IpNetnsExec,
    EnvNames,
    EnvValue,
    NotNetnsExec,
    WriteOnly,
    NoChained,
    /// A chaining filter whose chained command passed no leaf filter, worded.
    Chain(String),
}

pub const NETNS_WORDS: [&str; 3] = ["net", "netn", "netns"];
pub const EXEC_WORDS: [&str; 4] = ["e", "ex", "exe", "exec"];

fn kill_matches(
    target: &str,
    signals: &[String],
    argv: &[String],
    ctx: &MatchContext<'_>,
) -> Result<(), Miss> {
    let miss = |score, text: String| Err(Miss::new(score, Why::Kill(text)));
    if argv.first().is_none_or(|a| a != "kill") {
        return Err(Miss::new(0, Why::Command));
    }
    let pid = match argv.len() {
        3 => {
            if !signals.contains(&argv[1]) {
                return miss(
                    30,
                    format!("signal {:?} is not one of {signals:?}", argv[1]),
                );
            }
            &argv[2]
        }
        2 => {
            if !signals.is_empty() {
                return miss(30, format!("a signal from {signals:?} is required"));
            }
            &argv[1]
        }
        _ => return miss(20, "expects `kill [SIGNAL] PID`".into()),
    };
    // DEVIATION: Python's int() also takes ' 12 ', '+12', '1_2' and Unicode digits
    // while the raw string goes to kill(1); moor wants plain ASCII digits.
    let pid_num = if !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit()) {
        pid.parse::<u32>().ok()
    } else {
        None
    };
    let Some(pid_num) = pid_num else {
        return miss(35, format!("pid {pid:?} is not a plain decimal number"));
    };
    // DEVIATION: when /proc/PID/exe is not a file rootwrap falls back to argv[0] of
    // /proc/PID/cmdline, which the process controls. moor refuses instead.
    let Some(mut program) = ctx.sys.proc_exe(pid_num) else {
        return miss(
            35,
            format!("no process {pid_num} (or its executable cannot be read)"),
        );
    };
    if let Some(i) = program.find('\0') {
        program.truncate(i);
    }
    if let Some(p) = program.strip_suffix(" (deleted)") {
        program = p.to_string();
    }
    if !ctx.sys.is_file(Path::new(&program)) {
        return miss(
            35,
            format!(
                "process {pid_num} runs {program:?}, which is no longer a file (rootwrap would trust its cmdline)"
            ),
        );
    }
    let ok = if target.starts_with('/') {
        program == target
    } else {
        // rootwrap checks the directory against $PATH; moor uses exec_dirs, which
        // rootwrap.conf's default takes from the same $PATH.
        let (dir, base) = match program.rsplit_once('/') {
            Some(("", b)) => ("/", b),
            Some((d, b)) => (d, b),
            None => ("", program.as_str()),
        };
        program.starts_with('/')
            && base == target
            && ctx.exec_dirs.iter().any(|d| d.as_os_str() == dir)
    };
    if ok {
        Ok(())
    } else {
        miss(
            36,
            format!("process {pid_num} runs {program:?}, not {target:?}"),
        )
    }
}

fn ip_matches(argv: &[String]) -> Result<(), Miss> {
    if argv.first().is_none_or(|a| a != "ip") {
        return Err(Miss::new(0, Why::Command));
    }
    // rootwrap looks at the first netns word only. DEVIATION: moor looks at every pair
    // and refuses batch mode (`ip -b FILE`, `-batch`, `--batch`), whose file may hold
    // `netns exec NS sh`.
    if let Some(i) = argv.iter().skip(1).position(|w| is_ip_batch_option(w)) {
        return Err(Miss::new(30, Why::IpBatch(i + 1)));
    }
    for (a, b) in argv[1..].iter().zip(argv.iter().skip(2)) {
        if NETNS_WORDS.contains(&a.as_str()) && EXEC_WORDS.contains(&b.as_str()) {
            return Err(Miss::new(30, Why::IpNetnsExec));
        }
    }
    Ok(())
}

/// ip accepts any prefix of `-batch` (at least `-b`), with one or two dashes.
fn is_ip_batch_option(w: &str) -> bool {
    let Some(opt) = w.strip_prefix('-') else {
        return false;
    };
    let opt = opt.strip_prefix('-').unwrap_or(opt);
    !opt.is_empty() && "batch".starts_with(opt)
}

/// True when some `/`-separated component of `arg` is `..`.
pub fn has_dotdot(arg: &str) -> bool {
    arg.split('/').any(|c| c == "..")
}

fn match_patterns(patterns: &[Regex], argv: &[String]) -> Result<(), Miss> {
    for (i, (p, a)) in patterns.iter().zip(argv).enumerate() {
        let base = if i == 0 { 0 } else { 40 + 2 * i as u32 };
        match p.full_match(a) {
            Ok(true) => {}
            Ok(false) => return Err(Miss::new(base, Why::Pattern(i))),
            Err(MatchError::StepLimit) => return Err(Miss::new(base, Why::StepLimit(i))),
        }
        // DEVIATION: rootwrap lets `/dev/.*` admit `/dev/../etc/shadow`.
        if has_dotdot(a) {
            return Err(Miss::new(base + 1, Why::DotDot(i)));
        }
    }
    Ok(())
}

/// `path` (canonical, absolute) lies inside `base` by whole components.
pub fn path_within(path: &str, base: &str) -> bool {
    if base.ends_with('/') {
        // rootwrap: a trailing slash excludes the base itself.
        path.starts_with(base)
    } else {
        path == base || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
    }
}

/// `os.path.join(dir, name)` for a relative name.
pub fn join(dir: &Path, name: &str) -> PathBuf {
    let d = dir.to_string_lossy();
    if d.is_empty() || d.ends_with('/') {
        PathBuf::from(format!("{d}{name}"))
    } else {
        PathBuf::from(format!("{d}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            file: "t.filters".into(),
            line: 1,
        }
    }

    #[test]
    fn definitions_are_validated() {
        let f = Filter::from_definition("a", "CommandFilter, /sbin/x, root", origin()).unwrap();
        assert_eq!(
            (f.exec_path.as_str(), f.run_as.as_str()),
            ("/sbin/x", "root")
        );
        assert!(matches!(
            Filter::from_definition("a", "Nope, x, root", origin()),
            Err(DefinitionError::UnknownClass(_))
        ));
        assert!(matches!(
            Filter::from_definition("a", "CommandFilter, x", origin()),
            Err(DefinitionError::TooFewArguments { .. })
        ));
        assert!(matches!(
            Filter::from_definition("a", "CommandFilter, x, root # c", origin()),
            Err(DefinitionError::BadUser(_))
        ));
        assert!(matches!(
            Filter::from_definition("a", "CommandFilter, ../x, root", origin()),
            Err(DefinitionError::BadExecutable(_))
        ));
        assert!(matches!(
            Filter::from_definition("a", "EnvFilter, /opt/venv/bin/t, root, A=, t", origin()),
            Err(DefinitionError::EnvSubstring(_))
        ));
        assert!(matches!(
            Filter::from_definition("a", "EnvFilter, env, root, A=", origin()),
            Err(DefinitionError::EnvWithoutCommand)
        ));
        let f = Filter::from_definition("pvs", "EnvFilter, env, root, LC_ALL=C, pvs", origin())
            .unwrap();
        assert_eq!(f.exec_path, "pvs");
        let f = Filter::from_definition(
            "k",
            "KillFilter, root, /usr/sbin/dnsmasq, -9, -HUP",
            origin(),
        )
        .unwrap();
        assert!(matches!(f.spec, Spec::Kill { ref signals, .. } if signals.len() == 2));
        let f = Filter::from_definition(
            "r",
            "ReadFileFilter, /etc/iscsi/initiatorname.iscsi, extra",
            origin(),
        )
        .unwrap();
        assert_eq!(
            (f.exec_path.as_str(), f.run_as.as_str()),
            ("/bin/cat", "root")
        );
    }

    #[test]
    fn ip_batch_options() {
        for w in ["-b", "-ba", "-batch", "--batch", "--b"] {
            assert!(is_ip_batch_option(w), "{w}");
        }
        for w in ["-br", "-brief", "b", "-", "--", "-n"] {
            assert!(!is_ip_batch_option(w), "{w}");
        }
    }

    #[test]
    fn path_within_by_component() {
        assert!(path_within("/base", "/base"));
        assert!(path_within("/base/x", "/base"));
        assert!(!path_within("/base2/x", "/base"));
        assert!(!path_within("/base", "/base/"));
        assert!(path_within("/base/x", "/base/"));
        assert!(path_within("/x", "/"));
    }
}
