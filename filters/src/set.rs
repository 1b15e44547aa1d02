//! Deciding a command against a loaded set: rootwrap's `match_filter` (first matching
//! filter with an executable wins; chaining filters need a leaf filter with the same
//! user for their tail) plus its `get_command` / `get_environment`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::filter::{Class, Filter, MatchContext, Miss, Origin, Why, has_dotdot};
use crate::system::System;

/// All loaded filters in rootwrap's order: directory, file, line.
#[derive(Debug, Clone, Default)]
pub struct FilterSet {
    pub filters: Vec<Filter>,
}

/// The outcome of a decision, with rootwrap's exit codes for reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A filter allows it and its executable exists.
    Allow,
    /// No filter allows it (rootwrap rc 99).
    Deny,
    /// A filter allows it but its executable does not exist (rootwrap rc 96).
    NoExec,
}

/// Which filter, by name and place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilterRef {
    pub name: String,
    pub class: Class,
    pub file: PathBuf,
    pub line: usize,
    pub run_as: String,
}

impl FilterRef {
    fn of(f: &Filter) -> FilterRef {
        FilterRef {
            name: f.name.clone(),
            class: f.class,
            file: f.origin.file.clone(),
            line: f.origin.line,
            run_as: f.run_as.clone(),
        }
    }

    pub fn origin(&self) -> Origin {
        Origin {
            file: self.file.clone(),
            line: self.line,
        }
    }
}

/// A decision on one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// The filter that allows it (for `NoExec`, the first one that matched).
    pub filter: Option<FilterRef>,
    /// For a chaining filter, the leaf filter that allowed the chained command.
    pub chained: Option<FilterRef>,
    /// The argv that would run, resolved executable first.
    pub exec: Option<Vec<String>>,
    /// Environment variables the filter sets for the command.
    pub env: BTreeMap<String, String>,
    /// On deny: the filter that came closest to allowing it.
    pub closest: Option<FilterRef>,
    /// On deny or no-exec: why, in words.
    pub reason: Option<String>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    fn deny(reason: String, closest: Option<FilterRef>) -> Decision {
        Decision {
            outcome: Outcome::Deny,
            filter: None,
            chained: None,
            exec: None,
            env: BTreeMap::new(),
            closest,
            reason: Some(reason),
        }
    }
}

/// A decision on a file write (WriteFileFilter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteDecision {
    pub allowed: bool,
    pub filter: Option<FilterRef>,
    pub closest: Option<FilterRef>,
    pub reason: Option<String>,
}

struct Hit {
    index: usize,
    exec: PathBuf,
    /// The leaf filter, its executable, and the chained argv as its matching left it.
    leaf: Option<(usize, PathBuf, Vec<String>)>,
}

