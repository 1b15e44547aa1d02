//! `pyre`: Python-`re`-syntax regular expressions, matched the way moor needs.
//!
//! oslo.rootwrap's `RegExpFilter` checks each argument with Python's
//! `re.match(pattern + '$', arg)`. moor parses the same syntax (CPython 3.11's
//! `re`, str patterns) with the same compile errors, but matches with stricter
//! semantics, keeping this invariant for every pattern `p` and text `s`:
//!
//! ```text
//! Regex::new(p)?.full_match(s) == Ok(true)  ==>  re.match(p + '$', s) is truthy
//! ```
//!
//! * The whole text must match the whole pattern (`a|b` is anchored for both
//!   branches); `$` matches only at the very end (not before a final `\n`)
//!   unless `(?m)` is on.
//! * Character classes are ASCII: `\d` = `[0-9]`, `\w` = `[A-Za-z0-9_]`,
//!   `\s` = `[ \t\n\r\f\v]`; `\D`, `\W`, `\S` (which also excludes
//!   `\x1c`-`\x1f`, whitespace to Python), negated sets holding a shorthand
//!   class, and `\b`/`\B` next to a non-ASCII char never match non-ASCII text
//!   (Python's Unicode classes might disagree).
//! * IGNORECASE folds ASCII letters only. Python's Unicode folding links exactly
//!   four non-ASCII chars to ASCII letters (U+0130, U+0131 to `i`, U+017F to `s`,
//!   U+212A to `k`; checked exhaustively against CPython 3.11), so a text char and
//!   a pattern char are "maybe equal" only if one of them is such a char or both
//!   are non-ASCII. A negated IGNORECASE set therefore matches a non-ASCII char
//!   only if all its members are ASCII and the char is not one of the four.
//! * Under `(?a)` Python itself is ASCII and moor follows it exactly.
//!
//! Every character test and assertion is three-valued: yes, no, or "depends"
//! (on Unicode data moor lacks, or on moor's narrower policy: `\s` against
//! `\x1c`, `$` before a final newline). How "depends" is resolved depends on the
//! region of the pattern:
//!
//! * main pattern and positive lookarounds: no (moor matches a subset);
//! * bodies of negative lookarounds: yes (the body over-approximates Python's,
//!   so the assertion under-approximates); nested negative lookarounds flip back;
//! * where Python commits to its first match (atomic groups, possessive repeats,
//!   and every lookaround when the pattern has backreferences, since captures
//!   then matter) moor must reproduce exactly that first match, so "depends"
//!   there denies the whole match.
//!
//! Patterns Python rejects are rejected with [`PyreErrorKind::Syntax`] (same
//! message and position as Python's `re.error`); some patterns Python accepts are
//! refused with [`PyreErrorKind::Unsupported`] (the filter loader rejects a file
//! with either, failing closed): `\N{...}`, conditional groups `(?(1)a|b)`, non-ASCII group names,
//! the `(?t)` flag, repeat counts above 10000, nesting deeper than 200, programs
//! above 100000 instructions (counted repeats are expanded), backreferences
//! inside (or to groups inside) negative lookarounds, and possessive repeats of
//! a capturing group (CPython 3.11 mis-tracks those spans and can even raise
//! `SystemError` while matching).
//!
//! Matching is a backtracking search in Python's order over an explicit stack
//! (no recursion on the text; recursion only for nested lookarounds and atomic
//! groups, bounded by the nesting limit) with a step budget (`step_limit` plus
//! 8 steps per byte of text); exceeding it returns [`MatchError::StepLimit`]
//! (callers deny). Without backreferences, visited (instruction, position)
//! states are remembered and lookaround results cached, so catastrophic
//! patterns such as `^[/]*([^/\0]+(/+)?)*$` run in polynomial time.

mod chars;
mod compile;
mod exec;
mod parse;

use std::fmt;
use std::sync::Arc;

/// Default budget of matcher steps (see [`Regex::with_step_limit`]).
pub const DEFAULT_STEP_LIMIT: u64 = 1_000_000;

/// Whether Python would reject the pattern too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyreErrorKind {
    /// Python's `re.compile` raises too.
    Syntax,
    /// Python accepts the pattern; moor refuses it.
    Unsupported,
}

/// A pattern moor will not match with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyreError {
    pub kind: PyreErrorKind,
    /// Offset in chars into the pattern, like Python's `re.error.pos`.
    pub pos: usize,
    pub message: String,
}

impl fmt::Display for PyreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PyreErrorKind::Syntax => write!(f, "{} at position {}", self.message, self.pos),
            PyreErrorKind::Unsupported => {
                write!(
                    f,
                    "unsupported by moor: {} at position {}",
                    self.message, self.pos
                )
            }
        }
    }
}

impl std::error::Error for PyreError {}

/// Why a match could not be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchError {
    /// The step budget ran out (callers deny).
    StepLimit,
}

impl fmt::Display for MatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchError::StepLimit => f.write_str("regular expression step limit exceeded"),
        }
    }
}

impl std::error::Error for MatchError {}

/// A compiled pattern.
#[derive(Clone)]
pub struct Regex {
    pattern: String,
    prog: Arc<compile::Program>,
    step_limit: u64,
    has_lookaround: bool,
    has_backrefs: bool,
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Regex")
            .field("pattern", &self.pattern)
            .field("step_limit", &self.step_limit)
            .field("instructions", &self.prog.insts.len())
            .finish_non_exhaustive()
    }
}

impl Regex {
    /// Compiles `pattern` with [`DEFAULT_STEP_LIMIT`].
    ///
    /// # Errors
    ///
    /// [`PyreErrorKind::Syntax`] where Python's `re.compile` raises too,
    /// [`PyreErrorKind::Unsupported`] for patterns moor refuses.
    pub fn new(pattern: &str) -> Result<Regex, PyreError> {
        Regex::with_step_limit(pattern, DEFAULT_STEP_LIMIT)
    }

    /// Compiles `pattern`; each match may take `step_limit` steps plus 8 per
    /// byte of text.
    ///
    /// # Errors
    ///
    /// As [`Regex::new`].
    pub fn with_step_limit(pattern: &str, step_limit: u64) -> Result<Regex, PyreError> {
        let parsed = parse::parse(pattern)?;
        let prog = compile::compile(&parsed)?;
        Ok(Regex {
            pattern: pattern.to_owned(),
            prog: Arc::new(prog),
            step_limit,
            has_lookaround: parsed.has_lookaround,
            has_backrefs: parsed.has_backrefs,
        })
    }

    /// Does the whole of `text` match (with moor's semantics, see the module docs)?
    ///
    /// # Errors
    ///
    /// [`MatchError::StepLimit`] when the step budget runs out; callers deny.
    pub fn full_match(&self, text: &str) -> Result<bool, MatchError> {
        exec::full_match(&self.prog, text, self.step_limit)
    }

    /// The pattern as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Does the pattern use lookahead or lookbehind?
    #[must_use]
    pub fn has_lookaround(&self) -> bool {
        self.has_lookaround
    }

    /// Does the pattern use backreferences?
    #[must_use]
    pub fn has_backrefs(&self) -> bool {
        self.has_backrefs
    }
}

#[cfg(test)]
mod tests;
