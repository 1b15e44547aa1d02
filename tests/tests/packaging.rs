//! The packaged systemd units agree with moord and with the packaged moord.toml.
//!
//! * `CapabilityBoundingSet=` in moord.service is exactly moord's default keep-list
//!   (`moor_privhelper::config::DEFAULT_KEEP_CAPS`), and so is `keep_capabilities`
//!   in packaging/moord.toml;
//! * `systemd-analyze verify` accepts both units, run on a temporary copy whose
//!   `ExecStart=` points at the built `target/debug/moord`, with no warnings at all
//!   (it exits 0 on unknown keys and unparsable values and only prints them, so
//!   any output fails the test; a deliberately broken copy shows it does print
//!   here). Without systemd-analyze on the machine, that test says so and the strict
//!   parse below is what remains;
//! * both units parse strictly: known sections and keys only, no duplicated
//!   single-valued keys, and the settings docs/security.md relies on are present;
//! * `TimeoutStopSec=` is above `shutdown_grace_secs`;
//! * the socket path, mode and group in moord.socket are the ones in moord.toml.
//!
//! Binary: `$MOORD_BIN`, or `target/debug/moord` built once with cargo.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{repo_root, target_dir};
use moor_privhelper::config::DEFAULT_KEEP_CAPS;

// ------------------------------------------------------------------ unit files

/// One `Key=Value` assignment of a unit file.
#[derive(Debug, Clone)]
struct Entry {
    section: String,
    key: String,
    value: String,
    line: usize,
}

#[derive(Debug)]
struct Unit {
    name: String,
    entries: Vec<Entry>,
}

impl Unit {
    fn load(name: &str) -> Unit {
        let path = packaging().join("systemd").join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Unit::parse(name, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The unit-file syntax (systemd.syntax(7)): `[Section]` headers, `Key=Value`
    /// lines, `#`/`;` comments, a trailing `\` continuing a line. Anything else is an
    /// error (systemd itself would only warn and ignore it).
    fn parse(name: &str, text: &str) -> Result<Unit, String> {
        let mut entries = Vec::new();
        let mut section: Option<String> = None;
        let mut pending: Option<(usize, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let (start, mut line) = match pending.take() {
                Some((start, mut acc)) => {
                    let t = raw.trim();
                    if t.starts_with('#') || t.starts_with(';') {
                        // A comment inside a continuation is skipped.
                        pending = Some((start, acc));
                        continue;
                    }
                    acc.push(' ');
                    acc.push_str(t);
                    (start, acc)
                }
                None => {
                    let t = raw.trim();
                    if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                        continue;
                    }
                    (n, t.to_string())
                }
            };
            if let Some(stripped) = line.strip_suffix('\\') {
                line = stripped.trim_end().to_string();
                pending = Some((start, line));
                continue;
            }
            if let Some(h) = line.strip_prefix('[') {
                let h = h
                    .strip_suffix(']')
                    .ok_or_else(|| format!("line {start}: bad section header {line:?}"))?;
                section = Some(h.to_string());
                continue;
            }
            let sec = section
                .clone()
                .ok_or_else(|| format!("line {start}: assignment outside any section"))?;
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line {start}: not a Key=Value line: {line:?}"))?;
            let key = k.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!("line {start}: bad key {key:?}"));
            }
            entries.push(Entry {
                section: sec,
                key: key.to_string(),
                value: v.trim().to_string(),
                line: start,
            });
        }
        if pending.is_some() {
            return Err("file ends inside a continued line".into());
        }
        Ok(Unit {
            name: name.to_string(),
            entries,
        })
    }

    /// Every value assigned to `section`/`key`, in order.
    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.section == section && e.key == key)
            .map(|e| e.value.as_str())
            .collect()
    }

    /// The single value of a key that must be set exactly once.
    fn one(&self, section: &str, key: &str) -> &str {
        match self.all(section, key).as_slice() {
            [v] => v,
            other => panic!(
                "{}: [{section}] {key}= must be set exactly once, found {other:?}",
                self.name
            ),
        }
    }

    /// A space-separated list setting, accumulated the way systemd does: each
    /// assignment adds, an empty assignment resets.
    fn list(&self, section: &str, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.all(section, key) {
            if v.is_empty() {
                out.clear();
            }
            out.extend(v.split_whitespace().map(str::to_string));
        }
        out
    }
}

fn packaging() -> PathBuf {
    repo_root().join("packaging")
}

/// A time span as systemd reads it, for the forms the units use: `45`, `45s`,
/// `1min 30s`, `500ms`. Returns milliseconds.
fn timespan_ms(v: &str) -> u64 {
    let mut total = 0;
    for part in v.split_whitespace() {
        let digits = part.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &part[digits.len()..];
        let n: u64 = digits
            .parse()
            .unwrap_or_else(|_| panic!("time span {v:?}: {part:?} is not a number"));
        let ms = match unit {
            "" | "s" | "sec" | "second" | "seconds" => 1000,
            "ms" | "msec" => 1,
            "m" | "min" | "minute" | "minutes" => 60_000,
            "h" | "hr" | "hour" | "hours" => 3_600_000,
            _ => panic!("time span {v:?}: unknown unit {unit:?}"),
        };
        total += n * ms;
    }
    assert!(!v.trim().is_empty(), "empty time span");
    total
}

fn octal(v: &str) -> u32 {
    u32::from_str_radix(v.trim_start_matches("0o"), 8)
        .unwrap_or_else(|_| panic!("{v:?} is not an octal mode"))
}

// ------------------------------------------------------------------ moord.toml

/// A TOML value of the few shapes packaging/moord.toml uses at top level.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Strs(Vec<String>),
}

/// The top-level keys of packaging/moord.toml (up to the first table header).
/// A deliberately small reader: strings without escapes, integers, arrays of such
/// strings (over several lines); anything else is an error, so a change of shape
/// in the file fails here rather than being misread.
fn moord_toml() -> Vec<(String, Value)> {
    let path = packaging().join("moord.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse_toml_top(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '#' if !in_str => return &line[..i],
            _ => {}
        }
    }
    line
}

fn parse_toml_top(text: &str) -> Result<Vec<(String, Value)>, String> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            break; // tables ([[policy]]) are not needed here
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not key = value", i + 1))?;
        let key = k.trim().to_string();
        let mut v = v.trim().to_string();
        if v.starts_with('[') {
            while !v.ends_with(']') {
                let (_, more) = lines
                    .next()
                    .ok_or_else(|| format!("line {}: unterminated array", i + 1))?;
                v.push(' ');
                v.push_str(strip_comment(more).trim());
            }
            let inner = &v[1..v.len() - 1];
            let items = inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| unquote(s).ok_or_else(|| format!("{key}: {s:?} is not a plain string")))
                .collect::<Result<Vec<_>, _>>()?;
            out.push((key, Value::Strs(items)));
        } else if let Some(s) = unquote(&v) {
            out.push((key, Value::Str(s)));
        } else {
            let n = v
                .parse()
                .map_err(|_| format!("{key}: {v:?} is neither a string nor an integer"))?;
            out.push((key, Value::Int(n)));
        }
        if out[..out.len() - 1]
            .iter()
            .any(|(k, _)| *k == out[out.len() - 1].0)
        {
            return Err(format!("line {}: duplicate key", i + 1));
        }
    }
    Ok(out)
}

fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains(['"', '\\'])).then(|| inner.to_string())
}

fn toml_get<'a>(t: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    t.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn toml_str(t: &[(String, Value)], key: &str) -> String {
    match toml_get(t, key) {
        Some(Value::Str(s)) => s.clone(),
        other => panic!("moord.toml: {key} must be a string, found {other:?}"),
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn capability_bounding_set_is_moords_keep_list() {
    let svc = Unit::load("moord.service");
    let caps = svc.list("Service", "CapabilityBoundingSet");
    let unique: BTreeSet<&str> = caps.iter().map(String::as_str).collect();
    assert_eq!(
        unique.len(),
        caps.len(),
        "CapabilityBoundingSet= repeats a capability: {caps:?}"
    );
    assert!(
        caps.iter().all(|c| !c.starts_with('~')),
        "CapabilityBoundingSet= must be a keep-list, not an inverted (~) drop-list: {caps:?}"
    );
    let want: BTreeSet<&str> = DEFAULT_KEEP_CAPS.iter().copied().collect();
    assert_eq!(
        unique, want,
        "moord.service CapabilityBoundingSet= differs from moord's DEFAULT_KEEP_CAPS"
    );
    // The packaged moord.toml spells the keep-list out too; moord cannot keep more
    // than the unit's bounding set, and keeping less would make the unit's line lie.
    let toml = moord_toml();
    match toml_get(&toml, "keep_capabilities") {
        None => {} // moord's default: DEFAULT_KEEP_CAPS
        Some(Value::Strs(list)) => {
            let got: BTreeSet<&str> = list.iter().map(String::as_str).collect();
            assert_eq!(
                got, want,
                "packaging/moord.toml keep_capabilities differs from moord.service"
            );
        }
        Some(other) => panic!("keep_capabilities must be an array of strings: {other:?}"),
    }
}

#[test]
fn stop_timeout_outlasts_moords_shutdown_grace() {
    let svc = Unit::load("moord.service");
    let timeout_ms = timespan_ms(svc.one("Service", "TimeoutStopSec"));
    let toml = moord_toml();
    // moord's default when the key is absent (privhelper/src/config.rs).
    let grace_secs = match toml_get(&toml, "shutdown_grace_secs") {
        None => 30,
        Some(Value::Int(n)) => u64::try_from(*n).expect("shutdown_grace_secs >= 0"),
        Some(other) => panic!("shutdown_grace_secs must be an integer: {other:?}"),
    };
    assert!(
        timeout_ms > grace_secs * 1000,
        "TimeoutStopSec= ({timeout_ms} ms) must exceed shutdown_grace_secs ({grace_secs} s), \
         or systemd SIGKILLs moord while it is still draining"
    );
    // TimeoutStopSec= reaches moord only when the whole unit is signalled the way
    // the grace period assumes: SIGTERM to moord alone.
    assert_eq!(svc.one("Service", "KillMode"), "mixed");
}

#[test]
fn socket_unit_matches_moord_toml() {
    let sock = Unit::load("moord.socket");
    let toml = moord_toml();
    assert_eq!(
        sock.one("Socket", "ListenStream"),
        toml_str(&toml, "socket"),
        "moord.socket ListenStream= vs moord.toml socket"
    );
    assert_eq!(
        octal(sock.one("Socket", "SocketMode")),
        octal(&toml_str(&toml, "socket_mode")),
        "moord.socket SocketMode= vs moord.toml socket_mode"
    );
    let group = match toml_get(&toml, "socket_group") {
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Int(n)) => n.to_string(),
        other => panic!("moord.toml: socket_group must be a name or number: {other:?}"),
    };
    assert_eq!(
        sock.one("Socket", "SocketGroup"),
        group,
        "moord.socket SocketGroup= vs moord.toml socket_group"
    );
    assert_eq!(sock.one("Socket", "SocketUser"), "root");
    // The group the socket is restricted to is the group moord lets in.
    match toml_get(&toml, "allow_groups") {
        Some(Value::Strs(g)) => assert!(
            g.contains(&group),
            "socket group {group:?} is not in moord.toml allow_groups {g:?}"
        ),
        other => panic!("moord.toml: allow_groups must list the socket group: {other:?}"),
    }
}

