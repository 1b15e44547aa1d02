//! The encryption layer against a fixture sysfs tree and a scripted moord.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::encryption::{EncryptionProps, Passphrase, SecretKind};
use crate::exec::{DryRun, PrivError, Scripted, exec_reply};
use crate::host::fixture::Tree;
use crate::host::udev::ScriptedEvents;

const WWN: &str = "3600a09803830447a4f244c4657616f6f";
const MAPPING: &str = "crypt-5a8b0000-0000-0000-0000-000000000001";
const OLD: &str = "0c84146034e747639b698368807286df";
const NEW: &str = "correct horse battery staple";

/// `cryptsetup luksDump` of a LUKS2 image with slots 0 and 3 (cryptsetup 2.6.1,
/// salts shortened).
const DUMP_LUKS2: &str = "LUKS header information
Version:       \t2
Epoch:         \t6
Metadata area: \t16384 [bytes]
Keyslots area: \t16744448 [bytes]
UUID:          \tdc3b4db7-ffbd-4689-b421-5d477f7623ca
Label:         \t(no label)

Data segments:
  0: crypt
\toffset: 16777216 [bytes]
\tcipher: aes-xts-plain64

Keyslots:
  0: luks2
\tKey:        512 bits
\tPBKDF:      pbkdf2
\tSalt:       98 38 09 bf 22 f4 36 2e
\t            64 af c8 60 04 63 a1 32
\tDigest ID:  0
  3: luks2
\tKey:        512 bits
\tDigest ID:  0
Tokens:
Digests:
  0: pbkdf2
\tHash:       sha256
";

/// `cryptsetup luksDump` of a LUKS1 image with slot 0 (cryptsetup 2.6.1).
const DUMP_LUKS1: &str = "LUKS header information for l1.img

Version:       \t1
Cipher name:   \taes
MK iterations: \t1000
UUID:          \t2877d422-c507-46a7-8d3c-8a936831947a

Key Slot 0: ENABLED
\tIterations:         \t1000
\tKey material offset:\t8
Key Slot 1: DISABLED
Key Slot 2: DISABLED
Key Slot 7: DISABLED
";

fn pass(s: &str) -> Passphrase {
    Passphrase::derive(SecretKind::Passphrase, s.as_bytes()).unwrap()
}

fn luks2() -> EncryptionProps {
    EncryptionProps::from_metadata(&json!({
        "provider": "luks2", "control_location": "front-end",
        "cipher": "aes-xts-plain64", "key_size": 512, "encryption_key_id": "k1"
    }))
    .unwrap()
}

fn plain() -> EncryptionProps {
    EncryptionProps::from_metadata(&json!({
        "provider": "plain", "control_location": "front-end",
        "cipher": "aes-cbc-essiv:sha256", "key_size": 256
    }))
    .unwrap()
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn disk() -> Backing {
    Backing::Device {
        name: "sdb".into(),
        wwid: WWN.into(),
    }
}

struct Env {
    _dir: tempfile::TempDir,
    tree: Tree,
}

fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let tree = Tree::new(dir.path().join("root"));
    tree.add_session(
        1,
        3,
        "iqn.2010-10.org.openstack:volume-1",
        "192.0.2.10",
        3260,
        0,
    );
    tree.add_lun(
        1,
        "3:0:0:1".parse().unwrap(),
        "sdb",
        "8:16",
        "naa.600a09803830447a4f244c4657616f6f",
    );
    tree.add_lun(
        1,
        "3:0:0:2".parse().unwrap(),
        "sdc",
        "8:32",
        "naa.600a098038304400000000000000beef",
    );
    Env { _dir: dir, tree }
}

fn encryptor<'a>(env: &Env, p: &'a dyn Privileged, events: &'a ScriptedEvents) -> Encryptor<'a> {
    Encryptor {
        paths: env.tree.paths(),
        privileged: p,
        events,
        settings: LuksSettings::default(),
    }
}

/// What cryptsetup + udev do for `luks.open`: a crypt mapping over `backing`.
fn open_mapping(tree: &Tree, backing: &str) {
    tree.add_dm(
        "dm-1",
        "254:1",
        MAPPING,
        Some(&format!(
            "CRYPT-LUKS2-dc3b4db7ffbd4689b4215d477f7623ca-{MAPPING}"
        )),
        &[backing],
    );
    tree.udev_add_dm("dm-1", "254:1", MAPPING);
}

fn ok(out: &str) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + use<> {
    let out = out.to_string();
    move |_| Ok(exec_reply(0, &out, ""))
}

fn exit(code: i32, err: &str) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + use<> {
    let err = err.to_string();
    move |_| Ok(exec_reply(code, "", &err))
}

fn device_target() -> Value {
    json!({"device": {"name": "sdb", "expected_wwid": WWN}})
}

