//! Loading filter directories from disk: order, hidden files, trust checks, and every
//! kind of rejected file.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use moor_filters::{Config, LoadOptions, Severity, load};

fn me() -> u32 {
    fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}

fn opts() -> LoadOptions {
    LoadOptions {
        trusted_owner: me(),
    }
}

fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).expect("write");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
    p
}

fn codes(l: &moor_filters::Loaded) -> Vec<&'static str> {
    l.diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn reads_every_visible_file_in_name_order_and_dirs_in_given_order() {
    let a = dir();
    let b = dir();
    write(
        a.path(),
        "z.filters",
        "[Filters]\nz: CommandFilter, z, root\n",
    );
    write(a.path(), "a.conf", "[Filters]\na: CommandFilter, a, root\n");
    write(
        a.path(),
        ".hidden",
        "[Filters]\nh: CommandFilter, h, root\n",
    );
    fs::create_dir(a.path().join("subdir")).expect("mkdir");
    write(b.path(), "b", "[Filters]\nb: CommandFilter, b, root\n");
    let l = load(
        &[
            a.path().to_path_buf(),
            PathBuf::from("/nonexistent/moor"),
            b.path().to_path_buf(),
        ],
        &opts(),
    );
    let names: Vec<&str> = l.set.filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a", "z", "b"]);
    assert!(l.is_clean(), "{:?}", l.diagnostics);
    assert_eq!(codes(&l), ["missing-directory"]);
    assert_eq!(l.set.filters[0].origin.line, 2);
}

#[test]
fn rejects_files_rootwrap_would_crash_on_or_misread() {
    let cases = [
        ("no section", "a: CommandFilter, a, root\n", "syntax"),
        ("junk line", "[Filters]\njunk\n", "syntax"),
        (
            "no filters section",
            "[Other]\na: CommandFilter, a, root\n",
            "no-filters-section",
        ),
        (
            "default keys",
            "[DEFAULT]\nsh: CommandFilter, sh, root\n[Filters]\n",
            "default-section",
        ),
        (
            "unknown class",
            "[Filters]\na: CommandFiltre, tee, root\n",
            "bad-filter",
        ),
        (
            "inline comment",
            "[Filters]\na: CommandFilter, a, root # note\n",
            "bad-filter",
        ),
        (
            "bad regex",
            "[Filters]\na: RegExpFilter, a, root, a, (unclosed\n",
            "bad-filter",
        ),
        ("too few", "[Filters]\na: RegExpFilter, a\n", "bad-filter"),
    ];
    for (what, text, code) in cases {
        let d = dir();
        write(d.path(), "x.filters", text);
        write(
            d.path(),
            "y.filters",
            "[Filters]\nok: CommandFilter, ok, root\n",
        );
        let l = load(&[d.path().to_path_buf()], &opts());
        assert!(!l.is_clean(), "{what}");
        assert!(codes(&l).contains(&code), "{what}: {:?}", l.diagnostics);
        assert!(
            l.set
                .filters
                .iter()
                .all(|f| f.origin.file.ends_with("y.filters")),
            "{what}: rejected file's filters are not used"
        );
        let e = l.errors().next().expect("an error");
        assert!(e.to_string().contains("x.filters"), "{e}");
    }
}

#[test]
fn not_utf8_is_rejected() {
    let d = dir();
    let p = d.path().join("x.filters");
    fs::write(&p, b"[Filters]\na: CommandFilter, \xff, root\n").expect("write");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
    let l = load(&[d.path().to_path_buf()], &opts());
    assert_eq!(codes(&l), ["not-utf8"]);
}

#[test]
fn writable_or_foreign_files_and_dirs_are_untrusted() {
    let d = dir();
    let p = write(
        d.path(),
        "x.filters",
        "[Filters]\na: CommandFilter, a, root\n",
    );
    fs::set_permissions(&p, fs::Permissions::from_mode(0o664)).expect("chmod");
    let l = load(&[d.path().to_path_buf()], &opts());
    assert_eq!(codes(&l), ["writable"]);
    assert!(l.set.filters.is_empty());

    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
    let l = load(
        &[d.path().to_path_buf()],
        &LoadOptions {
            trusted_owner: me() + 1,
        },
    );
    assert_eq!(codes(&l), ["untrusted-owner"]);

    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let l = load(&[d.path().to_path_buf()], &opts());
    assert_eq!(codes(&l), ["writable"]);
    assert_eq!(l.diagnostics[0].severity, Severity::Error);
}

#[test]
fn symlinked_files_are_followed_and_their_target_checked() {
    let d = dir();
    let other = dir();
    let target = write(
        other.path(),
        "real",
        "[Filters]\na: CommandFilter, a, root\n",
    );
    symlink(&target, d.path().join("link.filters")).expect("symlink");
    let l = load(&[d.path().to_path_buf()], &opts());
    assert!(l.is_clean());
    assert_eq!(l.set.filters.len(), 1);
    fs::set_permissions(&target, fs::Permissions::from_mode(0o666)).expect("chmod");
    let l = load(&[d.path().to_path_buf()], &opts());
    assert_eq!(codes(&l), ["writable"]);
}

#[test]
fn duplicate_names_warn_and_last_wins() {
    let d = dir();
    write(
        d.path(),
        "x.filters",
        "[Filters]\na: CommandFilter, one, root\nA: CommandFilter, two, root\n",
    );
    let l = load(&[d.path().to_path_buf()], &opts());
    assert!(l.is_clean());
    assert_eq!(codes(&l), ["duplicate-name"]);
    assert_eq!(l.set.filters[0].exec_path, "two");
    assert_eq!(l.set.filters[0].origin.line, 3);
}

#[test]
fn rootwrap_conf_is_read() {
    let d = dir();
    let conf = write(
        d.path(),
        "rootwrap.conf",
        "[DEFAULT]\nfilters_path=/etc/cinder/rootwrap.d,/usr/share/cinder/rootwrap\nexec_dirs=/sbin,/usr/sbin\nuse_syslog=False\n",
    );
    let c = Config::from_rootwrap_conf(&conf).expect("parses");
    assert_eq!(
        c.filters_path,
        [
            PathBuf::from("/etc/cinder/rootwrap.d"),
            PathBuf::from("/usr/share/cinder/rootwrap")
        ]
    );
    assert_eq!(
        c.exec_dirs,
        [PathBuf::from("/sbin"), PathBuf::from("/usr/sbin")]
    );
    let bad = write(
        d.path(),
        "bad.conf",
        "[DEFAULT]\nfilters_path=/etc/x, /etc/y\n",
    );
    assert!(Config::from_rootwrap_conf(&bad).is_err());
    let none = write(d.path(), "none.conf", "[DEFAULT]\nexec_dirs=/sbin\n");
    assert!(Config::from_rootwrap_conf(&none).is_err());
}
