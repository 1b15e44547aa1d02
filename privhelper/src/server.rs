//! The daemon: accepts connections, authenticates (peer credentials, then an HMAC
//! challenge), authorizes each request against the caller's policy, checks each
//! planned command or write against the filters, runs it, audits it.
//!
//! [`serve_connection`] handles one connection over any stream, so the protocol is
//! tested over `UnixStream::pair()` without root.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use moor_filters::{Class, LoadOptions, Loaded, RealSystem};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use zeroize::Zeroize;

use crate::audit::{Audit, GuardRecord, Record};
use crate::config::{Config, check_trusted_file};
use crate::create::CreateError;
use crate::exec::{self, Input, Output, Prepared};
use crate::guard::GuardError;
use crate::metrics::{self, Gauges, Metrics, Refused, Stage};
use crate::ops::{self, Guard, Plan, b64_encode};
use crate::peer::Peer;
use crate::protocol::{
    self, CHAN_STDIN, ClientMsg, ErrorBody, ErrorCode, ExecResult, Frame, FrameError, ServerMsg,
    encode_data, encode_json,
};
use crate::records;

/// Everything a reload replaces at once.
#[derive(Debug)]
pub struct Settings {
    pub config: Config,
    pub filters: Loaded,
    pub key: Option<zeroize::Zeroizing<Vec<u8>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("filters: {0}")]
    Filters(String),
    #[error("key file {path}: {message}")]
    Key { path: String, message: String },
    #[error("audit log: {0}")]
    Audit(std::io::Error),
}

impl Settings {
    /// Load filters and key for `config`; any error refuses the whole set.
    pub fn load(config: Config) -> Result<Settings, SetupError> {
        let filters = moor_filters::load(
            &config.filters_path,
            &LoadOptions {
                trusted_owner: config.trusted_owner,
            },
        );
        if !filters.is_clean() {
            let errs: Vec<String> = filters.errors().map(ToString::to_string).collect();
            return Err(SetupError::Filters(errs.join("; ")));
        }
        if filters.set.filters.is_empty() {
            return Err(SetupError::Filters(format!(
                "no filters loaded from {:?}: moord would deny everything",
                config.filters_path
            )));
        }
        let key = match &config.key_file {
            Some(p) => Some(read_key(p, config.trusted_owner)?),
            None => None,
        };
        Ok(Settings {
            config,
            filters,
            key,
        })
    }
}

/// The key file: root-owned, not writable by others, readable by the callers' group.
fn read_key(path: &Path, trusted_owner: u32) -> Result<zeroize::Zeroizing<Vec<u8>>, SetupError> {
    let err = |message: String| SetupError::Key {
        path: path.display().to_string(),
        message,
    };
    check_trusted_file(path, trusted_owner).map_err(|e| err(e.to_string()))?;
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.mode() & 0o004 != 0 {
        return Err(err(
            "readable by others: only root and the callers' group may read it".into(),
        ));
    }
    let key = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| err(e.to_string()))?);
    if key.len() < 16 {
        return Err(err(format!(
            "{} bytes; at least 16 random bytes are needed",
            key.len()
        )));
    }
    Ok(key)
}

/// Shared daemon state.
#[derive(Debug)]
pub struct State {
    settings: RwLock<Arc<Settings>>,
    audit: Audit,
    ops_permits: Arc<Semaphore>,
    /// The semaphore's size (`max_concurrent_ops` at start; a reload keeps it).
    ops_size: usize,
    queued: AtomicUsize,
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    idle: Notify,
    next_conn: AtomicU64,
    stopping: AtomicBool,
    stop: watch::Sender<bool>,
    /// Serialises moord's own edits of open-iscsi records.
    records_lock: Mutex<()>,
    metrics: Metrics,
    /// Serialises textfile writes; `true` once the last one (at shutdown) is
    /// written, after which a periodic write still under way is dropped.
    textfile: Mutex<bool>,
}

/// A guard that counts one in-flight request.
struct InFlight<'a>(&'a State);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl State {
    pub fn new(settings: Settings) -> Result<Arc<State>, SetupError> {
        let audit = Audit::open(settings.config.audit_log.as_deref()).map_err(SetupError::Audit)?;
        let permits = settings.config.max_concurrent_ops;
        Ok(Arc::new(State {
            settings: RwLock::new(Arc::new(settings)),
            audit,
            ops_permits: Arc::new(Semaphore::new(permits)),
            ops_size: permits,
            queued: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            next_conn: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            stop: watch::Sender::new(false),
            records_lock: Mutex::new(()),
            metrics: Metrics::new(),
            textfile: Mutex::new(false),
        }))
    }

    /// The daemon's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics text (Prometheus text format); `up` is false only in the last
    /// textfile written at shutdown.
    pub fn render_metrics(&self, up: bool) -> String {
        let cfg = &self.settings().config;
        // The slots are sized at start (a reload does not resize them).
        let permits = self.ops_permits.available_permits();
        let g = Gauges {
            in_flight: self.in_flight(),
            queued: self.queued.load(Ordering::SeqCst),
            running: self.ops_size.saturating_sub(permits),
            connections: self.connections.load(Ordering::SeqCst),
            max_concurrent_ops: self.ops_size,
            max_queued_ops: cfg.max_queued_ops,
            max_connections: cfg.max_connections,
            up,
        };
        self.metrics.render(&g)
    }