#[test]
fn active_slots_of_luks1_and_luks2_dumps() {
    assert_eq!(active_slots(DUMP_LUKS2), [0, 3]);
    assert_eq!(active_slots(DUMP_LUKS1), [0]);
    assert_eq!(active_slots(""), Vec::<u8>::new());
}

#[test]
fn first_attach_formats_a_new_volume_then_opens_it() {
    let env = setup();
    let tree = env.tree.clone();
    let p = Scripted::new()
        .expect_args(
            LuksIsLuks::NAME,
            json!({"target": device_target()}),
            exit(1, ""),
        )
        .expect_args(
            LuksFormat::NAME,
            json!({"target": device_target(), "version": "luks2",
                   "cipher": "aes-xts-plain64", "key_size": 512, "passphrase": OLD}),
            ok(""),
        )
        .expect_args(
            LuksOpen::NAME,
            json!({"target": device_target(), "name": MAPPING, "mode": "luks",
                   "read_only": false, "passphrase": OLD}),
            move |_| {
                open_mapping(&tree, "sdb");
                Ok(exec_reply(0, "", ""))
            },
        );
    let events = ScriptedEvents::new();
    let e = encryptor(&env, &p, &events);
    let o = e
        .open(&luks2(), MAPPING, &disk(), &pass(OLD), false, far())
        .unwrap();
    assert_eq!(
        o,
        Opened {
            path: format!("/dev/mapper/{MAPPING}"),
            mapping: MAPPING.into(),
            dm: "dm-1".into(),
            formatted: true,
            reused: false,
        }
    );
    assert!(p.unused().is_empty(), "{:?}", p.unused());
    // A LUKS header carries its own cipher: open does not pass one.
    let open = &p.calls()[2].1;
    assert!(open.get("cipher").is_none_or(Value::is_null), "{open}");
}

#[test]
fn an_existing_luks_volume_is_opened_without_formatting() {
    let env = setup();
    let tree = env.tree.clone();
    let p = Scripted::new()
        .expect(LuksIsLuks::NAME, ok(""))
        .expect(LuksOpen::NAME, move |_| {
            open_mapping(&tree, "sdb");
            Ok(exec_reply(0, "", ""))
        });
    let events = ScriptedEvents::new();
    let o = encryptor(&env, &p, &events)
        .open(&luks2(), MAPPING, &disk(), &pass(OLD), true, far())
        .unwrap();
    assert!(!o.formatted && !o.reused);
    assert_eq!(p.calls()[1].1["read_only"], json!(true));
}

#[test]
fn wrong_secret_opens_nothing_and_never_leaks_the_secret() {
    let env = setup();
    let p = Scripted::new().expect(LuksIsLuks::NAME, ok("")).expect(
        LuksOpen::NAME,
        exit(2, "No key available with this passphrase.\n"),
    );
    let events = ScriptedEvents::new();
    let err = encryptor(&env, &p, &events)
        .open(&luks2(), MAPPING, &disk(), &pass(NEW), false, far())
        .unwrap_err();
    assert!(matches!(err, CryptError::WrongSecret { .. }), "{err}");
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains(NEW) && msg.contains("/dev/sdb"), "{msg}");
    assert!(!env.tree.exists(&format!("dev/mapper/{MAPPING}")));
}

#[test]
fn a_volume_with_content_is_never_formatted() {
    let env = setup();
    let p = Scripted::new()
        .expect(LuksIsLuks::NAME, exit(1, ""))
        .expect(LuksFormat::NAME, |_| {
            Err(PrivError::Refused {
                op: LuksFormat::NAME,
                code: "precondition_failed".into(),
                message: "/dev/sdb carries an ext4 filesystem".into(),
            })
        });
    let events = ScriptedEvents::new();
    let err = encryptor(&env, &p, &events)
        .open(&luks2(), MAPPING, &disk(), &pass(OLD), false, far())
        .unwrap_err();
    assert!(
        err.to_string().contains("not LUKS and was not formatted")
            && err.to_string().contains("ext4"),
        "{err}"
    );
    assert!(p.unused().is_empty());
}

#[test]
fn formatting_can_be_disabled() {
    let env = setup();
    let p = Scripted::new().expect(LuksIsLuks::NAME, exit(1, ""));
    let events = ScriptedEvents::new();
    let mut e = encryptor(&env, &p, &events);
    e.settings.no_format = true;
    let err = e
        .open(&luks2(), MAPPING, &disk(), &pass(OLD), false, far())
        .unwrap_err();
    assert!(err.to_string().contains("disabled"), "{err}");
}

