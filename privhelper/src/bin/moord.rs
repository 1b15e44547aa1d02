//! moord: runs whitelisted device operations for authenticated callers.

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use moor_privhelper::config::{self, Config, Overrides, parse_grant};
use moor_privhelper::server::{self, Settings, State};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(name = "moord", version, about = "moor's privileged helper daemon")]
struct Args {
    /// Configuration file (TOML). Default /etc/moor/moord.toml when it exists.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Socket path (ignored under systemd socket activation).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Comma-separated directories of .filters files.
    #[arg(long, value_name = "DIR[,DIR…]")]
    filters_path: Option<String>,
    /// Comma-separated directories executables are resolved in.
    #[arg(long, value_name = "DIR[,DIR…]")]
    exec_dirs: Option<String>,
    /// A uid allowed to connect (repeatable).
    #[arg(long = "allow-uid", value_name = "N")]
    allow_uids: Vec<u32>,
    /// A gid (primary or supplementary) allowed to connect (repeatable).
    #[arg(long = "allow-gid", value_name = "N")]
    allow_gids: Vec<u32>,
    /// Grant operations: `uid:N=op,op` or `gid:N=*` (repeatable; adds to [[policy]]).
    #[arg(long = "grant", value_name = "SPEC", value_parser = parse_grant)]
    grants: Vec<config::PolicyEntry>,
    /// HMAC key file (at least 16 random bytes; root-owned, mode 0640 root:callers).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Audit log file (JSON lines, created 0600).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Stay in the foreground (moord never forks; accepted for compatibility).
    #[arg(long)]
    foreground: bool,
    /// Resolve every path moord opens itself (sysfs writes, identity checks,
    /// file.read, iSCSI records) under DIR instead of `/` (tests and containers;
    /// overrides `host_root`). The filters still see the host paths.
    #[arg(long, value_name = "DIR")]
    host_root: Option<PathBuf>,
    /// The uid that must own config, filter and key files (tests only; default 0).
    #[arg(long, value_name = "UID", hide = true)]
    trusted_owner: Option<u32>,
    /// Check the configuration, filters and key, print a summary and exit.
    #[arg(long)]
    check: bool,
    /// Write moord.8 into DIR and exit (packaging: scripts/build-deb.sh).
    #[arg(long, value_name = "DIR", hide = true)]
    generate_manpage: Option<PathBuf>,
}

/// `--generate-manpage DIR`: moord.8 from these very definitions.
fn generate_manpage(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    use clap_mangen::roff::{Roff, bold, roman};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let man = clap_mangen::Man::new(Args::command())
        .section("8")
        .manual("moor manual")
        .date(moor_privhelper::civil::page_date());
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    let mut files = Roff::new();
    files.control("SH", ["FILES"]).text([
        bold("/etc/moor/moord.toml"),
        roman(" (settings), "),
        bold("/etc/moor/filters.d/"),
        roman(" (filters), "),
        bold("/etc/moor/moord.key"),
        roman(" (HMAC key), "),
        bold("/run/moor/moord.sock"),
        roman(" (socket), "),
        bold("/var/log/moor/audit.log"),
        roman(" (audit log); see /usr/share/doc/moor/."),
    ]);
    files.control("SH", ["SEE ALSO"]).text([
        bold("moor"),
        roman("(1), "),
        bold("systemd.socket"),
        roman("(5)"),
    ]);
    files.to_writer(&mut page)?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

fn dir_list(s: &Option<String>, what: &'static str) -> anyhow::Result<Option<Vec<PathBuf>>> {
    s.as_deref()
        .map(|v| moor_filters::config::parse_dir_list(v, what))
        .transpose()
        .map_err(Into::into)
}

fn load_config(a: &Args) -> anyhow::Result<Config> {
    let ov = Overrides {
        socket: a.socket.clone(),
        filters_path: dir_list(&a.filters_path, "filters_path")?,
        exec_dirs: dir_list(&a.exec_dirs, "exec_dirs")?,
        allow_uids: a.allow_uids.clone(),
        allow_gids: a.allow_gids.clone(),
        key_file: a.key_file.clone(),
        audit_log: a.audit_log.clone(),
        grants: a.grants.clone(),
        trusted_owner: a.trusted_owner,
        host_root: a.host_root.clone(),
    };
    let file = match &a.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(config::DEFAULT_CONFIG)).filter(|p| p.exists()),
    };
    Ok(Config::load(file.as_deref(), &ov)?)
}

/// systemd socket activation: LISTEN_PID is us and LISTEN_FDS ≥ 1 → fd 3.
fn activated_listener() -> anyhow::Result<Option<std::os::unix::net::UnixListener>> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let fds: usize = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !pid_ok || fds == 0 {
        return Ok(None);
    }
    if fds != 1 {
        bail!("socket activation passed {fds} sockets; moord takes exactly one");
    }
    const SD_LISTEN_FDS_START: RawFd = 3;
    // SAFETY: systemd passes the listening socket as fd 3 and nothing else in this
    // process owns or closes it; we take ownership exactly once.
    let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(SD_LISTEN_FDS_START) };
    // Passed fds are not close-on-exec; the tools moord runs must not inherit it.
    nix::fcntl::fcntl(
        &l,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    // SAFETY: only moord's own environment is changed, before any thread starts.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    Ok(Some(l))
}