    /// Write the metrics textfile (`metrics_textfile`) now, if one is configured;
    /// `up: false` is the last write, at shutdown (nothing is written after it).
    pub fn write_metrics_textfile(
        &self,
        up: bool,
    ) -> Option<(std::path::PathBuf, std::io::Result<()>)> {
        let mut last_written = self.textfile.lock().unwrap_or_else(|p| p.into_inner());
        if *last_written {
            return None;
        }
        let path = self.settings().config.metrics_textfile.clone()?;
        let r = metrics::write_textfile(&path, &self.render_metrics(up));
        *last_written = !up;
        Some((path, r))
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swap in a new configuration, filter set and key at once.
    pub fn replace(&self, s: Settings) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Stop accepting and tell connections to finish.
    pub fn begin_shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.send_replace(true);
    }

    /// Wait until no request is in flight and every connection has flushed its last
    /// response and closed, up to `grace`. Returns whether it drained.
    pub async fn drain(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        let drained = || self.in_flight() == 0 && self.connections.load(Ordering::SeqCst) == 0;
        loop {
            let notified = self.idle.notified();
            if drained() {
                return true;
            }
            // Connections close without notifying; look again shortly.
            let tick = tokio::time::Instant::now() + Duration::from_millis(20);
            if tokio::time::timeout_at(deadline.min(tick), notified)
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return drained();
            }
        }
    }
}

/// Accept connections until shutdown. fd exhaustion and other accept errors are
/// logged and survived.
pub async fn accept_loop(listener: UnixListener, state: Arc<State>) {
    loop {
        let mut stop = state.stop.subscribe();
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        if state.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}; pausing briefly");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Reserve the slot here so concurrent accepts cannot overshoot the limit.
        let max = state.settings().config.max_connections;
        if state.connections.fetch_add(1, Ordering::SeqCst) >= max {
            state.connections.fetch_sub(1, Ordering::SeqCst);
            state.metrics.refused(Refused::Limit);
            tracing::warn!("connection limit {max} reached; refusing a connection");
            tokio::spawn(async move {
                let mut s = stream;
                let _ = s
                    .write_all(&encode_json(&ServerMsg::Error(ErrorBody::new(
                        ErrorCode::Busy,
                        "too many connections",
                    ))))
                    .await;
            });
            continue;
        }
        let peer = match crate::peer::peer_of(&stream) {
            Ok(p) => p,
            Err(e) => {
                state.connections.fetch_sub(1, Ordering::SeqCst);
                state.metrics.refused(Refused::NoCredentials);
                tracing::warn!("cannot read peer credentials ({e}); refusing");
                continue;
            }
        };
        let st = state.clone();
        tokio::spawn(async move { serve_counted(stream, peer, st).await });
    }
}

/// Per-connection state shared by its reader and its request tasks.
struct Conn {
    id: u64,
    peer: Peer,
    /// The write half. Whoever has a frame to send writes it (no writer task, so no
    /// extra thread hop per response); the lock keeps frames whole and in order.
    out: tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Requests in flight by id, with the stdin sink of streaming ones and a cancel.
    requests: Mutex<HashMap<u64, Req>>,
    gone: AtomicBool,
    /// A write missed its deadline: the stream may hold half a frame, so the
    /// connection is finished.
    broken: AtomicBool,
    write_timeout: Duration,
    /// Signalled whenever a request of this connection finishes.
    done: Notify,
}

struct Req {
    stdin: Option<mpsc::Sender<Vec<u8>>>,
    cancel: Arc<Notify>,
    streaming: bool,
}

impl Conn {
    async fn send(&self, msg: &ServerMsg) {
        self.write(&encode_json(msg)).await;
    }

    /// Write one encoded frame, within the write deadline. A client that stops
    /// reading is disconnected rather than left holding moord's tasks.
    async fn write(&self, frame: &[u8]) -> bool {
        if self.broken.load(Ordering::SeqCst) {
            return false;
        }
        let mut w = self.out.lock().await;
        let wrote = tokio::time::timeout(self.write_timeout, async {
            w.write_all(frame).await?;
            w.flush().await
        })
        .await;
        match wrote {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::warn!(
                    conn = self.id,
                    uid = self.peer.uid,
                    "client did not read for {:?}; disconnecting",
                    self.write_timeout
                );
                self.broken.store(true, Ordering::SeqCst);
                self.done.notify_one();
                false
            }
        }
    }

    fn record(&self, id: u64, op: &str) -> Record {
        Record {
            request: format!("c{}-r{id}", self.id),
            uid: self.peer.uid,
            gid: self.peer.gid,
            pid: self.peer.pid,
            op: op.to_string(),
            ..Record::default()
        }
    }
}

/// Largest frame accepted before authentication.
const MAX_HANDSHAKE_FRAME: usize = 4096;

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, limit: usize) -> Result<Frame, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = protocol::check_len(u32::from_be_bytes(len))?;
    if len > limit {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    protocol::decode_body(body)
}

/// Bytes read from a connection and not yet cut into frames. Consumed bytes are
/// wiped: requests may carry secrets.
#[derive(Default)]
struct FrameBuf {
    buf: Vec<u8>,
}

