//! `get_connector_properties`: what this host tells the control plane so it can
//! export a volume to it (os-brick §4.3). Read-only, no side effects (unlike
//! os-brick, which creates /etc/nvme files while answering).

use serde::Serialize;

use moor_privhelper::ops::IscsiInitiatorName;

use crate::exec::Privileged;
use crate::host::{HostError, HostPaths};
use crate::transport::fc::sysfs::fc_hosts;
use crate::transport::nvmeof::HostIdentityError;
use crate::transport::nvmeof::hostid::{self, NvmeConnectorProperties};

/// The connector properties (os-brick's `get_connector_properties` keys): the
/// generic ones, the iSCSI initiator, the FC ports and the NVMe host identity. A
/// transport's keys are left out when the host has none of it, as os-brick does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectorProperties {
    pub platform: String,
    pub os_type: String,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub multipath: bool,
    pub enforce_multipath: bool,
    /// `InitiatorName` from /etc/iscsi/initiatorname.iscsi.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// Port names of the online FC ports (HBAs, zFCP adapters, FCoE), 16 hex digits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wwpns: Vec<String>,
    /// Their node names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wwnns: Vec<String>,
    /// `nqn`, `nvme_hostid` (from /etc/nvme; never created here) and
    /// `nvme_native_multipath`.
    #[serde(flatten)]
    pub nvme: NvmeConnectorProperties,
    pub do_local_attach: bool,
}

/// The `InitiatorName=` line of /etc/iscsi/initiatorname.iscsi (comments skipped),
/// read through moord (`iscsi.initiator_name`) when the file is root-only, as on
/// Debian. `Ok(None)` when the file is absent or names nobody.
pub fn iscsi_initiator(
    paths: &HostPaths,
    privileged: Option<&dyn Privileged>,
) -> Result<Option<String>, PropertiesError> {
    let text = crate::doctor::read_host_file::<IscsiInitiatorName>(
        paths,
        "iscsi/initiatorname.iscsi",
        privileged,
    )
    .map_err(PropertiesError::Initiator)?;
    Ok(text.and_then(|text| {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix("InitiatorName="))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }))
}

/// Why the properties could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("iSCSI initiator name: {0}")]
    Initiator(String),
    #[error(transparent)]
    Nvme(#[from] HostIdentityError),
}

/// Collect the properties. `ip` is the address the control plane should export to
/// (os-brick's `my_ip`); moor does not guess it.
pub fn connector_properties(
    paths: &HostPaths,
    ip: Option<String>,
    multipath: bool,
    enforce_multipath: bool,
    privileged: Option<&dyn Privileged>,
) -> Result<ConnectorProperties, PropertiesError> {
    let host = paths
        .read_attr(&paths.proc("sys/kernel/hostname"))?
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    // os-brick lists only the ports that are Online.
    let online: Vec<_> = fc_hosts(paths)?
        .into_iter()
        .filter(|h| h.online())
        .collect();
    Ok(ConnectorProperties {
        platform: std::env::consts::ARCH.to_string(),
        os_type: "linux".into(),
        host,
        ip,
        multipath,
        enforce_multipath,
        initiator: iscsi_initiator(paths, privileged)?,
        wwpns: online.iter().map(|h| h.port_name.to_string()).collect(),
        wwnns: online
            .iter()
            .filter_map(|h| h.node_name.map(|n| n.to_string()))
            .collect(),
        nvme: hostid::connector_properties(paths)?,
        do_local_attach: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fixture::{Tree, write};
    use crate::transport::fc::test_support::{HBA1, HBA2, PCI_A, PCI_B, add_fc_host};

    #[test]
    fn reads_every_transports_keys() {
        let d = tempfile::tempdir().unwrap();
        let t = Tree::new(d.path());
        write(
            &t.path("etc/iscsi/initiatorname.iscsi"),
            "## generated\n#InitiatorName=iqn.old\nInitiatorName=iqn.1993-08.org.debian:01:abc\n",
        );
        write(&t.path("proc/sys/kernel/hostname"), "compute-1\n");
        // One FC port online, one with its link down: only the online one is offered.
        add_fc_host(&t, PCI_A, 5, HBA1, "Online");
        add_fc_host(&t, PCI_B, 6, HBA2, "Linkdown");
        let nqn = "nqn.2014-08.org.nvmexpress:uuid:4ca8f5f1-f6fd-4ba5-bd6a-a1b2c3d4e5f6";
        write(&t.path("etc/nvme/hostnqn"), &format!("{nqn}\n"));
        write(
            &t.path("etc/nvme/hostid"),
            "4ca8f5f1-f6fd-4ba5-bd6a-a1b2c3d4e5f6\n",
        );
        write(&t.path("sys/module/nvme_core/parameters/multipath"), "Y\n");
        let p =
            connector_properties(&t.paths(), Some("192.0.2.7".into()), true, false, None).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "platform": std::env::consts::ARCH,
                "os_type": "linux",
                "host": "compute-1",
                "ip": "192.0.2.7",
                "multipath": true,
                "enforce_multipath": false,
                "initiator": "iqn.1993-08.org.debian:01:abc",
                "wwpns": [HBA1],
                "wwnns": [format!("2{}", &HBA1[1..])],
                "nqn": nqn,
                "nvme_hostid": "4ca8f5f1-f6fd-4ba5-bd6a-a1b2c3d4e5f6",
                "nvme_native_multipath": true,
                "do_local_attach": false,
            })
        );
    }

    #[test]
    fn a_host_without_a_transport_has_none_of_its_keys() {
        let empty = tempfile::tempdir().unwrap();
        let paths = HostPaths::under(empty.path());
        assert_eq!(iscsi_initiator(&paths, None).unwrap(), None);
        let v =
            serde_json::to_value(connector_properties(&paths, None, false, false, None).unwrap())
                .unwrap();
        for key in ["initiator", "wwpns", "wwnns", "nqn", "nvme_hostid", "ip"] {
            assert!(v.get(key).is_none(), "{key} in {v}");
        }
        assert_eq!(v["nvme_native_multipath"], false);
        // Nothing is created while answering (os-brick creates /etc/nvme files here).
        assert!(!empty.path().join("etc").exists());
    }
}
