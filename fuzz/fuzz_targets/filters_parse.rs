//! Arbitrary bytes as a .filters file, then as commands decided against it: the parser
//! and matcher must never panic, and a decision must be internally consistent.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use moor_filters::system::realpath_with;
use moor_filters::{Outcome, System, parse_filters_text};

/// A host where everything under /bin and /sbin is executable and nothing is a link.
#[derive(Debug)]
struct FakeHost;

impl System for FakeHost {
    fn is_executable(&self, path: &Path) -> bool {
        path.starts_with("/bin") || path.starts_with("/sbin")
    }
    fn is_file(&self, path: &Path) -> bool {
        self.is_executable(path)
    }
    fn realpath(&self, path: &str) -> Option<String> {
        realpath_with(path, |_| None)
    }
    fn proc_exe(&self, pid: u32) -> Option<String> {
        (pid == 1).then(|| "/sbin/init".to_string())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The file is the text up to the first blank-line-separated "---"; the rest are
    // commands, one per line, arguments separated by spaces.
    let (file, commands) = text.split_once("\n---\n").unwrap_or((text, "cat /etc/x\nip netns exec a cat"));
    let (filters, diags) = parse_filters_text(file, Path::new("fuzz.filters"));
    if diags.iter().any(|d| d.severity == moor_filters::Severity::Error) {
        return;
    }
    let set = moor_filters::FilterSet { filters };
    let dirs = [PathBuf::from("/bin"), PathBuf::from("/sbin")];
    for line in commands.lines().take(8) {
        let argv: Vec<String> = line.split(' ').map(str::to_string).collect();
        let d = set.decide(&argv, &dirs, &FakeHost);
        match d.outcome {
            Outcome::Allow => {
                assert!(d.filter.is_some() && d.exec.as_ref().is_some_and(|e| !e.is_empty()));
                assert!(!argv.iter().any(|a| a.contains('\0')));
            }
            Outcome::Deny | Outcome::NoExec => assert!(d.exec.is_none() && d.reason.is_some()),
        }
        let _ = set.decide_write(line, "1");
    }
    for f in &set.filters {
        let _ = moor_filters::audit::describe(f);
    }
});