impl FilterSet {
    /// Decide `argv` with executables resolved through `exec_dirs` only.
    pub fn decide(&self, argv: &[String], exec_dirs: &[PathBuf], sys: &dyn System) -> Decision {
        if argv.is_empty() {
            return Decision::deny("empty command".into(), None);
        }
        if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
            return Decision::deny(format!("argument {i} contains a NUL byte"), None);
        }
        let ctx = MatchContext {
            exec_dirs,
            dirs_key: crate::filter::dirs_key(exec_dirs),
            sys,
        };
        // rootwrap matches against one list object that EnvFilter may shorten.
        let mut userargs = argv.to_vec();
        let mut best = Best::default();
        let mut first_noexec = None;
        match self.match_list(None, &mut userargs, &ctx, &mut best, &mut first_noexec) {
            Some(hit) => self.allow(hit, &userargs, &ctx),
            None => {
                if let Some(i) = first_noexec {
                    let f = &self.filters[i];
                    let mut d = Decision::deny(
                        format!(
                            "filter {:?} ({}) allows it but its executable {:?} is not in exec_dirs",
                            f.name, f.origin, f.exec_path
                        ),
                        None,
                    );
                    d.outcome = Outcome::NoExec;
                    d.filter = Some(FilterRef::of(f));
                    return d;
                }
                self.explain_denial(argv, best, &ctx)
            }
        }
    }

    /// rootwrap's `match_filter` over every filter (`leaf_of: None`) or over the leaf
    /// filters of a chaining filter with that `run_as`.
    fn match_list(
        &self,
        leaf_of: Option<&str>,
        userargs: &mut Vec<String>,
        ctx: &MatchContext<'_>,
        best: &mut Best,
        first_noexec: &mut Option<usize>,
    ) -> Option<Hit> {
        for (i, f) in self.filters.iter().enumerate() {
            if f.class == Class::WriteFileFilter {
                continue;
            }
            if let Some(user) = leaf_of
                && (f.run_as != user || f.class.is_chaining())
            {
                continue;
            }
            if let Err(m) = f.matches(userargs, ctx) {
                best.offer(i, m);
                continue;
            }
            let mut leaf = None;
            if f.class.is_chaining() {
                let mut args = f.chained_args(userargs);
                if args.is_empty() {
                    best.offer(i, Miss::new(20, Why::NoChained));
                    continue;
                }
                // The leaf check may shorten `args` (an EnvFilter pops `env`).
                let chained_cmd = args[0].clone();
                let mut inner = Best::default();
                let mut inner_noexec = None;
                match self.match_list(
                    Some(&f.run_as),
                    &mut args,
                    ctx,
                    &mut inner,
                    &mut inner_noexec,
                ) {
                    Some(h) => leaf = Some((h.index, h.exec, args)),
                    None => {
                        let why = match (inner_noexec, inner.found) {
                            (Some(j), _) => {
                                format!("leaf filter {:?} has no executable", self.filters[j].name)
                            }
                            (None, Some((j, m))) if m.score > 0 => format!(
                                "closest leaf {:?}: {}",
                                self.filters[j].name,
                                self.filters[j].explain(&m.why, &args, ctx)
                            ),
                            (None, _) => {
                                format!("no {} filter allows {:?} as given", f.run_as, chained_cmd)
                            }
                        };
                        let text = format!(
                            "chained command {:?} passes no {} leaf filter ({why})",
                            chained_cmd, f.run_as
                        );
                        best.offer(i, Miss::new(60, Why::Chain(text)));
                        continue;
                    }
                }
            }
            let Some(exec) = f.resolve_exec_keyed(ctx.exec_dirs, ctx.dirs_key, ctx.sys) else {
                first_noexec.get_or_insert(i);
                continue;
            };
            return Some(Hit {
                index: i,
                exec,
                leaf,
            });
        }
        None
    }

    fn allow(&self, hit: Hit, userargs: &[String], ctx: &MatchContext<'_>) -> Decision {
        let f = &self.filters[hit.index];
        let exec = hit.exec;
        let (exec_argv, env, chained) = match hit.leaf {
            None => {
                let (c, e) = f.command(userargs, &exec, ctx.sys);
                (c, e, None)
            }
            Some((j, leaf_exec, leaf_args)) => {
                // DEVIATION: rootwrap runs the chaining command with the tail as the
                // caller wrote it, so `nice` finds the chained program through its own
                // PATH. moor runs exactly the leaf filter's resolved command.
                let leaf = &self.filters[j];
                let (leaf_cmd, leaf_env) = leaf.command(&leaf_args, &leaf_exec, ctx.sys);
                let mut c = vec![path_string(&exec)];
                c.extend(userargs.iter().take(f.chain_prefix_len()).skip(1).cloned());
                c.extend(leaf_cmd);
                (c, leaf_env, Some(FilterRef::of(leaf)))
            }
        };
        Decision {
            outcome: Outcome::Allow,
            filter: Some(FilterRef::of(f)),
            chained,
            exec: Some(exec_argv),
            env,
            closest: None,
            reason: None,
        }
    }

    fn explain_denial(&self, argv: &[String], best: Best, ctx: &MatchContext<'_>) -> Decision {
        let cmd = &argv[0];
        match best.found {
            Some((i, m)) if m.score > 0 => {
                let f = &self.filters[i];
                Decision::deny(
                    format!(
                        "closest filter {:?} ({}, {}): {}",
                        f.name,
                        f.origin,
                        f.class,
                        f.explain(&m.why, argv, ctx)
                    ),
                    Some(FilterRef::of(f)),
                )
            }
            _ => {
                let mut why = format!("no filter allows command {cmd:?}");
                if cmd.contains('/') && !cmd.starts_with('/') || has_dotdot(cmd) {
                    why.push_str(" (relative or `..` paths never match)");
                }
                Decision::deny(why, None)
            }
        }
    }

    /// Decide a write of `content` to `path` against the WriteFileFilters.
    pub fn decide_write(&self, path: &str, content: &str) -> WriteDecision {
        let deny = |reason: String, closest: Option<FilterRef>| WriteDecision {
            allowed: false,
            filter: None,
            closest,
            reason: Some(reason),
        };
        if !path.starts_with('/') || has_dotdot(path) || path.contains('\0') || path.contains("//")
        {
            return deny(
                format!("path {path:?} must be absolute and canonical (no `..`, `//` or NUL)"),
                None,
            );
        }
        let mut closest: Option<(&Filter, String)> = None;
        for f in &self.filters {
            let crate::filter::Spec::WriteFile {
                path: pp,
                content: cp,
            } = &f.spec
            else {
                continue;
            };
            match pp.full_match(path) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    closest
                        .get_or_insert((f, "path pattern exceeded its backtracking limit".into()));
                    continue;
                }
            }
            match cp.full_match(content) {
                Ok(true) => {
                    return WriteDecision {
                        allowed: true,
                        filter: Some(FilterRef::of(f)),
                        closest: None,
                        reason: None,
                    };
                }
                Ok(false) => {
                    closest.get_or_insert((
                        f,
                        format!("content {content:?} does not match /{}/", cp.as_str()),
                    ));
                }
                Err(_) => {
                    closest.get_or_insert((
                        f,
                        "content pattern exceeded its backtracking limit".into(),
                    ));
                }
            }
        }
        match closest {
            Some((f, why)) => deny(
                format!("closest filter {:?} ({}): {why}", f.name, f.origin),
                Some(FilterRef::of(f)),
            ),
            None => deny(
                format!("no WriteFileFilter allows writing to {path:?}"),
                None,
            ),
        }
    }
}

/// The closest miss so far (first of the highest score).
#[derive(Default)]
struct Best {
    found: Option<(usize, Miss)>,
}

impl Best {
    fn offer(&mut self, i: usize, m: Miss) {
        if self.found.as_ref().is_none_or(|(_, b)| m.score > b.score) {
            self.found = Some((i, m));
        }
    }
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
