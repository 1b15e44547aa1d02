//! open-iscsi operations: node and discovery records, login, logout. Every argv is
//! built here from validated names; CHAP passwords never reach an argv (they are
//! written into the record by moord itself, see [`Plan::IscsiSecret`]).

use moor_types::{IfaceName, Iqn, Portal, PortalHost};
use serde::{Deserialize, Serialize};

use super::{OpError, Plan, SecretText, TypedOp, bad, exec_plan};

/// Where a secret goes: a node record (`nodes/<iqn>/<portal>,<tpgt>/<iface>`) or a
/// sendtargets discovery record (`send_targets/<ip>,<port>/st_config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IscsiRecord {
    Node {
        iqn: Iqn,
        portal: Portal,
        iface: IfaceName,
    },
    Discovery {
        portal: Portal,
    },
}

/// One `key = value` line moord writes into an open-iscsi record.
#[derive(Debug)]
pub struct RecordEntry {
    /// Full record key, e.g. `node.session.auth.password`.
    pub key: String,
    pub value: SecretText,
    /// A CHAP password: never shown (audit, logs, errors).
    pub secret: bool,
}

/// Set keys in an open-iscsi record, all in one atomic rewrite.
#[derive(Debug)]
pub struct IscsiSecretPlan {
    pub record: IscsiRecord,
    pub entries: Vec<RecordEntry>,
}

impl IscsiSecretPlan {
    /// The entries as audited: `key=value`, secrets as `key=<secret>`.
    pub fn shown(&self) -> String {
        self.entries
            .iter()
            .map(|e| {
                if e.secret {
                    format!("{}=<secret>", e.key)
                } else {
                    format!("{}={}", e.key, e.value.expose())
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn one_secret(record: IscsiRecord, key: &str, secret: SecretText) -> Plan {
        Plan::IscsiSecret(IscsiSecretPlan {
            record,
            entries: vec![RecordEntry {
                key: key.into(),
                value: secret,
                secret: true,
            }],
        })
    }
}

/// Node record keys a caller may set with [`IscsiNodeUpdate`].
pub const NODE_KEYS: &[&str] = &[
    "node.startup",
    "node.conn[0].startup",
    "node.session.scan",
    "node.session.auth.authmethod",
    "node.session.auth.username",
    "node.session.auth.username_in",
    "node.session.initial_login_retry_max",
    "node.conn[0].timeo.login_timeout",
    "node.session.timeo.replacement_timeout",
];

/// Discovery record keys a caller may set with [`IscsiDiscoveryUpdate`].
pub const DISCOVERY_KEYS: &[&str] = &[
    "discovery.sendtargets.auth.authmethod",
    "discovery.sendtargets.auth.username",
    "discovery.sendtargets.auth.username_in",
];

/// Which CHAP secret: the initiator's (`password`) or the target's for mutual CHAP
/// (`password_in`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChapSecret {
    Password,
    PasswordIn,
}

fn ip_portal(op: &'static str, p: &Portal) -> Result<String, OpError> {
    match p.host() {
        PortalHost::Ip(_) => Ok(p.to_string()),
        PortalHost::Name(_) => Err(bad(
            op,
            format!("portal {p} is a host name; moord takes IP addresses only"),
        )),
    }
}

/// Values for record keys: CHAP user names and the few enumerations open-iscsi has.
fn check_value(op: &'static str, v: &str) -> Result<(), OpError> {
    let ok = v.len() <= 256
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            op,
            format!("value {v:?} is not 0-256 characters of A-Z a-z 0-9 . _ @ : -"),
        ))
    }
}

fn exec(argv: Vec<String>) -> Plan {
    exec_plan(argv, None)
}

fn node_argv(op: &'static str, iqn: &Iqn, portal: &Portal) -> Result<Vec<String>, OpError> {
    Ok(vec![
        "iscsiadm".into(),
        "-m".into(),
        "node".into(),
        "-T".into(),
        iqn.to_string(),
        "-p".into(),
        ip_portal(op, portal)?,
    ])
}

fn discoverydb_argv(
    op: &'static str,
    portal: &Portal,
    iface: &IfaceName,
) -> Result<Vec<String>, OpError> {
    Ok(vec![
        "iscsiadm".into(),
        "-m".into(),
        "discoverydb".into(),
        "-t".into(),
        "sendtargets".into(),
        "-I".into(),
        iface.to_string(),
        "-p".into(),
        ip_portal(op, portal)?,
    ])
}

