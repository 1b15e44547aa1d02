//! LUKS on image files through the whole stack, on a host without device-mapper:
//! `moor luks format|status|rekey` → moord (`luks.*` ops, shipped filters plus an
//! administrator's filter for one image directory) → real cryptsetup. Then the
//! result is checked with tools moor does not control: `cryptsetup open
//! --test-passphrase` with the passphrase derived by hand, and QEMU's own LUKS
//! driver (`qemu-io` and `qemu-img convert`; QEMU reads LUKS1 only) writing, reading
//! and decrypting data with it.
//!
//! Must run as root with cryptsetup and qemu-utils installed (scripts/test.sh
//! installs them). Outside CI a missing tool skips the test with a message.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{repo_root, target_dir};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// False (with a message) when the test cannot run here; in CI that is a failure.
fn runnable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let missing: Vec<&str> = ["cryptsetup", "qemu-io", "qemu-img"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = format!("needs root (root: {root}) and tools {missing:?}");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipping: {why}");
    false
}

struct Moord {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
    audit: PathBuf,
    log: PathBuf,
}

impl Drop for Moord {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_mode(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

impl Moord {
    /// moord with the shipped filters plus `extra` (an administrator's file),
    /// granting uid 0 the `luks.*` family only.
    fn start(extra: impl FnOnce(&Path) -> String) -> Moord {
        common::cargo_build(&["-p", "moor-privhelper", "-p", "moor-connector", "--bins"]);
        let dir = tempfile::Builder::new()
            .prefix("moor-luks-")
            .tempdir()
            .expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let fdir = dir.path().join("filters.d");
        fs::create_dir(&fdir).expect("mkdir");
        fs::set_permissions(&fdir, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::create_dir(dir.path().join("images")).expect("mkdir");
        let shipped = fs::read(repo_root().join("packaging/filters.d/moor.filters"))
            .expect("shipped filters");
        write_mode(&fdir.join("moor.filters"), &shipped, 0o644);
        write_mode(
            &fdir.join("images.filters"),
            extra(dir.path()).as_bytes(),
            0o644,
        );
        let config = dir.path().join("moord.toml");
        write_mode(&config, b"socket_mode = \"0600\"\n", 0o644);
        let socket = dir.path().join("moord.sock");
        let audit = dir.path().join("audit.log");
        let log = dir.path().join("moord.log");
        let logf = fs::File::create(&log).expect("log");
        let child = Command::new(target_dir().join("debug/moord"))
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .arg("--filters-path")
            .arg(&fdir)
            .arg("--exec-dirs")
            .arg("/usr/sbin,/usr/bin,/sbin,/bin")
            .arg("--audit-log")
            .arg(&audit)
            .args(["--allow-uid", "0", "--grant", "uid:0=luks.*"])
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup"))
            .stderr(logf)
            .spawn()
            .expect("spawn moord");
        let m = Moord {
            child,
            dir,
            socket,
            audit,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&m.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "moord did not start:\n{}",
                m.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn images(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    fn logs(&self) -> String {
        format!(
            "{}{}",
            fs::read_to_string(&self.log).unwrap_or_default(),
            fs::read_to_string(&self.audit).unwrap_or_default()
        )
    }

    fn moor(&self, args: &[&str]) -> Output {
        let out = Command::new(target_dir().join("debug/moor"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env("MOOR_LOG", "debug")
            .stdin(Stdio::null())
            .output()
            .expect("run moor");
        eprintln!(
            "moor {}: {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// The administrator's filter: cryptsetup on images of one directory (the last
/// argument, or the one before a key slot number), with any flags before it.
fn image_filters(dir: &Path) -> String {
    let image = format!("{}/images/[a-z0-9-]+\\.img", dir.display());
    let mut f = String::from("[Filters]\n");
    for flags in 1..=16 {
        let any = vec![".*"; flags].join(", ");
        f += &format!(
            "cryptsetup_images_{flags}: RegExpFilter, cryptsetup, root, cryptsetup, {any}, {image}\n"
        );
    }
    f += &format!(
        "cryptsetup_images_kill: RegExpFilter, cryptsetup, root, cryptsetup, luksKillSlot, --key-file=-, {image}, [0-9]+\n"
    );
    f
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `cryptsetup open --test-passphrase` with `pass` on stdin: its exit code.
fn test_passphrase(image: &Path, pass: &[u8]) -> i32 {
    let mut child = Command::new("cryptsetup")
        .args(["open", "--test-passphrase", "--key-file=-"])
        .arg(image)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cryptsetup");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pass)
        .expect("write");
    child.wait().expect("wait").code().unwrap_or(-1)
}

/// QEMU's LUKS driver opens `image` with `pass` and runs qemu-io `cmds`.
fn qemu_io(dir: &Path, image: &Path, pass: &[u8], cmds: &[&str]) -> Output {
    let secret = dir.join("qemu-secret");
    write_mode(&secret, pass, 0o600);
    let mut c = Command::new("qemu-io");
    c.arg("--object")
        .arg(format!("secret,id=s0,file={}", secret.display()))
        .arg("--image-opts")
        .arg(format!(
            "driver=luks,key-secret=s0,file.filename={}",
            image.display()
        ));
    for cmd in cmds {
        c.args(["-c", cmd]);
    }
    let out = c.output().expect("qemu-io");
    fs::remove_file(&secret).expect("rm secret");
    out
}

fn new_image(m: &Moord, name: &str) -> PathBuf {
    let p = m.images().join(format!("{name}.img"));
    let f = fs::File::create(&p).expect("create image");
    f.set_len(32 << 20).expect("size image");
    p
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

const PBKDF: [&str; 4] = ["--luks-pbkdf", "pbkdf2", "--luks-pbkdf-iterations", "1000"];

#[test]
fn luks_images_format_interoperate_and_rekey() {
    if !runnable() {
        return;
    }
    let m = Moord::start(image_filters);
    let dir = m.dir.path().to_path_buf();
    // A key-manager key with a NUL and a newline: the passphrase is its hex.
    let key: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0x0a).collect();
    let key_file = dir.join("key.bin");
    write_mode(&key_file, &key, 0o600);
    let pass = hex(&key);
    let new_pass = b"moor new passphrase 7f3c";
    let new_file = dir.join("new.txt");
    write_mode(&new_file, new_pass, 0o600);

    for (provider, version) in [("luks", "1"), ("luks2", "2")] {
        let img = new_image(&m, &format!("vol-{provider}"));
        let img_s = img.to_str().unwrap();
        let enc = dir.join(format!("enc-{provider}.json"));
        fs::write(
            &enc,
            format!(
                r#"{{"provider": "{provider}", "control_location": "front-end", "cipher": "aes-xts-plain64", "key_size": 512}}"#
            ),
        )
        .unwrap();
        let mut args = vec!["luks", "format", "--image", img_s];
        args.extend(["--encryption", enc.to_str().unwrap()]);
        args.extend(["--secret-file", key_file.to_str().unwrap()]);
        args.extend(PBKDF);
        let out = m.moor(&args);
        assert!(out.status.success(), "format {provider}\n{}", m.logs());
        let dump = Command::new("cryptsetup")
            .args(["luksDump", img_s])
            .output()
            .unwrap();
        let dump = String::from_utf8_lossy(&dump.stdout);
        assert!(
            dump.lines()
                .any(|l| l.starts_with("Version:") && l.trim_end().ends_with(version)),
            "{dump}"
        );
        // The derived passphrase is the lower-case hex of the key, byte for byte.
        assert_eq!(test_passphrase(&img, pass.as_bytes()), 0);
        assert_eq!(test_passphrase(&img, pass.to_uppercase().as_bytes()), 2);
        assert_eq!(test_passphrase(&img, &key), 2);

        // Never formatted twice: moord refuses and the header stays as it was.
        let before = fs::read(&img).unwrap();
        let out = m.moor(&args);
        assert!(!out.status.success());
        assert_eq!(fs::read(&img).unwrap(), before, "header changed");
        let status = m.moor(&[
            "luks",
            "status",
            "--image",
            img_s,
            "--secret-file",
            key_file.to_str().unwrap(),
        ]);
        assert!(status.status.success());
        let s = json(&status);
        assert_eq!(s["luks"], true);
        assert_eq!(s["active_slots"], serde_json::json!([0]));
        assert_eq!(s["secret_opens_slot"], 0);

        if provider == "luks" {
            let w = qemu_io(&dir, &img, pass.as_bytes(), &["write -P 0x5a 0 1M"]);
            assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
            let bad = qemu_io(&dir, &img, b"wrong", &["read 0 4k"]);
            assert!(!bad.status.success(), "QEMU opened it with a wrong secret");
        }

        // Rekey to a passphrase secret: add, verify, remove the old slot.
        let mut rekey = vec!["luks", "rekey", "--image", img_s];
        rekey.extend(["--secret-file", key_file.to_str().unwrap()]);
        rekey.extend(["--new-secret-file", new_file.to_str().unwrap()]);
        rekey.extend(["--new-secret-type", "passphrase"]);
        rekey.extend(PBKDF);
        let out = m.moor(&rekey);
        assert!(out.status.success(), "rekey {provider}\n{}", m.logs());
        let r = json(&out);
        assert_eq!(r["removed_slots"], serde_json::json!([0]), "{r}");
        assert_eq!(r["active_slots"], serde_json::json!([r["new_slot"]]), "{r}");
        assert_eq!(r["resumed"], false);
        assert_eq!(
            test_passphrase(&img, pass.as_bytes()),
            2,
            "old secret still opens"
        );
        assert_eq!(test_passphrase(&img, new_pass), 0);
        // Re-running finds the work done.
        let again = json(&m.moor(&rekey));
        assert_eq!(again["resumed"], true);
        assert_eq!(again["removed_slots"], serde_json::json!([]));

        if provider == "luks" {
            // The data written before the rekey reads back with the new secret.
            let r = qemu_io(&dir, &img, new_pass, &["read -P 0x5a 0 1M"]);
            assert!(
                r.status.success()
                    && !String::from_utf8_lossy(&r.stdout).contains("Pattern verification failed"),
                "{}{}",
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr)
            );
            // qemu-img decrypts the whole image with it too.
            let plain = dir.join("plain.raw");
            let secret = dir.join("qemu-img-secret");
            write_mode(&secret, new_pass, 0o600);
            let c = Command::new("qemu-img")
                .arg("convert")
                .arg("--object")
                .arg(format!("secret,id=s0,file={}", secret.display()))
                .arg("--image-opts")
                .arg(format!("driver=luks,key-secret=s0,file.filename={img_s}"))
                .args(["-O", "raw"])
                .arg(&plain)
                .output()
                .expect("qemu-img");
            fs::remove_file(&secret).expect("rm secret");
            assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
            let data = fs::read(&plain).expect("decrypted image");
            assert!(data.len() >= 1 << 20 && data[..1 << 20].iter().all(|&b| b == 0x5a));
            fs::remove_file(&plain).expect("rm");
        }
    }

    // Secrets never reach moord's log or audit trail.
    let logs = m.logs();
    assert!(
        logs.contains("luks.format") && logs.contains("luks.remove_key"),
        "{logs}"
    );
    for s in [pass.as_str(), std::str::from_utf8(new_pass).unwrap()] {
        assert!(!logs.contains(s), "a secret is in moord's log or audit");
    }
}

#[test]
fn luks_format_refuses_an_image_with_a_filesystem() {
    if !runnable() {
        return;
    }
    let m = Moord::start(image_filters);
    let dir = m.dir.path().to_path_buf();
    let img = new_image(&m, "has-ext4");
    // An ext4 superblock magic (0xEF53 at byte 1080).
    let mut data = fs::read(&img).unwrap();
    data[1080] = 0x53;
    data[1081] = 0xef;
    fs::write(&img, &data).unwrap();
    let key = dir.join("k");
    write_mode(&key, b"0123456789abcdef", 0o600);
    let enc = dir.join("enc.json");
    fs::write(
        &enc,
        r#"{"provider": "luks2", "control_location": "front-end"}"#,
    )
    .unwrap();
    let mut args = vec!["luks", "format", "--image", img.to_str().unwrap()];
    args.extend(["--encryption", enc.to_str().unwrap()]);
    args.extend(["--secret-file", key.to_str().unwrap()]);
    args.extend(PBKDF);
    let out = m.moor(&args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not formatted") && err.contains("ext"),
        "{err}"
    );
    assert_eq!(fs::read(&img).unwrap(), data, "the image was changed");
}

#[test]
fn the_shipped_filters_alone_allow_no_image() {
    if !runnable() {
        return;
    }
    let m = Moord::start(|_| "[Filters]\n".into());
    let dir = m.dir.path().to_path_buf();
    let img = new_image(&m, "not-allowed");
    let key = dir.join("k");
    write_mode(&key, b"0123456789abcdef", 0o600);
    let out = m.moor(&["luks", "status", "--image", img.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("denied"), "{err}");
}
