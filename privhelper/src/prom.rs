//! The Prometheus text exposition format (version 0.0.4), as moord's `metrics`
//! operation and textfile and the connector's `/run/moor/metrics/moor.prom` write
//! it: `# HELP` and `# TYPE` before each family's samples, label values escaped,
//! histograms as cumulative `_bucket{le="…"}` series ending in `le="+Inf"`, then
//! `_sum` and `_count`. std only, so the connector shares it without the daemon.
//!
//! [`check`] is a strict reader of the same subset, for tests.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The exposition format's media type (for HTTP scrapers).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text with `\` and newlines escaped.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust prints f64 without an exponent and integers without ".0".
        format!("{v}")
    }
}

/// Whether `s` is a valid metric or label name (`[a-zA-Z_:][a-zA-Z0-9_:]*`; label
/// names without `:`).
fn valid_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
    matches!(chars.next(), Some(c) if ok(c) && !c.is_ascii_digit()) && chars.all(ok)
}

/// Builds one exposition text.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name, true), "metric name {name:?}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    fn series(&mut self, name: &str, labels: &[(&str, &str)], extra: Option<(&str, &str)>) {
        self.out.push_str(name);
        let all = labels.iter().copied().chain(extra);
        let mut first = true;
        for (k, v) in all {
            debug_assert!(valid_name(k, false), "label name {k:?}");
            self.out.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
        }
        if !first {
            self.out.push('}');
        }
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.series(name, labels, None);
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
    }

    /// One histogram series of the current family: `counts[i]` observations fell in
    /// `(bounds[i-1], bounds[i]]`, `counts[bounds.len()]` above the last bound
    /// (`counts` has one entry more than `bounds`). Buckets are written cumulative,
    /// `_count` is their total.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        debug_assert_eq!(counts.len(), bounds.len() + 1);
        let bucket = format!("{name}_bucket");
        let mut total = 0u64;
        for (i, c) in counts.iter().enumerate() {
            total += c;
            let le = bounds
                .get(i)
                .map(|b| format_value(*b))
                .unwrap_or_else(|| "+Inf".into());
            self.series(&bucket, labels, Some(("le", &le)));
            let _ = writeln!(self.out, " {total}");
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, total as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The bucket index of an observation of `v` among `bounds` (ascending upper
/// bounds, inclusive): `bounds.len()` for `+Inf`.
pub fn bucket_index(bounds: &[f64], v: f64) -> usize {
    bounds.partition_point(|b| *b < v)
}

/// One parsed sample: metric name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// The value of sample `name` with exactly `labels` among `samples`.
pub fn sample_value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

/// Reads an exposition text strictly (for tests): every sample belongs to the
/// family of the last `# TYPE` (histograms: `_bucket`, `_sum`, `_count`), no family
/// twice, label values correctly escaped, histogram buckets cumulative with a final
/// `+Inf` equal to `_count`. Returns the samples.
pub fn check(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    let mut families: BTreeMap<String, Kind> = BTreeMap::new();
    let mut current: Option<(String, Kind)> = None;
    let mut helped: Option<String> = None;
    // Per histogram series (name + labels without le): last cumulative count, saw +Inf.
    let mut buckets: BTreeMap<String, (f64, Option<f64>)> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').unwrap_or((rest, ""));
            helped = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| at("no type".into()))?;
            let kind = match kind {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "histogram" => Kind::Histogram,
                k => return Err(at(format!("unknown type {k}"))),
            };
            if !valid_name(name, true) {
                return Err(at("bad metric name".into()));
            }
            if helped.as_deref() != Some(name) {
                return Err(at("TYPE without HELP right before it".into()));
            }
            if families.insert(name.to_string(), kind).is_some() {
                return Err(at("family declared twice".into()));
            }
            current = Some((name.to_string(), kind));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, labels, value) = parse_sample(line).map_err(at)?;
        let Some((family, kind)) = &current else {
            return Err(at("sample before any TYPE".into()));
        };
        let suffix = name.strip_prefix(family.as_str());
        match (kind, suffix) {
            (Kind::Counter | Kind::Gauge, Some("")) => {}
            (Kind::Histogram, Some("_bucket")) => {
                let le = labels
                    .get("le")
                    .ok_or_else(|| at("bucket without le".into()))?;
                let mut key_labels = labels.clone();
                key_labels.remove("le");
                let key = format!("{family}{key_labels:?}");
                let entry = buckets.entry(key).or_insert((0.0, None));
                if entry.1.is_some() {
                    return Err(at("bucket after +Inf".into()));
                }
                if value < entry.0 {
                    return Err(at("buckets not cumulative".into()));
                }
                entry.0 = value;
                if le == "+Inf" {
                    entry.1 = Some(value);
                } else if le.parse::<f64>().is_err() {
                    return Err(at("le is not a number".into()));
                }
            }
            (Kind::Histogram, Some("_sum")) => {}
            (Kind::Histogram, Some("_count")) => {
                let key = format!("{family}{labels:?}");
                match buckets.get(&key) {
                    Some((_, Some(inf))) if *inf == value => {}
                    other => return Err(at(format!("_count {value} but buckets {other:?}"))),
                }
            }
            _ => return Err(at(format!("sample outside its family {family}"))),
        }
        if *kind == Kind::Counter && value < 0.0 {
            return Err(at("negative counter".into()));
        }
        samples.push((name, labels, value));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("no newline at the end".into());
    }
    Ok(samples)
}

