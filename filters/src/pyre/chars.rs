//! Three-valued character tests.
//!
//! Every character test answers [`Tri::Yes`] or [`Tri::No`] when moor knows what
//! Python 3.11's `re` (str pattern, Unicode mode) answers, and [`Tri::Unknown`] when
//! the answer depends on Unicode tables moor does not carry (`\d` against a
//! non-ASCII char, IGNORECASE folding outside ASCII, ...) or when moor's policy
//! deliberately narrows Python (`\s` against `\x1c`-`\x1f`). The matcher resolves
//! `Unknown` according to the polarity of the region it is in.

/// The answer to "does Python's atom match here?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tri {
    No,
    Yes,
    Unknown,
}

impl Tri {
    pub(crate) fn from_bool(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }

    pub(crate) fn not(self) -> Tri {
        match self {
            Tri::No => Tri::Yes,
            Tri::Yes => Tri::No,
            Tri::Unknown => Tri::Unknown,
        }
    }
}

/// A shorthand class (`\d \D \w \W \s \S`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Digit,
    NotDigit,
    Word,
    NotWord,
    Space,
    NotSpace,
}

/// One member of a character set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetItem {
    /// A code point (may be a surrogate, which no Rust `str` contains).
    Lit(u32),
    /// An inclusive range of code points.
    Range(u32, u32),
    Class(Class),
}

/// A compiled character set with its ASCII answers precomputed.
#[derive(Clone, Debug)]
pub(crate) struct CharSet {
    negated: bool,
    icase: bool,
    ascii: bool,
    items: Vec<SetItem>,
    yes: u128,
    unknown: u128,
}

impl CharSet {
    pub(crate) fn new(negated: bool, icase: bool, ascii: bool, items: Vec<SetItem>) -> CharSet {
        let mut yes = 0u128;
        let mut unknown = 0u128;
        for item in &items {
            let (y, u) = item_masks(*item, icase, ascii);
            yes |= y;
            unknown |= u;
        }
        unknown &= !yes;
        if negated {
            yes = !(yes | unknown);
        }
        CharSet {
            negated,
            icase,
            ascii,
            items,
            yes,
            unknown,
        }
    }

    #[inline]
    pub(crate) fn test(&self, c: u32) -> Tri {
        if c < 128 {
            if self.yes >> c & 1 != 0 {
                Tri::Yes
            } else if self.unknown >> c & 1 != 0 {
                Tri::Unknown
            } else {
                Tri::No
            }
        } else {
            self.slow_test(c)
        }
    }

    fn slow_test(&self, c: u32) -> Tri {
        let mut r = Tri::No;
        for item in &self.items {
            match item_test(*item, c, self.icase, self.ascii) {
                Tri::Yes => {
                    r = Tri::Yes;
                    break;
                }
                Tri::Unknown => r = Tri::Unknown,
                Tri::No => {}
            }
        }
        if self.negated { r.not() } else { r }
    }
}

/// Python's (Unicode-mode) IGNORECASE links exactly these non-ASCII chars to
/// ASCII letters (checked exhaustively against CPython 3.11): U+0130 and U+0131
/// with `i`/`I`, U+017F with `s`/`S`, U+212A with `k`/`K`. Returns the lowercase
/// ASCII partner.
#[inline]
pub(crate) fn special_partner(c: u32) -> Option<u32> {
    match c {
        0x130 | 0x131 => Some(u32::from(b'i')),
        0x17F => Some(u32::from(b's')),
        0x212A => Some(u32::from(b'k')),
        _ => None,
    }
}

#[inline]
pub(crate) fn is_ascii_letter(c: u32) -> bool {
    (0x41..=0x5A).contains(&c) || (0x61..=0x7A).contains(&c)
}

#[inline]
pub(crate) fn ascii_lower(c: u32) -> u32 {
    if (0x41..=0x5A).contains(&c) {
        c + 32
    } else {
        c
    }
}

#[inline]
fn ascii_swapcase(c: u32) -> u32 {
    if (0x41..=0x5A).contains(&c) {
        c + 32
    } else if (0x61..=0x7A).contains(&c) {
        c - 32
    } else {
        c
    }
}

#[inline]
pub(crate) fn is_ascii_word(c: u32) -> bool {
    c < 128 && (is_ascii_letter(c) || (0x30..=0x39).contains(&c) || c == 0x5F)
}

#[inline]
fn is_ascii_space(c: u32) -> bool {
    matches!(c, 0x20 | 0x09 | 0x0A | 0x0B | 0x0C | 0x0D)
}

