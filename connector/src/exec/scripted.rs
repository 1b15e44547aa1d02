//! A scripted [`Privileged`] for tests: expected operations in order, each with a
//! handler that may change a fixture tree (as the kernel would) and returns the reply.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;

use serde_json::Value;

use super::{PrivError, Privileged};

type Handler = Box<dyn FnMut(&Value) -> Result<Value, PrivError> + Send>;

/// One expected operation: its name, optionally the arguments it must carry (a
/// JSON object: each of its keys must have that value in the call's arguments),
/// and the handler that answers it.
struct Expectation {
    op: &'static str,
    args: Option<Value>,
    handler: Handler,
}

impl Expectation {
    fn matches(&self, op: &str, args: &Value) -> bool {
        self.op == op && self.args.as_ref().is_none_or(|want| args_match(want, args))
    }

    fn describe(&self) -> String {
        match &self.args {
            Some(a) => format!("{} {a}", self.op),
            None => self.op.to_string(),
        }
    }
}

/// `want` (an object) is a subset of `got`; any other value must equal it.
fn args_match(want: &Value, got: &Value) -> bool {
    match want {
        Value::Object(fields) => fields.iter().all(|(k, v)| got.get(k) == Some(v)),
        other => other == got,
    }
}

/// Expectations are matched in order by operation name (and arguments, when given);
/// an unexpected operation is an error (the test fails on it), and
/// [`Scripted::unused`] reports the ones never called. In [`Scripted::unordered`]
/// mode each call takes the first expectation that matches it, wherever it is in
/// the script (for operations that run in parallel threads).
#[derive(Default)]
pub struct Scripted {
    expected: Mutex<VecDeque<Expectation>>,
    calls: Mutex<Vec<(String, Value)>>,
    unordered: bool,
}

impl fmt::Debug for Scripted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scripted").finish_non_exhaustive()
    }
}

impl Scripted {
    pub fn new() -> Scripted {
        Scripted::default()
    }

    /// Expect `op` next; `handler` sees its arguments and returns the reply.
    pub fn expect(
        self,
        op: &'static str,
        handler: impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static,
    ) -> Scripted {
        self.push(op, None, handler)
    }

    /// Expect `op` with arguments that include every field of `args` (an object).
    pub fn expect_args(
        self,
        op: &'static str,
        args: Value,
        handler: impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static,
    ) -> Scripted {
        self.push(op, Some(args), handler)
    }

    /// Match each call against the first fitting expectation anywhere in the
    /// script, not only the next one (parallel callers interleave).
    pub fn unordered(mut self) -> Scripted {
        self.unordered = true;
        self
    }

    fn push(
        self,
        op: &'static str,
        args: Option<Value>,
        handler: impl FnMut(&Value) -> Result<Value, PrivError> + Send + 'static,
    ) -> Scripted {
        self.expected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(Expectation {
                op,
                args,
                handler: Box::new(handler),
            });
        self
    }

    /// Every call so far: (operation, arguments).
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Names of expected operations that were never called.
    pub fn unused(&self) -> Vec<&'static str> {
        self.expected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|e| e.op)
            .collect()
    }
}

impl Privileged for Scripted {
    fn call(
        &self,
        op: &'static str,
        args: Value,
        _shown: &dyn fmt::Debug,
        _timeout: std::time::Duration,
    ) -> Result<Value, PrivError> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((op.to_string(), args.clone()));
        // Taken out of the script first: the handler runs without the lock held
        // (parallel callers run their handlers concurrently).
        let next = {
            let mut expected = self.expected.lock().unwrap_or_else(|p| p.into_inner());
            if self.unordered {
                match expected.iter().position(|e| e.matches(op, &args)) {
                    Some(i) => expected.remove(i),
                    None => {
                        return Err(PrivError::Failed {
                            op,
                            message: format!("scripted: unexpected {op} {args}"),
                        });
                    }
                }
            } else {
                expected.pop_front()
            }
        };
        match next {
            Some(mut e) if e.matches(op, &args) => (e.handler)(&args),
            Some(e) => Err(PrivError::Failed {
                op,
                message: format!("scripted: expected {}, got {op} {args}", e.describe()),
            }),
            None => Err(PrivError::Failed {
                op,
                message: format!("scripted: unexpected {op} {args}"),
            }),
        }
    }
}
