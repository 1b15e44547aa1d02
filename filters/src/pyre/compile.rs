//! AST → backtracking program.

use super::chars::{CharSet, SetItem, Tri, ascii_lower, is_ascii_letter, special_partner};
use super::parse::{At, MAX_COUNT, Node, Parsed, RepKind, width};
use super::{PyreError, PyreErrorKind};

/// Largest program moor builds (counted repeats are expanded).
pub(crate) const MAX_INSTS: usize = 100_000;

/// How `Tri::Unknown` is resolved in a region of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Unknown = no: matches a subset of what Python matches.
    Strict,
    /// Unknown = yes: matches a superset (bodies of negative lookarounds).
    Loose,
    /// Unknown = give up (deny): used where Python commits to its first match
    /// (atomic groups, possessive repeats, lookarounds when captures matter),
    /// so moor must find exactly Python's first match or none.
    Exact,
}

impl Mode {
    fn flip(self) -> Mode {
        match self {
            Mode::Strict => Mode::Loose,
            Mode::Loose => Mode::Strict,
            Mode::Exact => Mode::Exact,
        }
    }
}

/// A single-character test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Atom {
    Char(u32),
    /// An ASCII letter under IGNORECASE; `unicode` = Python's Unicode folding
    /// (which also links a few non-ASCII chars, see `special_partner`).
    Fold {
        lower: u32,
        upper: u32,
        unicode: bool,
    },
    /// `.` without DOTALL.
    Any,
    /// `.` with DOTALL.
    AnyAll,
    Set(u32),
}

