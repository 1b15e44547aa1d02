//! `moor generate-manpages DIR`, `moor completions SHELL` and `moord
//! --generate-manpage DIR` (what scripts/build-deb.sh ships): every subcommand the
//! CLI's own `--help` lists, at every depth, has a page that names each of its
//! options; no page for hidden commands or clap's `help`; the completion scripts
//! know every subcommand; moord.8 names moord's options.
//!
//! The expected subcommands and options come from `--help` output, not from the clap
//! definitions the generator reads, so a page generator that dropped something
//! would be caught. Binaries: `$MOOR_BIN` / `$MOORD_BIN`, else built once with cargo.

// Only moor_bin() of cli_common is needed here; Run and op_names serve the other CLI tests.
#[allow(dead_code)]
mod cli_common;
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cli_common::moor_bin;
use common::{cargo_build, target_dir};

/// Page dates come from SOURCE_DATE_EPOCH: 1970-01-02 here, unless `epoch` is given.
fn run(bin: &Path, args: &[&str]) -> String {
    run_at(bin, args, "86400")
}

fn run_at(bin: &Path, args: &[&str], epoch: &str) -> String {
    let out = Command::new(bin)
        .args(args)
        .env("SOURCE_DATE_EPOCH", epoch)
        .env_remove("MOOR_SOCKET")
        .env_remove("MOOR_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}\n{}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The subcommand names and long options of one `--help` page.
fn help_facts(help: &str) -> (Vec<String>, BTreeSet<String>) {
    let mut subcommands = Vec::new();
    let mut options = BTreeSet::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            // "  name    about": exactly two spaces of indentation; a blank line ends it.
            if line.trim().is_empty() {
                in_commands = false;
            } else if let Some(rest) = line.strip_prefix("  ")
                && !rest.starts_with(' ')
            {
                let name = rest.split_whitespace().next().unwrap_or_default();
                if name != "help" {
                    subcommands.push(name.to_string());
                }
            }
            continue;
        }
        // Option lines: "  -h, --help", "      --socket <PATH>".
        let t = line.trim_start();
        if line.len() - t.len() < 2 {
            continue;
        }
        let t = match t.strip_prefix('-') {
            Some(r) if r.len() > 2 && r.as_bytes()[1] == b',' => r[2..].trim_start(),
            _ => t,
        };
        if let Some(long) = t.strip_prefix("--") {
            let name: String = long
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if !name.is_empty() {
                options.insert(format!("--{name}"));
            }
        }
    }
    (subcommands, options)
}

/// A man page as plain text: roff's `\-` as `-`, font escapes removed.
fn page_text(path: &Path) -> String {
    let raw =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("no page {}: {e}", path.display()));
    raw.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
}

/// Every subcommand path (`["connect", "iscsi"]`, …) with its options, from `--help`.
fn walk(bin: &Path, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, BTreeSet<String>)>) {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let (subs, opts) = help_facts(&run(bin, &args));
    out.push((path.clone(), opts));
    for s in subs {
        path.push(s);
        walk(bin, path, out);
        path.pop();
    }
}

#[test]
fn every_subcommand_has_a_page_naming_its_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listed = run(
        moor_bin(),
        &[
            "generate-manpages",
            dir.path().to_str().expect("utf-8 path"),
        ],
    );
    let mut commands = Vec::new();
    walk(moor_bin(), &mut Vec::new(), &mut commands);
    assert!(
        commands.len() > 30,
        "the help walk found only {} commands",
        commands.len()
    );
    let mut expected = BTreeSet::new();
    for (path, options) in &commands {
        let name = std::iter::once("moor")
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("-");
        let file = dir.path().join(format!("{name}.1"));
        let text = page_text(&file);
        assert!(
            text.contains(&format!(".TH {name} 1 1970-01-02 \"moor ")),
            "{name}.1 has no `.TH {name} 1 DATE SOURCE` header (SOURCE_DATE_EPOCH)"
        );
        assert!(!options.is_empty(), "{name}: no options in --help");
        for opt in options {
            assert!(
                text.contains(opt.as_str()),
                "{name}.1 does not mention {opt}"
            );
        }
        let shown = path.join(" ");
        assert!(
            text.contains(&format!("moor {shown}").trim().to_string()),
            "{name}.1 has no synopsis `moor {shown}`"
        );
        expected.insert(file);
    }
    // Exactly those pages: nothing for `help` or the hidden generate-manpages.
    let found: BTreeSet<PathBuf> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    assert_eq!(found, expected, "pages written vs subcommands in --help");
    let printed: BTreeSet<PathBuf> = listed.lines().map(PathBuf::from).collect();
    assert_eq!(printed, expected, "paths printed vs pages");
    // The transports and their spellings used in the docs are all there.
    for page in [
        "moor-connect-iscsi.1",
        "moor-disconnect-nvmeof.1",
        "moor-extend-fibre-channel.1",
        "moor-paths-fibre-channel-eckd.1",
        "moor-filters-check.1",
        "moor-call-exec.1",
        "moor-completions.1",
    ] {
        assert!(dir.path().join(page).exists(), "no {page}");
    }
    // Pages point at each other.
    let top = page_text(&dir.path().join("moor.1"));
    assert!(top.contains("SEE ALSO") && top.contains("moor-connect") && top.contains("moord"));
    // The environment variables of the global options are documented.
    assert!(top.contains("MOOR_SOCKET") && top.contains("MOOR_KEY_FILE"));
}