#[test]
fn plain_mappings_pass_cipher_and_key_size_and_never_format() {
    let env = setup();
    let tree = env.tree.clone();
    let p = Scripted::new().expect_args(
        LuksOpen::NAME,
        json!({"mode": "plain", "cipher": "aes-cbc-essiv:sha256", "key_size": 256}),
        move |_| {
            open_mapping(&tree, "sdb");
            Ok(exec_reply(0, "", ""))
        },
    );
    let events = ScriptedEvents::new();
    let o = encryptor(&env, &p, &events)
        .open(&plain(), MAPPING, &disk(), &pass(OLD), false, far())
        .unwrap();
    assert!(!o.formatted);
}

#[test]
fn an_open_mapping_is_reused_on_its_device_and_refused_on_another() {
    let env = setup();
    open_mapping(&env.tree, "sdb");
    let p = Scripted::new();
    let events = ScriptedEvents::new();
    let e = encryptor(&env, &p, &events);
    let o = e
        .open(&luks2(), MAPPING, &disk(), &pass(OLD), false, far())
        .unwrap();
    assert!(o.reused && o.dm == "dm-1");
    let other = Backing::Device {
        name: "sdc".into(),
        wwid: WWN.into(),
    };
    let err = e
        .open(&luks2(), MAPPING, &other, &pass(OLD), false, far())
        .unwrap_err();
    assert!(matches!(err, CryptError::MappingConflict { .. }), "{err}");
    assert!(p.calls().is_empty(), "nothing may run: {:?}", p.calls());
}

#[test]
fn close_is_identity_checked_and_idempotent() {
    let env = setup();
    open_mapping(&env.tree, "sdb");
    let tree = env.tree.clone();
    let p = Scripted::new().expect_args(
        LuksClose::NAME,
        json!({"name": MAPPING, "backing": "sdb", "expected_wwid": WWN}),
        move |_| {
            tree.remove_dm("dm-1");
            Ok(exec_reply(0, "", ""))
        },
    );
    let events = ScriptedEvents::new();
    let e = encryptor(&env, &p, &events);
    assert!(e.close(MAPPING, "sdb", WWN, far()).unwrap());
    assert!(!e.close(MAPPING, "sdb", WWN, far()).unwrap());
    assert_eq!(p.calls().len(), 1);
}

#[test]
fn close_of_a_busy_mapping_and_an_identity_refusal_are_errors() {
    let env = setup();
    open_mapping(&env.tree, "sdb");
    let p = Scripted::new()
        .expect(
            LuksClose::NAME,
            exit(5, "Device crypt-x is still in use.\n"),
        )
        .expect(LuksClose::NAME, |_| {
            Err(PrivError::IdentityMismatch {
                op: LuksClose::NAME,
                message: "sdb carries another WWID".into(),
            })
        });
    let events = ScriptedEvents::new();
    let e = encryptor(&env, &p, &events);
    assert!(matches!(
        e.close(MAPPING, "sdb", WWN, far()),
        Err(CryptError::Busy { .. })
    ));
    assert!(matches!(
        e.close(MAPPING, "sdb", WWN, far()),
        Err(CryptError::Privileged(PrivError::IdentityMismatch { .. }))
    ));
    assert!(env.tree.exists("sys/block/dm-1"));
}

#[test]
fn resize_passes_the_passphrase_for_luks_only_and_reports_the_size() {
    let env = setup();
    open_mapping(&env.tree, "sdb");
    std::fs::write(env.tree.path("sys/block/dm-1/size"), "4194304\n").unwrap();
    let p = Scripted::new()
        .expect_args(
            LuksResize::NAME,
            json!({"name": MAPPING, "backing": "sdb", "passphrase": OLD}),
            ok(""),
        )
        .expect(LuksResize::NAME, |a| {
            assert!(a.get("passphrase").is_none(), "{a}");
            Ok(exec_reply(0, "", ""))
        });
    let events = ScriptedEvents::new();
    let e = encryptor(&env, &p, &events);
    let size = e
        .resize(&luks2(), MAPPING, "sdb", WWN, &pass(OLD), far())
        .unwrap();
    assert_eq!(size, 4194304 * 512);
    e.resize(&plain(), MAPPING, "sdb", WWN, &pass(OLD), far())
        .unwrap();
}

fn unlocked(slot: u8) -> impl FnMut(&Value) -> Result<Value, PrivError> + Send + use<> {
    ok(&format!("Key slot {slot} unlocked.\nCommand successful.\n"))
}

fn image() -> Backing {
    Backing::Image {
        path: "/var/lib/moor/images/v1.img".into(),
    }
}

