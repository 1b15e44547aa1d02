//! moord's wire protocol (docs/protocol.md is the specification; keep them in step).
//!
//! Every frame is a 4-byte big-endian length `N` (1 ≤ N ≤ [`MAX_FRAME`]) followed by
//! `N` bytes whose first byte is the frame kind:
//! - `J` (0x4A): one JSON message (UTF-8), see [`ServerMsg`] / [`ClientMsg`];
//! - `D` (0x44): stream data for a request: request id (u64 BE), channel (u8: 0 stdin,
//!   1 stdout, 2 stderr), then the bytes; no bytes means end of that channel.

use std::io::{self, Read, Write};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

pub const PROTOCOL_VERSION: u32 = 1;
/// Largest frame either side accepts (JSON or data).
pub const MAX_FRAME: usize = 1 << 20;
/// Largest data payload a sender puts in one `D` frame.
pub const MAX_DATA_CHUNK: usize = 64 * 1024;

pub const KIND_JSON: u8 = b'J';
pub const KIND_DATA: u8 = b'D';

/// Stream channels of a `D` frame.
pub const CHAN_STDIN: u8 = 0;
pub const CHAN_STDOUT: u8 = 1;
pub const CHAN_STDERR: u8 = 2;

/// Domain-separation labels for the two HMAC proofs.
const CLIENT_LABEL: &[u8] = b"moor-v1 client proof";
const SERVER_LABEL: &[u8] = b"moor-v1 server proof";

/// Messages from moord.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First frame on every accepted connection.
    Hello {
        version: u32,
        server: String,
        /// 32 random bytes, hex.
        nonce: String,
        /// `hmac-sha256` or `none` (peer credentials only).
        auth: String,
    },
    /// Authentication succeeded.
    Welcome {
        /// Server's proof of the key (hex), when `auth` is `hmac-sha256`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
        uid: u32,
        gid: u32,
        pid: i32,
        /// Operations this caller's policy allows.
        ops: Vec<String>,
    },
    /// A streaming request was accepted; data frames for `id` may flow.
    Started { id: u64 },
    /// The final answer to request `id`.
    Response {
        id: u64,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
    /// A connection-level error; the server closes the connection after it.
    Error(ErrorBody),
}

/// Messages from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Answer to `hello`. `mac` is required when the server says `hmac-sha256`.
    Auth {
        /// 32 random bytes chosen by the client, hex.
        cnonce: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
    },
    /// Run operation `op` with `args`. `id` is chosen by the client and must not be
    /// reused while a request with that id is in flight on the connection.
    Request {
        id: u64,
        op: String,
        args: Value,
        /// The caller's deadline for this request in milliseconds: moord kills a
        /// command the request runs when it passes (capped by its own maximum).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

/// Machine-readable error classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed frame or message, unknown field, invalid argument.
    BadRequest,
    /// No such operation.
    UnknownOp,
    /// The caller is not allowed to connect, or its policy does not allow the op.
    Forbidden,
    /// The filters do not allow the command or write the op planned.
    Denied,
    /// HMAC proof missing or wrong.
    AuthFailed,
    /// Too many requests queued; try again later.
    Busy,
    /// The operation ran past its deadline and was killed.
    Timeout,
    /// The command could not be started.
    ExecFailed,
    /// An I/O error performing the operation (file read, sysfs write, record edit).
    Io,
    /// The device no longer carries the identity (WWID; for an NVMe controller its
    /// subsystem, address and host NQN) the caller captured: the operation was
    /// refused and nothing was written or run.
    IdentityMismatch,
    /// The target is not in the state the operation requires (e.g. `luks.format` of
    /// something that carries a header, `luks.remove_key` of the last key slot, a
    /// file `nvme.host_identity` would create that exists); nothing was changed.
    PreconditionFailed,
    /// The thing the operation acts on does not exist (e.g. no open-iscsi record
    /// for an `iscsi.*_secret`); nothing was changed.
    NotFound,
    /// A frame over the size limit.
    TooLarge,
    /// The daemon is stopping.
    ShuttingDown,
    /// A request id already in flight.
    DuplicateId,
    /// A bug in moord.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// For `denied`: the filter that came closest, `file:line name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closest_filter: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            closest_filter: None,
        }
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Json(Vec<u8>),
    Data { id: u64, chan: u8, bytes: Vec<u8> },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Parse a frame body (everything after the length).
pub fn decode_body(body: Vec<u8>) -> Result<Frame, FrameError> {
    match body.first() {
        Some(&KIND_JSON) => {
            let mut b = body;
            b.remove(0);
            Ok(Frame::Json(b))
        }
        Some(&KIND_DATA) => {
            if body.len() < 10 {
                return Err(FrameError::Malformed("short data frame"));
            }
            let mut idb = [0u8; 8];
            idb.copy_from_slice(&body[1..9]);
            let chan = body[9];
            if chan > CHAN_STDERR {
                return Err(FrameError::Malformed("unknown data channel"));
            }
            Ok(Frame::Data {
                id: u64::from_be_bytes(idb),
                chan,
                bytes: body[10..].to_vec(),
            })
        }
        Some(_) => Err(FrameError::Malformed("unknown frame kind")),
        None => Err(FrameError::Malformed("empty frame")),
    }
}

