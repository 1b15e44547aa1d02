//! `moor filters check|list|lint`: what administrators use to audit a filter set.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use moor_filters::audit::{self, Risk};
use moor_filters::config::{default_exec_dirs, parse_dir_list};
use moor_filters::{Config, Decision, LoadOptions, Loaded, Outcome, RealSystem, Severity};
use serde_json::{Value, json};

/// Exit codes of `check`: allowed, denied, usage or configuration error.
const EXIT_ALLOWED: u8 = 0;
const EXIT_DENIED: u8 = 1;
const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum FiltersCommand {
    /// Decide a command (or a file write) as moord would; exit 0 allowed, 1 denied,
    /// 2 usage or configuration error.
    Check(CheckArgs),
    /// Every filter with file:line, class, what it allows in plain words and a risk level.
    List(ListArgs),
    /// Dangerous or broken entries; exits 1 when there are errors.
    Lint(LintArgs),
    /// What an existing rootwrap setup (e.g. --config /etc/cinder/rootwrap.conf)
    /// allows and how it maps onto moord: the typed-operation families that replace
    /// its filters, the filters moor does not need, the ones only `exec` would run,
    /// and a suggested policy.
    Import(ListArgs),
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// A rootwrap.conf to take filters_path and exec_dirs from.
    #[arg(long, value_name = "FILE", conflicts_with = "filters_path")]
    config: Option<PathBuf>,
    /// Comma-separated directories of .filters files, in precedence order.
    #[arg(long, value_name = "DIR[,DIR…]", required_unless_present = "config")]
    filters_path: Option<String>,
    /// Comma-separated directories executables are resolved in (never $PATH).
    /// Default: exec_dirs of --config, else /usr/local/sbin,/usr/local/bin,/usr/sbin,/usr/bin,/sbin,/bin.
    #[arg(long, value_name = "DIR[,DIR…]")]
    exec_dirs: Option<String>,
    /// The uid that must own filter files and directories (default 0, root).
    #[arg(long, value_name = "UID", default_value_t = 0)]
    trusted_owner: u32,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    set: SetArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Check a write to this file (WriteFileFilter) instead of a command.
    #[arg(
        long,
        value_name = "PATH",
        requires = "content",
        conflicts_with = "argv"
    )]
    write: Option<String>,
    /// The content of the write checked with --write.
    #[arg(long, value_name = "STRING")]
    content: Option<String>,
    /// The command to check, after `--`.
    #[arg(last = true, value_name = "ARGV", required_unless_present = "write")]
    argv: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    set: SetArgs,
    /// Print a JSON array instead of text.
    #[arg(long)]
    json: bool,
    /// Only filters at or above this risk (low, medium, high, critical).
    #[arg(long, value_name = "LEVEL", value_parser = parse_risk)]
    min_risk: Option<Risk>,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    #[command(flatten)]
    set: SetArgs,
    /// Print a JSON array instead of text.
    #[arg(long)]
    json: bool,
    /// Also exit 1 when there are warnings.
    #[arg(long)]
    strict: bool,
}

fn parse_risk(s: &str) -> Result<Risk, String> {
    match s {
        "low" => Ok(Risk::Low),
        "medium" => Ok(Risk::Medium),
        "high" => Ok(Risk::High),
        "critical" => Ok(Risk::Critical),
        _ => Err("expected low, medium, high or critical".into()),
    }
}

