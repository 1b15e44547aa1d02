//! The backtracking matcher: an explicit stack (no recursion on the text),
//! a visited bitset over (instruction, position) when the pattern has no
//! backreferences, and recursion only for sub-searches (bounded by the
//! pattern's nesting depth).

use std::cell::RefCell;
use std::collections::HashMap;

use super::MatchError;
use super::chars::{Tri, fold_test, is_ascii_word};
use super::compile::{Atom, Inst, Mode, Program, SubKind};
use super::parse::{At, RepKind};

/// Steps allowed per byte of text on top of the caller's limit, so that linear
/// work on a long argument is not cut off; only super-linear work is limited.
pub(crate) const STEPS_PER_BYTE: u64 = 8;
/// Steps run before the visited bitset is allocated (most matches finish sooner).
const MEMO_AFTER: u64 = 48;
/// Largest visited bitset, in bits (16 MiB).
const MEMO_MAX_BITS: usize = 1 << 27;
/// Deepest backtracking stack (frames); beyond it the match fails closed.
const MAX_FRAMES: usize = 1 << 23;
const NONE: u32 = u32::MAX;

pub(crate) enum Stop {
    Limit,
    /// An `Unknown` answer in an `Exact` region: moor cannot tell what Python
    /// would do, so the whole match is denied.
    Abort,
}

#[derive(Debug)]
enum Frame {
    Alt {
        pc: u32,
        pos: u32,
    },
    Reg {
        reg: u32,
        val: u32,
    },
    Cap {
        slot: u32,
        val: u32,
    },
    /// Restore all capture slots from the newest snapshot.
    Caps,
    /// Backtrack a greedy `RepeatOne` at `pc` one char at a time down to `min_pos`.
    Greedy {
        pc: u32,
        min_pos: u32,
        cur: u32,
    },
    /// Extend a lazy `RepeatOne` at `pc` by one char.
    Lazy {
        pc: u32,
        count: u32,
        cur: u32,
    },
}

struct Matcher<'a> {
    prog: &'a Program,
    text: &'a [u8],
    n: usize,
    steps: u64,
    limit: u64,
    stack: Vec<Frame>,
    regs: Vec<u32>,
    caps: Vec<u32>,
    snaps: Vec<Vec<u32>>,
    visited: Vec<u64>,
    memo_on: bool,
    memo_ok: bool,
    log: Vec<usize>,
    sub_memo: HashMap<(u32, u32), u32>,
}

#[inline]
fn resolve(t: Tri, mode: Mode) -> Result<bool, Stop> {
    match t {
        Tri::Yes => Ok(true),
        Tri::No => Ok(false),
        Tri::Unknown => match mode {
            Mode::Strict => Ok(false),
            Mode::Loose => Ok(true),
            Mode::Exact => Err(Stop::Abort),
        },
    }
}

/// Decodes the char at byte offset `pos` of valid UTF-8.
#[inline]
fn decode(text: &[u8], pos: usize) -> Option<(u32, usize)> {
    let b0 = *text.get(pos)?;
    if b0 < 0x80 {
        return Some((u32::from(b0), 1));
    }
    let len = if b0 >= 0xF0 {
        4
    } else if b0 >= 0xE0 {
        3
    } else {
        2
    };
    let mut c = u32::from(b0) & (0x7F >> len);
    for i in 1..len {
        c = (c << 6) | (u32::from(*text.get(pos + i)?) & 0x3F);
    }
    Some((c, len))
}

/// Byte offset of the char before `pos`.
#[inline]
fn prev_pos(text: &[u8], pos: usize) -> Option<usize> {
    let mut p = pos.checked_sub(1)?;
    while p > 0 && text.get(p).is_some_and(|b| b & 0xC0 == 0x80) {
        p -= 1;
    }
    Some(p)
}

