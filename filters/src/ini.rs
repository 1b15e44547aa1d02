//! An INI reader that behaves like Python's `configparser.RawConfigParser(strict=False)`
//! as oslo.rootwrap uses it: `#`/`;` full-line comments only (no inline comments),
//! `=` or `:` delimiters, keys lower-cased and right-stripped, the last duplicate key
//! wins, indented lines continue the previous value, no interpolation and no escape
//! processing (`/etc/(?!\.\.).*` survives intact).

use std::fmt;

/// One `key: value` entry with the line its key stands on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A section in file order. Duplicate keys keep their first position (as a Python
/// dict does) but take the last value and line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
    /// Keys that were defined more than once: (key, earlier line, later line).
    pub duplicates: Vec<(String, usize, usize)>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    fn set(&mut self, key: String, value: String, line: usize) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            self.duplicates.push((key, e.line, line));
            e.value = value;
            e.line = line;
        } else {
            self.entries.push(Entry { key, value, line });
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ini {
    /// The `[DEFAULT]` section; Python merges its keys into every other section.
    pub defaults: Section,
    pub sections: Vec<Section>,
}

impl Ini {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// A line Python's parser rejects. Python raises these at the end of the file, so one
/// bad line makes the whole file unreadable for rootwrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniError {
    pub line: usize,
    pub kind: IniErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IniErrorKind {
    /// Content before the first `[section]` (Python: MissingSectionHeaderError).
    MissingSectionHeader,
    /// A line that is neither a section, an option nor a continuation (ParsingError).
    NotAnOption(String),
}

impl fmt::Display for IniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            IniErrorKind::MissingSectionHeader => {
                write!(
                    f,
                    "line {}: no [section] header before this line",
                    self.line
                )
            }
            IniErrorKind::NotAnOption(l) => {
                write!(
                    f,
                    "line {}: not `name: value` nor a continuation: {l:?}",
                    self.line
                )
            }
        }
    }
}

impl std::error::Error for IniError {}

/// Where the value being built lives, for continuation lines.
#[derive(Clone, Copy)]
enum Cursor {
    None,
    Defaults,
    Section(usize),
}

/// Parse `text` like `RawConfigParser(strict=False).read_string`. Returns every bad line
/// (Python reports them all at once) when there is at least one.
pub fn parse(text: &str) -> Result<Ini, Vec<IniError>> {
    let mut ini = Ini::default();
    let mut errors = Vec::new();
    let mut cursor = Cursor::None;
    // The option currently collecting lines, as (key, lines, first line number).
    let mut current: Option<(String, Vec<String>, usize)> = None;
    let mut indent_level = 0usize;

    let flush =
        |ini: &mut Ini, cursor: Cursor, current: &mut Option<(String, Vec<String>, usize)>| {
            if let Some((key, lines, line)) = current.take() {
                // Python joins the collected lines with '\n' and strips trailing whitespace.
                let value = lines.join("\n").trim_end().to_string();
                match cursor {
                    Cursor::Defaults => ini.defaults.set(key, value, line),
                    Cursor::Section(i) => ini.sections[i].set(key, value, line),
                    Cursor::None => {}
                }
            }
        };

    for (idx, raw) in split_lines(text).enumerate() {
        let lineno = idx + 1;
        let stripped = py_strip(raw);
        let is_comment = stripped.starts_with('#') || stripped.starts_with(';');
        let value = if is_comment { "" } else { stripped };
        if value.is_empty() {
            // Empty lines belong to a value being continued (empty_lines_in_values);
            // full-line comments do not.
            if !is_comment && let Some((_, lines, _)) = current.as_mut() {
                lines.push(String::new());
            }
            continue;
        }
        let cur_indent = raw.chars().count() - py_lstrip(raw).chars().count();
        if current.is_some() && cur_indent > indent_level {
            if let Some((_, lines, _)) = current.as_mut() {
                lines.push(value.to_string());
            }
            continue;
        }
        indent_level = cur_indent;
        if let Some(name) = section_header(value) {
            flush(&mut ini, cursor, &mut current);
            if name == "DEFAULT" {
                cursor = Cursor::Defaults;
            } else if let Some(i) = ini.sections.iter().position(|s| s.name == name) {
                cursor = Cursor::Section(i);
            } else {
                ini.sections.push(Section {
                    name: name.to_string(),
                    line: lineno,
                    ..Section::default()
                });
                cursor = Cursor::Section(ini.sections.len() - 1);
            }
            continue;
        }
        if matches!(cursor, Cursor::None) {
            // Python raises at once here and stops reading the file.
            errors.push(IniError {
                line: lineno,
                kind: IniErrorKind::MissingSectionHeader,
            });
            return Err(errors);
        }
        match split_option(value) {
            Some((key, val)) => {
                flush(&mut ini, cursor, &mut current);
                current = Some((key.to_lowercase(), vec![val.to_string()], lineno));
            }
            None => {
                // A parsing error ends the option being built.
                flush(&mut ini, cursor, &mut current);
                errors.push(IniError {
                    line: lineno,
                    kind: IniErrorKind::NotAnOption(raw.to_string()),
                });
            }
        }
    }
    flush(&mut ini, cursor, &mut current);
    if errors.is_empty() {
        Ok(ini)
    } else {
        Err(errors)
    }
}