impl FrameBuf {
    /// Room for a good read (a whole small request, or a data chunk).
    fn reserve(&mut self) {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            // Grow by hand: a realloc would free the old block with its bytes in it.
            let mut bigger = Vec::with_capacity(self.buf.capacity() + 64 * 1024);
            bigger.extend_from_slice(&self.buf);
            self.buf.zeroize();
            self.buf = bigger;
        }
    }

    /// The next complete frame, if the buffer holds one.
    fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        if self.buf.len() < 4 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let len = match protocol::check_len(len) {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        if self.buf.len() < 4 + len {
            return None;
        }
        let body = self.buf[4..4 + len].to_vec();
        // Move what follows the frame to the front and wipe everything behind it. The
        // spare capacity needs no wipe: reads only ever append, so every byte a read
        // wrote is below len until it is consumed and wiped here.
        let total = self.buf.len();
        let rest = total - (4 + len);
        self.buf.copy_within(4 + len..total, 0);
        self.buf[rest..total].zeroize();
        self.buf.truncate(rest);
        Some(protocol::decode_body(body))
    }
}

/// A request frame, with `args` kept as raw text so secrets can be parsed straight
/// into zeroizing types.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: u64,
    op: String,
    #[serde(borrow)]
    args: Option<&'a RawValue>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Serve one connection: handshake, then requests until the client goes away.
pub async fn serve_connection<S>(stream: S, peer: Peer, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    state.connections.fetch_add(1, Ordering::SeqCst);
    serve_counted(stream, peer, state).await;
}