/// `\x1c`-`\x1f`: whitespace for Python's Unicode `\s`, not for ASCII `\s`.
#[inline]
fn is_info_separator(c: u32) -> bool {
    (0x1C..=0x1F).contains(&c)
}

/// Does a text char `c` equal pattern char `x` under IGNORECASE, given `c != x`?
pub(crate) fn fold_test(x: u32, c: u32, ascii: bool) -> Tri {
    if x < 128 && c < 128 {
        return Tri::from_bool(is_ascii_letter(x) && ascii_lower(x) == ascii_lower(c));
    }
    if ascii {
        // ASCII mode folds ASCII letters only.
        return Tri::No;
    }
    if x < 128 {
        return if special_partner(c) == Some(ascii_lower(x)) && is_ascii_letter(x) {
            Tri::Unknown
        } else {
            Tri::No
        };
    }
    if c < 128 {
        return if special_partner(x) == Some(ascii_lower(c)) && is_ascii_letter(c) {
            Tri::Unknown
        } else {
            Tri::No
        };
    }
    Tri::Unknown
}

pub(crate) fn class_test(k: Class, c: u32, ascii: bool) -> Tri {
    if c < 128 {
        let r = match k {
            Class::Digit => (0x30..=0x39).contains(&c),
            Class::NotDigit => !(0x30..=0x39).contains(&c),
            Class::Word => is_ascii_word(c),
            Class::NotWord => !is_ascii_word(c),
            Class::Space => {
                if is_ascii_space(c) {
                    true
                } else if !ascii && is_info_separator(c) {
                    // Python says yes; moor's policy is `\s` = [ \t\n\r\f\v].
                    return Tri::Unknown;
                } else {
                    false
                }
            }
            Class::NotSpace => !(is_ascii_space(c) || (!ascii && is_info_separator(c))),
        };
        return Tri::from_bool(r);
    }
    if ascii {
        return Tri::from_bool(matches!(
            k,
            Class::NotDigit | Class::NotWord | Class::NotSpace
        ));
    }
    Tri::Unknown
}

/// Bits `lo..=hi` of a 128-bit ASCII mask.
fn range_mask(lo: u32, hi: u32) -> u128 {
    if lo > 127 || hi < lo {
        return 0;
    }
    let hi = hi.min(127);
    let upto = if hi == 127 {
        u128::MAX
    } else {
        (1u128 << (hi + 1)) - 1
    };
    upto & !((1u128 << lo) - 1)
}

const UPPER: u128 = ((1u128 << 26) - 1) << 0x41;
const LOWER: u128 = ((1u128 << 26) - 1) << 0x61;
const DIGITS: u128 = ((1u128 << 10) - 1) << 0x30;
const WORD: u128 = UPPER | LOWER | DIGITS | (1u128 << 0x5F);
const SPACE: u128 = (1u128 << 0x20)
    | (1u128 << 0x09)
    | (1u128 << 0x0A)
    | (1u128 << 0x0B)
    | (1u128 << 0x0C)
    | (1u128 << 0x0D);
const INFO_SEP: u128 = ((1u128 << 4) - 1) << 0x1C;

/// Both cases of the ASCII letters in `m`.
fn fold_mask(m: u128) -> u128 {
    m | ((m & UPPER) << 32) | ((m & LOWER) >> 32)
}

/// Both cases of the ASCII letter a special (non-ASCII) char folds onto.
fn partner_mask(x: u32) -> u128 {
    special_partner(x).map_or(0, |p| fold_mask(1u128 << p))
}

/// `(yes, unknown)` masks of `item_test` over the ASCII chars.
fn item_masks(item: SetItem, icase: bool, ascii: bool) -> (u128, u128) {
    match item {
        SetItem::Lit(x) => {
            if x < 128 {
                let m = 1u128 << x;
                (if icase { fold_mask(m) } else { m }, 0)
            } else if icase && !ascii {
                (0, partner_mask(x))
            } else {
                (0, 0)
            }
        }
        SetItem::Range(lo, hi) => {
            let m = range_mask(lo, hi);
            if !icase {
                return (m, 0);
            }
            let mut unknown = 0;
            if !ascii {
                for x in [0x130u32, 0x131, 0x17F, 0x212A] {
                    if lo <= x && x <= hi {
                        unknown |= partner_mask(x);
                    }
                }
            }
            (fold_mask(m), unknown)
        }
        SetItem::Class(k) => match k {
            Class::Digit => (DIGITS, 0),
            Class::NotDigit => (!DIGITS, 0),
            Class::Word => (WORD, 0),
            Class::NotWord => (!WORD, 0),
            Class::Space => (SPACE, if ascii { 0 } else { INFO_SEP }),
            Class::NotSpace => (!(SPACE | if ascii { 0 } else { INFO_SEP }), 0),
        },
    }
}

