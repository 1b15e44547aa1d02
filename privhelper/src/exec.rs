//! Running an allowed command: no shell, cleared environment (only what the filter
//! sets), cwd `/`, its own process group, stdin from bytes / a secret / a stream,
//! output captured up to a cap or streamed, and a deadline that kills the whole group.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::{Notify, mpsc};

use crate::ops::Secret;

/// What to run, as the filters decided it.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Resolved executable first.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub run_as: String,
}

/// Where the child's stdin comes from.
#[derive(Debug)]
pub enum Input {
    Null,
    Bytes(Vec<u8>),
    Secret(Secret),
    /// Chunks from data frames; `None` from the channel (sender dropped) is EOF.
    Stream(mpsc::Receiver<Vec<u8>>),
}

/// Where the child's stdout and stderr go.
#[derive(Debug)]
pub enum Output {
    /// Keep up to `limit` bytes of each.
    Capture { limit: usize },
    /// Send each chunk, tagged with the channel (1 stdout, 2 stderr), as it comes.
    Stream(mpsc::Sender<(u8, Vec<u8>)>),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Finished {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub timed_out: bool,
    pub cancelled: bool,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("user {0:?} for run_as does not exist")]
    NoSuchUser(String),
    #[error("waiting for the command: {0}")]
    Wait(std::io::Error),
}

/// How long leftover processes of the group may hold the output pipes after the
/// command itself exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

struct Identity {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

fn identity(user: &str) -> Result<Option<Identity>, ExecError> {
    if user == "root" {
        return Ok(None);
    }
    let u = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .ok_or_else(|| ExecError::NoSuchUser(user.to_string()))?;
    let cname =
        std::ffi::CString::new(user).map_err(|_| ExecError::NoSuchUser(user.to_string()))?;
    let groups = nix::unistd::getgrouplist(&cname, u.gid)
        .map_err(|_| ExecError::NoSuchUser(user.to_string()))?;
    Ok(Some(Identity {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        groups: groups.into_iter().map(|g| g.as_raw()).collect(),
    }))
}

/// Run `p` to completion, or until `timeout` or `cancel` (which kill its process group).
pub async fn run(
    p: &Prepared,
    input: Input,
    output: Output,
    timeout: Duration,
    cancel: &Notify,
) -> Result<Finished, ExecError> {
    let start = Instant::now();
    let program = PathBuf::from(&p.argv[0]);
    let mut cmd = Command::new(&program);
    cmd.args(&p.argv[1..])
        .env_clear()
        .envs(&p.env)
        // moord's own cwd is `/` (set at start), which children inherit; not setting it
        // per command keeps the cheaper posix_spawn path open.
        .process_group(0)
        .kill_on_drop(true)
        .stdin(if matches!(input, Input::Null) {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(id) = identity(&p.run_as)? {
        // SAFETY: between fork and exec only async-signal-safe calls are made
        // (setgroups, setgid, setuid are plain system calls), using data prepared
        // before the fork; no allocation happens in the closure.
        unsafe {
            cmd.pre_exec(move || {
                // rootwrap only calls setuid and keeps gid 0 and root's groups; moor
                // switches groups and gid first.
                if libc::setgroups(id.groups.len(), id.groups.as_ptr()) != 0
                    || libc::setgid(id.gid) != 0
                    || libc::setuid(id.uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
        program: p.argv[0].clone(),
        source,
    })?;
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let kill_group = || {
        if let Some(pg) = pgid {
            // The group may be gone already; that is fine.
            let _ = killpg(pg, Signal::SIGKILL);
        }
    };

    let stdin = child.stdin.take();
    let feed = async move {
        let Some(mut w) = stdin else { return };
        match input {
            Input::Null => {}
            Input::Bytes(b) => {
                let _ = w.write_all(&b).await;
            }
            Input::Secret(s) => {
                let _ = w.write_all(s.expose()).await;
            }
            Input::Stream(mut rx) => {
                while let Some(chunk) = rx.recv().await {
                    if w.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = w.shutdown().await;
    };
    let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
    let (limit, sink) = match output {
        Output::Capture { limit } => (limit, None),
        Output::Stream(tx) => (0, Some(tx)),
    };
    let io = async {
        let (_, out, err) = tokio::join!(
            feed,
            pump(out_pipe, 1, limit, sink.clone()),
            pump(err_pipe, 2, limit, sink.clone())
        );
        (out, err)
    };
    tokio::pin!(io);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);

    let mut io_done = None;
    let mut timed_out = false;
    let mut cancelled = false;
    let status = loop {
        tokio::select! {
            r = &mut io, if io_done.is_none() => io_done = Some(r),
            s = child.wait() => break s.map_err(ExecError::Wait)?,
            _ = &mut deadline => {
                timed_out = true;
                kill_group();
                break child.wait().await.map_err(ExecError::Wait)?;
            }
            _ = cancel.notified() => {
                cancelled = true;
                kill_group();
                break child.wait().await.map_err(ExecError::Wait)?;
            }
        }
    };
    let ((stdout, stdout_truncated), (stderr, stderr_truncated)) = match io_done {
        Some(r) => r,
        None => {
            tokio::select! {
                r = &mut io => r,
                _ = tokio::time::sleep(DRAIN_GRACE) => {
                    // Something else in the group still holds the pipes.
                    kill_group();
                    io.await
                }
            }
        }
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(Finished {
        exit_code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        timed_out,
        cancelled,
        duration: start.elapsed(),
    })
}

/// Read a pipe to its end: keep up to `limit` bytes, or forward chunks to `sink`.
async fn pump<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    chan: u8,
    limit: usize,
    sink: Option<mpsc::Sender<(u8, Vec<u8>)>>,
) -> (Vec<u8>, bool) {
    let Some(mut r) = pipe else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    // Most tools print little: start small when capturing, grow up to a data frame.
    let mut buf = vec![
        0u8;
        if sink.is_some() {
            crate::protocol::MAX_DATA_CHUNK
        } else {
            4096
        }
    ];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match &sink {
            Some(tx) => {
                // A vanished reader stops forwarding but keeps draining the pipe.
                let _ = tx.send((chan, buf[..n].to_vec())).await;
            }
            None => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
                if n == buf.len() && buf.len() < crate::protocol::MAX_DATA_CHUNK {
                    buf.resize(buf.len() * 4, 0);
                }
            }
        }
    }
    (kept, truncated)
}