/// [`serve_connection`] for a connection already counted in `state.connections`.
async fn serve_counted<S>(stream: S, peer: Peer, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let conn_id = state.next_conn.fetch_add(1, Ordering::SeqCst);
    state.metrics.accepted();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let settings = state.settings();
    let cfg = &settings.config;
    let refuse = |code, msg: String| encode_json(&ServerMsg::Error(ErrorBody::new(code, msg)));

    // Refused before any byte of the request is read.
    if !cfg.may_connect(peer.uid, &peer.groups) {
        state.metrics.deny(Stage::Peer);
        tracing::warn!(
            uid = peer.uid,
            gid = peer.gid,
            pid = peer.pid,
            "caller not allowed to connect"
        );
        let _ = wr
            .write_all(&refuse(
                ErrorCode::Forbidden,
                format!(
                    "uid {} / groups {:?} may not use moord",
                    peer.uid, peer.groups
                ),
            ))
            .await;
        state.connections.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let handshake = async {
        let nonce = protocol::random_nonce()
            .map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))?;
        let hello = ServerMsg::Hello {
            version: protocol::PROTOCOL_VERSION,
            server: format!("moord {}", env!("CARGO_PKG_VERSION")),
            nonce: protocol::to_hex(&nonce),
            auth: if settings.key.is_some() {
                "hmac-sha256".into()
            } else {
                "none".into()
            },
        };
        wr.write_all(&encode_json(&hello))
            .await
            .map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))?;
        let frame = read_frame(&mut rd, MAX_HANDSHAKE_FRAME)
            .await
            .map_err(|e| ErrorBody::new(ErrorCode::BadRequest, format!("handshake: {e}")))?;
        let Frame::Json(j) = frame else {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "expected an auth message",
            ));
        };
        let msg: ClientMsg = serde_json::from_slice(&j)
            .map_err(|e| ErrorBody::new(ErrorCode::BadRequest, format!("auth message: {e}")))?;
        let ClientMsg::Auth { cnonce, mac } = msg else {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "expected an auth message",
            ));
        };
        let cnonce = protocol::from_hex(&cnonce)
            .filter(|c| c.len() >= 16)
            .ok_or_else(|| {
                ErrorBody::new(
                    ErrorCode::BadRequest,
                    "cnonce must be at least 16 bytes of hex",
                )
            })?;
        let server_mac = match &settings.key {
            Some(key) => {
                let ok = mac.as_deref().is_some_and(|m| {
                    protocol::verify_proof(&protocol::client_proof(key, &nonce, &cnonce), m)
                });
                if !ok {
                    return Err(ErrorBody::new(
                        ErrorCode::AuthFailed,
                        "HMAC proof missing or wrong",
                    ));
                }
                Some(protocol::to_hex(&protocol::server_proof(
                    key, &nonce, &cnonce,
                )))
            }
            None => None,
        };
        Ok(server_mac)
    };
    let deadline = Duration::from_millis(cfg.handshake_timeout_ms);
    let server_mac = match tokio::time::timeout(deadline, handshake).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            state.metrics.deny(if e.code == ErrorCode::AuthFailed {
                Stage::Hmac
            } else {
                Stage::Handshake
            });
            tracing::warn!(
                uid = peer.uid,
                pid = peer.pid,
                "handshake failed: {}",
                e.message
            );
            let _ = wr.write_all(&encode_json(&ServerMsg::Error(e))).await;
            state.connections.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        Err(_) => {
            state.metrics.deny(Stage::Handshake);
            let _ = wr
                .write_all(&refuse(ErrorCode::BadRequest, "handshake timed out".into()))
                .await;
            state.connections.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    };
    let ops = cfg.ops_for(peer.uid, &peer.groups);
    let welcome = ServerMsg::Welcome {
        mac: server_mac,
        uid: peer.uid,
        gid: peer.gid,
        pid: peer.pid,
        ops: ops.iter().cloned().collect(),
    };
    if wr.write_all(&encode_json(&welcome)).await.is_err() {
        state.connections.fetch_sub(1, Ordering::SeqCst);
        return;
    }

    let conn = Arc::new(Conn {
        id: conn_id,
        peer,
        out: tokio::sync::Mutex::new(Box::new(wr)),
        requests: Mutex::new(HashMap::new()),
        gone: AtomicBool::new(false),
        broken: AtomicBool::new(false),
        write_timeout: Duration::from_secs(cfg.write_timeout_secs),
        done: Notify::new(),
    });
    let idle = Duration::from_secs(cfg.idle_timeout_secs);
    drop(settings);

    // Frames are cut from a buffer that `read_buf` fills: unlike `read_exact`, it is
    // cancel-safe, so the loop can turn to a stop or an idle deadline without losing
    // half a frame, and no extra task (and thread hop) sits between socket and loop.
    let mut inbuf = FrameBuf::default();
    let mut stop = state.stop.subscribe();
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    let mut client_gone = false;
    loop {
        let in_flight = !conn
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        // Stopping: let in-flight requests finish (their streams keep flowing), then go.
        if *stop.borrow_and_update() && !in_flight {
            break;
        }
        if conn.broken.load(Ordering::SeqCst) {
            client_gone = true;
            break;
        }
        let frame = match inbuf.next_frame() {
            Some(f) => Some(f),
            None => {
                inbuf.reserve();
                tokio::select! {
                    r = rd.read_buf(&mut inbuf.buf) => match r {
                        Ok(0) => Some(Err(FrameError::Closed)),
                        Ok(_) => continue,
                        Err(e) => Some(Err(FrameError::Io(e))),
                    },
                    _ = tokio::time::sleep_until(idle_deadline), if !in_flight => {
                        conn.send(&ServerMsg::Error(ErrorBody::new(ErrorCode::BadRequest, "idle timeout"))).await;
                        break;
                    }
                    _ = stop.changed() => continue,
                    _ = conn.done.notified() => {
                        idle_deadline = tokio::time::Instant::now() + idle;
                        continue;
                    }
                }
            }
        };
        idle_deadline = tokio::time::Instant::now() + idle;
        let frame = match frame {
            None | Some(Err(FrameError::Closed)) => {
                client_gone = true;
                break;
            }
            Some(Err(FrameError::TooLarge(n))) => {
                state.metrics.deny(Stage::BadRequest);
                conn.send(&ServerMsg::Error(ErrorBody::new(
                    ErrorCode::TooLarge,
                    format!("frame of {n} bytes"),
                )))
                .await;
                client_gone = true;
                break;
            }
            Some(Err(e)) => {
                if matches!(e, FrameError::Malformed(_)) {
                    state.metrics.deny(Stage::BadRequest);
                }
                conn.send(&ServerMsg::Error(ErrorBody::new(
                    ErrorCode::BadRequest,
                    e.to_string(),
                )))
                .await;
                client_gone = true;
                break;
            }
            Some(Ok(f)) => f,
        };
        match frame {
            Frame::Data { id, chan, bytes } => {
                if chan != CHAN_STDIN {
                    continue;
                }
                let sink = conn
                    .requests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&id)
                    .and_then(|r| r.stdin.clone());
                if let Some(sink) = sink {
                    if bytes.is_empty() {
                        // End of stdin: dropping the sender closes the child's stdin.
                        if let Some(r) = conn
                            .requests
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_mut(&id)
                        {
                            r.stdin = None;
                        }
                    } else {
                        // Backpressure: wait until the child takes the data.
                        let _ = sink.send(bytes).await;
                    }
                }
            }
            Frame::Json(mut j) => {
                let parsed = serde_json::from_slice::<RawRequest<'_>>(&j);
                let req = match parsed {
                    Ok(r) if r.kind == "request" => Ok((
                        r.id,
                        r.op,
                        r.args.map(|a| zeroize::Zeroizing::new(a.get().to_string())),
                        r.timeout_ms,
                    )),
                    Ok(r) => Err(format!("unexpected message type {:?}", r.kind)),
                    Err(e) => Err(format!("not a request: {e}")),
                };
                j.zeroize();
                match req {
                    Err(msg) => {
                        state.metrics.deny(Stage::BadRequest);
                        conn.send(&ServerMsg::Error(ErrorBody::new(
                            ErrorCode::BadRequest,
                            msg,
                        )))
                        .await;
                        client_gone = true;
                        break;
                    }
                    Ok((id, op, args, timeout_ms)) => {
                        let cancel = Arc::new(Notify::new());
                        let duplicate = {
                            let mut reqs = conn.requests.lock().unwrap_or_else(|p| p.into_inner());
                            let dup = reqs.contains_key(&id);
                            if !dup {
                                reqs.insert(
                                    id,
                                    Req {
                                        stdin: None,
                                        cancel: cancel.clone(),
                                        streaming: false,
                                    },
                                );
                            }
                            dup
                        };
                        if duplicate {
                            let msg = format!("request {id} is already in flight");
                            conn.send(&err_response(id, ErrorCode::DuplicateId, msg.clone(), None))
                                .await;
                            state.metrics.request(
                                metrics::op_index(&op),
                                "bad-request",
                                Duration::ZERO,
                            );
                            let mut rec = conn.record(id, &op);
                            rec.outcome = "bad-request".into();
                            rec.reason = Some(msg);
                            state.audit.write(rec);
                            continue;
                        }
                        state.in_flight.fetch_add(1, Ordering::SeqCst);
                        let (st, c) = (state.clone(), conn.clone());
                        tokio::spawn(async move {
                            let _guard = InFlight(&st);
                            let args =
                                args.unwrap_or_else(|| zeroize::Zeroizing::new("null".into()));
                            handle_request(&st, &c, id, &op, &args, timeout_ms, &cancel).await;
                            c.requests
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&id);
                            c.done.notify_one();
                        });
                    }
                }
            }
        }
    }
    // The client is gone: stop its streams, let its other requests finish.
    if client_gone {
        conn.gone.store(true, Ordering::SeqCst);
        for r in conn
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values_mut()
        {
            r.stdin = None;
            if r.streaming {
                r.cancel.notify_one();
            }
        }
    }
    drop(conn);
    state.connections.fetch_sub(1, Ordering::SeqCst);
}