impl Matcher<'_> {
    fn push(&mut self, f: Frame) -> Result<(), Stop> {
        if self.stack.len() >= MAX_FRAMES {
            return Err(Stop::Limit);
        }
        self.stack.push(f);
        Ok(())
    }

    #[inline]
    fn charge(&mut self, k: u64) -> Result<(), Stop> {
        self.steps = self.steps.saturating_add(k);
        if self.steps > self.limit {
            Err(Stop::Limit)
        } else {
            Ok(())
        }
    }

    fn assert_test(&self, a: At, pos: usize) -> Tri {
        let t = self.text;
        let n = self.n;
        match a {
            At::Begin => Tri::from_bool(pos == 0),
            At::BeginLine => Tri::from_bool(pos == 0 || t.get(pos.wrapping_sub(1)) == Some(&b'\n')),
            At::End => {
                if pos == n {
                    Tri::Yes
                } else if pos + 1 == n && t.get(pos) == Some(&b'\n') {
                    // Python's `$` also matches before a final newline; moor's doesn't.
                    Tri::Unknown
                } else {
                    Tri::No
                }
            }
            At::EndLine => Tri::from_bool(pos == n || t.get(pos) == Some(&b'\n')),
            At::EndText => Tri::from_bool(pos == n),
            At::Boundary { ascii } | At::NonBoundary { ascii } => {
                if n == 0 {
                    // Python 3.11: \b and \B never match in an empty string.
                    return Tri::No;
                }
                let prev = prev_pos(t, pos).and_then(|p| decode(t, p)).map(|(c, _)| c);
                let next = decode(t, pos).map(|(c, _)| c);
                if !ascii && (prev.is_some_and(|c| c >= 128) || next.is_some_and(|c| c >= 128)) {
                    return Tri::Unknown;
                }
                let wp = prev.is_some_and(is_ascii_word);
                let wn = next.is_some_and(is_ascii_word);
                Tri::from_bool(if matches!(a, At::Boundary { .. }) {
                    wp != wn
                } else {
                    wp == wn
                })
            }
        }
    }

    /// Has (pc, pos) been visited in the current search?
    #[inline]
    fn seen(&self, pc: usize, pos: usize) -> bool {
        let idx = pc * (self.n + 1) + pos;
        self.visited
            .get(idx / 64)
            .is_some_and(|w| w >> (idx % 64) & 1 != 0)
    }

    fn enable_memo(&mut self) {
        self.memo_ok = false;
        let bits = self.prog.insts.len().saturating_mul(self.n + 1);
        self.visited.clear();
        self.visited.resize(bits.div_ceil(64), 0);
        self.memo_on = true;
    }

    fn run(
        &mut self,
        pc: usize,
        pos: usize,
        mode: Mode,
        is_sub: bool,
    ) -> Result<Option<usize>, Stop> {
        let base = self.stack.len();
        let log_base = self.log.len();
        let snap_base = self.snaps.len();
        let r = self.run_inner(pc, pos, mode, is_sub, base);
        self.stack.truncate(base);
        self.snaps.truncate(snap_base);
        if is_sub {
            let visited = &mut self.visited;
            for idx in self.log.drain(log_base..) {
                if let Some(w) = visited.get_mut(idx / 64) {
                    *w &= !(1u64 << (idx % 64));
                }
            }
        }
        r
    }

    /// The dispatch loop of one search. Kept small: it is on the recursion
    /// path of nested sub-searches.
    fn run_inner(
        &mut self,
        mut pc: usize,
        mut pos: usize,
        mode: Mode,
        is_sub: bool,
        base: usize,
    ) -> Result<Option<usize>, Stop> {
        let prog = self.prog;
        let insts = &prog.insts;
        let text = self.text;
        loop {
            self.charge(1)?;
            let mut fresh = true;
            if self.memo_on {
                let idx = pc * (self.n + 1) + pos;
                if let Some(w) = self.visited.get_mut(idx / 64) {
                    let bit = 1u64 << (idx % 64);
                    if *w & bit != 0 {
                        fresh = false;
                    } else {
                        *w |= bit;
                        if is_sub {
                            self.log.push(idx);
                        }
                    }
                }
            } else if self.memo_ok && self.steps > MEMO_AFTER {
                self.enable_memo();
            }
            if fresh {
                let step = match insts.get(pc) {
                    Some(&Inst::Atom(a)) => match decode(text, pos) {
                        Some((c, len)) if resolve(a.test(c, &prog.sets), mode)? => {
                            Step::Go(pc + 1, pos + len)
                        }
                        _ => Step::Fail,
                    },
                    Some(&Inst::Split(x, y)) => {
                        self.push(Frame::Alt {
                            pc: y,
                            pos: pos as u32,
                        })?;
                        Step::Go(x as usize, pos)
                    }
                    Some(&Inst::Jmp(x)) => Step::Go(x as usize, pos),
                    Some(&Inst::Sub {
                        id,
                        kind,
                        next,
                        mode: body_mode,
                        memo,
                    }) => self.sub(pc, pos, id, kind, next as usize, body_mode, memo)?,
                    Some(Inst::SubMatch) => return Ok(Some(pos)),
                    Some(Inst::Match) => {
                        if pos == self.n {
                            return Ok(Some(pos));
                        }
                        Step::Fail
                    }
                    Some(inst) => self.step(*inst, pc, pos, mode)?,
                    None => Step::Fail,
                };
                if let Step::Go(p, q) = step {
                    pc = p;
                    pos = q;
                    continue;
                }
            }
            match self.backtrack(base, mode)? {
                Some((p, q)) => {
                    pc = p;
                    pos = q;
                }
                None => return Ok(None),
            }
        }
    }

    /// The instructions not handled inline by `run_inner`.
    #[inline(never)]
    fn step(&mut self, inst: Inst, pc: usize, pos: usize, mode: Mode) -> Result<Step, Stop> {
        Ok(match inst {
            Inst::Assert(a) => {
                if resolve(self.assert_test(a, pos), mode)? {
                    Step::Go(pc + 1, pos)
                } else {
                    Step::Fail
                }
            }
            Inst::Save(slot) => {
                if let Some(v) = self.caps.get(slot as usize).copied() {
                    self.push(Frame::Cap { slot, val: v })?;
                    if let Some(s) = self.caps.get_mut(slot as usize) {
                        *s = pos as u32;
                    }
                }
                Step::Go(pc + 1, pos)
            }
            Inst::RepStart(reg) => {
                if let Some(v) = self.regs.get(reg as usize).copied() {
                    self.push(Frame::Reg { reg, val: v })?;
                    if let Some(s) = self.regs.get_mut(reg as usize) {
                        *s = pos as u32;
                    }
                }
                Step::Go(pc + 1, pos)
            }
            Inst::RepEnd { reg, again, exit } => {
                let start = self.regs.get(reg as usize).copied().unwrap_or(NONE);
                Step::Go(
                    if start as usize == pos {
                        exit as usize
                    } else {
                        again as usize
                    },
                    pos,
                )
            }
            Inst::RepeatOne {
                atom,
                min,
                max,
                kind,
            } => self.repeat_one(pc, pos, atom, min, max, kind, mode)?,
            Inst::Backref {
                group,
                icase,
                ascii,
            } => self.backref(pc, pos, group, icase, ascii, mode)?,
            _ => Step::Fail,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn repeat_one(
        &mut self,
        pc: usize,
        pos: usize,
        atom: Atom,
        min: u32,
        max: u32,
        kind: RepKind,
        mode: Mode,
    ) -> Result<Step, Stop> {
        let text = self.text;
        let sets = &self.prog.sets;
        let m = if kind == RepKind::Possessive {
            Mode::Exact
        } else {
            mode
        };
        let want = if kind == RepKind::Lazy { min } else { max };
        let mut p = pos;
        let mut count = 0u32;
        let mut min_pos = pos;
        // A greedy scan may stop where this instruction already ran (in this
        // search): every alternative beyond that point was explored from there
        // and failed.
        let cut = kind == RepKind::Greedy && min <= 1 && self.memo_on;
        while count < want {
            match decode(text, p) {
                Some((c, len)) if resolve(atom.test(c, sets), m)? => {
                    p += len;
                    count += 1;
                    if count == min {
                        min_pos = p;
                    }
                    if cut && self.seen(pc, p) {
                        break;
                    }
                }
                _ => break,
            }
        }
        self.charge(u64::from(count))?;
        if count < min {
            return Ok(Step::Fail);
        }
        match kind {
            RepKind::Greedy => {
                if p > min_pos {
                    self.push(Frame::Greedy {
                        pc: pc as u32,
                        min_pos: min_pos as u32,
                        cur: p as u32,
                    })?;
                }
            }
            RepKind::Lazy => {
                if count < max {
                    self.push(Frame::Lazy {
                        pc: pc as u32,
                        count,
                        cur: p as u32,
                    })?;
                }
            }
            RepKind::Possessive => {}
        }
        Ok(Step::Go(pc + 1, p))
    }

    fn backref(
        &mut self,
        pc: usize,
        pos: usize,
        group: u32,
        icase: bool,
        ascii: bool,
        mode: Mode,
    ) -> Result<Step, Stop> {
        let text = self.text;
        let slot = (group.saturating_sub(1) as usize) * 2;
        let s = self.caps.get(slot).copied().unwrap_or(NONE);
        let e = self.caps.get(slot + 1).copied().unwrap_or(NONE);
        if s == NONE || e == NONE || s > e {
            return Ok(Step::Fail);
        }
        let (mut q, e) = (s as usize, e as usize);
        self.charge(((e - q) / 4) as u64)?;
        let mut p = pos;
        while q < e {
            let (Some((a, la)), Some((b, lb))) = (decode(text, q), decode(text, p)) else {
                return Ok(Step::Fail);
            };
            let t = if a == b {
                Tri::Yes
            } else if icase {
                fold_test(a, b, ascii)
            } else {
                Tri::No
            };
            if !resolve(t, mode)? {
                return Ok(Step::Fail);
            }
            q += la;
            p += lb;
        }
        Ok(Step::Go(pc + 1, p))
    }

    /// A sub-search: atomic group or lookaround. On the recursion path.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn sub(
        &mut self,
        pc: usize,
        pos: usize,
        id: u32,
        kind: SubKind,
        next: usize,
        body_mode: Mode,
        memo: bool,
    ) -> Result<Step, Stop> {
        let start = match kind {
            SubKind::Behind { width, .. } => {
                let mut p = Some(pos);
                for _ in 0..width {
                    p = p.and_then(|q| prev_pos(self.text, q));
                }
                self.charge(u64::from(width) / 8)?;
                p
            }
            _ => Some(pos),
        };
        let has_backrefs = self.prog.has_backrefs;
        let snap = if has_backrefs {
            self.charge((self.caps.len() / 16) as u64)?;
            Some(self.caps.clone())
        } else {
            None
        };
        let result = match start {
            None => None,
            Some(s) => {
                let use_memo = memo && !has_backrefs;
                let key = (id, s as u32);
                match self.sub_memo.get(&key).copied().filter(|_| use_memo) {
                    Some(v) => (v != NONE).then_some(v as usize),
                    None => {
                        let r = self.run(pc + 1, s, body_mode, true)?;
                        if use_memo {
                            self.sub_memo.insert(key, r.map_or(NONE, |e| e as u32));
                        }
                        r
                    }
                }
            }
        };
        let (pass, new_pos, keep) = match kind {
            SubKind::Atomic => (result.is_some(), result.unwrap_or(pos), true),
            SubKind::Ahead { negative } | SubKind::Behind { negative, .. } => {
                if negative {
                    (result.is_none(), pos, false)
                } else {
                    (result.is_some(), pos, true)
                }
            }
        };
        if let Some(snap) = snap {
            if pass && keep {
                self.snaps.push(snap);
                self.push(Frame::Caps)?;
            } else {
                self.caps = snap;
            }
        }
        Ok(if pass {
            Step::Go(next, new_pos)
        } else {
            Step::Fail
        })
    }

    /// Pops frames until an alternative to resume from; `None` when this search
    /// (whose frames start at `base`) is exhausted.
    fn backtrack(&mut self, base: usize, mode: Mode) -> Result<Option<(usize, usize)>, Stop> {
        let text = self.text;
        let insts = &self.prog.insts;
        loop {
            if self.stack.len() <= base {
                return Ok(None);
            }
            let Some(f) = self.stack.pop() else {
                return Ok(None);
            };
            match f {
                Frame::Alt { pc, pos } => return Ok(Some((pc as usize, pos as usize))),
                Frame::Reg { reg, val } => {
                    if let Some(s) = self.regs.get_mut(reg as usize) {
                        *s = val;
                    }
                }
                Frame::Cap { slot, val } => {
                    if let Some(s) = self.caps.get_mut(slot as usize) {
                        *s = val;
                    }
                }
                Frame::Caps => {
                    if let Some(s) = self.snaps.pop() {
                        self.caps = s;
                    }
                }
                Frame::Greedy {
                    pc: rpc,
                    min_pos,
                    cur,
                } => {
                    let min_pos = min_pos as usize;
                    let next_lit = match insts.get(rpc as usize + 1) {
                        Some(&Inst::Atom(Atom::Char(x))) => Some(x),
                        _ => None,
                    };
                    let mut q = cur as usize;
                    let mut skipped = 0u64;
                    loop {
                        q = prev_pos(text, q).unwrap_or(min_pos).max(min_pos);
                        match next_lit {
                            Some(x) if q > min_pos && decode(text, q).map(|d| d.0) != Some(x) => {
                                skipped += 1
                            }
                            _ => break,
                        }
                    }
                    self.charge(skipped)?;
                    if q > min_pos {
                        self.push(Frame::Greedy {
                            pc: rpc,
                            min_pos: min_pos as u32,
                            cur: q as u32,
                        })?;
                    }
                    return Ok(Some((rpc as usize + 1, q)));
                }
                Frame::Lazy {
                    pc: rpc,
                    count,
                    cur,
                } => {
                    let Some(&Inst::RepeatOne { atom, min, max, .. }) = insts.get(rpc as usize)
                    else {
                        continue;
                    };
                    if count >= max {
                        continue;
                    }
                    let cur = cur as usize;
                    if let Some((c, len)) = decode(text, cur)
                        && resolve(atom.test(c, &self.prog.sets), mode)?
                    {
                        // Longer extensions were explored (and failed) if this
                        // instruction already ran at the new position.
                        let covered =
                            min <= 1 && self.memo_on && self.seen(rpc as usize, cur + len);
                        if count + 1 < max && !covered {
                            self.push(Frame::Lazy {
                                pc: rpc,
                                count: count + 1,
                                cur: (cur + len) as u32,
                            })?;
                        }
                        return Ok(Some((rpc as usize + 1, cur + len)));
                    }
                }
            }
        }
    }
}

/// What an instruction does next.
enum Step {
    Go(usize, usize),
    Fail,
}

/// Buffers kept per thread between matches (most matches then allocate nothing).
#[derive(Default)]
struct Scratch {
    stack: Vec<Frame>,
    regs: Vec<u32>,
    caps: Vec<u32>,
    snaps: Vec<Vec<u32>>,
    visited: Vec<u64>,
    log: Vec<usize>,
    sub_memo: HashMap<(u32, u32), u32>,
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

fn take_scratch() -> Scratch {
    SCRATCH
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.take()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn return_scratch(mut s: Scratch) {
    // Keep small buffers only.
    const KEEP: usize = 1 << 14;
    if s.stack.capacity() > KEEP {
        s.stack = Vec::new();
    }
    if s.visited.capacity() > KEEP {
        s.visited = Vec::new();
    }
    if s.log.capacity() > KEEP {
        s.log = Vec::new();
    }
    if s.sub_memo.capacity() > KEEP {
        s.sub_memo = HashMap::new();
    }
    s.snaps = Vec::new();
    let _ = SCRATCH.try_with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = Some(s);
        }
    });
}

