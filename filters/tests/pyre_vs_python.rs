//! Differential test of `moor_filters::pyre` against the real CPython `re` on
//! this machine (python3 is required; the test fails without it).
//!
//! Checks, over a few thousand generated (pattern, text) pairs:
//! 1. compile-error parity: Python error => moor error; moor `Syntax` => Python error;
//! 2. soundness: moor full match => Python `re.match(p + '$', s)` is truthy;
//! 3. completeness on the safe domain (ASCII text without `\n` or `\x1c`-`\x1f`):
//!    moor == Python `re.fullmatch(p, s, re.ASCII)`;
//! 4. error positions agree where both reject with a position.
//!
//! For longer ad-hoc runs: `PYRE_DIFF_N` (number of generated patterns),
//! `PYRE_DIFF_SEED`, `PYRE_DIFF_AB=1` (patterns over `a`/`b` only, all texts of
//! length <= 4: stresses backtracking, captures and backreferences) and
//! `PYRE_DIFF_JUNK=1` (random token soup: stresses compile errors), e.g.
//! `PYRE_DIFF_N=60000 cargo test --release -p moor-filters --test pyre_vs_python -- --nocapture`.

use std::io::Write;
use std::process::{Command, Stdio};

use moor_filters::pyre::{PyreErrorKind, Regex};

const PY: &str = r#"
import json, re, sys, warnings
warnings.simplefilter("ignore")
data = json.load(sys.stdin)
out = [list(sys.version_info[:2])]
for p, texts in data:
    r = {"err": None, "pos": None, "m": [], "f": []}
    try:
        re.compile(p)
    except re.error as e:
        r["err"] = "re.error: " + str(e.msg)
        r["pos"] = e.pos
    except Exception as e:
        r["err"] = type(e).__name__ + ": " + str(e)
    if r["err"] is None:
        try:
            cm = re.compile(p + "$")
        except Exception:
            cm = None
        try:
            cf = re.compile(p, re.ASCII)
        except Exception:
            cf = None
        for s in texts:
            try:
                r["m"].append(bool(cm.match(s)) if cm is not None else False)
            except Exception as e:
                r["m"].append(None)
                r.setdefault("raised", []).append(type(e).__name__ + ": " + str(e))
            try:
                r["f"].append(bool(cf.fullmatch(s)) if cf is not None else None)
            except Exception:
                r["f"].append(None)
    out.append(r)
json.dump(out, sys.stdout)
"#;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// Text alphabet: ASCII, newline, Unicode letters and digits, fold specials.
const TEXT_CHARS: &[char] = &[
    'a', 'b', 'c', 'x', 'A', 'B', 'X', 'k', 's', 'i', '0', '1', '9', '/', '.', '-', '_', ' ', '\n',
    '\t', 'é', 'É', '\u{663}', 'ß', '\u{212a}', '\u{17f}', '\u{130}', '\u{1c}', '\u{b2}', '\u{a0}',
    '\u{85}',
];
const LIT_CHARS: &[char] = &[
    'a', 'b', 'c', 'x', 'A', 'k', 's', 'i', '0', '1', '/', '-', '_', ' ', 'é', '\u{663}',
];