#[test]
fn rekey_adds_verifies_then_removes_the_old_slot() {
    let env = setup();
    let p = Scripted::new()
        .expect_args(LuksTestKey::NAME, json!({"passphrase": OLD}), unlocked(0))
        .expect_args(LuksTestKey::NAME, json!({"passphrase": NEW}), exit(2, ""))
        .expect_args(
            LuksAddKey::NAME,
            json!({"passphrase": OLD, "new_passphrase": NEW}),
            ok(""),
        )
        .expect_args(LuksTestKey::NAME, json!({"passphrase": NEW}), unlocked(1))
        .expect_args(
            LuksRemoveKey::NAME,
            json!({"slot": 0, "passphrase": NEW}),
            ok(""),
        )
        .expect_args(LuksTestKey::NAME, json!({"passphrase": OLD}), exit(2, ""))
        .expect(
            LuksDump::NAME,
            ok("Key Slot 0: DISABLED\nKey Slot 1: ENABLED\n"),
        );
    let events = ScriptedEvents::new();
    let r = encryptor(&env, &p, &events)
        .rekey(&image(), &pass(OLD), &pass(NEW), far())
        .unwrap();
    assert_eq!(
        r,
        RekeyReport {
            new_slot: 1,
            removed_slots: vec![0],
            resumed: false,
            active_slots: vec![1],
        }
    );
    assert!(p.unused().is_empty());
}

#[test]
fn an_interrupted_rekey_resumes_without_adding_twice() {
    let env = setup();
    let p = Scripted::new()
        .expect_args(LuksTestKey::NAME, json!({"passphrase": OLD}), unlocked(0))
        .expect_args(LuksTestKey::NAME, json!({"passphrase": NEW}), unlocked(2))
        .expect_args(LuksRemoveKey::NAME, json!({"slot": 0}), ok(""))
        .expect_args(LuksTestKey::NAME, json!({"passphrase": OLD}), exit(2, ""))
        .expect(LuksDump::NAME, ok("Keyslots:\n  2: luks2\nTokens:\n"));
    let events = ScriptedEvents::new();
    let r = encryptor(&env, &p, &events)
        .rekey(&disk(), &pass(OLD), &pass(NEW), far())
        .unwrap();
    assert!(r.resumed && r.removed_slots == [0] && r.active_slots == [2]);
    // Done already: the old secret opens nothing, the new one does.
    let p = Scripted::new()
        .expect(LuksTestKey::NAME, exit(2, ""))
        .expect(LuksTestKey::NAME, unlocked(2))
        .expect(LuksDump::NAME, ok("Keyslots:\n  2: luks2\nTokens:\n"));
    let r = encryptor(&env, &p, &events)
        .rekey(&disk(), &pass(OLD), &pass(NEW), far())
        .unwrap();
    assert!(r.resumed && r.removed_slots.is_empty());
}

#[test]
fn rekey_refuses_a_wrong_current_secret_and_an_unchanged_one() {
    let env = setup();
    let events = ScriptedEvents::new();
    let p = Scripted::new()
        .expect(LuksTestKey::NAME, exit(2, ""))
        .expect(LuksTestKey::NAME, exit(2, ""));
    let err = encryptor(&env, &p, &events)
        .rekey(&disk(), &pass(OLD), &pass(NEW), far())
        .unwrap_err();
    assert!(
        err.to_string().contains("current secret does not open"),
        "{err}"
    );
    let p = Scripted::new()
        .expect(LuksTestKey::NAME, unlocked(0))
        .expect(LuksTestKey::NAME, unlocked(0));
    let err = encryptor(&env, &p, &events)
        .rekey(&disk(), &pass(OLD), &pass(OLD), far())
        .unwrap_err();
    assert!(matches!(err, CryptError::SameSecret { slot: 0 }), "{err}");
}

#[test]
fn rekey_stops_with_the_old_secret_intact_when_the_new_slot_does_not_open() {
    let env = setup();
    let p = Scripted::new()
        .expect(LuksTestKey::NAME, unlocked(0))
        .expect(LuksTestKey::NAME, exit(2, ""))
        .expect(LuksAddKey::NAME, ok(""))
        .expect(LuksTestKey::NAME, exit(2, ""));
    let events = ScriptedEvents::new();
    let err = encryptor(&env, &p, &events)
        .rekey(&disk(), &pass(OLD), &pass(NEW), far())
        .unwrap_err();
    assert!(
        err.to_string().contains("current secret still works"),
        "{err}"
    );
    assert!(
        !p.calls().iter().any(|(op, _)| op == LuksRemoveKey::NAME),
        "nothing may be removed"
    );
}

#[test]
fn dry_runs_stop_before_decisions_that_need_the_device() {
    let env = setup();
    let dry = DryRun::new();
    let events = ScriptedEvents::new();
    let e = encryptor(&env, &dry, &events);
    assert!(matches!(
        e.open(&luks2(), MAPPING, &disk(), &pass(OLD), false, far()),
        Err(CryptError::DryRun(_))
    ));
    assert!(matches!(
        e.rekey(&disk(), &pass(OLD), &pass(NEW), far()),
        Err(CryptError::DryRun(_))
    ));
    assert!(dry.planned().is_empty());
}
