//! Property tests for the reader and the matcher: no input makes them panic, what is
//! written is what is loaded, and the stricter rules hold for every input.

use std::path::{Path, PathBuf};

use moor_filters::system::realpath_with;
use moor_filters::{FilterSet, Outcome, Severity, System, parse_filters_text};
use proptest::prelude::*;

#[derive(Debug)]
struct AllExecutable;

impl System for AllExecutable {
    fn is_executable(&self, path: &Path) -> bool {
        path.starts_with("/usr/bin")
    }
    fn is_file(&self, path: &Path) -> bool {
        self.is_executable(path)
    }
    fn realpath(&self, path: &str) -> Option<String> {
        realpath_with(path, |_| None)
    }
    fn proc_exe(&self, _pid: u32) -> Option<String> {
        None
    }
}

fn load(text: &str) -> Option<FilterSet> {
    let (filters, diags) = parse_filters_text(text, Path::new("p.filters"));
    (!diags.iter().any(|d| d.severity == Severity::Error)).then_some(FilterSet { filters })
}

fn dirs() -> Vec<PathBuf> {
    vec![PathBuf::from("/usr/bin")]
}

/// Filter lines built from pieces that real files use, including junk.
fn filter_line() -> impl Strategy<Value = String> {
    let class = prop_oneof![
        Just("CommandFilter".to_string()),
        Just("RegExpFilter".to_string()),
        Just("PathFilter".to_string()),
        Just("KillFilter".to_string()),
        Just("ReadFileFilter".to_string()),
        Just("IpFilter".to_string()),
        Just("EnvFilter".to_string()),
        Just("ChainingFilter".to_string()),
        Just("IpNetnsExecFilter".to_string()),
        Just("ChainingRegExpFilter".to_string()),
        Just("WriteFileFilter".to_string()),
        "[A-Za-z]{0,12}",
    ];
    let arg = prop_oneof![
        Just("root".to_string()),
        Just("cat".to_string()),
        Just("env".to_string()),
        Just("A=1".to_string()),
        Just("/dev/.*".to_string()),
        Just("pass".to_string()),
        Just("-c[0-3]".to_string()),
        Just("(?!x).*".to_string()),
        "[ -~]{0,10}",
    ];
    ("[a-z_]{1,8}", class, proptest::collection::vec(arg, 0..6))
        .prop_map(|(n, c, args)| format!("{n}: {c}, {}", args.join(", ")))
}

fn argv() -> impl Strategy<Value = Vec<String>> {
    let word = prop_oneof![
        Just("cat".to_string()),
        Just("env".to_string()),
        Just("A=1".to_string()),
        Just("ip".to_string()),
        Just("netns".to_string()),
        Just("exec".to_string()),
        Just("/dev/../etc/shadow".to_string()),
        Just("/dev/sda".to_string()),
        Just("-c3".to_string()),
        "\\PC{0,12}",
    ];
    proptest::collection::vec(word, 0..7)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn reader_never_panics(text in "\\PC{0,400}") {
        let _ = moor_filters::ini::parse(&text);
        let _ = parse_filters_text(&text, Path::new("x"));
    }

    #[test]
    fn decisions_are_consistent(lines in proptest::collection::vec(filter_line(), 0..8), cmds in proptest::collection::vec(argv(), 1..6)) {
        let text = format!("[Filters]\n{}\n", lines.join("\n"));
        if let Some(set) = load(&text) {
            for a in &cmds {
                let d = set.decide(a, &dirs(), &AllExecutable);
                match d.outcome {
                    Outcome::Allow => {
                        let exec = d.exec.clone().unwrap_or_default();
                        prop_assert!(exec.first().is_some_and(|e| e.starts_with('/')), "{d:?}");
                        prop_assert!(d.filter.is_some());
                        prop_assert!(!a.is_empty());
                    }
                    Outcome::Deny | Outcome::NoExec => {
                        prop_assert!(d.exec.is_none());
                        prop_assert!(d.reason.is_some());
                    }
                }
            }
        }
    }

    /// A pattern that accepts anything still never admits a `..` component.
    #[test]
    fn wildcard_patterns_never_admit_dotdot(prefix in "[a-z/]{0,8}", suffix in "[a-z/]{0,8}") {
        let set = load("[Filters]\nc: RegExpFilter, cat, root, cat, .*\n").expect("loads");
        let arg = format!("{prefix}/../{suffix}");
        let d = set.decide(&["cat".to_string(), arg], &dirs(), &AllExecutable);
        prop_assert!(!d.allowed());
    }

    /// With literal patterns, allowed exactly when the argv is the literal command.
    #[test]
    fn literal_regexp_filter_is_exact(a in "[a-z0-9-]{1,6}", b in "[a-z0-9-]{1,6}", c in "[a-z0-9\n-]{1,6}") {
        let set = load(&format!("[Filters]\nc: RegExpFilter, cat, root, cat, {a}\n")).expect("loads");
        let d = set.decide(&["cat".to_string(), b.clone()], &dirs(), &AllExecutable);
        prop_assert_eq!(d.allowed(), a == b);
        let d = set.decide(&["cat".to_string(), c.clone()], &dirs(), &AllExecutable);
        prop_assert_eq!(d.allowed(), a == c);
    }

    /// Names are lower-cased and the last definition of a name wins.
    #[test]
    fn names_lowercase_last_wins(name in "[A-Za-z]{1,8}", e1 in "[a-z]{1,6}", e2 in "[a-z]{1,6}") {
        let set = load(&format!("[Filters]\n{name}: CommandFilter, {e1}, root\n{}: CommandFilter, {e2}, root\n", name.to_uppercase())).expect("loads");
        prop_assert_eq!(set.filters.len(), 1);
        prop_assert_eq!(&set.filters[0].name, &name.to_lowercase());
        prop_assert_eq!(&set.filters[0].exec_path, &e2);
    }

    /// realpath output is absolute, has no `.`/`..`/empty components.
    #[test]
    fn realpath_is_canonical(p in "(/[a-z.]{0,4}){0,6}") {
        let r = realpath_with(&p, |_| None).expect("no links, no loops");
        prop_assert!(r.starts_with('/'));
        prop_assert!(r == "/" || r[1..].split('/').all(|c| !c.is_empty() && c != "." && c != ".."), "{r}");
    }
}