fn err_response(id: u64, code: ErrorCode, message: String, closest: Option<String>) -> ServerMsg {
    ServerMsg::Response {
        id,
        ok: false,
        result: None,
        error: Some(ErrorBody {
            code,
            message,
            closest_filter: closest,
        }),
    }
}

fn filter_label(f: &moor_filters::FilterRef) -> String {
    format!("{}:{} {}", f.file.display(), f.line, f.name)
}

/// Plan, authorize, check, run and audit one request.
async fn handle_request(
    state: &State,
    conn: &Arc<Conn>,
    id: u64,
    op: &str,
    args: &str,
    request_timeout_ms: Option<u64>,
    cancel: &Notify,
) {
    let start = Instant::now();
    let op_row = metrics::op_index(op);
    let mut rec = conn.record(id, op);
    let settings = state.settings();
    let cfg = &settings.config;
    let finish = |mut rec: Record, outcome: &str, reason: Option<String>| {
        let took = start.elapsed();
        state.metrics.request(op_row, outcome, took);
        rec.outcome = outcome.to_string();
        rec.reason = reason;
        rec.duration_us = took.as_micros() as u64;
        state.audit.write(rec);
    };

    let plan = match ops::plan(op, args) {
        Ok(p) => p,
        Err(e) => {
            let code = if matches!(e, ops::OpError::Unknown(_)) {
                ErrorCode::UnknownOp
            } else {
                ErrorCode::BadRequest
            };
            conn.send(&err_response(id, code, e.to_string(), None))
                .await;
            return finish(rec, "bad-request", Some(e.to_string()));
        }
    };
    // The current policy decides (a reload may have changed it since the handshake).
    if !cfg.ops_for(conn.peer.uid, &conn.peer.groups).contains(op) {
        let msg = format!("policy does not allow uid {} to run {op}", conn.peer.uid);
        conn.send(&err_response(id, ErrorCode::Forbidden, msg.clone(), None))
            .await;
        return finish(rec, "forbidden", Some(msg));
    }
    if state.stopping.load(Ordering::SeqCst) {
        conn.send(&err_response(
            id,
            ErrorCode::ShuttingDown,
            "moord is stopping".into(),
            None,
        ))
        .await;
        return finish(rec, "error", Some("shutting down".into()));
    }
    match plan {
        Plan::Ping => {
            conn.send(&ServerMsg::Response {
                id,
                ok: true,
                result: Some(json!({})),
                error: None,
            })
            .await;
            finish(rec, "ok", None);
        }
        Plan::Metrics => {
            let text = state.render_metrics(true);
            conn.send(&ServerMsg::Response {
                id,
                ok: true,
                result: Some(json!({
                    "content_type": crate::prom::CONTENT_TYPE,
                    "text": text,
                })),
                error: None,
            })
            .await;
            finish(rec, "ok", None);
        }
        Plan::ReadFile { path } => {
            rec.path = Some(path.clone());
            let argv = vec!["cat".to_string(), path.clone()];
            let d = settings
                .filters
                .set
                .decide(&argv, &cfg.exec_dirs, &RealSystem);
            let allowed_by = d
                .filter
                .as_ref()
                .filter(|f| d.allowed() && f.class == Class::ReadFileFilter);
            let Some(f) = allowed_by else {
                let reason = d
                    .reason
                    .clone()
                    .unwrap_or_else(|| "only a ReadFileFilter may allow file.read".into());
                return finish(
                    rec,
                    "denied",
                    Some(deny(conn, id, reason, &d.closest, &d.filter).await),
                );
            };
            rec.filter = Some(filter_label(f));
            let read = read_limited(&cfg.host_path(&path), cfg.output_limit_bytes)
                .map(|(content, truncated)| json!({"content": b64_encode(&content), "truncated": truncated}));
            let (outcome, reason) = reply_io(conn, id, &path, read).await;
            finish(rec, outcome, reason);
        }
        Plan::WriteFile { path, value, guard } => {
            rec.path = Some(path.clone());
            rec.value = Some(value.clone());
            rec.guard = guard.as_ref().map(GuardRecord::from);
            let d = settings.filters.set.decide_write(&path, &value);
            let Some(f) = d.filter.as_ref().filter(|_| d.allowed) else {
                let reason = d.reason.clone().unwrap_or_default();
                return finish(
                    rec,
                    "denied",
                    Some(deny(conn, id, reason, &d.closest, &d.filter).await),
                );
            };
            rec.filter = Some(filter_label(f));
            if let Some(g) = &guard
                && let Err((outcome, reason)) = check_guard(conn, id, cfg, g).await
            {
                return finish(rec, outcome, Some(reason));
            }
            let written = write_attribute(&cfg.host_path(&path), &value).map(|()| json!({}));
            let (outcome, reason) = reply_io(conn, id, &path, written).await;
            finish(rec, outcome, reason);
        }
        Plan::CreateFile { path, value } => {
            // Decided and audited exactly like a write; done only if nothing is there.
            rec.path = Some(path.clone());
            rec.value = Some(value.clone());
            let d = settings.filters.set.decide_write(&path, &value);
            let Some(f) = d.filter.as_ref().filter(|_| d.allowed) else {
                let reason = d.reason.clone().unwrap_or_default();
                return finish(
                    rec,
                    "denied",
                    Some(deny(conn, id, reason, &d.closest, &d.filter).await),
                );
            };
            rec.filter = Some(filter_label(f));
            match crate::create::create_new(&cfg.host_path(&path), value.as_bytes()) {
                Ok(()) => {
                    let (outcome, reason) = reply_io(conn, id, &path, Ok(json!({}))).await;
                    finish(rec, outcome, reason);
                }
                Err(e @ (CreateError::Exists(_) | CreateError::Parent(_))) => {
                    let msg = format!("{path} {e}");
                    conn.send(&err_response(
                        id,
                        ErrorCode::PreconditionFailed,
                        msg.clone(),
                        None,
                    ))
                    .await;
                    finish(rec, "precondition-failed", Some(msg));
                }
                Err(CreateError::Io(e)) => {
                    let (outcome, reason) = reply_io(conn, id, &path, Err(e)).await;
                    finish(rec, outcome, reason);
                }
            }
        }
        Plan::IscsiSecret(p) => {
            // The filters and the audit see the record files and the key name; the
            // secret stays in `p.secret` (zeroized on drop, redacted in Debug).
            rec.value = Some(p.shown());
            let files = match records::locate(&cfg.host_root, &cfg.iscsi_db_dir, &p.record) {
                Ok(f) => f,
                Err(e) => {
                    let code = match e {
                        records::RecordError::NotFound(_) => ErrorCode::NotFound,
                        _ => ErrorCode::Io,
                    };
                    conn.send(&err_response(id, code, e.to_string(), None))
                        .await;
                    return finish(rec, "failed", Some(e.to_string()));
                }
            };
            let listed: Vec<&str> = files.iter().map(|f| f.host_path.as_str()).collect();
            rec.path = Some(listed.join(" "));
            // Every record must pass before any is edited.
            let mut allowed_by = None;
            for f in &files {
                for e in &p.entries {
                    let d = settings.filters.set.decide_write(&f.host_path, &e.key);
                    match d.filter.as_ref().filter(|_| d.allowed) {
                        Some(fr) => {
                            allowed_by.get_or_insert_with(|| filter_label(fr));
                        }
                        None => {
                            let reason = d.reason.clone().unwrap_or_default();
                            return finish(
                                rec,
                                "denied",
                                Some(deny(conn, id, reason, &d.closest, &d.filter).await),
                            );
                        }
                    }
                }
            }
            rec.filter = allowed_by;
            let edited = {
                let _lock = state.records_lock.lock().unwrap_or_else(|p| p.into_inner());
                files
                    .iter()
                    .try_for_each(|f| records::set_keys(f, &p.entries))
            };
            match edited {
                Ok(()) => {
                    conn.send(&ServerMsg::Response {
                        id,
                        ok: true,
                        result: Some(json!({ "records": listed })),
                        error: None,
                    })
                    .await;
                    finish(rec, "ok", None);
                }
                Err(e) => {
                    let code = match e {
                        records::RecordError::BadSecret => ErrorCode::BadRequest,
                        _ => ErrorCode::Io,
                    };
                    conn.send(&err_response(id, code, e.to_string(), None))
                        .await;
                    finish(rec, "failed", Some(e.to_string()));
                }
            }
        }
        Plan::Exec(p) => {
            rec.secret_stdin = p.secret_stdin.is_some();
            rec.guard = p.guard.as_ref().map(GuardRecord::from);
            let d = settings
                .filters
                .set
                .decide(&p.argv, &cfg.exec_dirs, &RealSystem);
            if !d.allowed() {
                rec.argv = Some(p.argv.clone());
                rec.filter = d.closest.as_ref().or(d.filter.as_ref()).map(filter_label);
                let reason = d.reason.clone().unwrap_or_else(|| "denied".into());
                return finish(
                    rec,
                    "denied",
                    Some(deny(conn, id, reason, &d.closest, &d.filter).await),
                );
            }
            let (Some(f), Some(argv)) = (d.filter.as_ref(), d.exec.clone()) else {
                return finish(rec, "error", Some("allowed without a command".into()));
            };
            rec.filter = Some(filter_label(f));
            rec.argv = Some(argv.clone());
            // The op's own deadline, else the request's, else the default; the
            // shorter of the two when both are given; never above the maximum.
            let asked = match (p.timeout_ms, request_timeout_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timeout = Duration::from_secs(cfg.max_op_timeout_secs).min(
                asked
                    .map(Duration::from_millis)
                    .unwrap_or(Duration::from_secs(cfg.op_timeout_secs)),
            );
            // Bounded concurrency: wait in a bounded queue for a slot, no longer than
            // the operation itself may take.
            if state.queued.fetch_add(1, Ordering::SeqCst) >= cfg.max_queued_ops {
                state.queued.fetch_sub(1, Ordering::SeqCst);
                conn.send(&err_response(
                    id,
                    ErrorCode::Busy,
                    "too many operations queued".into(),
                    None,
                ))
                .await;
                return finish(rec, "busy", None);
            }
            let permit =
                tokio::time::timeout(timeout, state.ops_permits.clone().acquire_owned()).await;
            state.queued.fetch_sub(1, Ordering::SeqCst);
            let _permit = match permit {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return finish(rec, "error", Some("semaphore closed".into())),
                Err(_) => {
                    let msg = format!("no free slot within {} ms", timeout.as_millis());
                    conn.send(&err_response(id, ErrorCode::Busy, msg.clone(), None))
                        .await;
                    return finish(rec, "busy", Some(msg));
                }
            };
            // The identity check comes last, right before the command runs (after any
            // wait for a slot).
            if let Some(g) = &p.guard
                && let Err((outcome, reason)) = check_guard(conn, id, cfg, g).await
            {
                return finish(rec, outcome, Some(reason));
            }
            let prepared = Prepared {
                argv,
                env: d.env.clone(),
                run_as: f.run_as.clone(),
            };
            let (input, output, pump) = if p.stream {
                let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(8);
                let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(16);
                if let Some(r) = conn
                    .requests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(&id)
                {
                    r.stdin = Some(in_tx);
                    r.streaming = true;
                }
                conn.send(&ServerMsg::Started { id }).await;
                let out = conn.clone();
                let pump = tokio::spawn(async move {
                    while let Some((chan, bytes)) = out_rx.recv().await {
                        if !out.write(&encode_data(id, chan, &bytes)).await {
                            break;
                        }
                    }
                });
                (Input::Stream(in_rx), Output::Stream(out_tx), Some(pump))
            } else {
                let input = match (p.secret_stdin, p.stdin) {
                    (Some(s), _) => Input::Secret(s),
                    (None, Some(b)) => Input::Bytes(b),
                    (None, None) => Input::Null,
                };
                (
                    input,
                    Output::Capture {
                        limit: cfg.output_limit_bytes,
                    },
                    None,
                )
            };
            if conn.gone.load(Ordering::SeqCst) && p.stream {
                return finish(rec, "client-gone", None);
            }
            let result = exec::run(&prepared, input, output, timeout, cancel).await;
            if let Some(pump) = pump {
                let _ = pump.await;
                conn.write(&encode_data(id, protocol::CHAN_STDOUT, &[]))
                    .await;
                conn.write(&encode_data(id, protocol::CHAN_STDERR, &[]))
                    .await;
            }
            match result {
                Err(e) => {
                    conn.send(&err_response(
                        id,
                        ErrorCode::ExecFailed,
                        e.to_string(),
                        None,
                    ))
                    .await;
                    finish(rec, "failed", Some(e.to_string()));
                }
                Ok(fin) => {
                    rec.exit_code = fin.exit_code;
                    rec.signal = fin.signal;
                    let res = ExecResult {
                        exit_code: fin.exit_code,
                        signal: fin.signal,
                        stdout: b64_encode(&fin.stdout),
                        stderr: b64_encode(&fin.stderr),
                        stdout_truncated: fin.stdout_truncated,
                        stderr_truncated: fin.stderr_truncated,
                        duration_ms: fin.duration.as_millis() as u64,
                        filter: filter_label(f),
                    };
                    if fin.timed_out {
                        let msg = format!("killed after {} ms", timeout.as_millis());
                        conn.send(&ServerMsg::Response {
                            id,
                            ok: false,
                            result: serde_json::to_value(&res).ok(),
                            error: Some(ErrorBody::new(ErrorCode::Timeout, msg.clone())),
                        })
                        .await;
                        return finish(rec, "timeout", Some(msg));
                    }
                    let outcome = if conn.gone.load(Ordering::SeqCst) || fin.cancelled {
                        "client-gone"
                    } else if fin.exit_code == Some(0) {
                        "ok"
                    } else {
                        "failed"
                    };
                    conn.send(&ServerMsg::Response {
                        id,
                        ok: true,
                        result: serde_json::to_value(&res).ok(),
                        error: None,
                    })
                    .await;
                    finish(rec, outcome, None);
                }
            }
        }
    }
}

/// Answer a request the filters refused, naming the closest (or matched) filter; the
/// reason, for the audit record.
async fn deny(
    conn: &Conn,
    id: u64,
    reason: String,
    closest: &Option<moor_filters::FilterRef>,
    matched: &Option<moor_filters::FilterRef>,
) -> String {
    let near = closest.as_ref().or(matched.as_ref()).map(filter_label);
    conn.send(&err_response(id, ErrorCode::Denied, reason.clone(), near))
        .await;
    reason
}

/// Check a guard right before acting. On a failure, answer `identity_mismatch`
/// (the device is not the captured one) or `precondition_failed` (it is not in the
/// state the operation needs) and return the audit outcome and reason.
async fn check_guard(
    conn: &Conn,
    id: u64,
    cfg: &Config,
    g: &Guard,
) -> Result<(), (&'static str, String)> {
    let checked = if reads_device_data(g) {
        // Reading a device can block for as long as a failing path queues I/O: off
        // the async workers, and no longer than an operation may take.
        let (root, guard) = (cfg.host_root.clone(), g.clone());
        let limit = Duration::from_secs(cfg.op_timeout_secs);
        let task = tokio::task::spawn_blocking(move || crate::guard::check(&root, &guard));
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(
                    guard_refused(conn, id, ErrorCode::Internal, "error", e.to_string()).await,
                );
            }
            Err(_) => {
                let msg = format!(
                    "the target could not be examined within {} s",
                    limit.as_secs()
                );
                return Err(guard_refused(conn, id, ErrorCode::Timeout, "timeout", msg).await);
            }
        }
    } else {
        crate::guard::check(&cfg.host_root, g)
    };
    let Err(e) = checked else {
        return Ok(());
    };
    let (code, outcome) = match e {
        GuardError::Identity(_) => (ErrorCode::IdentityMismatch, "identity-mismatch"),
        GuardError::Precondition(_) => (ErrorCode::PreconditionFailed, "precondition-failed"),
    };
    Err(guard_refused(conn, id, code, outcome, e.to_string()).await)
}

