//! A transliteration of CPython 3.11's `re/_parser.py` (plus the compile-time
//! look-behind width check of `re/_compiler.py`) producing moor's AST.
//!
//! Error messages and positions follow Python's. Constructs that Python accepts
//! but moor refuses produce [`PyreErrorKind::Unsupported`]; where parsing can go
//! on without guessing, it does, so that a later genuine syntax error is still
//! reported as [`PyreErrorKind::Syntax`].

use super::chars::{Class, SetItem};
use super::{PyreError, PyreErrorKind};

pub(crate) const MAXREPEAT: u64 = 4_294_967_295;
const MAXCODE: u128 = 4_294_967_295;
const MAXWIDTH: u128 = 1 << 64;
/// Repeat counts above this are refused (Python accepts up to `MAXREPEAT - 1`).
pub(crate) const MAX_COUNT: u64 = 10_000;
/// Deepest nesting of parenthesised constructs moor accepts.
pub(crate) const MAX_DEPTH: u32 = 200;

const FLAG_TEMPLATE: u32 = 1;
pub(crate) const FLAG_I: u32 = 2;
const FLAG_L: u32 = 4;
pub(crate) const FLAG_M: u32 = 8;
pub(crate) const FLAG_S: u32 = 16;
const FLAG_U: u32 = 32;
const FLAG_X: u32 = 64;
pub(crate) const FLAG_A: u32 = 256;
const TYPE_FLAGS: u32 = FLAG_A | FLAG_L | FLAG_U;
const GLOBAL_FLAGS: u32 = FLAG_TEMPLATE | 128;

fn flag_value(c: char) -> Option<u32> {
    Some(match c {
        'i' => FLAG_I,
        'L' => FLAG_L,
        'm' => FLAG_M,
        's' => FLAG_S,
        'x' => FLAG_X,
        'a' => FLAG_A,
        't' => FLAG_TEMPLATE,
        'u' => FLAG_U,
        _ => return None,
    })
}

fn combine_flags(flags: u32, add: u32, del: u32) -> u32 {
    let mut f = flags;
    if add & TYPE_FLAGS != 0 {
        f &= !TYPE_FLAGS;
    }
    (f | add) & !del
}

/// Zero-width assertions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum At {
    /// `^` without MULTILINE, `\A`.
    Begin,
    /// `^` with MULTILINE.
    BeginLine,
    /// `$` without MULTILINE.
    End,
    /// `$` with MULTILINE.
    EndLine,
    /// `\Z`.
    EndText,
    Boundary {
        ascii: bool,
    },
    NonBoundary {
        ascii: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RepKind {
    Greedy,
    Lazy,
    Possessive,
}

#[derive(Clone, Debug)]
pub(crate) struct SetNode {
    pub(crate) negated: bool,
    pub(crate) icase: bool,
    pub(crate) ascii: bool,
    pub(crate) items: Vec<SetItem>,
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Empty,
    Lit {
        c: u32,
        icase: bool,
        ascii: bool,
    },
    Set(Box<SetNode>),
    Any {
        dotall: bool,
    },
    At(At),
    Group {
        index: Option<u32>,
        body: Box<Node>,
    },
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        min: u64,
        max: Option<u64>,
        kind: RepKind,
        body: Box<Node>,
    },
    Atomic(Box<Node>),
    Look {
        behind: bool,
        negative: bool,
        body: Box<Node>,
        pos: usize,
    },
    Backref {
        group: u32,
        icase: bool,
        ascii: bool,
    },
}

/// The result of parsing.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) node: Node,
    /// Number of capturing groups.
    pub(crate) groups: u32,
    /// Width `(lo, hi)` of each group's body (index = group number).
    pub(crate) group_widths: Vec<Option<(u128, u128)>>,
    pub(crate) has_backrefs: bool,
    pub(crate) has_lookaround: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Ch(char),
    Esc(char),
}

impl Tok {
    fn len(self) -> usize {
        match self {
            Tok::Ch(_) => 1,
            Tok::Esc(_) => 2,
        }
    }

    fn push_to(self, s: &mut String) {
        match self {
            Tok::Ch(c) => s.push(c),
            Tok::Esc(c) => {
                s.push('\\');
                s.push(c);
            }
        }
    }

    fn text(self) -> String {
        let mut s = String::new();
        self.push_to(&mut s);
        s
    }

    fn is_alpha(self) -> bool {
        matches!(self, Tok::Ch(c) if c.is_alphabetic())
    }
}

fn syntax(message: impl Into<String>, pos: usize) -> PyreError {
    PyreError {
        kind: PyreErrorKind::Syntax,
        pos,
        message: message.into(),
    }
}

fn unsupported(message: impl Into<String>, pos: usize) -> PyreError {
    PyreError {
        kind: PyreErrorKind::Unsupported,
        pos,
        message: message.into(),
    }
}

/// Python's `Tokenizer`: a token is one char, or a backslash and the char after it.
struct Tokenizer {
    chars: Vec<char>,
    index: usize,
    next: Option<Tok>,
}

impl Tokenizer {
    fn new(pattern: &str) -> Result<Tokenizer, PyreError> {
        let mut t = Tokenizer {
            chars: pattern.chars().collect(),
            index: 0,
            next: None,
        };
        t.advance()?;
        Ok(t)
    }