pub fn run(cmd: FiltersCommand) -> ExitCode {
    let result = match cmd {
        FiltersCommand::Check(a) => check(a),
        FiltersCommand::List(a) => list(a),
        FiltersCommand::Lint(a) => lint(a),
        FiltersCommand::Import(a) => import(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("moor filters: {e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Resolve the two directory lists from flags and/or a rootwrap.conf.
fn config(a: &SetArgs) -> anyhow::Result<Config> {
    let mut cfg = match (&a.config, &a.filters_path) {
        (Some(path), _) => Config::from_rootwrap_conf(path)?,
        (None, Some(fp)) => Config {
            filters_path: parse_dir_list(fp, "filters_path")?,
            exec_dirs: default_exec_dirs(),
        },
        (None, None) => anyhow::bail!("give --filters-path or --config"),
    };
    if let Some(ed) = &a.exec_dirs {
        cfg.exec_dirs = parse_dir_list(ed, "exec_dirs")?;
    }
    Ok(cfg)
}

fn load(a: &SetArgs) -> anyhow::Result<(Config, Loaded)> {
    let cfg = config(a)?;
    let loaded = moor_filters::load(
        &cfg.filters_path,
        &LoadOptions {
            trusted_owner: a.trusted_owner,
        },
    );
    Ok((cfg, loaded))
}

fn check(a: CheckArgs) -> anyhow::Result<u8> {
    let (cfg, loaded) = load(&a.set)?;
    if !loaded.is_clean() {
        // moord refuses to load such a set, so there is no decision to report.
        for d in loaded.errors() {
            eprintln!("{d}");
        }
        if a.json {
            let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
            println!(
                "{}",
                json!({"allowed": false, "outcome": "config-error", "errors": errors})
            );
        }
        eprintln!("moor filters: the filter set has errors; moord would refuse to load it");
        return Ok(EXIT_CONFIG);
    }
    for d in loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
    {
        eprintln!("{d}");
    }
    if let Some(path) = &a.write {
        let content = a.content.as_deref().unwrap_or_default();
        let d = loaded.set.decide_write(path, content);
        if a.json {
            let r = |f: &Option<moor_filters::FilterRef>| {
                f.as_ref().map(filter_ref_json).unwrap_or(Value::Null)
            };
            println!(
                "{}",
                json!({
                    "allowed": d.allowed,
                    "filter": d.filter.as_ref().map(|f| f.name.clone()),
                    "file": d.filter.as_ref().map(|f| f.file.clone()),
                    "line": d.filter.as_ref().map(|f| f.line),
                    "class": d.filter.as_ref().map(|f| f.class.name()),
                    "write": {"path": path, "content": content},
                    "closest": r(&d.closest),
                    "reason": d.reason,
                })
            );
        } else if d.allowed {
            if let Some(f) = &d.filter {
                println!(
                    "ALLOW write of {content:?} to {path} by filter {:?} ({}:{})",
                    f.name,
                    f.file.display(),
                    f.line
                );
            }
        } else {
            println!("DENY write to {path}: {}", d.reason.unwrap_or_default());
        }
        return Ok(if d.allowed { EXIT_ALLOWED } else { EXIT_DENIED });
    }
    // Arguments that are not UTF-8 are refused (rootwrap would decode them with
    // surrogate escapes); nothing in a storage command needs them.
    let mut argv = Vec::with_capacity(a.argv.len());
    for (i, arg) in a.argv.iter().enumerate() {
        match arg.to_str() {
            Some(s) => argv.push(s.to_string()),
            None => {
                let reason = format!("argument {i} is not valid UTF-8");
                if a.json {
                    println!(
                        "{}",
                        json!({"allowed": false, "outcome": "deny", "filter": null, "reason": reason})
                    );
                } else {
                    println!("DENY: {reason}");
                }
                return Ok(EXIT_DENIED);
            }
        }
    }
    let d = loaded.set.decide(&argv, &cfg.exec_dirs, &RealSystem);
    if a.json {
        println!("{}", decision_json(&d));
    } else {
        print_decision(&d);
    }
    Ok(if d.allowed() {
        EXIT_ALLOWED
    } else {
        EXIT_DENIED
    })
}

fn filter_ref_json(f: &moor_filters::FilterRef) -> Value {
    json!({"filter": f.name, "file": f.file, "line": f.line, "class": f.class.name(), "run_as": f.run_as})
}

/// The `check --json` object (documented in docs/filters.md).
pub fn decision_json(d: &Decision) -> Value {
    let f = d.filter.as_ref();
    let opt = |r: &Option<moor_filters::FilterRef>| {
        r.as_ref().map(filter_ref_json).unwrap_or(Value::Null)
    };
    json!({
        "allowed": d.allowed(),
        "outcome": d.outcome,
        "filter": f.map(|f| f.name.clone()),
        "file": f.map(|f| f.file.clone()),
        "line": f.map(|f| f.line),
        "class": f.map(|f| f.class.name()),
        "run_as": f.map(|f| f.run_as.clone()),
        "exec": d.exec,
        "env": d.env,
        "chained": opt(&d.chained),
        "closest": opt(&d.closest),
        "reason": d.reason,
    })
}

fn print_decision(d: &Decision) {
    match d.outcome {
        Outcome::Allow => {
            if let Some(f) = &d.filter {
                println!(
                    "ALLOW by filter {:?} ({}:{}, {}) as {}",
                    f.name,
                    f.file.display(),
                    f.line,
                    f.class,
                    f.run_as
                );
            }
            if let Some(c) = &d.chained {
                println!(
                    "  chained command allowed by {:?} ({}:{}, {})",
                    c.name,
                    c.file.display(),
                    c.line,
                    c.class
                );
            }
            if let Some(e) = &d.exec {
                println!("  exec: {}", shell_words(e));
            }
            for (k, v) in &d.env {
                println!("  env: {k}={v}");
            }
        }
        Outcome::NoExec | Outcome::Deny => {
            println!("DENY: {}", d.reason.as_deref().unwrap_or("denied"));
        }
    }
}

/// Quote for display only (nothing here is ever run through a shell).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.,:=@%+".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn list(a: ListArgs) -> anyhow::Result<u8> {
    let (_, loaded) = load(&a.set)?;
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    let listings: Vec<_> = loaded
        .set
        .filters
        .iter()
        .map(audit::describe)
        .filter(|l| a.min_risk.is_none_or(|m| l.risk >= m))
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&listings)?);
    } else {
        for l in &listings {
            println!(
                "{}:{}  {}  [{}]  risk: {}",
                l.file.display(),
                l.line,
                l.name,
                l.class,
                l.risk
            );
            println!("    {}", l.allows);
            for r in &l.risk_reasons {
                println!("    - {r}");
            }
        }
        println!(
            "{} filter(s) from {} file(s)",
            listings.len(),
            loaded.files.len()
        );
    }
    Ok(if loaded.is_clean() { 0 } else { EXIT_CONFIG })
}

fn import(a: ListArgs) -> anyhow::Result<u8> {
    let (_, loaded) = load(&a.set)?;
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    let imp = crate::filters_import::import(&loaded.set.filters);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&imp)?);
    } else {
        println!(
            "{} filter(s) from {} file(s)",
            imp.filters.len(),
            loaded.files.len()
        );
        crate::filters_import::print(&imp);
    }
    Ok(if loaded.is_clean() { 0 } else { EXIT_CONFIG })
}

fn lint(a: LintArgs) -> anyhow::Result<u8> {
    let (_, loaded) = load(&a.set)?;
    let findings = audit::lint(&loaded);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for d in &findings {
            println!("{d}");
        }
    }
    let count = |s| findings.iter().filter(|d| d.severity == s).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    eprintln!(
        "{} file(s), {} filter(s): {errors} error(s), {warnings} warning(s), {} note(s)",
        loaded.files.len(),
        loaded.set.filters.len(),
        count(Severity::Info)
    );
    Ok(if errors > 0 || (a.strict && warnings > 0) {
        1
    } else {
        0
    })
}