fn item_test(item: SetItem, c: u32, icase: bool, ascii: bool) -> Tri {
    match item {
        SetItem::Lit(x) => {
            if c == x {
                Tri::Yes
            } else if icase {
                fold_test(x, c, ascii)
            } else {
                Tri::No
            }
        }
        SetItem::Range(lo, hi) => {
            if lo <= c && c <= hi {
                return Tri::Yes;
            }
            if !icase {
                return Tri::No;
            }
            if c < 128 {
                if is_ascii_letter(c) {
                    let sw = ascii_swapcase(c);
                    if lo <= sw && sw <= hi {
                        return Tri::Yes;
                    }
                    if !ascii {
                        let l = ascii_lower(c);
                        for x in [0x130u32, 0x131, 0x17F, 0x212A] {
                            if special_partner(x) == Some(l) && lo <= x && x <= hi {
                                return Tri::Unknown;
                            }
                        }
                    }
                }
                return Tri::No;
            }
            if ascii {
                return Tri::No;
            }
            if hi >= 128 {
                return Tri::Unknown;
            }
            if let Some(p) = special_partner(c) {
                let up = p - 32;
                if (lo <= p && p <= hi) || (lo <= up && up <= hi) {
                    return Tri::Unknown;
                }
            }
            Tri::No
        }
        SetItem::Class(k) => class_test(k, c, ascii),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_on_ascii_and_beyond() {
        assert_eq!(class_test(Class::Digit, u32::from(b'5'), false), Tri::Yes);
        assert_eq!(class_test(Class::Digit, 0x663, false), Tri::Unknown);
        assert_eq!(class_test(Class::Digit, 0x663, true), Tri::No);
        assert_eq!(class_test(Class::Space, 0x1C, false), Tri::Unknown);
        assert_eq!(class_test(Class::NotSpace, 0x1C, false), Tri::No);
        assert_eq!(class_test(Class::NotSpace, 0x1C, true), Tri::Yes);
        assert_eq!(class_test(Class::NotWord, 0xE9, false), Tri::Unknown);
    }

    #[test]
    fn ascii_masks_agree_with_item_tests() {
        let items = [
            SetItem::Lit(u32::from(b'k')),
            SetItem::Lit(u32::from(b'1')),
            SetItem::Lit(0x212A),
            SetItem::Lit(0x17F),
            SetItem::Lit(0xE9),
            SetItem::Lit(0x130),
            SetItem::Range(u32::from(b'Z'), u32::from(b'a')),
            SetItem::Range(0, 0x7F),
            SetItem::Range(0x20, 0x10FFFF),
            SetItem::Range(0x100, 0x200),
            SetItem::Range(0x2000, 0x2200),
            SetItem::Range(u32::from(b'r'), u32::from(b't')),
            SetItem::Class(Class::Digit),
            SetItem::Class(Class::NotDigit),
            SetItem::Class(Class::Word),
            SetItem::Class(Class::NotWord),
            SetItem::Class(Class::Space),
            SetItem::Class(Class::NotSpace),
        ];
        for a in 0..items.len() {
            for b in a..items.len() {
                for flags in 0..8 {
                    let (neg, icase, ascii) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
                    let set = CharSet::new(neg, icase, ascii, vec![items[a], items[b]]);
                    for c in 0..128 {
                        assert_eq!(
                            set.test(c),
                            set.slow_test(c),
                            "{:?} {flags} char {c}",
                            (items[a], items[b])
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn folding() {
        assert_eq!(fold_test(u32::from(b'k'), u32::from(b'K'), false), Tri::Yes);
        assert_eq!(fold_test(u32::from(b'k'), 0x212A, false), Tri::Unknown);
        assert_eq!(fold_test(u32::from(b'k'), 0x212A, true), Tri::No);
        assert_eq!(fold_test(u32::from(b'k'), 0xE9, false), Tri::No);
        assert_eq!(fold_test(0xE9, 0xC9, false), Tri::Unknown);
        assert_eq!(fold_test(u32::from(b'1'), u32::from(b'!'), false), Tri::No);
        let set = CharSet::new(true, true, false, vec![SetItem::Lit(0x17F)]);
        assert_eq!(set.test(u32::from(b's')), Tri::Unknown);
        assert_eq!(set.test(u32::from(b'a')), Tri::Yes);
    }
}