/// Check a frame length header.
pub fn check_len(len: u32) -> Result<usize, FrameError> {
    let len = len as usize;
    if len == 0 {
        return Err(FrameError::Malformed("empty frame"));
    }
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Encode a JSON message frame.
pub fn encode_json<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serializing these plain types cannot fail.
    let json = serde_json::to_vec(msg).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = Vec::with_capacity(json.len() + 5);
    out.extend_from_slice(&((json.len() + 1) as u32).to_be_bytes());
    out.push(KIND_JSON);
    out.extend_from_slice(&json);
    out
}

/// Encode a data frame (`bytes` at most [`MAX_DATA_CHUNK`]; empty means end).
pub fn encode_data(id: u64, chan: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 14);
    out.extend_from_slice(&((bytes.len() + 10) as u32).to_be_bytes());
    out.push(KIND_DATA);
    out.extend_from_slice(&id.to_be_bytes());
    out.push(chan);
    out.extend_from_slice(bytes);
    out
}

/// Blocking frame read (clients).
pub fn read_frame(r: &mut impl Read) -> Result<Frame, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = check_len(u32::from_be_bytes(len))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    decode_body(body)
}

/// Blocking frame write (clients).
pub fn write_frame(w: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame)?;
    w.flush()
}

type HmacSha256 = Hmac<Sha256>;

fn proof(key: &[u8], label: &[u8], nonce: &[u8], cnonce: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(label);
    mac.update(nonce);
    mac.update(cnonce);
    mac.finalize().into_bytes().to_vec()
}

/// The client's proof: HMAC-SHA256(key, "moor-v1 client proof" ‖ nonce ‖ cnonce).
pub fn client_proof(key: &[u8], nonce: &[u8], cnonce: &[u8]) -> Vec<u8> {
    proof(key, CLIENT_LABEL, nonce, cnonce)
}

/// The server's proof: HMAC-SHA256(key, "moor-v1 server proof" ‖ nonce ‖ cnonce).
pub fn server_proof(key: &[u8], nonce: &[u8], cnonce: &[u8]) -> Vec<u8> {
    proof(key, SERVER_LABEL, nonce, cnonce)
}

/// Constant-time check of a hex proof against the expected bytes.
pub fn verify_proof(expected: &[u8], hex_mac: &str) -> bool {
    use subtle::ConstantTimeEq;
    match from_hex(hex_mac) {
        Some(got) if got.len() == expected.len() => bool::from(got.ct_eq(expected)),
        _ => false,
    }
}

pub fn to_hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(HEX[(x >> 4) as usize] as char);
        s.push(HEX[(x & 15) as usize] as char);
    }
    s
}

pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// 32 random bytes for a nonce.
pub fn random_nonce() -> io::Result<[u8; 32]> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(n)
}

/// Result of `exec` (and of `luks.*`-style ops that run a tool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExecResult {
    /// Exit status when the command exited; absent when a signal killed it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Captured output, base64 (empty for streamed requests).
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration_ms: u64,
    /// `file:line name` of the filter that allowed it.
    pub filter: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let f = encode_json(&ClientMsg::Request {
            id: 7,
            op: "ping".into(),
            args: Value::Null,
            timeout_ms: None,
        });
        let got = read_frame(&mut &f[..]).unwrap();
        let Frame::Json(j) = got else {
            panic!("json frame")
        };
        let m: ClientMsg = serde_json::from_slice(&j).unwrap();
        assert_eq!(
            m,
            ClientMsg::Request {
                id: 7,
                op: "ping".into(),
                args: Value::Null,
                timeout_ms: None,
            }
        );
        let d = encode_data(9, CHAN_STDOUT, b"abc");
        assert_eq!(
            read_frame(&mut &d[..]).unwrap(),
            Frame::Data {
                id: 9,
                chan: 1,
                bytes: b"abc".to_vec()
            }
        );
    }

    #[test]
    fn bad_frames() {
        assert!(matches!(
            read_frame(&mut &[0u8, 0, 0, 0][..]),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            read_frame(&mut &[0xffu8, 0, 0, 0][..]),
            Err(FrameError::TooLarge(_))
        ));
        assert!(matches!(
            read_frame(&mut &[0u8, 0, 0, 1, b'X'][..]),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            read_frame(&mut &[0u8, 0][..]),
            Err(FrameError::Closed)
        ));
        let unknown: Result<ClientMsg, _> =
            serde_json::from_str(r#"{"type":"auth","cnonce":"00","shell":true}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn proofs() {
        let c = client_proof(b"k", b"n", b"c");
        assert!(verify_proof(&c, &to_hex(&c)));
        assert!(!verify_proof(&c, &to_hex(&server_proof(b"k", b"n", b"c"))));
        assert!(!verify_proof(&c, "zz"));
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 254, 255])).unwrap(),
            vec![0, 1, 254, 255]
        );
    }
}