#[derive(Clone, Debug)]
enum G {
    /// Rendered text and the chars it matches (for sampling).
    Atom(String, Vec<char>),
    Raw(String),
    Anchor(&'static str),
    Group(String, Option<usize>, Box<G>),
    Look(&'static str, Box<G>),
    Concat(Vec<G>),
    Alt(Vec<G>),
    Rep(Box<G>, String, usize, usize),
    Backref(String, usize),
}

fn render(g: &G, out: &mut String) {
    match g {
        G::Atom(s, _) | G::Raw(s) => out.push_str(s),
        G::Anchor(s) => out.push_str(s),
        G::Group(open, _, inner) => {
            out.push_str(open);
            render(inner, out);
            out.push(')');
        }
        G::Look(open, inner) => {
            out.push_str(open);
            render(inner, out);
            out.push(')');
        }
        G::Concat(v) => v.iter().for_each(|x| render(x, out)),
        G::Alt(v) => {
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                render(x, out);
            }
        }
        G::Rep(inner, q, _, _) => {
            render(inner, out);
            out.push_str(q);
        }
        G::Backref(s, _) => out.push_str(s),
    }
}

fn sample(g: &G, rng: &mut Rng, caps: &mut Vec<Option<String>>, out: &mut String) {
    match g {
        G::Atom(_, cs) => {
            if !cs.is_empty() {
                out.push(rng.pick(cs));
            }
        }
        G::Raw(s) => out.push_str(&s.replace('\\', "")),
        G::Anchor(_) | G::Look(..) => {}
        G::Group(_, idx, inner) => {
            let start = out.len();
            sample(inner, rng, caps, out);
            if let Some(i) = idx {
                if caps.len() <= *i {
                    caps.resize(*i + 1, None);
                }
                caps[*i] = Some(out[start..].to_string());
            }
        }
        G::Concat(v) => v.iter().for_each(|x| sample(x, rng, caps, out)),
        G::Alt(v) => {
            let i = rng.below(v.len());
            sample(&v[i], rng, caps, out);
        }
        G::Rep(inner, _, lo, hi) => {
            let k = lo + rng.below(hi - lo + 1);
            for _ in 0..k {
                sample(inner, rng, caps, out);
            }
        }
        G::Backref(_, i) => {
            if let Some(Some(s)) = caps.get(*i) {
                out.push_str(&s.clone());
            }
        }
    }
}

struct Gen {
    /// Only the letters `a`/`b` (exhaustive-text mode).
    ab: bool,
    rng: Rng,
    groups: usize,
    names: Vec<(String, usize)>,
}

fn lit_text(c: char) -> String {
    if ".^$*+?{}[]\\|()".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

impl Gen {
    fn leaf(&mut self) -> G {
        if self.ab && self.rng.chance(75) {
            let r = &mut self.rng;
            return match r.below(10) {
                0..=3 => G::Atom("a".into(), vec!['a']),
                4..=6 => G::Atom("b".into(), vec!['b']),
                7 => G::Atom(".".into(), vec!['a', 'b']),
                8 => G::Anchor(r.pick(&["^", "$", "\\b", "\\B"])),
                _ => {
                    if self.groups > 0 {
                        let i = 1 + r.below(self.groups);
                        G::Backref(format!("\\{i}"), i)
                    } else {
                        G::Atom("a".into(), vec!['a'])
                    }
                }
            };
        }
        let r = &mut self.rng;
        match r.below(14) {
            0..=4 => {
                let c = r.pick(LIT_CHARS);
                G::Atom(lit_text(c), vec![c])
            }
            5 => G::Atom(".".into(), vec!['a', '/', 'é', '0']),
            6 => {
                let (s, cs): (&str, &[char]) = r.pick(&[
                    ("\\d", &['0', '7', '\u{663}'][..]),
                    ("\\w", &['a', 'Z', '_', '5', 'é']),
                    ("\\s", &[' ', '\t', '\n', '\u{1c}', '\u{a0}']),
                    ("\\D", &['a', '/', '\u{663}', 'é']),
                    ("\\W", &['/', ' ', 'é', '-']),
                    ("\\S", &['a', '/', '\u{1c}', 'é']),
                ]);
                G::Atom(s.into(), cs.to_vec())
            }
            7..=9 => self.set(),
            10 => {
                let (s, cs): (&str, &[char]) = r.pick(&[
                    ("\\x41", &['A'][..]),
                    ("\\u00e9", &['é']),
                    ("\\101", &['A']),
                    ("\\0", &['\0']),
                    ("\\n", &['\n']),
                    ("\\t", &['\t']),
                    ("\\\\", &['\\']),
                    ("\\-", &['-']),
                    ("\\/", &['/']),
                    ("\\U0001F600", &['\u{1F600}']),
                    ("\\x4", &[]),
                    ("\\q", &[]),
                    ("\\8", &[]),
                    ("\\777", &[]),
                    ("\\N{EM DASH}", &['\u{2014}']),
                ]);
                G::Atom(s.into(), cs.to_vec())
            }
            11 => {
                let s = r.pick(&[
                    "{",
                    "x{",
                    "{,",
                    "{1,a}",
                    "a{,}",
                    "{}",
                    "x{2,1}",
                    "b{99999999999}",
                    "{1}",
                ]);
                G::Raw(s.into())
            }
            12 => G::Anchor(r.pick(&["^", "$", "\\A", "\\Z", "\\b", "\\B"])),
            _ => {
                if self.groups > 0 && r.chance(70) {
                    let i = 1 + r.below(self.groups);
                    if !self.names.is_empty() && r.chance(30) {
                        let (n, i) = self.names[r.below(self.names.len())].clone();
                        G::Backref(format!("(?P={n})"), i)
                    } else {
                        G::Backref(format!("\\{i}"), i)
                    }
                } else {
                    G::Raw(r.pick(&["\\1", "\\2", "(?P=nope)", "\\10"]).into())
                }
            }
        }
    }

    fn set(&mut self) -> G {
        let r = &mut self.rng;
        let neg = r.chance(30);
        let mut body = String::new();
        let mut cs = Vec::new();
        if r.chance(10) {
            body.push(']');
            cs.push(']');
        }
        for _ in 0..1 + r.below(3) {
            let (s, c): (&str, &[char]) = r.pick(&[
                ("a-c", &['a', 'b', 'c'][..]),
                ("x", &['x']),
                ("0-9", &['0', '5']),
                ("\\d", &['1', '\u{663}']),
                ("\\w", &['a', 'é']),
                ("\\s", &[' ']),
                ("\\S", &['a']),
                ("\\W", &['/']),
                ("/", &['/']),
                (".", &['.']),
                ("é", &['é']),
                ("A-Z", &['A', 'K']),
                ("\\]", &[']']),
                ("[", &['[']),
                ("\\b", &['\u{8}']),
                ("z-a", &[]),
                ("\\d-z", &[]),
                ("\\x00-\\x7f", &['a', '\0']),
                ("\u{e0}-\u{ff}", &['é']),
                ("k", &['k']),
                ("ſ", &['ſ', 's']),
            ]);
            body.push_str(s);
            cs.extend_from_slice(c);
        }
        if r.chance(10) {
            body.push('-');
            cs.push('-');
        }
        let text = format!("[{}{}]", if neg { "^" } else { "" }, body);
        if neg {
            G::Atom(text, vec!['q', '/', 'é', '\u{663}', 'x'])
        } else {
            G::Atom(text, cs)
        }
    }

    fn quant(&mut self) -> (String, usize, usize) {
        let r = &mut self.rng;
        let (q, lo, hi) = r.pick(&[
            ("*", 0, 3),
            ("+", 1, 3),
            ("?", 0, 1),
            ("{2}", 2, 2),
            ("{1,3}", 1, 3),
            ("{,2}", 0, 2),
            ("{2,}", 2, 4),
            ("{0}", 0, 0),
            ("{0,1}", 0, 1),
        ]);
        let suffix = match r.below(10) {
            0..=1 => "?",
            2..=3 => "+",
            _ => "",
        };
        (format!("{q}{suffix}"), lo, hi)
    }

    fn node(&mut self, depth: usize) -> G {
        if depth >= 4 {
            return self.leaf();
        }
        match self.rng.below(20) {
            0..=6 => self.leaf(),
            7..=10 => {
                let n = 2 + self.rng.below(3);
                G::Concat((0..n).map(|_| self.node(depth + 1)).collect())
            }
            11..=12 => {
                let n = 2 + self.rng.below(2);
                G::Alt((0..n).map(|_| self.node(depth + 1)).collect())
            }
            13..=15 => {
                let kind = self.rng.below(10);
                let (open, idx) = match kind {
                    0..=3 => {
                        self.groups += 1;
                        ("(".to_string(), Some(self.groups))
                    }
                    4 => {
                        self.groups += 1;
                        let name = format!("g{}", self.groups);
                        self.names.push((name.clone(), self.groups));
                        (format!("(?P<{name}>"), Some(self.groups))
                    }
                    5..=6 => ("(?:".to_string(), None),
                    7 => ("(?>".to_string(), None),
                    _ => (
                        self.rng
                            .pick(&["(?i:", "(?-i:", "(?s:", "(?m:", "(?x:", "(?a:", "(?i-s:"])
                            .to_string(),
                        None,
                    ),
                };
                let inner = self.node(depth + 1);
                G::Group(open, idx, Box::new(inner))
            }
            16..=17 => {
                let inner = self.node(depth + 1);
                let (q, lo, hi) = self.quant();
                G::Rep(Box::new(inner), q, lo, hi)
            }
            _ => {
                let open = self.rng.pick(&["(?=", "(?!", "(?<=", "(?<!"]);
                let inner = self.node(depth + 1);
                G::Look(open, Box::new(inner))
            }
        }
    }
}

fn junk(rng: &mut Rng) -> String {
    const J: &[&str] = &[
        "(", ")", "[", "]", "{", "}", "*", "+", "?", "|", "\\", "^", "$", ".", "-", ",", "a", "b",
        "0", "1", "2", "P", "<", ">", "=", "!", ":", "#", "i", "x", "?P<", "(?", "\\d", "\\w", "é",
        " ", "\n", "'", "L", "u", "(?x)", "(?i)", "(?<", "(?P=", "(?#", "(?>", "(?-", "\\b", "\\B",
        "\\x", "\\u", "\\U", "\\0", "\\1", "\\2", "\\9", "\\N", "\\Z", "\\A", "[^", "{2", ",3}",
        "a-", "-z", "s", "m", "t", "_", "9", "\t",
    ];
    let n = 1 + rng.below(12);
    (0..n).map(|_| rng.pick(J)).collect()
}

fn random_text(rng: &mut Rng) -> String {
    let n = rng.below(7);
    (0..n).map(|_| rng.pick(TEXT_CHARS)).collect()
}

fn mutate(rng: &mut Rng, s: &str) -> String {
    let mut v: Vec<char> = s.chars().collect();
    match rng.below(4) {
        0 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = rng.pick(TEXT_CHARS);
        }
        1 => {
            let i = rng.below(v.len() + 1);
            v.insert(i, rng.pick(TEXT_CHARS));
        }
        2 if !v.is_empty() => {
            let i = rng.below(v.len());
            v.remove(i);
        }
        _ => v.push('\n'),
    }
    v.into_iter().collect()
}

/// Hand-picked cases: real filters and known-dangerous shapes.
fn fixed_cases() -> Vec<(String, Vec<String>)> {
    let texts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let common = texts(&[
        "",
        "a",
        "b",
        "b\n",
        "ax",
        "/dev/sdb",
        "/dev/sdb\n",
        "/dev/../etc/shadow",
        "/etc/passwd",
        "/etc/../x",
        "123",
        "\u{661}\u{662}\u{663}",
        "\u{663}",
        "foo",
        "a foo",
        "éfoo",
        "-c3",
        "--getsize64",
        "--flushbufs",
        "iqn.2010-10.org.openstack:volume-1",
        "192.168.1.2:3260",
        "[::1]:3260",
        "ſ",
        "s",
        "K",
        "\u{212a}",
        "a\u{e9}",
        "a\u{e9}\n",
        "ab\u{e9}",
        "1\u{663}",
        "a\u{663}",
        "\u{e9}a",
        "aa",
        "aab",
        "abab",
        "aba",
        "ac",
        "abc",
        "\u{1c}",
        "a\u{1c}",
        "a a",
        " ",
        "\n",
        "b\nb",
        "\u{e9}\u{e9}",
        "foo\u{e9}",
        "\u{e9}foo\u{e9}",
    ]);
    let pats = [
        "a|b",
        "\\d+",
        "[^\\d]",
        "[^\\D]",
        "\\bfoo",
        "foo\\b",
        "(?!\\d).*",
        "/etc/(?!\\.\\.).*",
        "/dev/sd[a-z]+",
        "-c[0-3]",
        "(--getsize64|--flushbufs)",
        "^[/]*([^/\\0]+(/+)?)*$",
        "(?i)s",
        "(?i)[^s]",
        "(?i)[^k]",
        "\\w+",
        "\\W",
        "\\S+",
        "\\s",
        ".*",
        "(?s).*",
        "(?m)^b$",
        "b$",
        "b\\Z",
        "(?>\\w+)\u{e9}",
        "\\w*+\u{e9}",
        "(?=(\\w+))\\1\u{e9}",
        "(iqn\\.[0-9]{4}-[0-9]{2}\\.[A-Za-z0-9.-]+(:[A-Za-z0-9.:_-]+)?|eui\\.[0-9A-Fa-f]{16})",
        "(\\[[0-9A-Fa-f:.]+\\]|[0-9.]+)(:[0-9]+)?",
        "(?<!a)b",
        "(?<=/)etc",
        "(a)\\1",
        "(?i)(a)\\1",
        "(?x) a b # c",
        "(?a)\\w+",
        "(?a)[^\\d]",
        "(?u)\\w",
        "(?L)a",
        "(?au)a",
        "(?a)(?u)a",
        "a(?i)b",
        "(?i",
        "[a",
        "a{2,1}",
        "a**",
        "*a",
        "(?<=a*)b",
        "(?<=a|bc)d",
        "(?P<n>a)(?P=n)",
        "(?P<n>a)(?P<n>b)",
        "(?P<1>a)",
        "(?(1)a|b)",
        "\\N{EM DASH}",
        "a{10001}",
        "(?#c)a",
        "[]a]",
        "[^]a]",
        "[a-]",
        "[\\d-]",
        "x{",
        "x{1,}",
        "x{,2}",
        "(?:a|ab)(?:c|bcd)(?:d*)",
        "(a|)*\\1",
        "(a*)*b",
        "(?:(a)|b)*\\1",
        "(?=a)*a",
        "(?!)",
        "(?=)",
        "\\x1c",
        "[^\\s]",
        "\\S",
        "(?i)\u{e9}",
        "(?i)[\u{e0}-\u{ff}]",
        "(?i)[^\u{e9}]",
        "(?!\\S)",
        "(?<!\\w)a",
        "(?:a{2})++b",
        "(?:ab|a){2}+",
        "(?:a|ab){2}+b",
        "a++a",
        "a?+a",
        "(a+)+b",
        "(?>a|ab)c",
        "(?i)\u{212a}",
    ];
    pats.iter()
        .map(|p| (p.to_string(), common.clone()))
        .collect()
}

fn has_fold_special(p: &str) -> bool {
    p.chars()
        .any(|c| matches!(c, '\u{130}' | '\u{131}' | '\u{17f}' | '\u{212a}'))
}

fn safe_text(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii() && c != '\n' && !('\u{1c}'..='\u{1f}').contains(&c))
}