/// Lines as Python's text-mode file iteration yields them (universal newlines), without
/// their terminators.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(['\n', '\r']) {
            Some(i) => {
                let line = &rest[..i];
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
                Some(line)
            }
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
        }
    })
}

/// Python's `str.isspace()` for the characters that matter in these files. Python's
/// `strip()` also removes Unicode spaces and \x1c-\x1f; `char::is_whitespace` misses
/// \x1c-\x1f, so add them.
pub(crate) fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

fn py_lstrip(s: &str) -> &str {
    s.trim_start_matches(py_is_space)
}

/// `SECTCRE = r"\[(?P<header>.+)\]"` applied with `.match` to the stripped line: the
/// header runs to the LAST `]` on the line and must not be empty; anything after that
/// `]` is ignored by Python.
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    // `.+` is greedy and does not cross newlines (there are none in a line).
    let end = rest.rfind(']')?;
    let name = &rest[..end];
    if name.is_empty() { None } else { Some(name) }
}

/// `_OPT_TMPL`: `(?P<option>.*?)\s*(?P<vi>[=:])\s*(?P<value>.*)$`. The option is the
/// shortest prefix before the first delimiter; its trailing spaces go, the value is
/// stripped. An empty option name is an error in Python.
fn split_option(value: &str) -> Option<(&str, &str)> {
    let i = value.find(['=', ':'])?;
    let key = value[..i].trim_end_matches(py_is_space);
    if key.is_empty() {
        return None;
    }
    Some((key, py_strip(&value[i + 1..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_backslashes_and_lowercases_keys() {
        let ini = parse("[Filters]\nPrivsep: RegExpFilter, a, root, /etc/(?!\\.\\.).*\n").unwrap();
        let s = ini.section("Filters").unwrap();
        assert_eq!(s.entries[0].key, "privsep");
        assert_eq!(
            s.entries[0].value,
            "RegExpFilter, a, root, /etc/(?!\\.\\.).*"
        );
        assert_eq!(s.entries[0].line, 2);
    }

    #[test]
    fn last_duplicate_wins_and_is_recorded() {
        let ini =
            parse("[Filters]\na: CommandFilter, x, root\nA = CommandFilter, y, root\n").unwrap();
        let s = ini.section("Filters").unwrap();
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.entries[0].value, "CommandFilter, y, root");
        assert_eq!(s.entries[0].line, 3);
        assert_eq!(s.duplicates, vec![("a".to_string(), 2, 3)]);
    }

    #[test]
    fn comments_are_full_line_only() {
        let ini = parse(
            "# c\n[Filters]\n  ; indented comment\na: CommandFilter, x, root # not a comment\n",
        )
        .unwrap();
        assert_eq!(
            ini.section("Filters").unwrap().entries[0].value,
            "CommandFilter, x, root # not a comment"
        );
    }

    #[test]
    fn continuation_lines_join_with_newline() {
        let ini = parse("[Filters]\na: CommandFilter,\n   x, root\n\nb: CommandFilter, y, root\n")
            .unwrap();
        let s = ini.section("Filters").unwrap();
        assert_eq!(s.entries[0].value, "CommandFilter,\nx, root");
        assert_eq!(s.entries[1].key, "b");
    }

    #[test]
    fn first_delimiter_splits() {
        let ini = parse("[Filters]\nx=y: z\nk : v=w\n").unwrap();
        let s = ini.section("Filters").unwrap();
        assert_eq!(
            (s.entries[0].key.as_str(), s.entries[0].value.as_str()),
            ("x", "y: z")
        );
        assert_eq!(
            (s.entries[1].key.as_str(), s.entries[1].value.as_str()),
            ("k", "v=w")
        );
    }

    #[test]
    fn errors_are_reported_with_lines() {
        let e = parse("a: b\n").unwrap_err();
        assert_eq!(e[0].kind, IniErrorKind::MissingSectionHeader);
        let e = parse("[Filters]\njunk line\nok: v\n: novalue\n").unwrap_err();
        assert_eq!(e.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 4]);
    }

    #[test]
    fn default_section_and_repeated_sections() {
        let ini = parse("[DEFAULT]\nd: 1\n[Filters]\na: 1\n[Other]\n[Filters]\nb: 2\n").unwrap();
        assert_eq!(ini.defaults.entries[0].key, "d");
        assert_eq!(ini.section("Filters").unwrap().entries.len(), 2);
    }

    #[test]
    fn header_takes_last_bracket() {
        let ini = parse("[Filters] trailing]\n").unwrap();
        assert_eq!(ini.sections[0].name, "Filters] trailing");
        let ini = parse("[Filters]junk\n").unwrap();
        assert_eq!(ini.sections[0].name, "Filters");
    }
}