/// Keys each section may contain; anything else is a typo systemd would ignore.
const SERVICE_KEYS: &[(&str, &[&str])] = &[
    (
        "Unit",
        &["Description", "Documentation", "Requires", "After"],
    ),
    (
        "Service",
        &[
            "Type",
            "ExecStart",
            "ExecReload",
            "Restart",
            "RestartSec",
            "KillMode",
            "TimeoutStopSec",
            "LimitNOFILE",
            "UMask",
            "CapabilityBoundingSet",
            "NoNewPrivileges",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "ReadWritePaths",
            "RestrictAddressFamilies",
            "LockPersonality",
            "RestrictRealtime",
            "SystemCallArchitectures",
        ],
    ),
    ("Install", &["Also", "WantedBy"]),
];

const SOCKET_KEYS: &[(&str, &[&str])] = &[
    ("Unit", &["Description", "Documentation"]),
    (
        "Socket",
        &[
            "ListenStream",
            "SocketMode",
            "SocketUser",
            "SocketGroup",
            "DirectoryMode",
            "RemoveOnStop",
        ],
    ),
    ("Install", &["WantedBy"]),
];

/// Keys that may be given more than once (lists).
const MULTI: &[&str] = &[
    "After",
    "Requires",
    "Documentation",
    "ReadWritePaths",
    "CapabilityBoundingSet",
    "RestrictAddressFamilies",
    "WantedBy",
    "Also",
];

fn check_keys(unit: &Unit, allowed: &[(&str, &[&str])]) -> Result<(), String> {
    for e in &unit.entries {
        let (_, keys) = allowed
            .iter()
            .find(|(s, _)| *s == e.section)
            .ok_or_else(|| {
                format!(
                    "{}:{}: unexpected section [{}]",
                    unit.name, e.line, e.section
                )
            })?;
        if !keys.contains(&e.key.as_str()) {
            return Err(format!(
                "{}:{}: unexpected key {}= in [{}]",
                unit.name, e.line, e.key, e.section
            ));
        }
        let n = unit.all(&e.section, &e.key).len();
        if n != 1 && !MULTI.contains(&e.key.as_str()) {
            return Err(format!(
                "{}: [{}] {}= is set {n} times",
                unit.name, e.section, e.key
            ));
        }
    }
    Ok(())
}

#[test]
fn units_parse_strictly_with_the_documented_settings() {
    let svc = Unit::load("moord.service");
    check_keys(&svc, SERVICE_KEYS).unwrap_or_else(|e| panic!("{e}"));
    let sock = Unit::load("moord.socket");
    check_keys(&sock, SOCKET_KEYS).unwrap_or_else(|e| panic!("{e}"));

    for (key, want) in [
        ("Type", "simple"),
        ("ExecStart", "/usr/sbin/moord --config /etc/moor/moord.toml"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("RestartSec", "1s"),
        ("NoNewPrivileges", "yes"),
        // Not strict: the tools write /etc/iscsi, /etc/multipath and sysfs.
        ("ProtectSystem", "full"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictRealtime", "yes"),
        ("SystemCallArchitectures", "native"),
        ("UMask", "0022"),
        ("KillMode", "mixed"),
        ("LimitNOFILE", "65536"),
    ] {
        assert_eq!(svc.one("Service", key), want, "moord.service {key}=");
    }
    let families: BTreeSet<String> = svc
        .list("Service", "RestrictAddressFamilies")
        .into_iter()
        .collect();
    let want: BTreeSet<String> = ["AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"]
        .map(String::from)
        .into();
    assert_eq!(families, want, "RestrictAddressFamilies=");
    let rw = svc.list("Service", "ReadWritePaths");
    for p in ["/var/log/moor", "/run/moor"] {
        assert!(
            rw.iter().any(|x| x == p),
            "ReadWritePaths= lacks {p}: {rw:?}"
        );
    }
    // ProtectSystem=full makes /etc read-only; the tools' state under /etc must be
    // reopened, and optional ("-"), since not every host has every tool.
    for p in ["/etc/iscsi", "/etc/multipath", "/etc/nvme"] {
        assert!(
            rw.iter().any(|x| x == &format!("-{p}")),
            "ReadWritePaths= lacks -{p}: {rw:?}"
        );
    }
    // nvme.host_identity creates files in /etc/nvme, which "-" reopens only if it
    // exists when moord starts: tmpfiles.d makes sure it does.
    let tmpfiles =
        std::fs::read_to_string(packaging().join("tmpfiles.d/moor.conf")).expect("tmpfiles");
    assert!(
        tmpfiles
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["d", "/etc/nvme", "0755", "root", "root", "-"]),
        "tmpfiles.d/moor.conf does not create /etc/nvme"
    );
    assert!(
        svc.all("Service", "ProtectKernelTunables").is_empty(),
        "ProtectKernelTunables= would make /sys read-only; moord writes sysfs"
    );
    assert!(svc.all("Unit", "Requires").contains(&"moord.socket"));
    assert!(svc.all("Unit", "After").contains(&"moord.socket"));

    assert_eq!(sock.one("Socket", "RemoveOnStop"), "yes");
    assert_eq!(octal(sock.one("Socket", "DirectoryMode")), 0o755);
    assert_eq!(sock.one("Install", "WantedBy"), "sockets.target");

    // The parser itself rejects what it should.
    assert!(
        Unit::parse("x", "Key=v\n").is_err(),
        "key outside a section"
    );
    assert!(Unit::parse("x", "[A]\njunk\n").is_err(), "not key=value");
    assert!(
        Unit::parse("x", "[A]\nK=v \\\n").is_err(),
        "dangling continuation"
    );
    let typo = Unit::parse("x", "[Service]\nTypo=simple\n").expect("parses");
    assert!(check_keys(&typo, SERVICE_KEYS).is_err(), "unknown key");
    let twice = Unit::parse("x", "[Service]\nType=simple\nType=exec\n").expect("parses");
    assert!(check_keys(&twice, SERVICE_KEYS).is_err(), "duplicated key");
}

/// The moord binary the units are verified against.
fn moord_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOORD_BIN") {
        return PathBuf::from(p);
    }
    common::cargo_build(&["-p", "moor-privhelper", "--bin", "moord"]);
    target_dir().join("debug/moord")
}

/// Run `systemd-analyze verify` on both units in `dir`; `None` when the tool is
/// not installed. Returns (success, stdout + stderr).
fn analyze_verify(dir: &Path) -> Option<(bool, String)> {
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no", "./moord.socket", "./moord.service"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running systemd-analyze: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

/// The two units in a fresh directory, ExecStart= pointing at `moord`, the
/// service's text passed through `edit`.
fn unit_copy(moord: &Path, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let sd = packaging().join("systemd");
    let svc = std::fs::read_to_string(sd.join("moord.service")).expect("read moord.service");
    assert!(
        svc.contains("ExecStart=/usr/sbin/moord "),
        "ExecStart= moved"
    );
    let svc = svc.replace(
        "ExecStart=/usr/sbin/moord ",
        &format!("ExecStart={} ", moord.display()),
    );
    std::fs::write(dir.path().join("moord.service"), edit(svc)).expect("write moord.service");
    std::fs::copy(sd.join("moord.socket"), dir.path().join("moord.socket"))
        .expect("copy moord.socket");
    dir
}

#[test]
fn systemd_analyze_verify_accepts_both_units() {
    let moord = moord_bin();
    assert!(moord.is_file(), "{} not found", moord.display());
    let moord = moord.canonicalize().expect("absolute moord path");
    let good = unit_copy(&moord, |s| s);
    let Some((ok, text)) = analyze_verify(good.path()) else {
        eprintln!(
            "systemd-analyze is not installed: only the strict parse \
             (units_parse_strictly_with_the_documented_settings) checks the units"
        );
        return;
    };
    assert!(ok, "systemd-analyze verify failed:\n{text}");
    // verify exits 0 on unknown keys and bad values and only warns: any output is
    // a failure.
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify printed warnings:\n{text}"
    );

    // Controls: in this environment verify does report what the check above relies
    // on — a typo'd key and a bad value (printed, exit 0) and a missing binary
    // (exit status).
    let typo = unit_copy(&moord, |s| {
        s.replace("KillMode=mixed", "KillMode=mixd")
            .replace("Type=simple", "Typo=simple")
    });
    let (_, text) = analyze_verify(typo.path()).expect("systemd-analyze ran before");
    assert!(
        text.contains("mixd") && text.contains("Typo"),
        "systemd-analyze verify did not report a broken unit, so its silence above \
         proves nothing:\n{text}"
    );
    let missing = unit_copy(Path::new("/nonexistent/moord"), |s| s);
    let (ok, text) = analyze_verify(missing.path()).expect("systemd-analyze ran before");
    assert!(
        !ok,
        "systemd-analyze verify accepted a missing ExecStart binary:\n{text}"
    );
}

// ------------------------------------------------------------------ typed operations vs the shipped filters

use moor_privhelper::moor_filters::{self, Class, LoadOptions, Loaded, System};
use moor_privhelper::ops::{self, IscsiRecord, OPS, Plan};
use serde_json::json;

/// Every executable exists (in the first exec dir): the decision is about argv.
#[derive(Debug)]
struct AnyExec;

impl System for AnyExec {
    fn is_executable(&self, _: &Path) -> bool {
        true
    }
    fn is_file(&self, _: &Path) -> bool {
        true
    }
    fn realpath(&self, path: &str) -> Option<String> {
        Some(path.to_string())
    }
    fn proc_exe(&self, _: u32) -> Option<String> {
        None
    }
}

fn shipped_filters() -> Loaded {
    let dir = packaging().join("filters.d");
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&dir).expect("filters.d").uid();
    let loaded = moor_filters::load(
        &[dir],
        &LoadOptions {
            trusted_owner: owner,
        },
    );
    assert!(
        loaded.is_clean(),
        "packaging/filters.d does not load cleanly: {:?}",
        loaded.diagnostics
    );
    loaded
}

fn exec_dirs() -> Vec<PathBuf> {
    moor_filters::config::DEFAULT_EXEC_DIRS
        .iter()
        .map(PathBuf::from)
        .collect()
}

const IQNS: &[&str] = &[
    "iqn.2004-10.com.example:vol-1",
    "eui.0123456789abcdef",
    "naa.0123456789abcdef0123456789abcdef",
];
const PORTALS: &[&str] = &["10.0.0.1:3260", "[fd00::1]:3260", "[2001:db8::a:1]:3261"];
const IFACES: &[&str] = &["default", "iser", "bnx2i.00:11:22:33:44:55", "cxgb4i_1"];