macro_rules! node_op {
    ($(#[$m:meta])* $t:ident, $name:literal, [$($extra:literal),*]) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $t {
            pub iqn: Iqn,
            pub portal: Portal,
        }

        impl TypedOp for $t {
            const NAME: &'static str = $name;
        }

        impl $t {
            pub fn plan(self) -> Result<Plan, OpError> {
                let mut argv = node_argv(Self::NAME, &self.iqn, &self.portal)?;
                argv.extend([$($extra.to_string()),*]);
                Ok(exec(argv))
            }
        }
    };
}

node_op!(
    /// `iscsiadm -m node -T IQN -p PORTAL`: print the node record (exit 21 if none).
    IscsiNodeShow, "iscsi.node_show", []
);
node_op!(
    /// `iscsiadm -m node -T IQN -p PORTAL --login`.
    IscsiLogin, "iscsi.login", ["--login"]
);
node_op!(
    /// `iscsiadm -m node -T IQN -p PORTAL --logout`.
    IscsiLogout, "iscsi.logout", ["--logout"]
);
node_op!(
    /// `iscsiadm -m node -T IQN -p PORTAL --op delete`: forget the node record.
    IscsiNodeDelete, "iscsi.node_delete", ["--op", "delete"]
);

/// `iscsiadm -m node -T IQN -p PORTAL --interface IFACE --op new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiNodeNew {
    pub iqn: Iqn,
    pub portal: Portal,
    pub iface: IfaceName,
}

impl TypedOp for IscsiNodeNew {
    const NAME: &'static str = "iscsi.node_new";
}

impl IscsiNodeNew {
    pub fn plan(self) -> Result<Plan, OpError> {
        let mut argv = node_argv(Self::NAME, &self.iqn, &self.portal)?;
        argv.extend(["--interface".into(), self.iface.to_string()]);
        argv.extend(["--op".into(), "new".into()]);
        Ok(exec(argv))
    }
}

/// `iscsiadm -m node -T IQN -p PORTAL --op update -n NAME -v VALUE` for the
/// non-secret keys in [`NODE_KEYS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiNodeUpdate {
    pub iqn: Iqn,
    pub portal: Portal,
    pub name: String,
    pub value: String,
}

impl TypedOp for IscsiNodeUpdate {
    const NAME: &'static str = "iscsi.node_update";
}

impl IscsiNodeUpdate {
    pub fn plan(self) -> Result<Plan, OpError> {
        if !NODE_KEYS.contains(&self.name.as_str()) {
            return Err(bad(
                Self::NAME,
                format!(
                    "key {:?} is not one of {} (passwords go through iscsi.node_secret)",
                    self.name,
                    NODE_KEYS.join(", ")
                ),
            ));
        }
        check_value(Self::NAME, &self.value)?;
        let mut argv = node_argv(Self::NAME, &self.iqn, &self.portal)?;
        argv.extend(["--op".into(), "update".into(), "-n".into(), self.name]);
        argv.extend(["-v".into(), self.value]);
        Ok(exec(argv))
    }
}

/// Set a CHAP secret in the node record of (IQN, PORTAL, IFACE); moord edits the
/// record file itself so the secret is never in an argv.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiNodeSecret {
    pub iqn: Iqn,
    pub portal: Portal,
    pub iface: IfaceName,
    pub key: ChapSecret,
    pub secret: SecretText,
}

impl TypedOp for IscsiNodeSecret {
    const NAME: &'static str = "iscsi.node_secret";
}

fn check_secret(op: &'static str, s: &SecretText) -> Result<(), OpError> {
    // A newline would end the record line and let the caller add arbitrary keys.
    // open-iscsi keeps at most 255 bytes (AUTH_STR_MAX_LEN 256 with the NUL) and
    // strips surrounding whitespace when it reads a record: such a secret would
    // silently become another one.
    let s = s.expose();
    if s.is_empty() || s.len() > 255 || s.bytes().any(|b| b.is_ascii_control()) || s.trim() != s {
        return Err(bad(
            op,
            "secret must be 1-255 bytes without control characters or surrounding spaces",
        ));
    }
    Ok(())
}

