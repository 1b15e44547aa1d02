//! Pattern and text from arbitrary bytes: compiling and matching must never panic and
//! must stay within the step budget's error instead of hanging.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moor_filters::pyre::Regex;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, subject) = text.split_once('\u{0}').unwrap_or((text, "abc/../d\n"));
    if let Ok(re) = Regex::with_step_limit(pattern, 100_000) {
        let _ = re.full_match(subject);
        let _ = re.full_match("");
    }
});