/// Answer a refused guard; the audit outcome and reason.
async fn guard_refused(
    conn: &Conn,
    id: u64,
    code: ErrorCode,
    outcome: &'static str,
    msg: String,
) -> (&'static str, String) {
    conn.send(&err_response(id, code, msg.clone(), None)).await;
    (outcome, msg)
}

/// Guards that read a target's content (not just sysfs attributes).
fn reads_device_data(g: &Guard) -> bool {
    match g {
        Guard::All(gs) => gs.iter().any(reads_device_data),
        Guard::Blank { .. } | Guard::LuksOtherSlot { .. } => true,
        _ => false,
    }
}

/// Answer a file operation done by moord itself; the audit outcome and reason.
async fn reply_io(
    conn: &Conn,
    id: u64,
    path: &str,
    r: std::io::Result<Value>,
) -> (&'static str, Option<String>) {
    match r {
        Ok(v) => {
            conn.send(&ServerMsg::Response {
                id,
                ok: true,
                result: Some(v),
                error: None,
            })
            .await;
            ("ok", None)
        }
        Err(e) => {
            conn.send(&err_response(
                id,
                ErrorCode::Io,
                format!("{path}: {e}"),
                None,
            ))
            .await;
            ("failed", Some(e.to_string()))
        }
    }
}