    fn advance(&mut self) -> Result<(), PyreError> {
        let Some(&c) = self.chars.get(self.index) else {
            self.next = None;
            return Ok(());
        };
        if c == '\\' {
            let Some(&d) = self.chars.get(self.index + 1) else {
                return Err(syntax(
                    "bad escape (end of pattern)",
                    self.chars.len().saturating_sub(1),
                ));
            };
            self.index += 2;
            self.next = Some(Tok::Esc(d));
        } else {
            self.index += 1;
            self.next = Some(Tok::Ch(c));
        }
        Ok(())
    }

    fn matches(&mut self, c: char) -> Result<bool, PyreError> {
        if self.next == Some(Tok::Ch(c)) {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn get(&mut self) -> Result<Option<Tok>, PyreError> {
        let t = self.next;
        self.advance()?;
        Ok(t)
    }

    fn next_is(&self, pred: fn(char) -> bool) -> bool {
        matches!(self.next, Some(Tok::Ch(c)) if pred(c))
    }

    fn getwhile(&mut self, n: usize, pred: fn(char) -> bool) -> Result<String, PyreError> {
        let mut s = String::new();
        for _ in 0..n {
            match self.next {
                Some(Tok::Ch(c)) if pred(c) => {
                    s.push(c);
                    self.advance()?;
                }
                _ => break,
            }
        }
        Ok(s)
    }

    fn getuntil(&mut self, terminator: char, name: &str) -> Result<String, PyreError> {
        let mut result = String::new();
        let mut len = 0usize;
        loop {
            let c = self.next;
            self.advance()?;
            match c {
                None => {
                    if result.is_empty() {
                        return Err(self.error(format!("missing {name}"), 0));
                    }
                    return Err(self.error(format!("missing {terminator}, unterminated name"), len));
                }
                Some(Tok::Ch(t)) if t == terminator => {
                    if result.is_empty() {
                        return Err(self.error(format!("missing {name}"), 1));
                    }
                    return Ok(result);
                }
                Some(t) => {
                    t.push_to(&mut result);
                    len += t.len();
                }
            }
        }
    }

    fn tell(&self) -> usize {
        self.index - self.next.map_or(0, Tok::len)
    }

    fn seek(&mut self, index: usize) -> Result<(), PyreError> {
        self.index = index;
        self.advance()
    }

    fn error(&self, message: impl Into<String>, offset: usize) -> PyreError {
        syntax(message, self.tell().saturating_sub(offset))
    }
}

fn is_octdigit(c: char) -> bool {
    ('0'..='7').contains(&c)
}

fn is_hexdigit(c: char) -> bool {
    c.is_ascii_hexdigit()
}

fn is_verbose_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

const SPECIAL_CHARS: &str = ".\\[{()*+?^$|";

fn parse_radix(digits: &str, radix: u32) -> u32 {
    digits.chars().fold(0u32, |acc, d| {
        acc.saturating_mul(radix)
            .saturating_add(d.to_digit(radix).unwrap_or(0))
    })
}

/// Saturating decimal parse (Python ints are unbounded; anything this large is
/// over `MAXREPEAT` anyway).
fn parse_count(digits: &str) -> u64 {
    digits.chars().fold(0u64, |acc, d| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(d.to_digit(10).unwrap_or(0)))
    })
}

struct Parser {
    src: Tokenizer,
    /// `state.flags`: the global flags.
    flags: u32,
    groupdict: Vec<(String, u32)>,
    /// `state.groupwidths`; index 0 is a placeholder for group 0.
    groupwidths: Vec<Option<(u128, u128)>>,
    lookbehindgroups: Option<u32>,
    /// First reason to refuse a pattern Python would accept (reported only if no
    /// syntax error turns up).
    unsupported: Option<PyreError>,
    depth: u32,
    negative_depth: u32,
    /// Groups opened inside a negative lookaround.
    in_negative: Vec<bool>,
    has_backrefs: bool,
    has_lookaround: bool,
}

enum HeadKind {
    Group(Option<u32>),
    Atomic,
    Look { behind: bool, negative: bool },
}

/// What `group_head` found.
struct GroupHead {
    kind: HeadKind,
    start: usize,
    verbose: bool,
    /// Effective flags of the body.
    flags: u32,
    negative: bool,
    restore_lookbehind: bool,
}

enum GroupPlan {
    /// Nothing more to parse (comment, named backreference).
    Done,
    /// Global flags were set; the new verbose setting.
    Global(bool),
    Body(GroupHead),
}

/// The flags in force for a construct: `None` means the top level, where the
/// (possibly still growing) global flags apply.
type Scope = Option<u32>;

impl Parser {
    fn groups(&self) -> usize {
        self.groupwidths.len()
    }

    fn defer(&mut self, e: PyreError) {
        if self.unsupported.is_none() {
            self.unsupported = Some(e);
        }
    }

    fn eff(&self, scope: Scope) -> u32 {
        scope.unwrap_or(self.flags)
    }

    fn checkgroup(&self, gid: usize) -> bool {
        matches!(self.groupwidths.get(gid), Some(Some(_)))
    }