#[test]
fn pyre_agrees_with_cpython() {
    // PYRE_DIFF_N / PYRE_DIFF_SEED allow longer ad-hoc fuzzing runs.
    let n: usize = std::env::var("PYRE_DIFF_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("PYRE_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let ab = std::env::var_os("PYRE_DIFF_AB").is_some();
    let junk_only = std::env::var_os("PYRE_DIFF_JUNK").is_some();
    let mut cases = fixed_cases();
    for _ in 0..n {
        let (pattern, mut texts) = if junk_only || rng.chance(12) {
            (junk(&mut rng), Vec::new())
        } else {
            let mut g = Gen {
                ab,
                rng: Rng(rng.next() | 1),
                groups: 0,
                names: Vec::new(),
            };
            let tree = g.node(0);
            let mut p = String::new();
            if g.rng.chance(20) {
                p.push_str(
                    g.rng
                        .pick(&["(?i)", "(?s)", "(?m)", "(?x)", "(?a)", "(?im)", "(?u)"]),
                );
            }
            render(&tree, &mut p);
            let mut ts = Vec::new();
            for _ in 0..4 {
                let mut s = String::new();
                sample(&tree, &mut g.rng, &mut Vec::new(), &mut s);
                if g.rng.chance(45) {
                    s = mutate(&mut g.rng, &s);
                    if g.rng.chance(30) {
                        s = mutate(&mut g.rng, &s);
                    }
                }
                ts.push(s);
            }
            (p, ts)
        };
        if ab {
            texts.clear();
            for len in 0..=4u32 {
                for bits in 0..(1u32 << len) {
                    texts.push(
                        (0..len)
                            .map(|i| if bits >> i & 1 == 1 { 'b' } else { 'a' })
                            .collect(),
                    );
                }
            }
        }
        while texts.len() < 6 {
            texts.push(random_text(&mut rng));
        }
        cases.push((pattern, texts));
    }

    let input = serde_json::to_string(&cases).expect("serialize cases");
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to run the differential test");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to python3");
    let output = child.wait_with_output().expect("python3 output");
    assert!(output.status.success(), "python3 failed");
    let mut results: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("python3 JSON");
    let version = results.remove(0);
    assert_eq!(
        version,
        serde_json::json!([3, 11]),
        "pyre follows CPython 3.11's re; python3 here is {version}"
    );
    assert_eq!(results.len(), cases.len());

    let mut failures = Vec::new();
    let (mut n_err_both, mut n_unsupported, mut n_ok, mut pos_mismatch) = (0, 0, 0, 0);
    let (mut n_sound, mut n_complete, mut n_moor_true, mut n_py_true, mut n_complete_true) =
        (0, 0, 0, 0, 0);
    for ((p, texts), r) in cases.iter().zip(&results) {
        let py_err = r["err"].as_str().map(str::to_string);
        let moor = Regex::new(p);
        match (&moor, &py_err) {
            (Err(e), Some(pe)) => {
                n_err_both += 1;
                if e.kind == PyreErrorKind::Syntax
                    && let Some(pp) = r["pos"].as_u64()
                    && pp as usize != e.pos
                {
                    pos_mismatch += 1;
                    failures.push(format!(
                        "error position for {p:?}: moor {} ({}), Python {pp} ({pe})",
                        e.pos, e.message
                    ));
                }
                continue;
            }
            (Err(e), None) => {
                if e.kind == PyreErrorKind::Syntax {
                    failures.push(format!("moor Syntax error but Python compiles: {p:?}: {e}"));
                } else {
                    n_unsupported += 1;
                }
                continue;
            }
            (Ok(_), Some(pe)) => {
                failures.push(format!("Python rejects ({pe}) but moor compiles: {p:?}"));
                continue;
            }
            (Ok(_), None) => n_ok += 1,
        }
        let Ok(re) = moor else { continue };
        for (i, s) in texts.iter().enumerate() {
            let got = match re.full_match(s) {
                Ok(b) => b,
                Err(e) => {
                    failures.push(format!("{p:?} vs {s:?}: {e}"));
                    continue;
                }
            };
            // None: CPython raised while matching (it has known internal bugs); a
            // raising rootwrap denies, so moor must not match either.
            let py_match = r["m"][i].as_bool().unwrap_or_else(|| {
                eprintln!(
                    "note: CPython raised matching {p:?} against {s:?}: {}",
                    r["raised"]
                );
                false
            });
            n_sound += 1;
            if got {
                n_moor_true += 1;
            }
            if py_match {
                n_py_true += 1;
            }
            if got && !py_match {
                failures.push(format!(
                    "UNSOUND: {p:?} matches {s:?} but re.match(p+'$') does not"
                ));
            }
            if let Some(f) = r["f"][i].as_bool()
                && safe_text(s)
                && !has_fold_special(p)
            {
                n_complete += 1;
                if f {
                    n_complete_true += 1;
                }
                if got != f {
                    failures.push(format!(
                        "INCOMPLETE: {p:?} vs {s:?}: moor {got}, re.fullmatch(ASCII) {f}"
                    ));
                }
            }
        }
    }
    println!(
        "patterns: {} (both reject {n_err_both}, moor unsupported {n_unsupported}, compiled {n_ok}); \
         soundness pairs {n_sound} (moor true {n_moor_true}, python true {n_py_true}); \
         completeness pairs {n_complete} ({n_complete_true} matching); error-position mismatches {pos_mismatch}",
        cases.len()
    );
    for f in failures.iter().take(40) {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} differential failures",
        failures.len()
    );
}