/// Read at most `limit` bytes, without following a final symlink.
fn read_limited(path: &Path, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let mut buf = Vec::new();
    f.take(limit as u64 + 1).read_to_end(&mut buf)?;
    let truncated = buf.len() > limit;
    buf.truncate(limit);
    Ok((buf, truncated))
}

/// Write a kernel attribute: the file must exist (no create, no truncate), and a
/// final symlink is not followed.
fn write_attribute(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(value.as_bytes())
}

/// Convenience for tests and the binary: the caller's view of a JSON value.
pub fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_frame(body: &[u8]) -> Vec<u8> {
        let mut f = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        f.push(protocol::KIND_JSON);
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn frames_are_cut_in_order_and_consumed_bytes_wiped() {
        let mut fb = FrameBuf::default();
        fb.reserve();
        let (a, b, c) = (
            json_frame(b"{\"a\":1}"),
            json_frame(b"{\"b\":22}"),
            json_frame(b"{\"c\":333}"),
        );
        fb.buf.extend_from_slice(&a);
        fb.buf.extend_from_slice(&b);
        fb.buf.extend_from_slice(&c[..5]); // a third frame, not complete yet
        let total = fb.buf.len();
        for want in [&b"{\"a\":1}"[..], b"{\"b\":22}"] {
            match fb.next_frame() {
                Some(Ok(Frame::Json(j))) => assert_eq!(j, want),
                other => panic!("{other:?}"),
            }
        }
        assert!(fb.next_frame().is_none());
        assert_eq!(fb.buf, &c[..5]);
        // Everything behind the kept bytes, up to what was ever written, is zero.
        // SAFETY: these bytes were initialised by the writes above.
        let behind = unsafe { std::slice::from_raw_parts(fb.buf.as_ptr().add(5), total - 5) };
        assert!(behind.iter().all(|&x| x == 0));
        fb.buf.extend_from_slice(&c[5..]);
        match fb.next_frame() {
            Some(Ok(Frame::Json(j))) => assert_eq!(j, b"{\"c\":333}"),
            other => panic!("{other:?}"),
        }
        assert!(fb.buf.is_empty());
    }

    #[test]
    fn growing_keeps_the_unread_bytes() {
        let mut fb = FrameBuf::default();
        fb.reserve();
        let big = vec![7u8; fb.buf.capacity() - 1000];
        fb.buf.extend_from_slice(&big);
        fb.reserve();
        assert!(fb.buf.capacity() - fb.buf.len() >= 16 * 1024);
        assert_eq!(fb.buf, big);
    }
}