    fn checklookbehindgroup(&self, gid: usize) -> Result<(), PyreError> {
        if let Some(lb) = self.lookbehindgroups {
            if !self.checkgroup(gid) {
                return Err(self.src.error("cannot refer to an open group", 0));
            }
            if gid >= lb as usize {
                return Err(self.src.error(
                    "cannot refer to group defined in the same lookbehind subpattern",
                    0,
                ));
            }
        }
        Ok(())
    }

    /// `Tokenizer.checkgroupname`: Python's `str.isidentifier()`, exact for ASCII
    /// names; moor refuses non-ASCII names rather than carry Unicode's XID tables.
    fn checkgroupname(&self, name: &str, offset: usize) -> Result<(), PyreError> {
        let nlen = name.chars().count();
        if !name.is_ascii() {
            return Err(unsupported(
                format!("non-ASCII group name {name:?} is not supported"),
                self.src.tell().saturating_sub(nlen + offset),
            ));
        }
        let mut cs = name.chars();
        let ok = match cs.next() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(self.src.error(
                format!("bad character in group name '{name}'"),
                nlen + offset,
            ))
        }
    }

    fn note_backref(&mut self, gid: usize, pos: usize) {
        self.has_backrefs = true;
        if self.negative_depth > 0 {
            self.defer(unsupported(
                "backreference inside a negative lookaround is not supported",
                pos,
            ));
        } else if self.in_negative.get(gid).copied().unwrap_or(false) {
            self.defer(unsupported(
                "backreference to a group inside a negative lookaround is not supported",
                pos,
            ));
        }
    }

    fn opengroup(&mut self, name: Option<&str>, offset: usize) -> Result<u32, PyreError> {
        let gid = self.groups();
        if let Some(name) = name
            && let Some((_, ogid)) = self.groupdict.iter().find(|(n, _)| n == name)
        {
            return Err(self.src.error(
                format!("redefinition of group name '{name}' as group {gid}; was group {ogid}"),
                offset,
            ));
        }
        let gid32 = u32::try_from(gid).map_err(|_| self.src.error("too many groups", offset))?;
        self.groupwidths.push(None);
        self.in_negative.push(self.negative_depth > 0);
        if let Some(name) = name {
            self.groupdict.push((name.to_owned(), gid32));
        }
        Ok(gid32)
    }

    fn hex_escape(&mut self, c: char, ndigits: usize) -> Result<u32, PyreError> {
        let digits = self.src.getwhile(ndigits, is_hexdigit)?;
        let escape = format!("\\{c}{digits}");
        let elen = 2 + digits.chars().count();
        if digits.len() != ndigits {
            return Err(self.src.error(format!("incomplete escape {escape}"), elen));
        }
        let v = parse_radix(&digits, 16);
        if c == 'U' && v > 0x10FFFF {
            return Err(self.src.error(format!("bad escape {escape}"), elen));
        }
        Ok(v)
    }

    fn simple_escape(c: char) -> Option<u32> {
        Some(match c {
            'a' => 7,
            'b' => 8,
            'f' => 12,
            'n' => 10,
            'r' => 13,
            't' => 9,
            'v' => 11,
            '\\' => 92,
            _ => return None,
        })
    }

    fn class_of(c: char) -> Option<Class> {
        Some(match c {
            'd' => Class::Digit,
            'D' => Class::NotDigit,
            's' => Class::Space,
            'S' => Class::NotSpace,
            'w' => Class::Word,
            'W' => Class::NotWord,
            _ => return None,
        })
    }

    fn named_escape(&self) -> PyreError {
        unsupported(
            "\\N{...} escapes are not supported",
            self.src.tell().saturating_sub(2),
        )
    }

    /// `_class_escape`.
    fn class_escape(&mut self, c: char) -> Result<SetItem, PyreError> {
        if let Some(v) = Self::simple_escape(c) {
            return Ok(SetItem::Lit(v));
        }
        if let Some(k) = Self::class_of(c) {
            return Ok(SetItem::Class(k));
        }
        match c {
            'x' => Ok(SetItem::Lit(self.hex_escape(c, 2)?)),
            'u' => Ok(SetItem::Lit(self.hex_escape(c, 4)?)),
            'U' => Ok(SetItem::Lit(self.hex_escape(c, 8)?)),
            'N' => Err(self.named_escape()),
            '0'..='7' => {
                let more = self.src.getwhile(2, is_octdigit)?;
                let mut digits = String::from(c);
                digits.push_str(&more);
                let v = parse_radix(&digits, 8);
                if v > 0o377 {
                    return Err(self.src.error(
                        format!("octal escape value \\{digits} outside of range 0-0o377"),
                        1 + digits.len(),
                    ));
                }
                Ok(SetItem::Lit(v))
            }
            _ if c.is_ascii_alphanumeric() => Err(self.src.error(format!("bad escape \\{c}"), 2)),
            _ => Ok(SetItem::Lit(u32::from(c))),
        }
    }

    /// `_escape`.
    fn escape(&mut self, c: char, scope: Scope) -> Result<Node, PyreError> {
        let f = self.eff(scope);
        let icase = f & FLAG_I != 0;
        let ascii = f & FLAG_A != 0;
        let lit = |v: u32| Node::Lit { c: v, icase, ascii };
        match c {
            'A' => return Ok(Node::At(At::Begin)),
            'b' => return Ok(Node::At(At::Boundary { ascii })),
            'B' => return Ok(Node::At(At::NonBoundary { ascii })),
            'Z' => return Ok(Node::At(At::EndText)),
            _ => {}
        }
        if let Some(k) = Self::class_of(c) {
            return Ok(Node::Set(Box::new(SetNode {
                negated: false,
                icase,
                ascii,
                items: vec![SetItem::Class(k)],
            })));
        }
        if c != 'b'
            && let Some(v) = Self::simple_escape(c)
        {
            return Ok(lit(v));
        }
        match c {
            'x' => Ok(lit(self.hex_escape(c, 2)?)),
            'u' => Ok(lit(self.hex_escape(c, 4)?)),
            'U' => Ok(lit(self.hex_escape(c, 8)?)),
            'N' => Err(self.named_escape()),
            '0' => {
                let more = self.src.getwhile(2, is_octdigit)?;
                Ok(lit(parse_radix(&more, 8)))
            }
            '1'..='9' => {
                let mut digits = String::from(c);
                if let Some(Tok::Ch(d)) = self.src.next
                    && d.is_ascii_digit()
                {
                    self.src.get()?;
                    digits.push(d);
                    if is_octdigit(c) && is_octdigit(d) && self.src.next_is(is_octdigit) {
                        if let Some(Tok::Ch(e)) = self.src.get()? {
                            digits.push(e);
                        }
                        let v = parse_radix(&digits, 8);
                        if v > 0o377 {
                            return Err(self.src.error(
                                format!("octal escape value \\{digits} outside of range 0-0o377"),
                                1 + digits.len(),
                            ));
                        }
                        return Ok(lit(v));
                    }
                }
                let group = parse_radix(&digits, 10) as usize;
                let elen = 1 + digits.len();
                if group < self.groups() {
                    if !self.checkgroup(group) {
                        return Err(self.src.error("cannot refer to an open group", elen));
                    }
                    self.checklookbehindgroup(group)?;
                    self.note_backref(group, self.src.tell().saturating_sub(elen));
                    return Ok(Node::Backref {
                        group: group as u32,
                        icase,
                        ascii,
                    });
                }
                Err(self
                    .src
                    .error(format!("invalid group reference {group}"), elen - 1))
            }
            _ if c.is_ascii_alphabetic() => Err(self.src.error(format!("bad escape \\{c}"), 2)),
            _ => Ok(lit(u32::from(c))),
        }
    }

    /// `_parse_sub`: an alternation.
    fn parse_sub(&mut self, verbose: bool, nested: u32, scope: Scope) -> Result<Node, PyreError> {
        let mut items = Vec::new();
        let mut verbose = verbose;
        loop {
            let first = nested == 0 && items.is_empty();
            items.push(self.parse_seq(verbose, nested + 1, first, scope)?);
            if !self.src.matches('|')? {
                break;
            }
            if nested == 0 {
                verbose = self.flags & FLAG_X != 0;
            }
        }
        if items.len() == 1 {
            Ok(items.pop().unwrap_or(Node::Empty))
        } else {
            Ok(Node::Alt(items))
        }
    }

    fn enter(&mut self) -> Result<(), PyreError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(unsupported(
                format!("nesting deeper than {MAX_DEPTH} levels is not supported"),
                self.src.tell(),
            ));
        }
        Ok(())
    }

    /// `_parse`: a sequence. Kept small: it is on the recursion path.
    fn parse_seq(
        &mut self,
        verbose: bool,
        nested: u32,
        first: bool,
        scope: Scope,
    ) -> Result<Node, PyreError> {
        let mut items: Vec<Node> = Vec::new();
        let mut verbose = verbose;
        loop {
            let this = match self.src.next {
                None | Some(Tok::Ch('|' | ')')) => break,
                Some(t) => t,
            };
            self.src.get()?;
            if this == Tok::Ch('(') {
                if let Some(v) = self.parse_group(&mut items, verbose, nested, first, scope)? {
                    verbose = v;
                }
            } else {
                self.parse_item(this, verbose, &mut items, scope)?;
            }
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    /// One token of `_parse` other than `(`.
    #[inline(never)]
    fn parse_item(
        &mut self,
        this: Tok,
        verbose: bool,
        items: &mut Vec<Node>,
        scope: Scope,
    ) -> Result<(), PyreError> {
        if verbose && let Tok::Ch(c) = this {
            if is_verbose_space(c) {
                return Ok(());
            }
            if c == '#' {
                loop {
                    match self.src.get()? {
                        None | Some(Tok::Ch('\n')) => return Ok(()),
                        Some(_) => {}
                    }
                }
            }
        }
        let c = match this {
            Tok::Esc(e) => {
                let node = self.escape(e, scope)?;
                items.push(node);
                return Ok(());
            }
            Tok::Ch(c) => c,
        };
        let f = self.eff(scope);
        let lit = |c: char| Node::Lit {
            c: u32::from(c),
            icase: f & FLAG_I != 0,
            ascii: f & FLAG_A != 0,
        };
        if !SPECIAL_CHARS.contains(c) {
            items.push(lit(c));
            return Ok(());
        }
        match c {
            '[' => {
                let node = self.parse_set(scope)?;
                items.push(node);
            }
            '*' | '+' | '?' | '{' => {
                if c == '{' && self.src.next == Some(Tok::Ch('}')) {
                    items.push(lit('{'));
                } else {
                    self.parse_repeat(c, items, scope)?;
                }
            }
            '.' => items.push(Node::Any {
                dotall: f & FLAG_S != 0,
            }),
            '^' => items.push(Node::At(if f & FLAG_M != 0 {
                At::BeginLine
            } else {
                At::Begin
            })),
            '$' => items.push(Node::At(if f & FLAG_M != 0 {
                At::EndLine
            } else {
                At::End
            })),
            _ => {
                return Err(self
                    .src
                    .error(format!("unsupported special character {c:?}"), 1));
            }
        }
        Ok(())
    }

    fn parse_set(&mut self, scope: Scope) -> Result<Node, PyreError> {
        let here = self.src.tell().saturating_sub(1);
        let mut items: Vec<SetItem> = Vec::new();
        let negate = self.src.matches('^')?;
        loop {
            let Some(this) = self.src.get()? else {
                return Err(self.src.error(
                    "unterminated character set",
                    self.src.tell().saturating_sub(here),
                ));
            };
            if this == Tok::Ch(']') && !items.is_empty() {
                break;
            }
            let code1 = match this {
                Tok::Esc(e) => self.class_escape(e)?,
                Tok::Ch(c) => SetItem::Lit(u32::from(c)),
            };
            if self.src.matches('-')? {
                let Some(that) = self.src.get()? else {
                    return Err(self.src.error(
                        "unterminated character set",
                        self.src.tell().saturating_sub(here),
                    ));
                };
                if that == Tok::Ch(']') {
                    items.push(code1);
                    items.push(SetItem::Lit(u32::from('-')));
                    break;
                }
                let code2 = match that {
                    Tok::Esc(e) => self.class_escape(e)?,
                    Tok::Ch(c) => SetItem::Lit(u32::from(c)),
                };
                let msg = || format!("bad character range {}-{}", this.text(), that.text());
                match (code1, code2) {
                    (SetItem::Lit(lo), SetItem::Lit(hi)) if lo <= hi => {
                        items.push(SetItem::Range(lo, hi))
                    }
                    _ => return Err(self.src.error(msg(), this.len() + 1 + that.len())),
                }
            } else {
                items.push(code1);
            }
        }
        let f = self.eff(scope);
        let icase = f & FLAG_I != 0;
        let ascii = f & FLAG_A != 0;
        if !negate
            && items.len() == 1
            && let Some(SetItem::Lit(c)) = items.first()
        {
            return Ok(Node::Lit {
                c: *c,
                icase,
                ascii,
            });
        }
        Ok(Node::Set(Box::new(SetNode {
            negated: negate,
            icase,
            ascii,
            items,
        })))
    }

    fn parse_repeat(
        &mut self,
        this: char,
        items: &mut Vec<Node>,
        scope: Scope,
    ) -> Result<(), PyreError> {
        let here = self.src.tell();
        let (min, max) = match this {
            '?' => (0u64, Some(1u64)),
            '*' => (0, None),
            '+' => (1, None),
            _ => {
                // '{'
                let mut lo = String::new();
                let mut hi = String::new();
                while let Some(Tok::Ch(d)) = self.src.next {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    lo.push(d);
                    self.src.get()?;
                }
                if self.src.matches(',')? {
                    while let Some(Tok::Ch(d)) = self.src.next {
                        if !d.is_ascii_digit() {
                            break;
                        }
                        hi.push(d);
                        self.src.get()?;
                    }
                } else {
                    hi.clone_from(&lo);
                }
                if !self.src.matches('}')? {
                    let f = self.eff(scope);
                    items.push(Node::Lit {
                        c: u32::from('{'),
                        icase: f & FLAG_I != 0,
                        ascii: f & FLAG_A != 0,
                    });
                    self.src.seek(here)?;
                    return Ok(());
                }
                let mut min = 0u64;
                let mut max = None;
                if !lo.is_empty() {
                    min = parse_count(&lo);
                    if min >= MAXREPEAT {
                        return Err(syntax("the repetition number is too large", here));
                    }
                }
                if !hi.is_empty() {
                    let m = parse_count(&hi);
                    if m >= MAXREPEAT {
                        return Err(syntax("the repetition number is too large", here));
                    }
                    if m < min {
                        return Err(self.src.error(
                            "min repeat greater than max repeat",
                            self.src.tell().saturating_sub(here),
                        ));
                    }
                    max = Some(m);
                }
                (min, max)
            }
        };
        let offset = self.src.tell().saturating_sub(here) + 1;
        let item = match items.pop() {
            None => return Err(self.src.error("nothing to repeat", offset)),
            Some(Node::At(a)) => {
                items.push(Node::At(a));
                return Err(self.src.error("nothing to repeat", offset));
            }
            Some(n @ Node::Repeat { .. }) => {
                items.push(n);
                return Err(self.src.error("multiple repeat", offset));
            }
            Some(n) => n,
        };
        let kind = if self.src.matches('?')? {
            RepKind::Lazy
        } else if self.src.matches('+')? {
            RepKind::Possessive
        } else {
            RepKind::Greedy
        };
        if min > MAX_COUNT || max.is_some_and(|m| m > MAX_COUNT) {
            self.defer(unsupported(
                format!("repeat counts above {MAX_COUNT} are not supported"),
                here,
            ));
        }
        if kind == RepKind::Possessive && has_capture(&item) {
            // CPython 3.11's POSSESSIVE_REPEAT mis-tracks the spans of groups in
            // its body (it can even raise SystemError while matching).
            self.defer(unsupported(
                "possessive repeat of a capturing group is not supported",
                here,
            ));
        }
        items.push(Node::Repeat {
            min,
            max,
            kind,
            body: Box::new(item),
        });
        Ok(())
    }

    /// Parses after `(`. Returns `Some(verbose)` when global flags changed it.
    /// Kept small: it is on the recursion path.
    fn parse_group(
        &mut self,
        items: &mut Vec<Node>,
        verbose: bool,
        nested: u32,
        first: bool,
        scope: Scope,
    ) -> Result<Option<bool>, PyreError> {
        let plan = self.group_head(items, verbose, first, scope)?;
        let GroupPlan::Body(head) = plan else {
            return Ok(match plan {
                GroupPlan::Global(v) => Some(v),
                _ => None,
            });
        };
        self.enter()?;
        if head.negative {
            self.negative_depth += 1;
        }
        let p = self.parse_sub(head.verbose, nested + 1, Some(head.flags))?;
        self.group_tail(items, &head, p)?;
        Ok(None)
    }

    /// Everything of a group before its body.
    #[inline(never)]
    fn group_head(
        &mut self,
        items: &mut Vec<Node>,
        verbose: bool,
        first: bool,
        scope: Scope,
    ) -> Result<GroupPlan, PyreError> {
        let start = self.src.tell().saturating_sub(1);
        let mut capture = true;
        let mut atomic = false;
        let mut name: Option<String> = None;
        let mut add = 0u32;
        let mut del = 0u32;
        if self.src.matches('?')? {
            let Some(ch) = self.src.get()? else {
                return Err(self.src.error("unexpected end of pattern", 0));
            };
            match ch {
                Tok::Ch('P') => {
                    if self.src.matches('<')? {
                        let n = self.src.getuntil('>', "group name")?;
                        self.checkgroupname(&n, 1)?;
                        name = Some(n);
                    } else if self.src.matches('=')? {
                        let n = self.src.getuntil(')', "group name")?;
                        self.checkgroupname(&n, 1)?;
                        let nlen = n.chars().count() + 1;
                        let Some(gid) = self
                            .groupdict
                            .iter()
                            .find(|(k, _)| *k == n)
                            .map(|(_, g)| *g)
                        else {
                            return Err(self.src.error(format!("unknown group name '{n}'"), nlen));
                        };
                        if !self.checkgroup(gid as usize) {
                            return Err(self.src.error("cannot refer to an open group", nlen));
                        }
                        self.checklookbehindgroup(gid as usize)?;
                        self.note_backref(gid as usize, start);
                        let f = self.eff(scope);
                        items.push(Node::Backref {
                            group: gid,
                            icase: f & FLAG_I != 0,
                            ascii: f & FLAG_A != 0,
                        });
                        return Ok(GroupPlan::Done);
                    } else {
                        let Some(t) = self.src.get()? else {
                            return Err(self.src.error("unexpected end of pattern", 0));
                        };
                        return Err(self
                            .src
                            .error(format!("unknown extension ?P{}", t.text()), t.len() + 2));
                    }
                }
                Tok::Ch(':') => capture = false,
                Tok::Ch('#') => {
                    loop {
                        if self.src.next.is_none() {
                            return Err(self.src.error(
                                "missing ), unterminated comment",
                                self.src.tell().saturating_sub(start),
                            ));
                        }
                        if self.src.get()? == Some(Tok::Ch(')')) {
                            break;
                        }
                    }
                    return Ok(GroupPlan::Done);
                }
                Tok::Ch(c @ ('=' | '!' | '<')) => {
                    let mut negative = c == '!';
                    let mut behind = false;
                    let mut restore_lookbehind = false;
                    if c == '<' {
                        match self.src.get()? {
                            None => return Err(self.src.error("unexpected end of pattern", 0)),
                            Some(Tok::Ch(d @ ('=' | '!'))) => negative = d == '!',
                            Some(t) => {
                                return Err(self.src.error(
                                    format!("unknown extension ?<{}", t.text()),
                                    t.len() + 2,
                                ));
                            }
                        }
                        behind = true;
                        if self.lookbehindgroups.is_none() {
                            self.lookbehindgroups = Some(self.groups() as u32);
                            restore_lookbehind = true;
                        }
                    }
                    return Ok(GroupPlan::Body(GroupHead {
                        kind: HeadKind::Look { behind, negative },
                        start,
                        verbose,
                        flags: self.eff(scope),
                        negative,
                        restore_lookbehind,
                    }));
                }
                Tok::Ch('(') => {
                    return Err(unsupported(
                        "conditional groups (?(...)...) are not supported",
                        start,
                    ));
                }
                Tok::Ch('>') => {
                    capture = false;
                    atomic = true;
                }
                Tok::Ch(c) if flag_value(c).is_some() || c == '-' => match self.parse_flags(c)? {
                    None => {
                        if !first || !items.is_empty() {
                            return Err(self.src.error(
                                "global flags not at the start of the expression",
                                self.src.tell().saturating_sub(start),
                            ));
                        }
                        return Ok(GroupPlan::Global(self.flags & FLAG_X != 0));
                    }
                    Some((a, d)) => {
                        add = a;
                        del = d;
                        capture = false;
                    }
                },
                t => {
                    return Err(self
                        .src
                        .error(format!("unknown extension ?{}", t.text()), t.len() + 1));
                }
            }
        }
        let group = if capture {
            let offset = name.as_ref().map_or(0, |n| n.chars().count() + 1);
            Some(self.opengroup(name.as_deref(), offset)?)
        } else {
            None
        };
        let kind = if atomic {
            HeadKind::Atomic
        } else {
            HeadKind::Group(group)
        };
        Ok(GroupPlan::Body(GroupHead {
            kind,
            start,
            verbose: (verbose || add & FLAG_X != 0) && del & FLAG_X == 0,
            flags: combine_flags(self.eff(scope), add, del),
            negative: false,
            restore_lookbehind: false,
        }))
    }

    /// Everything of a group after its body.
    #[inline(never)]
    fn group_tail(
        &mut self,
        items: &mut Vec<Node>,
        head: &GroupHead,
        p: Node,
    ) -> Result<(), PyreError> {
        self.depth -= 1;
        if head.negative {
            self.negative_depth -= 1;
        }
        if head.restore_lookbehind {
            self.lookbehindgroups = None;
        }
        if !self.src.matches(')')? {
            return Err(self.src.error(
                "missing ), unterminated subpattern",
                self.src.tell().saturating_sub(head.start),
            ));
        }
        let node = match head.kind {
            HeadKind::Look { behind, negative } => {
                self.has_lookaround = true;
                Node::Look {
                    behind,
                    negative,
                    body: Box::new(p),
                    pos: head.start,
                }
            }
            HeadKind::Atomic => Node::Atomic(Box::new(p)),
            HeadKind::Group(group) => {
                if let Some(g) = group {
                    let w = width(&p, &self.groupwidths);
                    if let Some(slot) = self.groupwidths.get_mut(g as usize) {
                        *slot = Some(w);
                    }
                }
                Node::Group {
                    index: group,
                    body: Box::new(p),
                }
            }
        };
        items.push(node);
        Ok(())
    }

    /// `_parse_flags`. `None` = global flags (already merged into `self.flags`).
    fn parse_flags(&mut self, first: char) -> Result<Option<(u32, u32)>, PyreError> {
        let mut add = 0u32;
        let mut del = 0u32;
        let mut ch = Tok::Ch(first);
        if first != '-' {
            loop {
                let c = match ch {
                    Tok::Ch(c) => c,
                    Tok::Esc(_) => return Err(self.src.error("missing -, : or )", ch.len())),
                };
                let flag = flag_value(c).unwrap_or(0);
                if c == 'L' {
                    return Err(self.src.error(
                        "bad inline flags: cannot use 'L' flag with a str pattern",
                        0,
                    ));
                }
                add |= flag;
                if flag & TYPE_FLAGS != 0 && add & TYPE_FLAGS != flag {
                    return Err(self.src.error(
                        "bad inline flags: flags 'a', 'u' and 'L' are incompatible",
                        0,
                    ));
                }
                let Some(next) = self.src.get()? else {
                    return Err(self.src.error("missing -, : or )", 0));
                };
                ch = next;
                match ch {
                    Tok::Ch(')' | '-' | ':') => break,
                    Tok::Ch(c) if flag_value(c).is_some() => {}
                    t => {
                        let msg = if t.is_alpha() {
                            "unknown flag"
                        } else {
                            "missing -, : or )"
                        };
                        return Err(self.src.error(msg, t.len()));
                    }
                }
            }
        }
        if ch == Tok::Ch(')') {
            self.flags |= add;
            if add & FLAG_TEMPLATE != 0 {
                self.defer(unsupported(
                    "the TEMPLATE flag (?t) is not supported",
                    self.src.tell(),
                ));
            }
            return Ok(None);
        }
        if add & GLOBAL_FLAGS != 0 {
            return Err(self
                .src
                .error("bad inline flags: cannot turn on global flag", 1));
        }
        if ch == Tok::Ch('-') {
            let Some(next) = self.src.get()? else {
                return Err(self.src.error("missing flag", 0));
            };
            ch = next;
            loop {
                let flag = match ch {
                    Tok::Ch(c) if flag_value(c).is_some() => flag_value(c).unwrap_or(0),
                    t => {
                        let msg = if t.is_alpha() {
                            "unknown flag"
                        } else {
                            "missing flag"
                        };
                        return Err(self.src.error(msg, t.len()));
                    }
                };
                if flag & TYPE_FLAGS != 0 {
                    return Err(self.src.error(
                        "bad inline flags: cannot turn off flags 'a', 'u' and 'L'",
                        0,
                    ));
                }
                del |= flag;
                let Some(next) = self.src.get()? else {
                    return Err(self.src.error("missing :", 0));
                };
                ch = next;
                match ch {
                    Tok::Ch(':') => break,
                    Tok::Ch(c) if flag_value(c).is_some() => {}
                    t => {
                        let msg = if t.is_alpha() {
                            "unknown flag"
                        } else {
                            "missing :"
                        };
                        return Err(self.src.error(msg, t.len()));
                    }
                }
            }
        }
        if del & GLOBAL_FLAGS != 0 {
            return Err(self
                .src
                .error("bad inline flags: cannot turn off global flag", 1));
        }
        if add & del != 0 {
            return Err(self
                .src
                .error("bad inline flags: flag turned on and off", 1));
        }
        Ok(Some((add, del)))
    }
}

fn has_capture(node: &Node) -> bool {
    match node {
        Node::Group { index: Some(_), .. } => true,
        Node::Empty
        | Node::Lit { .. }
        | Node::Set(_)
        | Node::Any { .. }
        | Node::At(_)
        | Node::Backref { .. } => false,
        Node::Group { body, .. }
        | Node::Atomic(body)
        | Node::Repeat { body, .. }
        | Node::Look { body, .. } => has_capture(body),
        Node::Concat(items) | Node::Alt(items) => items.iter().any(has_capture),
    }
}

/// `SubPattern.getwidth()`, saturating at Python's `MAXWIDTH`.
pub(crate) fn width(node: &Node, groupwidths: &[Option<(u128, u128)>]) -> (u128, u128) {
    let sat = |x: u128| x.min(MAXWIDTH);
    match node {
        Node::Empty | Node::At(_) | Node::Look { .. } => (0, 0),
        Node::Lit { .. } | Node::Set(_) | Node::Any { .. } => (1, 1),
        Node::Group { body, .. } | Node::Atomic(body) => width(body, groupwidths),
        Node::Concat(items) => {
            let (mut lo, mut hi) = (0u128, 0u128);
            for it in items {
                let (l, h) = width(it, groupwidths);
                lo = sat(lo.saturating_add(l));
                hi = sat(hi.saturating_add(h));
            }
            (lo, hi)
        }
        Node::Alt(items) => {
            let (mut lo, mut hi) = (MAXWIDTH, 0u128);
            for it in items {
                let (l, h) = width(it, groupwidths);
                lo = lo.min(l);
                hi = hi.max(h);
            }
            (lo, hi)
        }
        Node::Repeat { min, max, body, .. } => {
            let (i, j) = width(body, groupwidths);
            let lo = sat(i.saturating_mul(u128::from(*min)));
            let hi = match max {
                None if j > 0 => MAXWIDTH,
                None => 0,
                Some(m) => sat(j.saturating_mul(u128::from(*m))),
            };
            (lo, hi)
        }
        Node::Backref { group, .. } => groupwidths
            .get(*group as usize)
            .copied()
            .flatten()
            .unwrap_or((0, 0)),
    }
}

/// The look-behind checks of `_compiler._compile`.
fn check_lookbehinds(node: &Node, groupwidths: &[Option<(u128, u128)>]) -> Result<(), PyreError> {
    match node {
        Node::Empty
        | Node::Lit { .. }
        | Node::Set(_)
        | Node::Any { .. }
        | Node::At(_)
        | Node::Backref { .. } => Ok(()),
        Node::Group { body, .. } | Node::Atomic(body) | Node::Repeat { body, .. } => {
            check_lookbehinds(body, groupwidths)
        }
        Node::Concat(items) | Node::Alt(items) => {
            for it in items {
                check_lookbehinds(it, groupwidths)?;
            }
            Ok(())
        }
        Node::Look {
            behind, body, pos, ..
        } => {
            if *behind {
                let (lo, hi) = width(body, groupwidths);
                if lo > MAXCODE {
                    return Err(syntax("looks too much behind", *pos));
                }
                if lo != hi {
                    return Err(syntax("look-behind requires fixed-width pattern", *pos));
                }
            }
            check_lookbehinds(body, groupwidths)
        }
    }
}

pub(crate) fn parse(pattern: &str) -> Result<Parsed, PyreError> {
    let mut p = Parser {
        src: Tokenizer::new(pattern)?,
        flags: 0,
        groupdict: Vec::new(),
        groupwidths: vec![None],
        lookbehindgroups: None,
        unsupported: None,
        depth: 0,
        negative_depth: 0,
        in_negative: vec![false],
        has_backrefs: false,
        has_lookaround: false,
    };
    let node = p.parse_sub(false, 0, None)?;
    if p.flags & FLAG_A != 0 && p.flags & FLAG_U != 0 {
        return Err(syntax("ASCII and UNICODE flags are incompatible", 0));
    }
    if p.src.next.is_some() {
        return Err(p.src.error("unbalanced parenthesis", 0));
    }
    check_lookbehinds(&node, &p.groupwidths)?;
    if let Some(e) = p.unsupported {
        return Err(e);
    }
    let groups = u32::try_from(p.groupwidths.len().saturating_sub(1)).unwrap_or(u32::MAX);
    Ok(Parsed {
        node,
        groups,
        group_widths: p.groupwidths,
        has_backrefs: p.has_backrefs,
        has_lookaround: p.has_lookaround,
    })
}