fn parse_sample(line: &str) -> Result<(String, BTreeMap<String, String>, f64), String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "no value".to_string())?;
    let name = &line[..name_end];
    if !valid_name(name, true) {
        return Err("bad metric name".into());
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        loop {
            // label name
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            let mut eq = None;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    eq = Some(i);
                    break;
                }
            }
            let eq = eq.ok_or("label without =")?;
            let key = &r[start..eq];
            if !valid_name(key, false) {
                return Err(format!("bad label name {key:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some('"') => break,
                    Some('\n') | None => return Err("unterminated label value".into()),
                    Some(c) => value.push(c),
                }
            }
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => {
                    rest = &r[i + 1..];
                    break;
                }
                _ => return Err("expected , or }".into()),
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_string())?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok((name.to_string(), labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_help() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("x\ny"), "x\\ny");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.0025), "0.0025");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
    }

    #[test]
    fn histogram_is_cumulative_with_inf_sum_and_count() {
        let mut w = Writer::new();
        w.family("x_seconds", Kind::Histogram, "Durations.\nSecond line");
        w.histogram("x_seconds", &[("op", "a\"b")], &[0.1, 1.0], &[2, 0, 1], 5.5);
        let text = w.finish();
        assert_eq!(
            text,
            "# HELP x_seconds Durations.\\nSecond line\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{op=\"a\\\"b\",le=\"0.1\"} 2\n\
             x_seconds_bucket{op=\"a\\\"b\",le=\"1\"} 2\n\
             x_seconds_bucket{op=\"a\\\"b\",le=\"+Inf\"} 3\n\
             x_seconds_sum{op=\"a\\\"b\"} 5.5\n\
             x_seconds_count{op=\"a\\\"b\"} 3\n"
        );
        let samples = check(&text).expect("valid");
        assert_eq!(samples.len(), 5);
        assert_eq!(samples[0].1["op"], "a\"b");
    }

    #[test]
    fn bucket_index_is_inclusive() {
        let b = [0.001, 0.01, 1.0];
        assert_eq!(bucket_index(&b, 0.0), 0);
        assert_eq!(bucket_index(&b, 0.001), 0);
        assert_eq!(bucket_index(&b, 0.0011), 1);
        assert_eq!(bucket_index(&b, 1.0), 2);
        assert_eq!(bucket_index(&b, 7.0), 3);
    }

    #[test]
    fn check_refuses_malformed_text() {
        let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
        assert!(check(ok).is_ok());
        for bad in [
            "a_total 1\n",                                                    // no TYPE
            "# HELP a A.\n# TYPE a counter\nb 1\n",                           // other family
            "# HELP a A.\n# TYPE a counter\na{x=\"1} 1\n",                    // unterminated
            "# HELP a A.\n# TYPE a counter\na{x=\"\\q\"} 1\n",                // bad escape
            "# HELP a A.\n# TYPE a counter\na 1",                             // no final newline
            "# HELP a A.\n# TYPE a counter\n# HELP a A.\n# TYPE a counter\n", // twice
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",
        ] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
    }
}