/// Runs `prog` against the whole of `text`.
pub(crate) fn full_match(prog: &Program, text: &str, step_limit: u64) -> Result<bool, MatchError> {
    if let Some(lit) = &prog.literal {
        return Ok(text == lit);
    }
    if !text.starts_with(prog.prefix.as_str()) {
        return Ok(false);
    }
    let n = text.len();
    if n >= (u32::MAX - 1) as usize {
        return Err(MatchError::StepLimit);
    }
    let memo_ok = !prog.has_backrefs && prog.insts.len().saturating_mul(n + 1) <= MEMO_MAX_BITS;
    let mut s = take_scratch();
    s.stack.clear();
    s.regs.clear();
    s.regs.resize(prog.nregs, NONE);
    s.caps.clear();
    s.caps.resize(prog.nslots, NONE);
    s.log.clear();
    s.sub_memo.clear();
    let mut m = Matcher {
        prog,
        text: text.as_bytes(),
        n,
        steps: 0,
        limit: step_limit.saturating_add(STEPS_PER_BYTE.saturating_mul(n as u64)),
        stack: s.stack,
        regs: s.regs,
        caps: s.caps,
        snaps: Vec::new(),
        visited: s.visited,
        memo_on: false,
        memo_ok,
        log: s.log,
        sub_memo: s.sub_memo,
    };
    let r = m.run(0, 0, Mode::Strict, false);
    return_scratch(Scratch {
        stack: m.stack,
        regs: m.regs,
        caps: m.caps,
        snaps: m.snaps,
        visited: m.visited,
        log: m.log,
        sub_memo: m.sub_memo,
    });
    match r {
        Ok(r) => Ok(r.is_some()),
        Err(Stop::Abort) => Ok(false),
        Err(Stop::Limit) => Err(MatchError::StepLimit),
    }
}
