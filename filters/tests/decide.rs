//! Decisions on a fake host: every class, rootwrap's ordering rules, and each
//! deliberate deviation.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use moor_filters::system::realpath_with;
use moor_filters::{Class, Decision, FilterSet, Outcome, System, parse_filters_text};

#[derive(Debug, Default)]
struct FakeHost {
    executables: HashSet<String>,
    links: HashMap<String, String>,
    procs: HashMap<u32, String>,
}

impl FakeHost {
    fn with_bins(bins: &[&str]) -> FakeHost {
        FakeHost {
            executables: bins.iter().map(|s| s.to_string()).collect(),
            ..FakeHost::default()
        }
    }
}

impl System for FakeHost {
    fn is_executable(&self, path: &Path) -> bool {
        self.executables.contains(path.to_str().unwrap_or(""))
    }
    fn is_file(&self, path: &Path) -> bool {
        self.is_executable(path)
    }
    fn realpath(&self, path: &str) -> Option<String> {
        realpath_with(path, |p| self.links.get(p).cloned())
    }
    fn proc_exe(&self, pid: u32) -> Option<String> {
        self.procs.get(&pid).cloned()
    }
}

fn set(text: &str) -> FilterSet {
    let (filters, diags) = parse_filters_text(text, Path::new("t.filters"));
    assert!(
        diags
            .iter()
            .all(|d| d.severity != moor_filters::Severity::Error),
        "{diags:#?}"
    );
    FilterSet { filters }
}