/// Valid sample arguments for every typed operation, with the filter that must
/// allow each plan.
fn samples() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    let mut v = Vec::new();
    for (i, iqn) in IQNS.iter().enumerate() {
        for (j, portal) in PORTALS.iter().enumerate() {
            let iface = IFACES[(i + j) % IFACES.len()];
            let np = json!({"iqn": iqn, "portal": portal});
            v.push(("iscsi.node_show", np.clone(), "iscsiadm_node_show"));
            v.push(("iscsi.login", np.clone(), "iscsiadm_node_login_logout"));
            v.push(("iscsi.logout", np.clone(), "iscsiadm_node_login_logout"));
            v.push(("iscsi.node_delete", np.clone(), "iscsiadm_node_delete"));
            v.push((
                "iscsi.node_new",
                json!({"iqn": iqn, "portal": portal, "iface": iface}),
                "iscsiadm_node_new",
            ));
            for (name, value) in [
                ("node.startup", "automatic"),
                ("node.conn[0].startup", "manual"),
                ("node.session.scan", "manual"),
                ("node.session.auth.authmethod", "CHAP"),
                ("node.session.auth.username", "user@example.com"),
                ("node.session.auth.username_in", ""),
            ] {
                v.push((
                    "iscsi.node_update",
                    json!({"iqn": iqn, "portal": portal, "name": name, "value": value}),
                    "iscsiadm_node_update",
                ));
            }
            for key in ["password", "password_in"] {
                v.push((
                    "iscsi.node_secret",
                    json!({"iqn": iqn, "portal": portal, "iface": iface, "key": key, "secret": "Sekr1t pw!"}),
                    "iscsi_node_secret",
                ));
            }
        }
    }
    for (j, portal) in PORTALS.iter().enumerate() {
        for (i, iqn) in IQNS.iter().enumerate() {
            let portal = PORTALS[i % PORTALS.len()];
            v.push((
                "iscsi.node_configure",
                json!({"iqn": iqn, "portal": portal, "iface": IFACES[i % IFACES.len()],
                   "settings": [["node.session.scan", "manual"], ["node.startup", "automatic"],
                                ["node.session.auth.authmethod", "CHAP"],
                                ["node.session.auth.username", "u-1"],
                                ["node.session.auth.username_in", ""],
                                ["node.session.timeo.replacement_timeout", "5"]],
                   "password": "pw-1", "password_in": "pw-2"}),
                "iscsi_node_secret",
            ));
        }
        for iface in IFACES {
            let pi = json!({"portal": portal, "iface": iface});
            v.push(("iscsi.discover", pi.clone(), "iscsiadm_discovery"));
            v.push((
                "iscsi.discovery_new",
                pi.clone(),
                "iscsiadm_discoverydb_new",
            ));
            v.push((
                "iscsi.discovery_run",
                pi.clone(),
                "iscsiadm_discoverydb_discover",
            ));
            for name in [
                "discovery.sendtargets.auth.authmethod",
                "discovery.sendtargets.auth.username",
                "discovery.sendtargets.auth.username_in",
            ] {
                v.push((
                    "iscsi.discovery_update",
                    json!({"portal": portal, "iface": iface, "name": name, "value": "CHAP"}),
                    "iscsiadm_discoverydb_update",
                ));
            }
        }
        v.push((
            "iscsi.portal_nodes",
            json!({"portal": portal}),
            "iscsiadm_node_show_portal",
        ));
        let key = ["password", "password_in"][j % 2];
        v.push((
            "iscsi.discovery_secret",
            json!({"portal": portal, "key": key, "secret": "x"}),
            "iscsi_discovery_secret",
        ));
    }
    for (host, channel, target, lun) in [
        (0, 0, 0, 0),
        (3, 0, 1, 255),
        (12, 1, 7, 256),
        (2, 0, 0, 16_384),
        (7, 0, 3, 1u64 << 40),
    ] {
        v.push((
            "scsi.scan",
            json!({"host": host, "channel": channel, "target": target, "lun": lun}),
            "scsi_host_scan",
        ));
        v.push((
            "scsi.scan_all_targets",
            json!({"host": host, "lun": lun}),
            "scsi_host_scan_all_targets",
        ));
    }
    for dev in ["sda", "sdb", "sdaa", "sdzzz"] {
        let a = json!({"device": dev, "expected_wwid": "36001405abcdef0123456789abcdef012"});
        v.push(("scsi.delete", a.clone(), "scsi_device_delete"));
        v.push(("scsi.rescan", a.clone(), "scsi_device_rescan"));
        v.push(("block.flush", a, "blockdev_flush"));
    }
    for dev in ["nvme0n1", "nvme12n345"] {
        v.push((
            "block.flush",
            json!({"device": dev, "expected_wwid": "uuid.c20aba21-6ef6-446b-b374-45733b4883ba"}),
            "blockdev_flush",
        ));
    }
    for dev in ["dm-0", "dm-17"] {
        v.push((
            "block.flush",
            json!({"device": dev, "expected_wwid": "36001405abcdef0123456789abcdef012"}),
            "blockdev_flush",
        ));
    }
    const W: &str = "36001405abcdef0123456789abcdef012";
    for dev in ["sdb", "sdaa"] {
        let a = json!({"device": dev, "expected_wwid": W});
        v.push(("multipath.add_wwid", a.clone(), "multipath_add_wwid"));
        v.push(("multipath.add_path", a.clone(), "multipathd_path"));
        v.push(("multipath.del_path", a, "multipathd_path"));
    }
    for (dev, map) in [("dm-0", W), ("dm-12", "mpatha"), ("dm-3", "vol_1:x-2.y")] {
        let a = json!({"device": dev, "map": map, "expected_wwid": W});
        v.push(("multipath.flush", a.clone(), "multipath_flush"));
        v.push(("multipath.resize", a, "multipathd_resize_map"));
        v.push((
            "multipath.check",
            json!({"device": dev, "expected_wwid": W}),
            "multipath_check",
        ));
    }
    for w in [W, "eui.0123456789abcdef", "SATA_disk1_WD-1234"] {
        v.push((
            "multipath.forget_wwid",
            json!({"wwid": w}),
            "multipath_forget_wwid",
        ));
    }
    for dev in ["sdc", "dm-4", "nvme0n1", "sdaa"] {
        v.push(("block.users", json!({"device": dev}), "block_users"));
    }
    for dev in ["sdc", "dm-4"] {
        v.push((
            "block.read_check",
            json!({"device": dev, "expected_wwid": W}),
            "blockdev_read_check",
        ));
    }
    for iface in IFACES {
        v.push((
            "iscsi.iface_show",
            json!({"iface": iface}),
            "iscsiadm_iface_show",
        ));
    }
    for (link, dev) in [
        (
            "/dev/disk/by-id/wwn-0x6001405abcdef0123456789abcdef012",
            "sdb",
        ),
        (
            "/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn.2004-10.com.example:vol-1-lun-1-part1",
            "sdb",
        ),
        (
            "/dev/disk/by-id/dm-uuid-mpath-36001405abcdef0123456789abcdef012",
            "dm-3",
        ),
    ] {
        v.push((
            "block.remove_stale_link",
            json!({"link": link, "device": dev}),
            "blockdev_stale_link",
        ));
    }
    v.push(("multipath.status", json!({}), "multipathd_show_status"));
    v.push(("multipath.paths", json!({}), "multipathd_show_paths"));
    v.extend(luks_samples());
    v.extend(nvme_samples());
    v.extend(md_samples());
    v.extend(dasd_samples());
    v.extend(zfcp_samples());
    v
}

/// `zfcp.*`: adapters short and long, ports and FCP LUNs in any case.
fn zfcp_samples() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    let mut v = Vec::new();
    for (busid, wwpn, lun) in [
        ("0.0.1900", "500507630b1b41c3", "0x4020400a00000000"),
        ("1940", "0x500507630B1B41C3", "0x0001000000000000"),
        ("fe.3.ffff", "50:05:07:63:0b:1b:41:c3", "0X412C000000000000"),
    ] {
        v.push((
            "zfcp.port_rescan",
            json!({"busid": busid}),
            "zfcp_port_rescan",
        ));
        let u = json!({"busid": busid, "wwpn": wwpn, "fcp_lun": lun});
        v.push(("zfcp.unit_add", u.clone(), "zfcp_unit_add"));
        v.push(("zfcp.unit_remove", u, "zfcp_unit_remove"));
    }
    v
}

/// Namespace WWIDs as the kernel prints them, for MD legs.
const NS_WWIDS: &[&str] = &[
    "uuid.c20aba21-6ef6-446b-b374-45733b4883ba",
    "eui.0123456789abcdef",
    "nvme.1b4b-3132-4d44-0001",
    "uuid.5b3e2d1c-0f9a-4e8b-8c7d-6a5b4c3d2e1f",
    "uuid.00000000-0000-4000-8000-000000000005",
];

/// `n` legs on namespaces `nvme{first+i}n{i+1}` (multi-digit names included).
fn md_legs(n: usize, first: usize) -> serde_json::Value {
    serde_json::Value::Array(
        (0..n)
            .map(|i| json!({"device": format!("nvme{}n{}", first + i * 5, i + 1), "expected_wwid": NS_WWIDS[i]}))
            .collect(),
    )
}

/// `md.*`: every leg count on its own filter line, short and longest names.
fn md_samples() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    let name = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let long = "v".repeat(32);
    let names = ["vol-1", "a", "md_a.b", "_x", "9", long.as_str()];
    let mut v = Vec::new();
    for (i, n) in names.iter().enumerate() {
        for legs in 2..=4 {
            v.push((
                "md.create",
                json!({"name": n, "legs": md_legs(legs, i * 3)}),
                name(format!("mdadm_create_{legs}")),
            ));
        }
        for legs in 1..=4 {
            v.push((
                "md.assemble",
                json!({"name": n, "legs": md_legs(legs, i * 3)}),
                name(format!("mdadm_assemble_{legs}")),
            ));
        }
        for (j, device) in ["md0", "md127", "md4294967295"].iter().enumerate() {
            let a = json!({"device": device, "name": n, "legs": md_legs(1 + (i + j) % 4, j)});
            v.push(("md.stop", a.clone(), "mdadm_stop"));
            v.push(("md.grow", a, "mdadm_grow"));
        }
    }
    v
}

/// DASD uids as the kernel prints them: a base device, one with a virtual device
/// unit id token, upper-case hex (printed lower case).
const DASD_UIDS: &[&str] = &[
    "IBM.750000000DXP71.2300.05",
    "IBM.75000000092461.e900.8a.0123456789abcdef0123456789abcdef",
    "HTC.1234567890ABCD.00FF.1F",
];

