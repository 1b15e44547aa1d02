//! A blocking client for moord (std only: the connector is synchronous).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::ops::{ExecArgs, b64_decode};
use crate::protocol::{
    self, CHAN_STDERR, CHAN_STDIN, CHAN_STDOUT, ClientMsg, ErrorBody, ExecResult, Frame,
    FrameError, MAX_DATA_CHUNK, ServerMsg, encode_data, encode_json,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("moord refused: {0:?}: {1}")]
    Refused(protocol::ErrorCode, String),
    #[error("moord did not prove it knows the key (wrong key file, or not moord)")]
    ServerAuth,
    #[error("moord requires an HMAC key (--key-file)")]
    KeyRequired,
    #[error("{}: {}", .0.code_str(), .0.message)]
    Remote(ErrorBody),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ErrorBody {
    pub fn code_str(&self) -> String {
        serde_json::to_value(self.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// The longest wait for moord's next frame unless the caller sets another: moord's
/// default maximum operation time plus a margin.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(3600 + 30);

/// Read a key file (raw bytes).
pub fn read_key_file(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    Ok(Zeroizing::new(std::fs::read(path)?))
}

/// An authenticated connection. One request at a time from this client; the protocol
/// itself allows many in flight.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    next_id: u64,
    /// Operations the daemon's policy allows this caller.
    pub ops: Vec<String>,
    pub uid: u32,
}

fn server_msg(frame: Frame) -> Result<ServerMsg, ClientError> {
    match frame {
        Frame::Json(j) => {
            serde_json::from_slice(&j).map_err(|e| ClientError::Protocol(e.to_string()))
        }
        Frame::Data { .. } => Err(ClientError::Protocol("unexpected data frame".into())),
    }
}

impl Client {
    /// Connect and authenticate. `key` is required when the daemon uses HMAC.
    pub fn connect(path: &Path, key: Option<&[u8]>) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut c = Client {
            stream,
            next_id: 1,
            ops: Vec::new(),
            uid: 0,
        };
        let hello = server_msg(protocol::read_frame(&mut c.stream)?)?;
        let (nonce, auth) = match hello {
            ServerMsg::Hello { version, .. } if version != protocol::PROTOCOL_VERSION => {
                return Err(ClientError::Protocol(format!(
                    "moord speaks protocol version {version}, this client {}",
                    protocol::PROTOCOL_VERSION
                )));
            }
            ServerMsg::Hello { nonce, auth, .. } => (nonce, auth),
            ServerMsg::Error(e) => return Err(ClientError::Refused(e.code, e.message)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected hello, got {other:?}"
                )));
            }
        };
        let nonce =
            protocol::from_hex(&nonce).ok_or_else(|| ClientError::Protocol("bad nonce".into()))?;
        let cnonce = protocol::random_nonce()?;
        let mac = match (auth.as_str(), key) {
            ("hmac-sha256", Some(k)) => Some(protocol::to_hex(&protocol::client_proof(
                k, &nonce, &cnonce,
            ))),
            ("hmac-sha256", None) => return Err(ClientError::KeyRequired),
            // A caller with a key insists on the server proving it: whoever offers
            // "none" to such a caller is not the moord it means to talk to.
            ("none", Some(_)) => return Err(ClientError::ServerAuth),
            ("none", None) => None,
            (other, _) => {
                return Err(ClientError::Protocol(format!(
                    "unknown auth method {other:?}"
                )));
            }
        };
        protocol::write_frame(
            &mut c.stream,
            &encode_json(&ClientMsg::Auth {
                cnonce: protocol::to_hex(&cnonce),
                mac,
            }),
        )?;
        match server_msg(protocol::read_frame(&mut c.stream)?)? {
            ServerMsg::Welcome { mac, ops, uid, .. } => {
                if let Some(k) = key {
                    let expected = protocol::server_proof(k, &nonce, &cnonce);
                    if !mac
                        .as_deref()
                        .is_some_and(|m| protocol::verify_proof(&expected, m))
                    {
                        return Err(ClientError::ServerAuth);
                    }
                }
                c.ops = ops;
                c.uid = uid;
            }
            ServerMsg::Error(e) => return Err(ClientError::Refused(e.code, e.message)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected welcome, got {other:?}"
                )));
            }
        }
        // Every wait has a deadline: moord kills any operation after its own maximum
        // (an hour by default), so silence for longer than that means it is gone.
        c.stream.set_read_timeout(Some(DEFAULT_REPLY_TIMEOUT))?;
        Ok(c)
    }

    /// How long to wait for the next frame from moord before giving up (default:
    /// [`DEFAULT_REPLY_TIMEOUT`]). Use a value above the operation's own deadline.
    pub fn set_reply_timeout(&mut self, t: Duration) -> Result<(), ClientError> {
        self.stream
            .set_read_timeout(Some(t.max(Duration::from_millis(1))))?;
        Ok(())
    }

    fn send_request(&mut self, op: &str, args: Value) -> Result<u64, ClientError> {
        self.send_request_timeout(op, args, None)
    }

    fn send_request_timeout(
        &mut self,
        op: &str,
        args: Value,
        timeout: Option<Duration>,
    ) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        protocol::write_frame(
            &mut self.stream,
            &encode_json(&ClientMsg::Request {
                id,
                op: op.into(),
                args,
                timeout_ms: timeout.map(|t| t.as_millis().max(1) as u64),
            }),
        )?;
        Ok(id)
    }

    fn wait_response(&mut self, id: u64) -> Result<Value, ClientError> {
        loop {
            match server_msg(protocol::read_frame(&mut self.stream)?)? {
                ServerMsg::Response {
                    id: rid,
                    ok,
                    result,
                    error,
                } if rid == id => {
                    return outcome(ok, result, error);
                }
                ServerMsg::Error(e) => return Err(ClientError::Remote(e)),
                _ => continue,
            }
        }
    }

    /// Run one operation and return its result object.
    pub fn call(&mut self, op: &str, args: Value) -> Result<Value, ClientError> {
        let id = self.send_request(op, args)?;
        self.wait_response(id)
    }

    /// Run one operation with a deadline: moord kills what it runs when `timeout`
    /// passes, and this call waits for the reply a little longer than that (then
    /// fails with a timeout; the connection should then be dropped).
    pub fn call_timeout(
        &mut self,
        op: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let id = self.send_request_timeout(op, args, Some(timeout))?;
        let previous = self.stream.read_timeout()?;
        self.stream
            .set_read_timeout(Some(timeout + Duration::from_secs(5)))?;
        let r = self.wait_response(id);
        self.stream.set_read_timeout(previous)?;
        r
    }

    pub fn ping(&mut self) -> Result<(), ClientError> {
        self.call("ping", Value::Object(Default::default()))
            .map(|_| ())
    }

    /// `exec` with buffered input and output.
    pub fn exec(&mut self, args: &ExecArgs) -> Result<ExecResult, ClientError> {
        let v = serde_json::to_value(args).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let r = self.call("exec", v)?;
        serde_json::from_value(r).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `exec` with stdin, stdout and stderr streamed (for hundreds of MB).
    pub fn exec_stream(
        &mut self,
        argv: &[String],
        timeout_ms: Option<u64>,
        stdin: Option<Box<dyn Read + Send>>,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> Result<ExecResult, ClientError> {
        let args = ExecArgs {
            argv: argv.to_vec(),
            stream: true,
            timeout_ms,
            ..ExecArgs::default()
        };
        let v = serde_json::to_value(&args).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let id = self.send_request("exec", v)?;
        // Wait for `started` (or a refusal) before sending any data.
        loop {
            match server_msg(protocol::read_frame(&mut self.stream)?)? {
                ServerMsg::Started { id: sid } if sid == id => break,
                ServerMsg::Response {
                    id: rid,
                    error: Some(e),
                    ..
                } if rid == id => return Err(ClientError::Remote(e)),
                ServerMsg::Error(e) => return Err(ClientError::Remote(e)),
                _ => continue,
            }
        }
        let mut writer = self.stream.try_clone()?;
        let feeder = std::thread::spawn(move || -> std::io::Result<()> {
            if let Some(mut input) = stdin {
                let mut buf = vec![0u8; MAX_DATA_CHUNK];
                loop {
                    let n = match input.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    writer.write_all(&encode_data(id, CHAN_STDIN, &buf[..n]))?;
                }
            }
            writer.write_all(&encode_data(id, CHAN_STDIN, &[]))
        });
        let result = loop {
            match protocol::read_frame(&mut self.stream)? {
                Frame::Data {
                    id: did,
                    chan,
                    bytes,
                } if did == id => match chan {
                    CHAN_STDOUT => stdout.write_all(&bytes)?,
                    CHAN_STDERR => stderr.write_all(&bytes)?,
                    _ => {}
                },
                Frame::Data { .. } => {}
                Frame::Json(j) => match serde_json::from_slice::<ServerMsg>(&j)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?
                {
                    ServerMsg::Response {
                        id: rid,
                        ok,
                        result,
                        error,
                    } if rid == id => {
                        break outcome(ok, result, error).and_then(|v| {
                            serde_json::from_value(v)
                                .map_err(|e| ClientError::Protocol(e.to_string()))
                        });
                    }
                    ServerMsg::Error(e) => break Err(ClientError::Remote(e)),
                    _ => {}
                },
            }
        };
        stdout.flush()?;
        // The child may exit before reading all of stdin; the feeder then fails with
        // EPIPE or is still blocked: neither matters once the result is in.
        if feeder.is_finished() {
            let _ = feeder.join();
        }
        result
    }
}

/// A response's result, or its error.
fn outcome(
    ok: bool,
    result: Option<Value>,
    error: Option<ErrorBody>,
) -> Result<Value, ClientError> {
    match (ok, error) {
        (true, _) => Ok(result.unwrap_or(Value::Null)),
        (false, Some(e)) => Err(ClientError::Remote(e)),
        (false, None) => Err(ClientError::Protocol("failure without error".into())),
    }
}

/// Decode the captured output of an [`ExecResult`].
pub fn decoded_output(r: &ExecResult) -> (Vec<u8>, Vec<u8>) {
    (
        b64_decode(&r.stdout).unwrap_or_default(),
        b64_decode(&r.stderr).unwrap_or_default(),
    )
}