fn bind(cfg: &Config) -> anyhow::Result<std::os::unix::net::UnixListener> {
    let path = &cfg.socket;
    if path.exists() {
        // A live daemon answers; a stale socket file is replaced.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("{} is in use by a running daemon", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let l = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.socket_mode))?;
    if let Some(g) = cfg.socket_group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(g)))?;
    }
    Ok(l)
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if let Some(dir) = &args.generate_manpage {
        return generate_manpage(dir);
    }
    // moord runs in `/`: paths given relative to where it was started are made absolute
    // now, so reloads and the socket cleanup still find them.
    for p in [
        &mut args.config,
        &mut args.socket,
        &mut args.key_file,
        &mut args.audit_log,
        &mut args.host_root,
    ]
    .into_iter()
    .flatten()
    {
        *p = std::path::absolute(&*p).with_context(|| format!("resolving {}", p.display()))?;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MOORD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = load_config(&args)?;
    let settings = Settings::load(cfg.clone())?;
    if args.check {
        println!(
            "ok: {} filters from {} file(s); {} policy entries; auth {}",
            settings.filters.set.filters.len(),
            settings.filters.files.len(),
            cfg.policy.len(),
            if settings.key.is_some() {
                "hmac-sha256"
            } else {
                "peer credentials only"
            }
        );
        return Ok(());
    }
    if cfg.host_root != std::path::Path::new("/") {
        tracing::warn!(
            host_root = %cfg.host_root.display(),
            "host_root is set: moord reads and writes files under it, not the host's (tests and containers only)"
        );
    }
    if settings.key.is_none() {
        tracing::warn!("no key file: callers are authenticated by peer credentials alone");
    }
    if cfg.allow_uids.is_empty() && cfg.allow_gids.is_empty() {
        tracing::warn!("no allowed uid or gid: every caller will be refused");
    }
    // The socket file is ours to remove at exit only when we bound it: under socket
    // activation systemd owns it and keeps it for the next start.
    let (listener, owned_socket) = match activated_listener()? {
        Some(l) => {
            tracing::info!("using the socket passed by systemd");
            (l, None)
        }
        None => (bind(&cfg)?, Some(cfg.socket.clone())),
    };
    listener.set_nonblocking(true)?;
    // Files moord creates are never group/world-writable; commands run in `/`.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    std::env::set_current_dir("/").context("chdir /")?;
    match moor_privhelper::privs::raise_nofile_hard_limit() {
        Ok(Some(hard)) => {
            tracing::debug!(
                hard,
                "open-files hard limit raised for the tools moord runs"
            )
        }
        Ok(None) => {}
        // Without CAP_SYS_RESOURCE (some containers) multipath just warns again.
        Err(e) => tracing::warn!("cannot raise the open-files hard limit: {e}"),
    }
    let keep = moor_privhelper::privs::parse_caps(&cfg.keep_capabilities)?;
    match moor_privhelper::privs::confine(&keep)? {
        true => {
            tracing::info!(keep = ?cfg.keep_capabilities, "capabilities confined, no_new_privs set")
        }
        false => tracing::warn!("not running as root: capabilities left as they are"),
    }
    let state = State::new(settings)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(listener, owned_socket, state, args))
}

async fn run(
    listener: std::os::unix::net::UnixListener,
    owned_socket: Option<PathBuf>,
    state: Arc<State>,
    args: Args,
) -> anyhow::Result<()> {
    let listener = UnixListener::from_std(listener)?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tracing::info!(socket = %state.settings().config.socket.display(), "moord ready");
    let accept = tokio::spawn(server::accept_loop(listener, state.clone()));
    let textfile = tokio::spawn(metrics_textfile_loop(state.clone()));
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&state, &args),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let grace = Duration::from_secs(state.settings().config.shutdown_grace_secs);
    tracing::info!(
        in_flight = state.in_flight(),
        "stopping: no new connections; waiting up to {grace:?}"
    );
    state.begin_shutdown();
    accept.abort();
    if !state.drain(grace).await {
        tracing::warn!(
            in_flight = state.in_flight(),
            "grace period over; exiting with operations still running"
        );
    }
    textfile.abort();
    // The last textfile: final counts, moord_up 0.
    if let Some((path, Err(e))) = state.write_metrics_textfile(false) {
        tracing::warn!("writing metrics to {}: {e}", path.display());
    }
    if let Some(socket) = owned_socket {
        let _ = std::fs::remove_file(&socket);
    }
    tracing::info!("moord stopped");
    Ok(())
}

/// SIGHUP: reload config, filters and key together; a bad new set keeps the old one.
fn reload(state: &State, args: &Args) {
    let result = load_config(args).and_then(|cfg| Ok(Settings::load(cfg)?));
    match result {
        Ok(s) => {
            tracing::info!(
                filters = s.filters.set.filters.len(),
                "reloaded configuration and filters"
            );
            state.replace(s);
            state.metrics().reloaded(true);
        }
        Err(e) => {
            state.metrics().reloaded(false);
            tracing::error!("reload failed, keeping the previous configuration: {e:#}")
        }
    }
}

/// Rewrite the metrics textfile every `metrics_interval_secs` (both re-read after
/// each write, so a reload can start, move or stop it). A failure is logged once
/// until the next success (no message every interval).
async fn metrics_textfile_loop(state: Arc<State>) {
    let mut failing: Option<String> = None;
    loop {
        let st = state.clone();
        let written = tokio::task::spawn_blocking(move || st.write_metrics_textfile(true))
            .await
            .ok()
            .flatten();
        match written {
            Some((path, Err(e))) => {
                let msg = format!("writing metrics to {}: {e}", path.display());
                if failing.as_ref() != Some(&msg) {
                    tracing::warn!("{msg}");
                }
                failing = Some(msg);
            }
            Some((path, Ok(()))) => {
                if failing.take().is_some() {
                    tracing::info!("writing metrics to {} works again", path.display());
                }
            }
            None => failing = None,
        }
        let every = state.settings().config.metrics_interval_secs;
        tokio::time::sleep(Duration::from_secs(every)).await;
    }
}
