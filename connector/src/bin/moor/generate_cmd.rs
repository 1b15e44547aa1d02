//! `moor completions SHELL` and the hidden `moor generate-manpages DIR`: shell
//! completions and man pages made from the CLI's own clap definitions, so they
//! always list the options the binary really has. `scripts/build-deb.sh` runs both
//! for the Debian package (packaging/README.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for (bash, zsh, fish; elvish and powershell too).
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Directory for moor.1 and one page per subcommand, e.g. moor-connect-iscsi.1
    /// (created when missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// `moor completions SHELL`: the completion script on stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "moor", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// `moor generate-manpages DIR`: moor.1 and a page for every visible subcommand,
/// at every depth (`moor-connect.1`, `moor-connect-iscsi.1`, …); prints each path.
pub fn manpages(args: ManpagesArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let mut cmd = crate::Cli::command().disable_help_subcommand(true);
    // Sets every subcommand's display name ("moor-connect-iscsi") and bin name
    // ("moor connect iscsi"), which the pages use as title and synopsis.
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, None, &args.dir, &mut written)?;
    let mut out = std::io::stdout().lock();
    for p in &written {
        writeln!(out, "{}", p.display()).context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The subcommands that get a page: not hidden, not clap's own `help`.
fn documented(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

fn page_name(cmd: &Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

fn write_pages(
    cmd: &Command,
    parent: Option<&str>,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let man = Man::new(cmd.clone())
        .manual("moor manual")
        .source(concat!("moor ", env!("CARGO_PKG_VERSION")))
        .date(moor_privhelper::civil::page_date());
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    see_also(cmd, parent).to_writer(&mut page)?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in documented(cmd) {
        write_pages(sub, Some(page_name(cmd)), dir, written)?;
    }
    Ok(())
}

/// SEE ALSO: the parent's page, the subcommands' pages, and moord(8).
fn see_also(cmd: &Command, parent: Option<&str>) -> Roff {
    let mut refs: Vec<String> = parent.map(str::to_owned).into_iter().collect();
    refs.extend(documented(cmd).map(|s| page_name(s).to_owned()));
    let mut text = Vec::new();
    for r in &refs {
        text.push(bold(r.as_str()));
        text.push(roman("(1), "));
    }
    text.push(bold("moord"));
    text.push(roman("(8)"));
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]).text(text);
    roff
}