impl IscsiNodeSecret {
    pub fn plan(self) -> Result<Plan, OpError> {
        ip_portal(Self::NAME, &self.portal)?;
        check_secret(Self::NAME, &self.secret)?;
        Ok(IscsiSecretPlan::one_secret(
            IscsiRecord::Node {
                iqn: self.iqn,
                portal: self.portal,
                iface: self.iface,
            },
            match self.key {
                ChapSecret::Password => "node.session.auth.password",
                ChapSecret::PasswordIn => "node.session.auth.password_in",
            },
            self.secret,
        ))
    }
}

/// `iscsiadm -m node --op show -p PORTAL`: every node record of a portal (to keep
/// their `node.startup` across a discovery, which resets it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiPortalNodes {
    pub portal: Portal,
}

impl TypedOp for IscsiPortalNodes {
    const NAME: &'static str = "iscsi.portal_nodes";
}

impl IscsiPortalNodes {
    pub fn plan(self) -> Result<Plan, OpError> {
        let p = ip_portal(Self::NAME, &self.portal)?;
        Ok(exec(
            ["iscsiadm", "-m", "node", "--op", "show", "-p", &p]
                .map(String::from)
                .to_vec(),
        ))
    }
}

/// `iscsiadm -m discovery -t sendtargets -I IFACE -p PORTAL` (no discovery CHAP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiDiscover {
    pub portal: Portal,
    pub iface: IfaceName,
}

impl TypedOp for IscsiDiscover {
    const NAME: &'static str = "iscsi.discover";
}

impl IscsiDiscover {
    pub fn plan(self) -> Result<Plan, OpError> {
        let p = ip_portal(Self::NAME, &self.portal)?;
        Ok(exec(
            [
                "iscsiadm",
                "-m",
                "discovery",
                "-t",
                "sendtargets",
                "-I",
                self.iface.as_str(),
                "-p",
                &p,
            ]
            .map(String::from)
            .to_vec(),
        ))
    }
}

/// `iscsiadm -m discoverydb -t sendtargets -I IFACE -p PORTAL --op new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiDiscoveryNew {
    pub portal: Portal,
    pub iface: IfaceName,
}

impl TypedOp for IscsiDiscoveryNew {
    const NAME: &'static str = "iscsi.discovery_new";
}

impl IscsiDiscoveryNew {
    pub fn plan(self) -> Result<Plan, OpError> {
        let mut argv = discoverydb_argv(Self::NAME, &self.portal, &self.iface)?;
        argv.extend(["--op".into(), "new".into()]);
        Ok(exec(argv))
    }
}

/// `iscsiadm -m discoverydb … --op update -n NAME -v VALUE` for [`DISCOVERY_KEYS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiDiscoveryUpdate {
    pub portal: Portal,
    pub iface: IfaceName,
    pub name: String,
    pub value: String,
}

impl TypedOp for IscsiDiscoveryUpdate {
    const NAME: &'static str = "iscsi.discovery_update";
}

impl IscsiDiscoveryUpdate {
    pub fn plan(self) -> Result<Plan, OpError> {
        if !DISCOVERY_KEYS.contains(&self.name.as_str()) {
            return Err(bad(
                Self::NAME,
                format!(
                    "key {:?} is not one of {} (passwords go through iscsi.discovery_secret)",
                    self.name,
                    DISCOVERY_KEYS.join(", ")
                ),
            ));
        }
        check_value(Self::NAME, &self.value)?;
        let mut argv = discoverydb_argv(Self::NAME, &self.portal, &self.iface)?;
        argv.extend(["--op".into(), "update".into(), "-n".into(), self.name]);
        argv.extend(["-v".into(), self.value]);
        Ok(exec(argv))
    }
}

/// Set a discovery CHAP secret in the sendtargets record of PORTAL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiDiscoverySecret {
    pub portal: Portal,
    pub key: ChapSecret,
    pub secret: SecretText,
}

impl TypedOp for IscsiDiscoverySecret {
    const NAME: &'static str = "iscsi.discovery_secret";
}