/// `dasd.*`: bus ids short and long (a bare devno, the highest css and ssid),
/// disks dasda to dasdzzzz.
fn dasd_samples() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    let mut v = Vec::new();
    for (i, busid) in ["0.0.b100", "b101", "0.3.ffff", "fe.1.0000", "0.0.00AB"]
        .iter()
        .enumerate()
    {
        let uid = DASD_UIDS[i % DASD_UIDS.len()];
        let b = json!({"busid": busid});
        v.push(("dasd.free", b.clone(), "dasd_cio_ignore_free"));
        v.push(("dasd.online", b, "dasd_online"));
        let bu = json!({"busid": busid, "expected_uid": uid});
        v.push(("dasd.safe_offline", bu.clone(), "dasd_safe_offline"));
        v.push(("dasd.offline", bu, "dasd_offline"));
        for device in ["dasda", "dasdz", "dasdaa", "dasdzzzz"] {
            let a = json!({"busid": busid, "device": device, "expected_uid": uid});
            v.push(("dasd.format", a.clone(), "dasd_format"));
            v.push(("dasd.partition", a, "dasd_partition"));
        }
    }
    v
}

const SUBSYS_NQNS: &[&str] = &[
    "nqn.2016-06.io.spdk:cnode1",
    "nqn.1992-08.com.netapp:sn.0123456789abcdef:subsystem.vol_1",
    "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "nqn.2023-01.com.example",
    "nqn.2014-08.org.nvmexpress.discovery:x",
];
const HOST_NQN: &str = "nqn.2014-08.org.nvmexpress:uuid:9126e942-396d-11e7-b0b7-a81e84c186d1";
const HOST_ID: &str = "9126e942-396d-11e7-b0b7-a81e84c186d1";

/// `nvme.*`: both transports, IPv4 and IPv6 (also as written non-canonically),
/// with and without an I/O queue count.
fn nvme_samples() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    let mut v = Vec::new();
    let addrs = ["10.0.0.1", "fd00:0::1", "2001:db8::a:1", "192.0.2.255"];
    for (i, nqn) in SUBSYS_NQNS.iter().enumerate() {
        for (j, transport) in ["tcp", "rdma"].iter().enumerate() {
            let traddr = addrs[(i + j) % addrs.len()];
            let hostnqn = [HOST_NQN, "nqn.2014-08.com.example:host-1"][(i + j) % 2];
            let loss = [-1, 0, 600][i % 3];
            let base = json!({"transport": transport, "traddr": traddr, "trsvcid": 4420 + i,
                "nqn": nqn, "hostnqn": hostnqn, "hostid": HOST_ID,
                "ctrl_loss_tmo": loss, "reconnect_delay": 1 + j * 9});
            v.push(("nvme.connect", base.clone(), "nvme_connect"));
            for q in [1, 4, 4096] {
                let mut a = base.clone();
                a["nr_io_queues"] = json!(q);
                v.push(("nvme.connect", a, "nvme_connect_queues"));
            }
            v.push((
                "nvme.disconnect",
                json!({"controller": format!("nvme{}", i * 7 + j), "expected_subsysnqn": nqn,
                    "expected_transport": transport, "expected_traddr": traddr,
                    "expected_trsvcid": 4420 + i, "expected_hostnqn": hostnqn}),
                "nvme_delete_controller",
            ));
        }
    }
    for ctrl in ["nvme0", "nvme12", "nvme4294967295"] {
        v.push((
            "nvme.ns_rescan",
            json!({"controller": ctrl}),
            "nvme_rescan_controller",
        ));
        for tmo in [-1, 0, 5, 2_147_483_647] {
            v.push((
                "nvme.fast_io_fail",
                json!({"controller": ctrl, "fast_io_fail_tmo": tmo}),
                "nvme_fast_io_fail_tmo",
            ));
        }
    }
    for nqn in [
        HOST_NQN,
        "nqn.2014-08.com.example:host-1",
        "nqn.2023-01.com.example",
    ] {
        v.push((
            "nvme.host_identity",
            json!({"hostnqn": nqn}),
            "nvme_hostnqn",
        ));
    }
    for id in [HOST_ID, "9126E942396D11E7B0B7A81E84C186D1"] {
        v.push(("nvme.host_identity", json!({"hostid": id}), "nvme_hostid"));
    }
    v.push(("nvme.system_uuid", json!({}), "nvme_system_uuid"));
    v.push(("iscsi.initiator_name", json!({}), "iscsi_initiator_name"));
    v.push(("multipath.wwids", json!({}), "multipath_wwids"));
    v.push((
        "nvme.system_uuid",
        serde_json::Value::Null,
        "nvme_system_uuid",
    ));
    v
}

/// `luks.*` on whole devices with every optional-flag combination the filters
/// cover. Filter names are leaked once per name (tests only).
fn luks_samples() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    const W: &str = "36001405abcdef0123456789abcdef012";
    let name = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let mut v = Vec::new();
    // Every subset of the optional format settings (iter_time and
    // force_iterations exclude each other).
    let mut pbkdfs = vec![None];
    for alg in [None, Some("pbkdf2"), Some("argon2id")] {
        for cost in [
            None,
            Some(("iter_time_ms", 2000)),
            Some(("force_iterations", 1000)),
        ] {
            for mem in [None, Some(65536)] {
                let mut p = serde_json::Map::new();
                if let Some(a) = alg {
                    p.insert("algorithm".into(), json!(a));
                }
                if let Some((k, n)) = cost {
                    p.insert(k.into(), json!(n));
                }
                if let Some(m) = mem {
                    p.insert("memory_kib".into(), json!(m));
                }
                pbkdfs.push(Some((serde_json::Value::Object(p.clone()), p.len())));
            }
        }
    }
    for dev in ["sdb", "sdaa", "dm-0", "dm-17", "nvme0n1", "nvme12n3"] {
        let target = json!({"device": {"name": dev, "expected_wwid": W}});
        let t = json!({"target": target});
        v.push(("luks.is_luks", t.clone(), "cryptsetup_is_luks"));
        v.push(("luks.dump", t, "cryptsetup_luks_dump"));
        for version in ["luks1", "luks2"] {
            for cipher in [None, Some("aes-xts-plain64"), Some("aes-cbc-essiv:sha256")] {
                for key_size in [None, Some(512)] {
                    for pbkdf in &pbkdfs {
                        let mut a =
                            json!({"target": target, "version": version, "passphrase": "pw"});
                        let mut pairs = 0;
                        if let Some(c) = cipher {
                            a["cipher"] = json!(c);
                            pairs += 1;
                        }
                        if let Some(k) = key_size {
                            a["key_size"] = json!(k);
                            pairs += 1;
                        }
                        if let Some((p, n)) = pbkdf {
                            if version == "luks1" && p.get("algorithm") == Some(&json!("argon2id"))
                            {
                                continue;
                            }
                            a["pbkdf"] = p.clone();
                            pairs += n;
                        }
                        v.push(("luks.format", a, name(format!("cryptsetup_format_{pairs}"))));
                    }
                }
            }
        }
        for (p, n) in pbkdfs.iter().flatten() {
            v.push((
                "luks.add_key",
                json!({"target": target, "passphrase": "old", "new_passphrase": "new pass", "pbkdf": p}),
                name(format!("cryptsetup_add_key_{n}")),
            ));
        }
        v.push((
            "luks.add_key",
            json!({"target": target, "passphrase": "old", "new_passphrase": "new"}),
            "cryptsetup_add_key_0",
        ));
        for slot in [0, 7, 31] {
            v.push((
                "luks.remove_key",
                json!({"target": target, "slot": slot, "passphrase": "pw"}),
                "cryptsetup_kill_slot",
            ));
            v.push((
                "luks.test_key",
                json!({"target": target, "slot": slot, "passphrase": "pw"}),
                "cryptsetup_test_key_slot",
            ));
        }
        v.push((
            "luks.test_key",
            json!({"target": target, "passphrase": "pw"}),
            "cryptsetup_test_key",
        ));
        for map in [
            "crypt-vol-1",
            "crypt-36001405abcdef0123456789abcdef012",
            "crypt-a.b_c+d",
        ] {
            for ro in [false, true] {
                let sfx = if ro { "_ro" } else { "" };
                v.push((
                    "luks.open",
                    json!({"target": target, "name": map, "mode": "luks", "read_only": ro, "passphrase": "pw"}),
                    name(format!("cryptsetup_open_luks{sfx}")),
                ));
                for (cipher, key_size, n) in [
                    (None, None, 0),
                    (Some("aes-cbc-essiv:sha256"), None, 1),
                    (None, Some(256), 1),
                    (Some("aes-xts-plain64"), Some(512), 2),
                ] {
                    let mut a = json!({"target": target, "name": map, "mode": "plain", "read_only": ro, "passphrase": "pw"});
                    if let Some(c) = cipher {
                        a["cipher"] = json!(c);
                    }
                    if let Some(k) = key_size {
                        a["key_size"] = json!(k);
                    }
                    v.push((
                        "luks.open",
                        a,
                        name(format!("cryptsetup_open_plain{sfx}_{n}")),
                    ));
                }
            }
            let ids = json!({"name": map, "backing": dev, "expected_wwid": W});
            v.push(("luks.close", ids.clone(), "cryptsetup_close"));
            v.push(("luks.resize", ids.clone(), "cryptsetup_resize"));
            let mut with = ids;
            with["passphrase"] = json!("pw");
            v.push(("luks.resize", with, "cryptsetup_resize_key"));
        }
    }
    v
}

/// The address of a portal as open-iscsi names record directories (no brackets).
fn record_addr(portal: &str) -> (String, u16) {
    let p: ops::IscsiDiscover =
        serde_json::from_value(json!({"portal": portal, "iface": "default"})).expect("portal");
    let shown = p.portal.to_string();
    let (host, port) = shown.rsplit_once(':').expect("host:port");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host.to_string(), port.parse().expect("port"))
}

