//! [`Privileged`] over moord's socket: a small pool of authenticated connections so
//! concurrent attaches in one process do not queue behind each other.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use moor_privhelper::client::{Client, ClientError};
use moor_privhelper::protocol::ErrorCode;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{PrivError, Privileged};

/// moord at a socket path, with the HMAC key if the daemon uses one.
pub struct Daemon {
    socket: PathBuf,
    key: Option<Zeroizing<Vec<u8>>>,
    reply_timeout: Option<Duration>,
    idle: Mutex<Vec<Client>>,
}

impl fmt::Debug for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("socket", &self.socket)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Daemon {
    /// Connects lazily; [`Daemon::check`] connects once now to fail early.
    pub fn new(socket: &Path, key: Option<Zeroizing<Vec<u8>>>) -> Daemon {
        Daemon {
            socket: socket.to_path_buf(),
            key,
            reply_timeout: None,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Longest wait for one reply (default: the client's).
    pub fn with_reply_timeout(mut self, t: Duration) -> Daemon {
        self.reply_timeout = Some(t);
        self
    }

    fn unavailable(&self, e: impl fmt::Display) -> PrivError {
        PrivError::Unavailable {
            socket: self.socket.display().to_string(),
            message: e.to_string(),
        }
    }

    fn connect(&self) -> Result<Client, PrivError> {
        let mut c = Client::connect(&self.socket, self.key.as_deref().map(|k| k.as_slice()))
            .map_err(|e| self.unavailable(e))?;
        if let Some(t) = self.reply_timeout {
            c.set_reply_timeout(t).map_err(|e| self.unavailable(e))?;
        }
        Ok(c)
    }

    /// Connect and authenticate once, so a wrong socket or key fails before any work.
    pub fn check(&self) -> Result<(), PrivError> {
        let c = self.connect()?;
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        Ok(())
    }
}

impl Privileged for Daemon {
    fn call(
        &self,
        op: &'static str,
        args: Value,
        _shown: &dyn fmt::Debug,
        timeout: Duration,
    ) -> Result<Value, PrivError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut client = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        match client.call_timeout(op, args, timeout) {
            Ok(v) => {
                self.idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(client);
                Ok(v)
            }
            Err(ClientError::Remote(body)) => {
                // The connection is still good after an error reply.
                self.idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(client);
                let code = body.code_str();
                if body.code == ErrorCode::IdentityMismatch {
                    Err(PrivError::IdentityMismatch {
                        op,
                        message: body.message,
                    })
                } else {
                    Err(PrivError::Refused {
                        op,
                        code,
                        message: body.message,
                    })
                }
            }
            Err(e) => Err(PrivError::Failed {
                op,
                message: format!("moord connection: {e}"),
            }),
        }
    }
}