impl Atom {
    #[inline]
    pub(crate) fn test(self, c: u32, sets: &[CharSet]) -> Tri {
        match self {
            Atom::Char(x) => Tri::from_bool(c == x),
            Atom::Fold {
                lower,
                upper,
                unicode,
            } => {
                if c == lower || c == upper {
                    Tri::Yes
                } else if unicode && special_partner(c) == Some(lower) {
                    Tri::Unknown
                } else {
                    Tri::No
                }
            }
            Atom::Any => Tri::from_bool(c != 0x0A),
            Atom::AnyAll => Tri::Yes,
            Atom::Set(i) => sets.get(i as usize).map_or(Tri::No, |s| s.test(c)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubKind {
    Atomic,
    Ahead { negative: bool },
    Behind { negative: bool, width: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inst {
    Atom(Atom),
    Assert(At),
    /// Try the first target, then the second.
    Split(u32, u32),
    Jmp(u32),
    /// Record the position in a capture slot.
    Save(u32),
    /// Record where a loop iteration that may match empty starts.
    RepStart(u32),
    /// End of such an iteration: an empty iteration leaves the loop (Python's
    /// zero-width match protection), a non-empty one goes `again`.
    RepEnd {
        reg: u32,
        again: u32,
        exit: u32,
    },
    /// A repeat of a single-character atom (`max == u32::MAX`: unbounded).
    RepeatOne {
        atom: Atom,
        min: u32,
        max: u32,
        kind: RepKind,
    },
    Backref {
        group: u32,
        icase: bool,
        ascii: bool,
    },
    /// A sub-search (atomic group or lookaround) whose body starts at the next
    /// instruction and ends with `SubMatch`; execution goes on at `next`.
    /// `memo`: results may be cached per start position.
    Sub {
        id: u32,
        kind: SubKind,
        next: u32,
        mode: Mode,
        memo: bool,
    },
    SubMatch,
    Match,
}

#[derive(Clone, Debug)]
pub(crate) struct Program {
    pub(crate) insts: Vec<Inst>,
    pub(crate) sets: Vec<CharSet>,
    pub(crate) nregs: usize,
    pub(crate) nslots: usize,
    pub(crate) has_backrefs: bool,
    /// Text every match starts with.
    pub(crate) prefix: String,
    /// `Some(s)`: the pattern matches exactly `s`.
    pub(crate) literal: Option<String>,
}

fn unsupported(message: impl Into<String>) -> PyreError {
    PyreError {
        kind: PyreErrorKind::Unsupported,
        pos: 0,
        message: message.into(),
    }
}

struct Compiler<'a> {
    insts: Vec<Inst>,
    sets: Vec<CharSet>,
    nregs: u32,
    nsubs: u32,
    has_backrefs: bool,
    widths: &'a [Option<(u128, u128)>],
}

fn can_be_empty(node: &Node) -> bool {
    match node {
        Node::Empty | Node::At(_) | Node::Look { .. } | Node::Backref { .. } => true,
        Node::Lit { .. } | Node::Set(_) | Node::Any { .. } => false,
        Node::Group { body, .. } | Node::Atomic(body) => can_be_empty(body),
        Node::Concat(items) => items.iter().all(can_be_empty),
        Node::Alt(items) => items.iter().any(can_be_empty),
        Node::Repeat { min, body, .. } => *min == 0 || can_be_empty(body),
    }
}

/// The char a literal node matches exactly (no case folding in play).
fn exact_char(node: &Node) -> Option<u32> {
    match node {
        Node::Lit { c, icase, ascii } => {
            if !*icase || (*c < 128 && !is_ascii_letter(*c)) || (*c >= 128 && *ascii) {
                Some(*c)
            } else {
                None
            }
        }
        _ => None,
    }
}

impl Compiler<'_> {
    fn emit(&mut self, inst: Inst) -> Result<u32, PyreError> {
        if self.insts.len() >= MAX_INSTS {
            return Err(unsupported(format!(
                "pattern compiles to more than {MAX_INSTS} instructions"
            )));
        }
        let at = self.insts.len() as u32;
        self.insts.push(inst);
        Ok(at)
    }

    fn here(&self) -> u32 {
        self.insts.len() as u32
    }

    fn patch(&mut self, at: u32, inst: Inst) {
        if let Some(slot) = self.insts.get_mut(at as usize) {
            *slot = inst;
        }
    }

    fn atom(&mut self, node: &Node) -> Option<Atom> {
        if let Some(c) = exact_char(node) {
            return Some(Atom::Char(c));
        }
        match node {
            Node::Lit { c, ascii, .. } => {
                if is_ascii_letter(*c) {
                    let lower = ascii_lower(*c);
                    Some(Atom::Fold {
                        lower,
                        upper: lower - 32,
                        unicode: !*ascii,
                    })
                } else {
                    let i = self.sets.len() as u32;
                    self.sets
                        .push(CharSet::new(false, true, false, vec![SetItem::Lit(*c)]));
                    Some(Atom::Set(i))
                }
            }
            Node::Set(s) => {
                let i = self.sets.len() as u32;
                self.sets
                    .push(CharSet::new(s.negated, s.icase, s.ascii, s.items.clone()));
                Some(Atom::Set(i))
            }
            Node::Any { dotall } => Some(if *dotall { Atom::AnyAll } else { Atom::Any }),
            _ => None,
        }
    }

    /// The single-character test a repeat body boils down to, if any.
    fn single(&mut self, node: &Node) -> Option<Atom> {
        match node {
            Node::Lit { .. } | Node::Set(_) | Node::Any { .. } => self.atom(node),
            Node::Group { index: None, body } => self.single(body),
            Node::Group {
                index: Some(_),
                body,
            } if !self.has_backrefs => self.single(body),
            Node::Alt(items) => {
                // Like Python's parser: an alternation of single characters (and
                // non-negated sets) with the same flags is one set.
                let mut merged: Vec<SetItem> = Vec::new();
                let mut flags = None;
                for it in items {
                    let (f, new) = match it {
                        Node::Lit { c, icase, ascii } => ((*icase, *ascii), vec![SetItem::Lit(*c)]),
                        Node::Set(s) if !s.negated => ((s.icase, s.ascii), s.items.clone()),
                        _ => return None,
                    };
                    if flags.is_some_and(|g| g != f) {
                        return None;
                    }
                    flags = Some(f);
                    merged.extend(new);
                }
                let (icase, ascii) = flags?;
                let i = self.sets.len() as u32;
                self.sets.push(CharSet::new(false, icase, ascii, merged));
                Some(Atom::Set(i))
            }
            _ => None,
        }
    }

    /// Kept small: it is on the recursion path.
    fn node(&mut self, node: &Node, mode: Mode, depth: u32) -> Result<(), PyreError> {
        match node {
            Node::Empty => Ok(()),
            Node::Lit { .. }
            | Node::Set(_)
            | Node::Any { .. }
            | Node::At(_)
            | Node::Backref { .. } => self.leaf(node),
            Node::Group { index, body } => self.group(*index, body, mode, depth),
            Node::Concat(items) => {
                for it in items {
                    self.node(it, mode, depth)?;
                }
                Ok(())
            }
            Node::Alt(items) => self.alt(items, mode, depth),
            Node::Repeat {
                min,
                max,
                kind,
                body,
            } => self.repeat(*min, *max, *kind, body, mode, depth),
            Node::Atomic(body) => self.atomic(body, depth),
            Node::Look {
                behind,
                negative,
                body,
                ..
            } => self.look(*behind, *negative, body, mode, depth),
        }
    }

    #[inline(never)]
    fn leaf(&mut self, node: &Node) -> Result<(), PyreError> {
        match node {
            Node::At(a) => self.emit(Inst::Assert(*a)).map(drop),
            Node::Backref {
                group,
                icase,
                ascii,
            } => self
                .emit(Inst::Backref {
                    group: *group,
                    icase: *icase,
                    ascii: *ascii,
                })
                .map(drop),
            _ => {
                if let Some(a) = self.atom(node) {
                    self.emit(Inst::Atom(a))?;
                }
                Ok(())
            }
        }
    }

    fn group(
        &mut self,
        index: Option<u32>,
        body: &Node,
        mode: Mode,
        depth: u32,
    ) -> Result<(), PyreError> {
        match index {
            Some(g) if self.has_backrefs && g >= 1 => {
                let slot = (g - 1) * 2;
                self.emit(Inst::Save(slot))?;
                self.node(body, mode, depth)?;
                self.emit(Inst::Save(slot + 1)).map(drop)
            }
            _ => self.node(body, mode, depth),
        }
    }

    fn alt(&mut self, items: &[Node], mode: Mode, depth: u32) -> Result<(), PyreError> {
        let mut jumps = Vec::new();
        let last = items.len().saturating_sub(1);
        for (i, it) in items.iter().enumerate() {
            if i < last {
                let split = self.emit(Inst::Split(0, 0))?;
                self.node(it, mode, depth)?;
                jumps.push(self.emit(Inst::Jmp(0))?);
                let next = self.here();
                self.patch(split, Inst::Split(split + 1, next));
            } else {
                self.node(it, mode, depth)?;
            }
        }
        let end = self.here();
        for j in jumps {
            self.patch(j, Inst::Jmp(end));
        }
        Ok(())
    }

    fn atomic(&mut self, body: &Node, depth: u32) -> Result<(), PyreError> {
        let open = self.sub_open()?;
        self.node(body, Mode::Exact, depth + 1)?;
        self.sub_close(open, SubKind::Atomic, Mode::Exact, depth)
    }

    fn look(
        &mut self,
        behind: bool,
        negative: bool,
        body: &Node,
        mode: Mode,
        depth: u32,
    ) -> Result<(), PyreError> {
        let body_mode = if self.has_backrefs {
            Mode::Exact
        } else if negative {
            mode.flip()
        } else {
            mode
        };
        let kind = if behind {
            let (lo, _) = width(body, self.widths);
            let w = u32::try_from(lo).map_err(|_| unsupported("look-behind too wide"))?;
            SubKind::Behind { negative, width: w }
        } else {
            SubKind::Ahead { negative }
        };
        let open = self.sub_open()?;
        self.node(body, body_mode, depth + 1)?;
        self.sub_close(open, kind, body_mode, depth)
    }

    /// Starts a sub-search; its body follows. Returns (id, instruction index).
    fn sub_open(&mut self) -> Result<(u32, u32), PyreError> {
        let id = self.nsubs;
        self.nsubs += 1;
        let at = self.emit(Inst::SubMatch)?;
        Ok((id, at))
    }

    fn sub_close(
        &mut self,
        (id, at): (u32, u32),
        kind: SubKind,
        mode: Mode,
        depth: u32,
    ) -> Result<(), PyreError> {
        self.emit(Inst::SubMatch)?;
        let next = self.here();
        self.patch(
            at,
            Inst::Sub {
                id,
                kind,
                next,
                mode,
                memo: depth > 0,
            },
        );
        Ok(())
    }

    fn repeat(
        &mut self,
        min: u64,
        max: Option<u64>,
        kind: RepKind,
        body: &Node,
        mode: Mode,
        depth: u32,
    ) -> Result<(), PyreError> {
        if min > MAX_COUNT || max.is_some_and(|m| m > MAX_COUNT) {
            return Err(unsupported(format!(
                "repeat counts above {MAX_COUNT} are not supported"
            )));
        }
        let min = min as u32;
        let max = max.map(|m| m as u32);
        if max == Some(0) {
            return Ok(());
        }
        if let Some(atom) = self.single(body) {
            self.emit(Inst::RepeatOne {
                atom,
                min,
                max: max.unwrap_or(u32::MAX),
                kind,
            })?;
            return Ok(());
        }
        let can_empty = can_be_empty(body);
        let rest = max.map(|m| m - min);
        match kind {
            RepKind::Possessive => {
                for _ in 0..min {
                    self.atomic(body, depth)?;
                }
                if rest != Some(0) {
                    let open = self.sub_open()?;
                    self.repeat_loop(body, rest, true, can_empty, true, Mode::Exact, depth + 1)?;
                    self.sub_close(open, SubKind::Atomic, Mode::Exact, depth)?;
                }
                Ok(())
            }
            RepKind::Greedy | RepKind::Lazy => {
                for _ in 0..min {
                    self.node(body, mode, depth)?;
                }
                self.repeat_loop(
                    body,
                    rest,
                    kind == RepKind::Greedy,
                    can_empty,
                    false,
                    mode,
                    depth,
                )
            }
        }
    }

    fn iteration(
        &mut self,
        body: &Node,
        atomic: bool,
        mode: Mode,
        depth: u32,
    ) -> Result<(), PyreError> {
        if atomic {
            self.atomic(body, depth)
        } else {
            self.node(body, mode, depth)
        }
    }

    /// `count` optional iterations (`None`: unbounded).
    #[allow(clippy::too_many_arguments)]
    fn repeat_loop(
        &mut self,
        body: &Node,
        count: Option<u32>,
        greedy: bool,
        can_empty: bool,
        atomic: bool,
        mode: Mode,
        depth: u32,
    ) -> Result<(), PyreError> {
        let split = |greedy: bool, body: u32, exit: u32| {
            if greedy {
                Inst::Split(body, exit)
            } else {
                Inst::Split(exit, body)
            }
        };
        let reg = if can_empty {
            let r = self.nregs;
            self.nregs += 1;
            Some(r)
        } else {
            None
        };
        match count {
            None => {
                let top = self.emit(Inst::Jmp(0))?;
                if let Some(r) = reg {
                    self.emit(Inst::RepStart(r))?;
                }
                self.iteration(body, atomic, mode, depth)?;
                let back = match reg {
                    Some(r) => self.emit(Inst::RepEnd {
                        reg: r,
                        again: top,
                        exit: 0,
                    })?,
                    None => self.emit(Inst::Jmp(top))?,
                };
                let exit = self.here();
                self.patch(top, split(greedy, top + 1, exit));
                if let Some(r) = reg {
                    self.patch(
                        back,
                        Inst::RepEnd {
                            reg: r,
                            again: top,
                            exit,
                        },
                    );
                }
            }
            Some(k) => {
                let mut tops = Vec::new();
                let mut ends = Vec::new();
                for _ in 0..k {
                    tops.push(self.emit(Inst::Jmp(0))?);
                    if let Some(r) = reg {
                        self.emit(Inst::RepStart(r))?;
                    }
                    self.iteration(body, atomic, mode, depth)?;
                    if let Some(r) = reg {
                        ends.push(self.emit(Inst::RepEnd {
                            reg: r,
                            again: 0,
                            exit: 0,
                        })?);
                    }
                }
                let exit = self.here();
                for (i, &t) in tops.iter().enumerate() {
                    self.patch(t, split(greedy, t + 1, exit));
                    if let (Some(r), Some(&e)) = (reg, ends.get(i)) {
                        let again = tops.get(i + 1).copied().unwrap_or(exit);
                        self.patch(
                            e,
                            Inst::RepEnd {
                                reg: r,
                                again,
                                exit,
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

fn literal_prefix(node: &Node) -> (String, bool) {
    let items: &[Node] = match node {
        Node::Concat(v) => v,
        Node::Empty => &[],
        other => std::slice::from_ref(other),
    };
    let mut s = String::new();
    for it in items {
        match exact_char(it).and_then(char::from_u32) {
            Some(c) => s.push(c),
            None => return (s, false),
        }
    }
    (s, true)
}

pub(crate) fn compile(parsed: &Parsed) -> Result<Program, PyreError> {
    let mut c = Compiler {
        insts: Vec::new(),
        sets: Vec::new(),
        nregs: 0,
        nsubs: 0,
        has_backrefs: parsed.has_backrefs,
        widths: &parsed.group_widths,
    };
    c.node(&parsed.node, Mode::Strict, 0)?;
    c.emit(Inst::Match)?;
    let (prefix, whole) = literal_prefix(&parsed.node);
    Ok(Program {
        insts: c.insts,
        sets: c.sets,
        nregs: c.nregs as usize,
        nslots: if parsed.has_backrefs {
            parsed.groups as usize * 2
        } else {
            0
        },
        has_backrefs: parsed.has_backrefs,
        literal: if whole { Some(prefix.clone()) } else { None },
        prefix,
    })
}