/// A fixture database holding the records `rec` can be in (current and legacy
/// layouts), and the canonical paths moord finds there.
fn record_paths(rec: &IscsiRecord) -> Vec<String> {
    let t = tempfile::tempdir().expect("tempdir");
    let db = t.path().join("etc/iscsi");
    match rec {
        IscsiRecord::Node { iqn, portal, iface } => {
            let (addr, port) = record_addr(&portal.to_string());
            let target = db.join("nodes").join(iqn.to_string());
            for tpgt in [1, 2] {
                let d = target.join(format!("{addr},{port},{tpgt}"));
                std::fs::create_dir_all(&d).expect("mkdir");
                std::fs::write(d.join(iface.to_string()), "node.startup = manual\n")
                    .expect("write");
            }
            std::fs::write(target.join(format!("{addr},{port}")), "").expect("legacy");
        }
        IscsiRecord::Discovery { portal } => {
            let (addr, port) = record_addr(&portal.to_string());
            let d = db.join("send_targets").join(format!("{addr},{port}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("st_config"), "").expect("write");
        }
    }
    let mut found: Vec<String> = moor_privhelper::records::locate(t.path(), "/etc/iscsi", rec)
        .expect("records found")
        .into_iter()
        .map(|f| f.host_path)
        .collect();
    // The legacy discovery layout (the portal entry is the record).
    if let IscsiRecord::Discovery { portal } = rec {
        let (addr, port) = record_addr(&portal.to_string());
        found.push(format!("/etc/iscsi/send_targets/{addr},{port}"));
    }
    found
}

#[test]
fn shipped_filters_lint_clean() {
    let loaded = shipped_filters();
    let findings = moor_filters::audit::lint(&loaded);
    assert!(
        findings.is_empty(),
        "`moor filters lint --strict` would report: {findings:#?}"
    );
    // rootwrap splits definitions on ',': no pattern may contain one.
    let text = std::fs::read_to_string(packaging().join("filters.d/moor.filters")).expect("read");
    for f in &loaded.set.filters {
        assert!(
            f.args.iter().all(|a| !a.contains(',')),
            "{} has a comma in a pattern",
            f.name
        );
    }
    assert!(text.contains("[Filters]"));
}

#[test]
fn every_typed_operation_passes_the_shipped_filters() {
    let loaded = shipped_filters();
    let set = &loaded.set;
    let dirs = exec_dirs();
    let samples = samples();
    let untyped = ["ping", "metrics", "exec", "file.read", "sysfs.write"];
    for e in OPS.iter().filter(|e| !untyped.contains(&e.name)) {
        assert!(
            samples.iter().any(|(op, _, _)| *op == e.name),
            "no sample arguments for typed operation {}",
            e.name
        );
    }
    for (op, args, want) in &samples {
        let plan = ops::plan(op, &args.to_string()).unwrap_or_else(|e| panic!("{op} {args}: {e}"));
        match plan {
            Plan::Exec(p) => {
                let d = set.decide(&p.argv, &dirs, &AnyExec);
                assert!(d.allowed(), "{op} {:?} denied: {:?}", p.argv, d.reason);
                assert_eq!(
                    d.filter.as_ref().map(|f| f.name.as_str()),
                    Some(*want),
                    "{op} {:?}",
                    p.argv
                );
                // One more argument is never allowed.
                let mut longer = p.argv.clone();
                longer.push("--debug=8".into());
                assert!(
                    !set.decide(&longer, &dirs, &AnyExec).allowed(),
                    "{longer:?}"
                );
                let mut longer = p.argv.clone();
                longer.push(p.argv.last().cloned().unwrap_or_default());
                let d = set.decide(&longer, &dirs, &AnyExec);
                match want.strip_prefix("mdadm_assemble_") {
                    // A repeated leg is one leg more: the next line's shape (a
                    // pattern cannot compare arguments; md.assemble refuses a
                    // leg given twice, and so does mdadm).
                    Some(n) if n != "4" => {
                        let next = format!("mdadm_assemble_{}", n.parse::<u8>().unwrap() + 1);
                        assert_eq!(d.filter.map(|f| f.name), Some(next), "{longer:?}");
                    }
                    _ => assert!(!d.allowed(), "{longer:?}"),
                }
            }
            Plan::WriteFile { path, value, guard } => {
                let d = set.decide_write(&path, &value);
                assert!(
                    d.allowed,
                    "{op}: write {value:?} to {path} denied: {:?}",
                    d.reason
                );
                assert_eq!(d.filter.as_ref().map(|f| f.name.as_str()), Some(*want));
                assert!(!set.decide_write(&path, &format!("{value} 1")).allowed);
                assert!(!set.decide_write(&path, &format!("{value}\n1")).allowed);
                // Deleting a device or controller is always identity-checked.
                if path.ends_with("/delete") || path.ends_with("/delete_controller") {
                    assert!(guard.is_some(), "{op}: {path} without a guard");
                }
            }
            Plan::CreateFile { path, value } => {
                let d = set.decide_write(&path, &value);
                assert!(
                    d.allowed,
                    "{op}: create {path} with {value:?} denied: {:?}",
                    d.reason
                );
                assert_eq!(d.filter.as_ref().map(|f| f.name.as_str()), Some(*want));
                for more in [" ", "\n", ",1", " 1", "\n1"] {
                    let v = format!("{value}{more}");
                    assert!(!set.decide_write(&path, &v).allowed, "{path} {v:?}");
                }
                assert!(!set.decide_write(&format!("{path}.new"), &value).allowed);
            }
            Plan::ReadFile { path } => {
                let argv = vec!["cat".to_string(), path.clone()];
                let d = set.decide(&argv, &dirs, &AnyExec);
                assert!(d.allowed(), "{op}: cat {path} denied: {:?}", d.reason);
                let f = d.filter.as_ref().expect("filter");
                assert_eq!((f.name.as_str(), f.class), (*want, Class::ReadFileFilter));
                let mut longer = argv.clone();
                longer.push("/etc/shadow".into());
                assert!(
                    !set.decide(&longer, &dirs, &AnyExec).allowed(),
                    "{longer:?}"
                );
            }
            Plan::IscsiSecret(p) => {
                let paths = record_paths(&p.record);
                assert!(paths.len() >= 2, "{paths:?}");
                for path in &paths {
                    for e in &p.entries {
                        let d = set.decide_write(path, &e.key);
                        assert!(
                            d.allowed,
                            "{op}: key {} in {path} denied: {:?}",
                            e.key, d.reason
                        );
                        // Passwords by the secret filters, settings by the settings one.
                        let name = d.filter.as_ref().map(|f| f.name.as_str());
                        if e.secret {
                            assert_eq!(name, Some(*want), "{}", e.key);
                        } else {
                            assert_eq!(name, Some("iscsi_node_settings"), "{}", e.key);
                        }
                        // Keys are allowed, never a value or a key with a value.
                        if e.secret || !e.value.expose().is_empty() {
                            assert!(!set.decide_write(path, e.value.expose()).allowed);
                        }
                        let kv = format!("{} = {}", e.key, e.value.expose());
                        assert!(!set.decide_write(path, &kv).allowed, "{kv}");
                    }
                    for other in [
                        "node.name",
                        "node.session.auth.chap_algs",
                        "iface.iscsi_ifacename",
                    ] {
                        assert!(!set.decide_write(path, other).allowed, "{path} {other}");
                    }
                }
            }
            other => panic!("{op}: unexpected plan {other:?}"),
        }
    }
}

/// The shipped filters are exactly what the typed operations need: every filter
/// allows at least one operation's plan (nothing kept "just in case").
#[test]
fn every_shipped_filter_is_needed_by_a_typed_operation() {
    let loaded = shipped_filters();
    let mut used: BTreeSet<&str> = samples().iter().map(|(_, _, want)| *want).collect();
    // IscsiSecret plans write their non-secret keys through this one.
    used.insert("iscsi_node_settings");
    let unused: Vec<&str> = loaded
        .set
        .filters
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| !used.contains(n))
        .collect();
    assert!(
        unused.is_empty(),
        "filters no typed operation needs (remove them or add the operation's sample): {unused:?}"
    );
}

#[test]
fn mutated_plans_are_denied_by_the_shipped_filters() {
    let loaded = shipped_filters();
    let set = &loaded.set;
    let dirs = exec_dirs();
    let argv = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let iqn = IQNS[0];
    for denied in [
        // A password through node_update / discoverydb update would sit in argv.
        argv(&[
            "iscsiadm",
            "-m",
            "node",
            "-T",
            iqn,
            "-p",
            "10.0.0.1:3260",
            "--op",
            "update",
            "-n",
            "node.session.auth.password",
            "-v",
            "x",
        ]),
        argv(&[
            "iscsiadm",
            "-m",
            "node",
            "-T",
            iqn,
            "-p",
            "10.0.0.1:3260",
            "--op",
            "update",
            "-n",
            "node.session.auth.password_in",
            "-v",
            "x",
        ]),
        argv(&[
            "iscsiadm",
            "-m",
            "discoverydb",
            "-t",
            "sendtargets",
            "-I",
            "default",
            "-p",
            "10.0.0.1:3260",
            "--op",
            "update",
            "-n",
            "discovery.sendtargets.auth.password",
            "-v",
            "x",
        ]),
        // fuser may only list the users of one whole disk: no -k (kill), no -m.
        argv(&["fuser", "-k", "/dev/sdb"]),
        argv(&["fuser", "-m", "/dev/sdb"]),
        argv(&["fuser", "/dev/sdb", "/dev/sdc"]),
        argv(&["fuser", "/etc/shadow"]),
        // A WWID is never an option.
        argv(&["multipath", "-w", "-F"]),
        argv(&["multipath", "-W"]),
        // Other modes, other discovery types, no iface.
        argv(&[
            "iscsiadm",
            "-m",
            "discoverydb",
            "-t",
            "isns",
            "-I",
            "default",
            "-p",
            "10.0.0.1:3260",
            "--discover",
        ]),
        argv(&[
            "iscsiadm",
            "-m",
            "discoverydb",
            "-t",
            "sendtargets",
            "-p",
            "10.0.0.1:3260",
            "--discover",
        ]),
        argv(&[
            "iscsiadm",
            "-m",
            "discoverydb",
            "-t",
            "sendtargets",
            "-I",
            "default",
            "-p",
            "10.0.0.1:3260",
            "--op",
            "delete",
        ]),
        argv(&[
            "iscsiadm",
            "-m",
            "node",
            "-T",
            iqn,
            "-p",
            "10.0.0.1:3260",
            "--interface",
            "-default",
            "--op",
            "new",
        ]),
        argv(&[
            "iscsiadm",
            "-m",
            "node",
            "-T",
            iqn,
            "-p",
            "10.0.0.1:3260",
            "--login",
            "--logout",
        ]),
        argv(&["blockdev", "--flushbufs", "/dev/sda", "/dev/sdb"]),
        argv(&["blockdev", "--flushbufs", "/dev/sda1"]),
    ] {
        let d = set.decide(&denied, &dirs, &AnyExec);
        assert!(!d.allowed(), "{denied:?} allowed by {:?}", d.filter);
    }
    // cryptsetup: only whole devices, only crypt-* mappings, only the planned
    // options, never a passphrase in argv.
    for denied in [
        // Image files are for test filters only.
        argv(&["cryptsetup", "isLuks", "/var/lib/moor/v.img"]),
        argv(&["cryptsetup", "luksDump", "/tmp/images/a.img"]),
        argv(&[
            "cryptsetup",
            "--batch-mode",
            "luksFormat",
            "--type",
            "luks2",
            "--key-file=-",
            "/var/lib/moor/v.img",
        ]),
        argv(&[
            "cryptsetup",
            "luksKillSlot",
            "--key-file=-",
            "/tmp/a.img",
            "0",
        ]),
        // Partitions, other device kinds, path tricks.
        argv(&["cryptsetup", "isLuks", "/dev/sdb1"]),
        // A hidden path of an NVMe multipath head, a namespace's partition.
        argv(&["cryptsetup", "isLuks", "/dev/nvme0c1n1"]),
        argv(&["cryptsetup", "isLuks", "/dev/nvme0n1p1"]),
        argv(&["cryptsetup", "isLuks", "/dev/mapper/crypt-x"]),
        argv(&["cryptsetup", "isLuks", "/dev/../dev/sdb"]),
        // luksKillSlot never in batch mode (it would kill a slot with its own
        // passphrase without asking), never a slot out of range.
        argv(&[
            "cryptsetup",
            "--batch-mode",
            "luksKillSlot",
            "--key-file=-",
            "/dev/sdb",
            "1",
        ]),
        argv(&[
            "cryptsetup",
            "luksKillSlot",
            "--batch-mode",
            "--key-file=-",
            "/dev/sdb",
            "1",
        ]),
        argv(&[
            "cryptsetup",
            "luksKillSlot",
            "--key-file=-",
            "/dev/sdb",
            "32",
        ]),
        argv(&[
            "cryptsetup",
            "luksKillSlot",
            "-q",
            "--key-file=-",
            "/dev/sdb",
            "1",
        ]),
        // A key file other than stdin, a detached header, a passphrase in argv.
        argv(&[
            "cryptsetup",
            "luksOpen",
            "--key-file=/etc/shadow",
            "/dev/sdb",
            "crypt-x",
        ]),
        argv(&[
            "cryptsetup",
            "--batch-mode",
            "luksFormat",
            "--type",
            "luks2",
            "--header",
            "/tmp/h",
            "--key-file=-",
            "/dev/sdb",
        ]),
        argv(&[
            "cryptsetup",
            "--batch-mode",
            "luksFormat",
            "--type",
            "luks2",
            "--cipher",
            "--batch-mode",
            "--key-file=-",
            "/dev/sdb",
        ]),
        argv(&["cryptsetup", "luksErase", "/dev/sdb"]),
        argv(&["cryptsetup", "erase", "/dev/sdb"]),
        argv(&[
            "cryptsetup",
            "luksFormat",
            "--type",
            "luks2",
            "--key-file=-",
            "/dev/sdb",
        ]),
        // Mappings moor does not own (a host's root volume), or by path.
        argv(&["cryptsetup", "close", "luks-0123"]),
        argv(&["cryptsetup", "close", "/dev/mapper/crypt-x"]),
        argv(&["cryptsetup", "close", "--deferred", "crypt-x"]),
        argv(&["cryptsetup", "luksOpen", "--key-file=-", "/dev/sdb", "root"]),
        argv(&[
            "cryptsetup",
            "create",
            "--key-file=-",
            "luks-0123",
            "/dev/sdb",
        ]),
        argv(&["cryptsetup", "resize", "--size", "1", "crypt-x"]),
        argv(&["cryptsetup", "resize", "luks-0123"]),
        argv(&[
            "cryptsetup",
            "luksAddKey",
            "--key-file=-",
            "--keyfile-size=3",
            "--new-keyfile=/etc/shadow",
            "--new-keyfile-size=4",
            "/dev/sdb",
        ]),
        argv(&[
            "cryptsetup",
            "luksAddKey",
            "--cipher",
            "aes",
            "--key-file=-",
            "--keyfile-size=3",
            "--new-keyfile=-",
            "--new-keyfile-size=4",
            "/dev/sdb",
        ]),
    ] {
        let d = set.decide(&denied, &dirs, &AnyExec);
        assert!(!d.allowed(), "{denied:?} allowed by {:?}", d.filter);
    }
    for (path, value) in [
        // Wildcard scans: every channel/target/LUN of a host.
        ("/sys/class/scsi_host/host0/scan", "- - -"),
        ("/sys/class/scsi_host/host0/scan", "0 0 -"),
        ("/sys/class/scsi_host/host0/scan", "0 - 1"),
        ("/sys/class/scsi_host/host0/scan", "- 0 1"),
        ("/sys/class/scsi_host/host0/scan", "- - 1\n"),
        ("/sys/class/scsi_host/host0/scan", "- - 1 2"),
        ("/sys/class/scsi_host/host0/scan", "0 0 1 "),
        ("/sys/class/scsi_host/hostX/scan", "0 0 1"),
        ("/sys/block/sda/device/delete", "0"),
        ("/sys/block/sda1/device/delete", "1"),
        ("/sys/block/dm-0/device/delete", "1"),
        ("/sys/bus/scsi/devices/0:0:0:1/delete", "1"),
        ("/sys/block/sda/device/../../sdb/device/delete", "1"),
        // Record edits: only the listed keys, only in records.
        ("/etc/iscsi/iscsid.conf", "node.session.auth.password"),
        ("/etc/iscsi/iscsid.conf", "node.startup"),
        (
            "/etc/iscsi/nodes/iqn.2004-10.com.example:vol-1/10.0.0.1,3260,1/default",
            "node.name",
        ),
        (
            "/etc/iscsi/nodes/iqn.2004-10.com.example:vol-1/10.0.0.1,3260,1/default",
            "node.startup = automatic",
        ),
        (
            "/etc/iscsi/nodes/iqn.2004-10.com.example:vol-1/10.0.0.1,3260,1/default",
            "discovery.sendtargets.auth.password",
        ),
        (
            "/etc/iscsi/nodes/iqn.2004-10.com.example:vol-1/10.0.0.1,3260,1/../../../iscsid.conf",
            "node.session.auth.password",
        ),
        (
            "/etc/iscsi/nodes/iqn.2004-10.com.example:vol-1/host.example.com,3260,1/default",
            "node.session.auth.password",
        ),
        (
            "/etc/iscsi/send_targets/10.0.0.1,3260/st_config",
            "node.session.auth.password",
        ),
        (
            "/etc/iscsi/send_targets/10.0.0.1,3260/iqn.2004-10.com.example:vol-1,10.0.0.1,3260,1,default",
            "discovery.sendtargets.auth.password",
        ),
        ("/etc/iscsi/ifaces/default", "node.session.auth.password"),
    ] {
        let d = set.decide_write(path, value);
        assert!(
            !d.allowed,
            "write {value:?} to {path} allowed by {:?}",
            d.filter
        );
    }
    // nvme-cli: only `connect` with every option in the planned order.
    let nqn = SUBSYS_NQNS[0];
    let connect = |n: &str, extra: &[&str]| {
        let mut a = argv(&[
            "nvme", "connect", "-t", "tcp", "-a", "10.0.0.1", "-s", "4420", "-n", n, "-q",
            HOST_NQN, "-I", HOST_ID, "-l", "-1", "-c", "10",
        ]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    assert!(
        set.decide(&connect(nqn, &[]), &dirs, &AnyExec).allowed(),
        "the template itself"
    );
    let swap = |from: &str, to: &str| {
        let mut a = connect(nqn, &[]);
        let i = a.iter().position(|x| x == from).expect("in template");
        a[i] = to.to_string();
        a
    };
    for denied in [
        // A comma would add nvme-fabrics options; whitespace and control characters
        // are never part of an NQN; the discovery subsystem has no volumes.
        connect("nqn.2016-06.io.spdk:a,hostnqn=nqn.2014-08.org.evil:x", &[]),
        connect("nqn.2016-06.io.spdk:a b", &[]),
        connect("nqn.2016-06.io.spdk:a\tb", &[]),
        connect("nqn.2016-06.io.spdk:a\n", &[]),
        connect("nqn.2014-08.org.nvmexpress.discovery", &[]),
        connect("iqn.2004-10.com.example:vol-1", &[]),
        connect("nqn.2016-6.io.spdk:a", &[]),
        swap(HOST_NQN, "nqn.2014-08.org.nvmexpress.discovery"),
        swap(HOST_NQN, "nqn.2014-08.org.example:h,ctrl_loss_tmo=0"),
        // Extra or reordered options, other transports, host names, -a options.
        connect(nqn, &["-D"]),
        connect(nqn, &["--duplicate-connect"]),
        connect(nqn, &["-i"]),
        connect(nqn, &["-i", "4", "-i", "8"]),
        connect(nqn, &["-k", "0"]),
        swap("tcp", "fc"),
        swap("tcp", "loop"),
        swap("10.0.0.1", "array.example.com"),
        swap("10.0.0.1", "-d"),
        swap("10.0.0.1", "10.0.0.1,host_traddr=10.0.0.9"),
        swap(HOST_ID, &HOST_ID.to_uppercase()),
        swap(HOST_ID, "not-a-uuid"),
        swap("-1", "-2"),
        swap("10", "-1"),
        swap("-I", "--hostid"),
        argv(&["nvme", "disconnect", "-n", nqn]),
        argv(&["nvme", "disconnect", "-d", "nvme0"]),
        argv(&["nvme", "disconnect-all"]),
        argv(&["nvme", "connect-all"]),
        argv(&[
            "nvme", "discover", "-t", "tcp", "-a", "10.0.0.1", "-s", "8009",
        ]),
        argv(&["nvme", "gen-hostnqn"]),
        argv(&["nvme", "ns-rescan", "/dev/nvme0"]),
        argv(&["nvme", "format", "/dev/nvme0n1"]),
        // Other files than the SMBIOS UUID, or more than one.
        argv(&["cat", "/sys/class/dmi/id/product_serial"]),
        argv(&["cat", "/sys/class/dmi/id/product_uuid", "/etc/shadow"]),
        argv(&["cat", "/sys/class/dmi/id/../id/product_uuid"]),
        argv(&["cat", "/sys/devices/virtual/dmi/id/product_uuid"]),
    ] {
        let d = set.decide(&denied, &dirs, &AnyExec);
        assert!(!d.allowed(), "{denied:?} allowed by {:?}", d.filter);
    }
    for (path, value) in [
        // zFCP: other adapter attributes, port removal, several LUNs, other forms.
        (
            "/sys/bus/ccw/drivers/zfcp/0.0.1900/port_remove",
            "0x500507630b1b41c3",
        ),
        ("/sys/bus/ccw/drivers/zfcp/0.0.1900/online", "0"),
        ("/sys/bus/ccw/drivers/zfcp/0.0.1900/port_rescan", "0"),
        ("/sys/bus/ccw/drivers/zfcp/1900/port_rescan", "1"),
        ("/sys/bus/ccw/drivers/zfcp/0.0.1900/../x/port_rescan", "1"),
        (
            "/sys/bus/ccw/drivers/zfcp/0.0.1900/0x500507630b1b41c3/unit_add",
            "0x4020400a",
        ),
        (
            "/sys/bus/ccw/drivers/zfcp/0.0.1900/0x500507630b1b41c3/unit_add",
            "0x4020400a00000000 0x4021400a00000000",
        ),
        (
            "/sys/bus/ccw/drivers/zfcp/0.0.1900/0x500507630b1b41c3/unit_add",
            "0x4020400a00000000\n",
        ),
        (
            "/sys/bus/ccw/drivers/zfcp/0.0.1900/500507630b1b41c3/unit_add",
            "0x4020400a00000000",
        ),
        (
            "/sys/bus/ccw/drivers/zfcp/0.0.1900/0x500507630B1B41C3/unit_remove",
            "0x4020400a00000000",
        ),
        (
            "/sys/bus/ccw/devices/0.0.1900/0x500507630b1b41c3/unit_add",
            "0x4020400a00000000",
        ),
        // Other controller attributes, namespaces, other values, other paths.
        ("/sys/class/nvme/nvme0/reset_controller", "1"),
        ("/sys/class/nvme/nvme0/delete_controller", "0"),
        ("/sys/class/nvme/nvme0/delete_controller", "1\n"),
        ("/sys/class/nvme/nvme0n1/delete_controller", "1"),
        ("/sys/class/nvme/nvme0c0n1/delete_controller", "1"),
        ("/sys/class/nvme/nvme/delete_controller", "1"),
        ("/sys/class/nvme/nvme0/../nvme1/delete_controller", "1"),
        ("/sys/class/nvme-fabrics/ctl/nvme0/delete_controller", "1"),
        (
            "/sys/devices/virtual/nvme-fabrics/ctl/nvme0/delete_controller",
            "1",
        ),
        ("/sys/class/nvme/nvme0/rescan_controller", "0"),
        ("/sys/class/nvme/nvme0/fast_io_fail_tmo", "-2"),
        ("/sys/class/nvme/nvme0/fast_io_fail_tmo", "off"),
        ("/sys/class/nvme/nvme0/ctrl_loss_tmo", "-1"),
        ("/sys/class/nvme/nvme0/reconnect_delay", "1"),
        (
            "/sys/class/nvme-subsystem/nvme-subsys0/iopolicy",
            "round-robin",
        ),
        // The identity files: only their own content, only there.
        ("/etc/nvme/hostnqn", &format!("{HOST_NQN}\n")),
        ("/etc/nvme/hostnqn", "nqn.2014-08.org.nvmexpress.discovery"),
        ("/etc/nvme/hostnqn", "nqn.2016-06.io.spdk:a,b"),
        ("/etc/nvme/hostnqn", "nqn.2016-06.io.spdk:a b"),
        ("/etc/nvme/hostnqn", "host-1"),
        ("/etc/nvme/hostnqn", ""),
        ("/etc/nvme/hostnqn", HOST_ID),
        ("/etc/nvme/hostid", HOST_NQN),
        ("/etc/nvme/hostid", &HOST_ID.to_uppercase()),
        ("/etc/nvme/hostid", &format!("{HOST_ID}\n")),
        ("/etc/nvme/hostid", ""),
        ("/etc/nvme/hostnqn.new", HOST_NQN),
        ("/etc/nvme/discovery.conf", HOST_NQN),
        ("/etc/nvme/config.json", HOST_NQN),
        ("/etc/nvme/../nvme/hostnqn", HOST_NQN),
        ("/etc//nvme/hostnqn", HOST_NQN),
        ("/tmp/etc/nvme/hostnqn", HOST_NQN),
        ("/etc/nvme/nvme/hostnqn", HOST_NQN),
        ("/sys/class/dmi/id/product_uuid", HOST_ID),
    ] {
        let d = set.decide_write(path, value);
        assert!(
            !d.allowed,
            "write {value:?} to {path} allowed by {:?}",
            d.filter
        );
    }
    // s390-tools: one device by its canonical bus id, never a range, list or
    // `all`; dasdfmt only with the planned settings (never -F, never another
    // layout or mode), fdasd only -a; no other tool or mode.
    for denied in [
        argv(&["cio_ignore", "-r", "0.0.b100-0.0.b1ff"]),
        argv(&["cio_ignore", "-r", "0.0.b100,0.0.b101"]),
        argv(&["cio_ignore", "-r", "b100"]),
        argv(&["cio_ignore", "-r", "0.0.B100"]),
        argv(&["cio_ignore", "-R"]),
        argv(&["cio_ignore", "-a", "0.0.b100"]),
        argv(&["cio_ignore", "-p"]),
        argv(&["cio_ignore", "-r", "0.0.b100", "-R"]),
        argv(&["cio_ignore", "-r", "0.4.b100"]),
        argv(&["cio_ignore", "-r", "0.0.b1000"]),
        argv(&["chccwdev", "-e", "0.0.b100-0.0.b1ff"]),
        argv(&["chccwdev", "-e", "0.0.b100,0.0.b101"]),
        argv(&["chccwdev", "-f", "0.0.b100"]),
        argv(&["chccwdev", "-a", "online=1", "0.0.b100"]),
        argv(&["chccwdev", "-a", "use_diag=1", "-e", "0.0.b100"]),
        argv(&["chccwdev", "-e", "-s", "0.0.b100"]),
        argv(&["chccwdev", "--online", "0.0.b100"]),
        argv(&["chccwdev", "-s", "../0.0.b100"]),
        argv(&["chzdev", "-e", "dasd", "0.0.b100"]),
        argv(&[
            "dasdfmt",
            "-y",
            "-b",
            "4096",
            "-d",
            "cdl",
            "-F",
            "/dev/dasdb",
        ]),
        argv(&[
            "dasdfmt",
            "-y",
            "-F",
            "-b",
            "4096",
            "-d",
            "cdl",
            "/dev/dasdb",
        ]),
        argv(&["dasdfmt", "-y", "-b", "4096", "-d", "ldl", "/dev/dasdb"]),
        argv(&["dasdfmt", "-y", "-b", "512", "-d", "cdl", "/dev/dasdb"]),
        argv(&["dasdfmt", "-b", "4096", "-d", "cdl", "/dev/dasdb"]),
        argv(&[
            "dasdfmt",
            "-y",
            "-b",
            "4096",
            "-d",
            "cdl",
            "-M",
            "quick",
            "/dev/dasdb",
        ]),
        argv(&["dasdfmt", "-y", "-b", "4096", "-d", "cdl", "/dev/dasdb1"]),
        argv(&["dasdfmt", "-y", "-b", "4096", "-d", "cdl", "/dev/sdb"]),
        argv(&[
            "dasdfmt",
            "-y",
            "-b",
            "4096",
            "-d",
            "cdl",
            "/dev/disk/by-path/ccw-0.0.b100",
        ]),
        argv(&[
            "dasdfmt",
            "-y",
            "-b",
            "4096",
            "-d",
            "cdl",
            "/dev/dasdb",
            "/dev/dasdc",
        ]),
        argv(&[
            "dasdfmt",
            "-y",
            "-b",
            "4096",
            "-d",
            "cdl",
            "/dev/../dev/dasdb",
        ]),
        argv(&["fdasd", "-a", "/dev/dasdb1"]),
        argv(&["fdasd", "-c", "/tmp/conf", "/dev/dasdb"]),
        argv(&["fdasd", "-a", "-f", "/dev/dasdb"]),
        argv(&["fdasd", "/dev/dasdb"]),
        argv(&["fdasd", "-a", "/dev/sdb"]),
    ] {
        let d = set.decide(&denied, &dirs, &AnyExec);
        assert!(!d.allowed(), "{denied:?} allowed by {:?}", d.filter);
    }
    // mdadm: only the planned argv, on NVMe namespaces, with the leg count the
    // line is for.
    let long = "v".repeat(32);
    let leg = |i: usize| format!("/dev/nvme{i}n1");
    let create = |name: &str, legs: &[String]| {
        let mut a = argv(&[
            "mdadm",
            "--create",
            &format!("/dev/md/{name}"),
            "--run",
            &format!("--name={name}"),
            "--level=1",
            &format!("--raid-devices={}", legs.len()),
            "--bitmap=internal",
            "--homehost=any",
            "--failfast",
            "--assume-clean",
            "--metadata=1.2",
        ]);
        a.extend(legs.iter().cloned());
        a
    };
    let assemble = |name: &str, legs: &[String]| {
        let mut a = argv(&["mdadm", "--assemble", "--run", &format!("/dev/md/{name}")]);
        a.extend(legs.iter().cloned());
        a
    };
    let two = [leg(0), leg(1)];
    for ok in [
        create("vol-1", &two),
        create(&long, &[leg(0), leg(1), leg(2), leg(3)]),
        assemble("vol-1", &two[..1]),
        argv(&["mdadm", "--stop", "/dev/md127"]),
    ] {
        assert!(
            set.decide(&ok, &dirs, &AnyExec).allowed(),
            "template {ok:?}"
        );
    }
    let edit = |mut a: Vec<String>, i: usize, to: &str| {
        a[i] = to.to_string();
        a
    };
    let without = |mut a: Vec<String>, what: &str| {
        a.retain(|x| x != what);
        a
    };
    let c2 = create("vol-1", &two);
    let mut denied = vec![
        // A leg count the --raid-devices value does not match (a 3-leg argv is
        // allowed only as written for 3 legs), 1 or 5 legs.
        edit(
            create("vol-1", &[leg(0), leg(1), leg(2)]),
            6,
            "--raid-devices=2",
        ),
        edit(c2.clone(), 6, "--raid-devices=3"),
        create("vol-1", &[leg(0)]),
        create("vol-1", &[leg(0), leg(1), leg(2), leg(3), leg(4)]),
        assemble("vol-1", &[leg(0), leg(1), leg(2), leg(3), leg(4)]),
        assemble("vol-1", &[]),
        // Legs that are not NVMe namespaces.
        create("vol-1", &[leg(0), "/dev/sda".into()]),
        create("vol-1", &[leg(0), "/dev/nvme0c1n1".into()]),
        create("vol-1", &[leg(0), "/dev/nvme0n1p1".into()]),
        create("vol-1", &[leg(0), "/dev/md127".into()]),
        create("vol-1", &[leg(0), "/dev/dm-0".into()]),
        create("vol-1", &[leg(0), "/dev/../dev/nvme1n1".into()]),
        create("vol-1", &[leg(0), "nvme1n1".into()]),
        assemble("vol-1", &["/dev/sda".into()]),
        assemble("vol-1", &["/dev/disk/by-id/nvme-x".into()]),
        // Other levels and settings, a missing or an extra option, reordered ones.
        edit(c2.clone(), 5, "--level=0"),
        edit(c2.clone(), 5, "--level=5"),
        edit(c2.clone(), 7, "--bitmap=none"),
        edit(c2.clone(), 8, "--homehost=evil"),
        edit(c2.clone(), 11, "--metadata=1.0"),
        edit(c2.clone(), 11, "--metadata=1x2"),
        edit(c2.clone(), 11, "--metadata=0.90"),
        without(c2.clone(), "--assume-clean"),
        without(c2.clone(), "--run"),
        without(c2.clone(), "--failfast"),
        {
            let mut a = c2.clone();
            a.insert(12, "--force".into());
            a
        },
        {
            let mut a = c2.clone();
            a.swap(3, 4);
            a
        },
        {
            let mut a = c2.clone();
            a.swap(9, 10);
            a
        },
        // Names: a slash, dot names, a leading dash, too long, empty, a path trick.
        create("a/b", &two),
        create("..", &two),
        create(".x", &two),
        create("-x", &two),
        create(&"v".repeat(33), &two),
        create("", &two),
        create("a b", &two),
        assemble("../x", &two),
        assemble("..", &two),
        assemble(&"v".repeat(33), &two),
        edit(c2.clone(), 2, "/dev/md/../x"),
        edit(c2.clone(), 2, "/dev/md127"),
        edit(c2.clone(), 2, "/dev/sda"),
        edit(c2.clone(), 4, "--name=a/b"),
        edit(c2.clone(), 4, "--name=vol-1,x"),
        edit(assemble("vol-1", &two), 3, "/dev/md/x/../../sda"),
        edit(assemble("vol-1", &two), 3, "/dev/md127"),
        // Assemble: no config scan, no --force, always --run with the name.
        argv(&["mdadm", "--assemble", "--scan"]),
        argv(&[
            "mdadm",
            "--assemble",
            "--run",
            "--force",
            "/dev/md/v",
            "/dev/nvme0n1",
        ]),
        argv(&["mdadm", "--assemble", "/dev/md/v", "/dev/nvme0n1"]),
        // Stop and grow: md nodes only, only the planned forms.
        argv(&["mdadm", "--stop", "/dev/sda"]),
        argv(&["mdadm", "--stop", "/dev/nvme0n1"]),
        argv(&["mdadm", "--stop", "/dev/md/vol-1"]),
        argv(&["mdadm", "--stop", "/dev/md"]),
        argv(&["mdadm", "--stop", "/dev/md127p1"]),
        argv(&["mdadm", "--stop", "--scan"]),
        argv(&["mdadm", "--stop", "/dev/md127", "/dev/md126"]),
        argv(&["mdadm", "--grow", "/dev/md127", "--size=1024"]),
        argv(&["mdadm", "--grow", "/dev/md127", "--raid-devices=1"]),
        argv(&["mdadm", "--grow", "/dev/md127", "--level=0"]),
        argv(&["mdadm", "--grow", "/dev/sda", "--size=max"]),
        argv(&["mdadm", "--grow", "--size=max", "/dev/md127"]),
        // Anything else mdadm does.
        argv(&["mdadm", "--zero-superblock", "/dev/nvme0n1"]),
        argv(&["mdadm", "/dev/md127", "--fail", "/dev/nvme0n1"]),
        argv(&["mdadm", "/dev/md127", "--remove", "/dev/nvme0n1"]),
        argv(&["mdadm", "/dev/md127", "--add", "/dev/nvme0n1"]),
        argv(&["mdadm", "--manage", "/dev/md127", "--add", "/dev/nvme0n1"]),
        argv(&["mdadm", "--examine", "/dev/nvme0n1"]),
        argv(&["mdadm", "--detail", "/dev/md127"]),
        argv(&["mdadm", "--monitor", "--scan", "--program=/tmp/x"]),
    ];
    // Every mdadm line refuses an extra leg and one leg less than its count.
    for n in 2..=4 {
        let legs: Vec<String> = (0..n).map(leg).collect();
        let mut more = legs.clone();
        more.push(leg(9));
        denied.push(edit(create("v", &more), 6, &format!("--raid-devices={n}")));
        denied.push(edit(
            create("v", &legs[..n - 1]),
            6,
            &format!("--raid-devices={n}"),
        ));
    }
    for denied in denied {
        let d = set.decide(&denied, &dirs, &AnyExec);
        assert!(!d.allowed(), "{denied:?} allowed by {:?}", d.filter);
    }
    // The typed operations refuse these shapes before the filters see them.
    for (op, args) in [
        (
            "nvme.connect",
            json!({"transport": "tcp", "traddr": "10.0.0.1", "trsvcid": 8009,
                "nqn": "nqn.2014-08.org.nvmexpress.discovery", "hostnqn": HOST_NQN,
                "hostid": HOST_ID, "ctrl_loss_tmo": -1, "reconnect_delay": 10}),
        ),
        (
            "nvme.connect",
            json!({"transport": "tcp", "traddr": "10.0.0.1", "trsvcid": 4420,
                "nqn": nqn, "hostnqn": HOST_NQN, "hostid": HOST_ID, "ctrl_loss_tmo": -1,
                "reconnect_delay": 10, "fast_io_fail_tmo": 5}),
        ),
        (
            "nvme.disconnect",
            json!({"controller": "nvme0n1", "expected_subsysnqn": nqn,
                "expected_transport": "tcp", "expected_traddr": "10.0.0.1",
                "expected_trsvcid": 4420, "expected_hostnqn": HOST_NQN}),
        ),
        ("nvme.disconnect", json!({"controller": "nvme0"})),
        (
            "nvme.fast_io_fail",
            json!({"controller": "nvme0", "fast_io_fail_tmo": -2}),
        ),
        (
            "nvme.host_identity",
            json!({"hostnqn": "nqn.2014-08.org.nvmexpress.discovery"}),
        ),
        (
            "nvme.host_identity",
            json!({"hostnqn": format!("{HOST_NQN}\n")}),
        ),
        (
            "nvme.host_identity",
            json!({"hostnqn": HOST_NQN, "hostid": HOST_ID}),
        ),
        ("nvme.system_uuid", json!({"path": "/etc/shadow"})),
        ("iscsi.initiator_name", json!({"path": "/etc/shadow"})),
        ("multipath.wwids", json!({"path": "/etc/shadow"})),
        (
            "iscsi.node_update",
            json!({"iqn": iqn, "portal": "10.0.0.1", "name": "node.session.auth.password", "value": "x"}),
        ),
        (
            "iscsi.discovery_update",
            json!({"portal": "10.0.0.1", "iface": "default", "name": "discovery.sendtargets.auth.password", "value": "x"}),
        ),
        (
            "iscsi.login",
            json!({"iqn": iqn, "portal": "target.example.com:3260"}),
        ),
        (
            "iscsi.node_update",
            json!({"iqn": iqn, "portal": "10.0.0.1", "name": "node.startup", "value": "a b"}),
        ),
        (
            "iscsi.node_secret",
            json!({"iqn": iqn, "portal": "10.0.0.1", "iface": "default", "key": "password", "secret": "a\nnode.startup = automatic"}),
        ),
        (
            "scsi.scan",
            json!({"host": 0, "channel": 0, "target": 0, "lun": "-"}),
        ),
        (
            "scsi.delete",
            json!({"device": "sda1", "expected_wwid": "3600"}),
        ),
        ("scsi.delete", json!({"device": "sda", "expected_wwid": ""})),
        (
            "block.flush",
            json!({"device": "nvme0c1n1", "expected_wwid": "uuid.x"}),
        ),
        (
            "block.flush",
            json!({"device": "nvme0", "expected_wwid": "uuid.x"}),
        ),
        ("md.create", json!({"name": "v", "legs": md_legs(1, 0)})),
        ("md.create", json!({"name": "v", "legs": md_legs(5, 0)})),
        ("md.assemble", json!({"name": "v", "legs": md_legs(0, 0)})),
        ("md.create", json!({"name": "a/b", "legs": md_legs(2, 0)})),
        ("md.create", json!({"name": "..", "legs": md_legs(2, 0)})),
        (
            "md.create",
            json!({"name": "v", "legs": md_legs(2, 0), "level": 0}),
        ),
        (
            "md.create",
            json!({"name": "v", "legs": [
                {"device": "nvme0n1", "expected_wwid": NS_WWIDS[0]},
                {"device": "nvme0n1", "expected_wwid": NS_WWIDS[1]}]}),
        ),
        (
            "md.create",
            json!({"name": "v", "legs": [
                {"device": "nvme0n1", "expected_wwid": NS_WWIDS[0]},
                {"device": "nvme0c1n1", "expected_wwid": NS_WWIDS[1]}]}),
        ),
        (
            "md.assemble",
            json!({"name": "v", "legs": [{"device": "sda", "expected_wwid": "3600"}]}),
        ),
        (
            "md.stop",
            json!({"device": "sda", "name": "v", "legs": md_legs(2, 0)}),
        ),
        (
            "md.stop",
            json!({"device": "md/vol-1", "name": "v", "legs": md_legs(2, 0)}),
        ),
        (
            "md.grow",
            json!({"device": "md127", "name": "v", "legs": md_legs(5, 0)}),
        ),
        ("md.grow", json!({"device": "md127", "name": "v"})),
        ("dasd.free", json!({"busid": "0.0.b100-0.0.b1ff"})),
        ("dasd.free", json!({"busid": "all"})),
        ("dasd.online", json!({"busid": "0.0.b100", "force": true})),
        ("dasd.online", json!({"busid": "0.0.b100,0.0.b101"})),
        ("dasd.safe_offline", json!({"busid": "0.0.b100"})),
        (
            "dasd.safe_offline",
            json!({"busid": "0.0.b100", "expected_uid": "IBM.x"}),
        ),
        (
            "dasd.format",
            json!({"busid": "0.0.b100", "device": "dasdb1", "expected_uid": DASD_UIDS[0]}),
        ),
        (
            "dasd.format",
            json!({"busid": "0.0.b100", "device": "sdb", "expected_uid": DASD_UIDS[0]}),
        ),
        (
            "dasd.format",
            json!({"busid": "0.0.b100", "device": "dasdb", "expected_uid": DASD_UIDS[0],
                "layout": "ldl"}),
        ),
        (
            "dasd.format",
            json!({"busid": "0.0.b100", "device": "dasdb"}),
        ),
        (
            "dasd.partition",
            json!({"busid": "0.0.b100", "device": "/dev/dasdb", "expected_uid": DASD_UIDS[0]}),
        ),
    ] {
        assert!(
            matches!(
                ops::plan(op, &args.to_string()),
                Err(ops::OpError::BadArgs { .. })
            ),
            "{op} {args} was planned"
        );
    }
}

#[test]
fn packaged_policy_grants_the_typed_families_and_not_raw_exec() {
    // moord.toml as shipped, with the `moor` group replaced by a gid (the group need
    // not exist where the tests run) and loaded the way moord loads it.
    let text = std::fs::read_to_string(packaging().join("moord.toml")).expect("read");
    assert!(text.contains("group = \"moor\""));
    let text = text
        .replace("socket_group = \"moor\"", "socket_group = 4242")
        .replace("allow_groups = [\"moor\"]", "allow_groups = []")
        .replace("group = \"moor\"", "gid = 4242");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("moord.toml");
    std::fs::write(&path, text).expect("write");
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata(&path).expect("meta").uid();
    let cfg = moor_privhelper::config::Config::load(
        Some(&path),
        &moor_privhelper::config::Overrides {
            trusted_owner: Some(me),
            ..Default::default()
        },
    )
    .expect("packaged moord.toml loads");
    assert_eq!(cfg.host_root, PathBuf::from("/"));
    assert_eq!(cfg.iscsi_db_dir, "/etc/iscsi");
    let ops = cfg.ops_for(5000, &[4242]);
    // Formatting and partitioning a DASD are for an admin to grant (docs/dasd.md).
    // Raw argv and raw sysfs writes are for an admin to grant to rootwrap-style
    // callers; the connector uses typed operations only.
    let not_granted = ["dasd.format", "dasd.partition", "exec", "sysfs.write"];
    let all: BTreeSet<String> = OPS
        .iter()
        .map(|e| e.name.to_string())
        .filter(|n| !not_granted.contains(&n.as_str()))
        .collect();
    assert_eq!(
        ops, all,
        "the moor group gets every operation but dasd.format, dasd.partition, exec and sysfs.write"
    );
    for op in not_granted {
        assert!(OPS.iter().any(|e| e.name == op), "{op}");
    }
    for family in [
        "iscsi.",
        "scsi.",
        "block.",
        "multipath.",
        "luks.",
        "nvme.",
        "md.",
        "dasd.",
    ] {
        assert!(ops.iter().any(|o| o.starts_with(family)));
    }
    assert!(cfg.ops_for(5000, &[5000]).is_empty());
}
