//! Shared pieces of the iSCSI connector's unit tests (connect, extend): the test
//! volume's names, a fixture host with a lock directory, and reply helpers for the
//! scripted privileged fake.

use std::time::Duration;

use serde_json::{Value, json};

use super::connect::{IscsiConnector, Options};
use super::props::IscsiProps;
use crate::exec::{PrivError, Privileged, exec_reply};
use crate::host::fixture::Tree;
use crate::host::scsi::Hctl;
use crate::host::udev::DeviceEvents;
use crate::lock::LockDir;

pub(crate) const IQN: &str = "iqn.2010-10.org.openstack:volume-1";
pub(crate) const IQN2: &str = "iqn.2010-10.org.openstack:volume-2";
pub(crate) const ADDR: &str = "192.0.2.10";
pub(crate) const PORTAL: &str = "192.0.2.10:3260";
pub(crate) const ADDR2: &str = "192.0.2.11";
pub(crate) const PORTAL2: &str = "192.0.2.11:3260";
/// The raw sysfs `wwid` of the volume and its normalised form (`scsi_wwn`).
pub(crate) const RAW: &str = "naa.600a09803830447a4f244c4657616f6f";
pub(crate) const WWN: &str = "3600a09803830447a4f244c4657616f6f";
/// Another volume's WWID.
pub(crate) const OTHER_RAW: &str = "naa.600a098038304400000000000000beef";
pub(crate) const OTHER_WWN: &str = "3600a098038304400000000000000beef";

pub(crate) const LONG: Duration = Duration::from_secs(10);

/// A fixture host root and a lock directory beside it (attachment records go to a
/// sibling `attachments`).
pub(crate) struct Env {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) tree: Tree,
    pub(crate) locks: LockDir,
}

pub(crate) fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let tree = Tree::new(dir.path().join("root"));
    let locks = LockDir::new(dir.path().join("locks"));
    Env {
        _dir: dir,
        tree,
        locks,
    }
}

/// A connector on `env` with the given seams and deadline.
pub(crate) fn connector_with<'a>(
    env: &Env,
    privileged: &'a dyn Privileged,
    events: &'a dyn DeviceEvents,
    timeout: Duration,
) -> IscsiConnector<'a> {
    IscsiConnector {
        paths: env.tree.paths(),
        privileged,
        events,
        locks: env.locks.clone(),
        registry: crate::attachments::Registry::new(env.locks.path().with_file_name("attachments")),
        options: Options {
            timeout,
            ..Options::default()
        },
    }
}

pub(crate) fn hctl(s: &str) -> Hctl {
    s.parse().unwrap()
}

pub(crate) fn props(v: Value) -> IscsiProps {
    IscsiProps::from_connection_info(&v).unwrap()
}

/// A command's reply: exit `code`, no output.
pub(crate) fn exit(code: i32) -> Result<Value, PrivError> {
    Ok(exec_reply(code, "", ""))
}

/// A write's reply.
pub(crate) fn done() -> Result<Value, PrivError> {
    Ok(json!({}))
}

/// A recorded call, as `Scripted::calls` returns them.
pub(crate) fn call(op: &str, args: Value) -> (String, Value) {
    (op.to_string(), args)
}