impl IscsiDiscoverySecret {
    pub fn plan(self) -> Result<Plan, OpError> {
        ip_portal(Self::NAME, &self.portal)?;
        check_secret(Self::NAME, &self.secret)?;
        Ok(IscsiSecretPlan::one_secret(
            IscsiRecord::Discovery {
                portal: self.portal,
            },
            match self.key {
                ChapSecret::Password => "discovery.sendtargets.auth.password",
                ChapSecret::PasswordIn => "discovery.sendtargets.auth.password_in",
            },
            self.secret,
        ))
    }
}

/// `iscsiadm -m discoverydb -t sendtargets -I IFACE -p PORTAL --discover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiDiscoveryRun {
    pub portal: Portal,
    pub iface: IfaceName,
}

impl TypedOp for IscsiDiscoveryRun {
    const NAME: &'static str = "iscsi.discovery_run";
}

impl IscsiDiscoveryRun {
    pub fn plan(self) -> Result<Plan, OpError> {
        let mut argv = discoverydb_argv(Self::NAME, &self.portal, &self.iface)?;
        argv.push("--discover".into());
        Ok(exec(argv))
    }
}

/// `iscsiadm -m iface -I IFACE`: show an interface's settings (exit 0 when it exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiIfaceShow {
    pub iface: IfaceName,
}

impl TypedOp for IscsiIfaceShow {
    const NAME: &'static str = "iscsi.iface_show";
}

impl IscsiIfaceShow {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(exec(
            ["iscsiadm", "-m", "iface", "-I", self.iface.as_str()]
                .map(String::from)
                .to_vec(),
        ))
    }
}

/// Configure a node record in one step: any of the [`NODE_KEYS`] settings plus the
/// CHAP passwords, written by moord into the record of (IQN, PORTAL, IFACE) in one
/// atomic rewrite (instead of one iscsiadm run per key; passwords never in argv).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiNodeConfigure {
    pub iqn: Iqn,
    pub portal: Portal,
    pub iface: IfaceName,
    /// `[key, value]` pairs, keys from [`NODE_KEYS`], in the order to write them.
    #[serde(default)]
    pub settings: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_in: Option<SecretText>,
}

impl TypedOp for IscsiNodeConfigure {
    const NAME: &'static str = "iscsi.node_configure";
}

impl IscsiNodeConfigure {
    pub fn plan(self) -> Result<Plan, OpError> {
        ip_portal(Self::NAME, &self.portal)?;
        let mut entries = Vec::new();
        for (key, value) in self.settings {
            if !NODE_KEYS.contains(&key.as_str()) {
                return Err(bad(
                    Self::NAME,
                    format!("key {key:?} is not one of {}", NODE_KEYS.join(", ")),
                ));
            }
            check_value(Self::NAME, &value)?;
            if entries.iter().any(|e: &RecordEntry| e.key == key) {
                return Err(bad(Self::NAME, format!("key {key:?} given twice")));
            }
            entries.push(RecordEntry {
                key,
                value: SecretText::new(value),
                secret: false,
            });
        }
        for (key, secret) in [
            ("node.session.auth.password", self.password),
            ("node.session.auth.password_in", self.password_in),
        ] {
            if let Some(secret) = secret {
                check_secret(Self::NAME, &secret)?;
                entries.push(RecordEntry {
                    key: key.into(),
                    value: secret,
                    secret: true,
                });
            }
        }
        if entries.is_empty() {
            return Err(bad(Self::NAME, "nothing to set"));
        }
        Ok(Plan::IscsiSecret(IscsiSecretPlan {
            record: IscsiRecord::Node {
                iqn: self.iqn,
                portal: self.portal,
                iface: self.iface,
            },
            entries,
        }))
    }
}

/// The host's iSCSI initiator name file. Debian and others make it root-only
/// (0600), so an unprivileged caller reads it through moord.
pub const INITIATOR_NAME_PATH: &str = "/etc/iscsi/initiatorname.iscsi";

/// Read `/etc/iscsi/initiatorname.iscsi` (a fixed path: no arguments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IscsiInitiatorName {}

impl TypedOp for IscsiInitiatorName {
    const NAME: &'static str = "iscsi.initiator_name";
}

impl IscsiInitiatorName {
    pub fn plan(self) -> Result<Plan, OpError> {
        Ok(Plan::ReadFile {
            path: INITIATOR_NAME_PATH.into(),
        })
    }
}