fn decide(s: &FilterSet, host: &FakeHost, argv: &[&str]) -> Decision {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    s.decide(
        &argv,
        &[PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")],
        host,
    )
}

fn exec(d: &Decision) -> Vec<&str> {
    d.exec
        .as_ref()
        .map(|e| e.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

const BINS: &[&str] = &[
    "/usr/sbin/iscsiadm",
    "/usr/sbin/blockdev",
    "/usr/bin/cat",
    "/usr/bin/nice",
    "/usr/sbin/ip",
    "/usr/sbin/lvs",
    "/usr/bin/env",
    "/usr/bin/chown",
    "/bin/kill",
    "/bin/cat",
    "/usr/bin/dd",
    "/usr/bin/ionice",
];

#[test]
fn command_filter_by_basename_or_exact_path() {
    let s = set(
        "[Filters]\niscsiadm: CommandFilter, iscsiadm, root\nabs: CommandFilter, /usr/bin/cat, root\n",
    );
    let h = FakeHost::with_bins(BINS);
    let d = decide(&s, &h, &["iscsiadm", "-m", "session"]);
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(exec(&d), ["/usr/sbin/iscsiadm", "-m", "session"]);
    assert_eq!(
        decide(&s, &h, &["/usr/bin/cat", "x"]).outcome,
        Outcome::Allow
    );
    assert_eq!(decide(&s, &h, &["cat", "x"]).outcome, Outcome::Allow);
    // A full path must be byte-identical to the filter's; relative filters never match one.
    assert_eq!(decide(&s, &h, &["/bin/cat", "x"]).outcome, Outcome::Deny);
    assert_eq!(
        decide(&s, &h, &["/usr/sbin/iscsiadm"]).outcome,
        Outcome::Deny
    );
}

#[test]
fn first_executable_match_wins_and_noexec_is_reported() {
    let s = set(
        "[Filters]\na: CommandFilter, missing-tool, root\nb: CommandFilter, /opt/missing-tool, root\n",
    );
    let h = FakeHost::with_bins(BINS);
    let d = decide(&s, &h, &["missing-tool"]);
    assert_eq!(d.outcome, Outcome::NoExec);
    assert_eq!(d.filter.as_ref().map(|f| f.name.as_str()), Some("a"));
    let s = set("[Filters]\na: CommandFilter, /opt/cat, root\nb: CommandFilter, cat, root\n");
    let d = decide(&s, &h, &["cat", "/etc/hostname"]);
    assert_eq!(d.filter.as_ref().map(|f| f.name.as_str()), Some("b"));
    assert_eq!(exec(&d), ["/usr/bin/cat", "/etc/hostname"]);
}

#[test]
fn regexp_filter_and_its_deviations() {
    let s = set(
        "[Filters]\nblockdev: RegExpFilter, blockdev, root, blockdev, --getsize64|--flushbufs, /dev/.*\n",
    );
    let h = FakeHost::with_bins(BINS);
    assert!(decide(&s, &h, &["blockdev", "--getsize64", "/dev/sdb"]).allowed());
    assert!(decide(&s, &h, &["blockdev", "--flushbufs", "/dev/sdb"]).allowed());
    // rootwrap: `a|b$` leaves `a` unanchored at the end.
    let d = decide(&s, &h, &["blockdev", "--getsize64ANYTHING", "/dev/sdb"]);
    assert_eq!(d.outcome, Outcome::Deny);
    assert!(
        d.reason.as_deref().unwrap_or("").contains("blockdev"),
        "{d:?}"
    );
    // rootwrap: `$` before a final newline.
    assert!(!decide(&s, &h, &["blockdev", "--getsize64", "/dev/sdb\n"]).allowed());
    // rootwrap: `/dev/.*` admits traversal.
    let d = decide(&s, &h, &["blockdev", "--getsize64", "/dev/../etc/shadow"]);
    assert!(!d.allowed());
    assert!(d.reason.as_deref().unwrap_or("").contains(".."), "{d:?}");
    assert_eq!(
        d.closest.as_ref().map(|f| f.name.as_str()),
        Some("blockdev")
    );
    // Wrong count.
    assert!(!decide(&s, &h, &["blockdev", "--getsize64"]).allowed());
    let s = set("[Filters]\nn: RegExpFilter, nice, root, nice, -n\\d+\n");
    assert!(decide(&s, &h, &["nice", "-n5"]).allowed());
    assert!(
        !decide(&s, &h, &["nice", "-n\u{0665}"]).allowed(),
        "Unicode digits are not \\d in moor"
    );
}

#[test]
fn path_filter_components_and_canonical_paths() {
    let s = set("[Filters]\nchown: PathFilter, /usr/bin/chown, root, nova, /var/lib/nova\n");
    let mut h = FakeHost::with_bins(BINS);
    h.links.insert("/var/lib/nova/link".into(), "/etc".into());
    let d = decide(&s, &h, &["chown", "nova", "/var/lib/nova/x/../y"]);
    assert!(d.allowed(), "{d:?}");
    assert_eq!(exec(&d), ["/usr/bin/chown", "nova", "/var/lib/nova/y"]);
    assert!(
        !decide(&s, &h, &["chown", "nova", "/var/lib/nova2/x"]).allowed(),
        "string prefix is not inside"
    );
    assert!(
        !decide(&s, &h, &["chown", "nova", "/var/lib/nova/link/shadow"]).allowed(),
        "symlink out"
    );
    assert!(
        !decide(&s, &h, &["chown", "nova", "x"]).allowed(),
        "relative value"
    );
    assert!(
        !decide(&s, &h, &["chown", "root", "/var/lib/nova/x"]).allowed(),
        "literal"
    );
    assert!(decide(&s, &h, &["chown", "nova", "/var/lib/nova"]).allowed());
}

#[test]
fn kill_filter() {
    let s = set(
        "[Filters]\nk: KillFilter, root, /usr/sbin/dnsmasq, -9, -HUP\nr: KillFilter, root, radvd\n",
    );
    let mut h = FakeHost::with_bins(BINS);
    h.executables.insert("/usr/sbin/dnsmasq".into());
    h.executables.insert("/usr/sbin/radvd".into());
    h.procs.insert(10, "/usr/sbin/dnsmasq".into());
    h.procs.insert(11, "/usr/sbin/dnsmasq (deleted)".into());
    h.procs.insert(12, "/tmp/gone (deleted)".into());
    h.procs.insert(13, "/usr/sbin/radvd".into());
    let d = decide(&s, &h, &["kill", "-HUP", "10"]);
    assert!(d.allowed());
    assert_eq!(exec(&d), ["/bin/kill", "-HUP", "10"]);
    assert!(decide(&s, &h, &["kill", "-9", "11"]).allowed());
    assert!(
        !decide(&s, &h, &["kill", "10"]).allowed(),
        "signal required"
    );
    assert!(!decide(&s, &h, &["kill", "-TERM", "10"]).allowed());
    assert!(
        !decide(&s, &h, &["kill", "-9", "12"]).allowed(),
        "no cmdline fallback"
    );
    assert!(
        !decide(&s, &h, &["kill", "-9", " 10"]).allowed(),
        "plain digits only"
    );
    assert!(!decide(&s, &h, &["kill", "-9", "+10"]).allowed());
    assert!(
        decide(&s, &h, &["kill", "13"]).allowed(),
        "relative target in exec_dirs"
    );
}

#[test]
fn read_file_and_ip_filters() {
    let s = set(
        "[Filters]\nr: ReadFileFilter, /etc/iscsi/initiatorname.iscsi\nip: IpFilter, ip, root\n",
    );
    let h = FakeHost::with_bins(BINS);
    let d = decide(&s, &h, &["cat", "/etc/iscsi/initiatorname.iscsi"]);
    assert_eq!(exec(&d), ["/bin/cat", "/etc/iscsi/initiatorname.iscsi"]);
    assert!(!decide(&s, &h, &["cat", "/etc/shadow"]).allowed());
    assert!(decide(&s, &h, &["ip", "link", "show"]).allowed());
    assert!(decide(&s, &h, &["ip", "netns", "add", "x"]).allowed());
    assert!(!decide(&s, &h, &["ip", "netns", "exec", "x", "sh"]).allowed());
    assert!(!decide(&s, &h, &["ip", "net", "e", "x", "sh"]).allowed());
    assert!(
        !decide(&s, &h, &["ip", "-b", "/tmp/cmds"]).allowed(),
        "batch mode"
    );
    assert!(!decide(&s, &h, &["ip", "-n", "x", "netns", "add", "netns", "exec"]).allowed());
}

#[test]
fn env_filter_pins_values_and_pops_env() {
    let s = set("[Filters]\nlvs: EnvFilter, env, root, LC_ALL=C, LVM_SYSTEM_DIR=, lvs\n");
    let h = FakeHost::with_bins(BINS);
    let d = decide(
        &s,
        &h,
        &["env", "LC_ALL=C", "LVM_SYSTEM_DIR=", "lvs", "--noheadings"],
    );
    assert!(d.allowed(), "{d:?}");
    assert_eq!(exec(&d), ["/usr/sbin/lvs", "--noheadings"]);
    assert_eq!(d.env.get("LC_ALL").map(String::as_str), Some("C"));
    assert!(
        !d.env.contains_key("LVM_SYSTEM_DIR"),
        "empty values are not exported"
    );
    assert!(
        decide(&s, &h, &["LVM_SYSTEM_DIR=", "LC_ALL=C", "lvs"]).allowed(),
        "order free, env optional"
    );
    assert!(
        !decide(&s, &h, &["env", "LC_ALL=en_US", "LVM_SYSTEM_DIR=", "lvs"]).allowed(),
        "values pinned"
    );
    assert!(!decide(&s, &h, &["env", "LC_ALL=C", "LVM_SYSTEM_DIR=/tmp/x", "lvs"]).allowed());
    assert!(
        !decide(&s, &h, &["env", "LC_ALL=C", "lvs"]).allowed(),
        "same names required"
    );
    // The popped `env` is what later filters see, as in rootwrap.
    let s = set("[Filters]\na: EnvFilter, env, root, A=1, lvs\nb: CommandFilter, env, root\n");
    assert!(
        !decide(&s, &h, &["env", "sh"]).allowed(),
        "rootwrap's EnvFilter popped `env` first"
    );
    let s = set("[Filters]\nb: CommandFilter, env, root\na: EnvFilter, env, root, A=1, lvs\n");
    assert!(decide(&s, &h, &["env", "sh"]).allowed());
}

#[test]
fn chaining_checks_the_command_as_given_and_runs_the_leaf() {
    let s = set(
        "[Filters]\nionice: ChainingRegExpFilter, ionice, root, ionice, -c[0-3]\n\
         dd: RegExpFilter, dd, root, dd, if=/dev/zero, of=/dev/sd[a-z]+\n\
         ipx: IpNetnsExecFilter, ip, root\ncat: CommandFilter, cat, root\n",
    );
    let h = FakeHost::with_bins(BINS);
    let d = decide(
        &s,
        &h,
        &["ionice", "-c3", "dd", "if=/dev/zero", "of=/dev/sdb"],
    );
    assert!(d.allowed(), "{d:?}");
    assert_eq!(
        exec(&d),
        [
            "/usr/bin/ionice",
            "-c3",
            "/usr/bin/dd",
            "if=/dev/zero",
            "of=/dev/sdb"
        ]
    );
    assert_eq!(
        d.chained.as_ref().map(|f| f.class),
        Some(Class::RegExpFilter)
    );
    assert!(
        !decide(
            &s,
            &h,
            &[
                "ionice",
                "-c3",
                "/tmp/evil/dd",
                "if=/dev/zero",
                "of=/dev/sdb"
            ]
        )
        .allowed()
    );
    let d = decide(&s, &h, &["ip", "netns", "exec", "ns1", "cat", "/a"]);
    assert_eq!(
        exec(&d),
        ["/usr/sbin/ip", "netns", "exec", "ns1", "/usr/bin/cat", "/a"]
    );
    let d = decide(
        &s,
        &h,
        &["ip", "netns", "exec", "ns1", "/tmp/evil/cat", "/a"],
    );
    assert!(!d.allowed());
    assert!(d.reason.as_deref().unwrap_or("").contains("leaf"), "{d:?}");
}

#[test]
fn denial_reasons() {
    let s = set("[Filters]\niscsiadm: RegExpFilter, iscsiadm, root, iscsiadm, -m, session\n");
    let h = FakeHost::with_bins(BINS);
    let d = decide(&s, &h, &["sh", "-c", "id"]);
    assert!(d.closest.is_none());
    assert!(
        d.reason
            .as_deref()
            .unwrap_or("")
            .contains("no filter allows command \"sh\"")
    );
    let d = decide(&s, &h, &["iscsiadm", "-m", "node"]);
    assert_eq!(d.closest.as_ref().map(|f| f.line), Some(2));
    assert!(
        d.reason
            .as_deref()
            .unwrap_or("")
            .contains("argument 2 \"node\""),
        "{d:?}"
    );
    assert!(!decide(&s, &h, &[]).allowed());
    assert!(!decide(&s, &h, &["iscsiadm", "-m", "session\0"]).allowed());
}

#[test]
fn write_file_filter() {
    let s = set(
        "[Filters]\nscan: WriteFileFilter, /sys/class/scsi_host/host[0-9]+/scan, [0-9]+ [0-9]+ [0-9]+\n",
    );
    assert!(
        s.decide_write("/sys/class/scsi_host/host3/scan", "0 0 1")
            .allowed
    );
    assert!(
        !s.decide_write("/sys/class/scsi_host/host3/scan", "- - -")
            .allowed
    );
    assert!(
        !s.decide_write("/sys/class/scsi_host/host3/../../../../etc/passwd", "0 0 1")
            .allowed
    );
    assert!(
        !s.decide_write("/sys/class/scsi_host/host3/delete", "1")
            .allowed
    );
    // Not a command filter.
    let h = FakeHost::with_bins(BINS);
    assert!(!decide(&s, &h, &["/sys/class/scsi_host/host3/scan"]).allowed());
}

#[test]
fn chained_env_popped_by_a_leaf_is_denied_cleanly() {
    // Found by fuzzing: the leaf EnvFilter pops `env`, leaving the chained argv empty.
    let s = set(
        "[Filters]\nionice: ChainingRegExpFilter, ionice, root, ionice, -c[0-3]\nlvs: EnvFilter, env, root, LC_ALL=C, lvs\n",
    );
    let h = FakeHost::with_bins(BINS);
    let d = decide(&s, &h, &["ionice", "-c3", "env"]);
    assert!(!d.allowed());
    assert!(
        d.reason.as_deref().unwrap_or("").contains("\"env\""),
        "{d:?}"
    );
}