#[test]
fn completions_know_every_subcommand() {
    let mut commands = Vec::new();
    walk(moor_bin(), &mut Vec::new(), &mut commands);
    let bash = run(moor_bin(), &["completions", "bash"]);
    assert!(
        bash.contains("complete -F _moor"),
        "not a bash completion:\n{bash}"
    );
    for (path, options) in &commands {
        if let Some(last) = path.last() {
            // clap_complete's bash walks the words with `case "${cmd},${word}"`.
            assert!(
                bash.contains(&format!(",{last})")),
                "bash completion lacks {}",
                path.join(" ")
            );
        }
        for opt in options {
            assert!(bash.contains(opt.as_str()), "bash completion lacks {opt}");
        }
    }
    // From a file: the script is larger than one argv string may be (128 KiB).
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("moor.bash");
    std::fs::write(&script, &bash).expect("write the script");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .expect("run bash -n");
    assert!(syntax.success(), "bash -n rejects the completion script");

    let zsh = run(moor_bin(), &["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef moor"), "zsh:\n{zsh}");
    let fish = run(moor_bin(), &["completions", "fish"]);
    assert!(fish.contains("complete -c moor"), "fish:\n{fish}");
    for (path, _) in commands.iter().filter(|(p, _)| p.len() == 1) {
        let sub = &path[0];
        assert!(zsh.contains(&format!("'{sub}:")), "zsh lacks {sub}");
        assert!(fish.contains(&format!("-a \"{sub}\"")), "fish lacks {sub}");
    }
}

#[test]
fn completions_refuse_an_unknown_shell() {
    let out = Command::new(moor_bin())
        .args(["completions", "tcsh"])
        .stdin(Stdio::null())
        .output()
        .expect("run moor");
    assert_eq!(out.status.code(), Some(2), "clap usage error expected");
}

fn moord_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOORD_BIN") {
        return PathBuf::from(p);
    }
    cargo_build(&["-p", "moor-privhelper", "--bin", "moord"]);
    target_dir().join("debug/moord")
}

#[test]
fn moord_page_names_its_options() {
    let bin = moord_bin();
    let dir = tempfile::tempdir().expect("tempdir");
    // 2024-02-29 23:59 UTC: a leap day, a minute before midnight.
    let printed = run_at(
        &bin,
        &[
            "--generate-manpage",
            dir.path().to_str().expect("utf-8 path"),
        ],
        "1709251140",
    );
    let page = dir.path().join("moord.8");
    assert_eq!(printed.trim(), page.to_str().expect("utf-8 path"));
    let text = page_text(&page);
    assert!(
        text.contains(".TH moord 8 2024-02-29 \"moord 0."),
        "no section-8 header with the date:\n{text}"
    );
    let (_, options) = help_facts(&run(&bin, &["--help"]));
    assert!(options.contains("--config") && options.contains("--check"));
    for opt in &options {
        assert!(
            text.contains(opt.as_str()),
            "moord.8 does not mention {opt}"
        );
    }
    // The hidden flags stay out of the page.
    assert!(!text.contains("--generate-manpage") && !text.contains("--trusted-owner"));
    assert!(text.contains("/etc/moor/moord.toml") && text.contains("SEE ALSO"));
}
