//! `get_connector_properties`: what this host tells the control plane so it can
//! export a volume to it (os-brick §4.3). Read-only, no side effects (unlike
//! os-brick, which creates /etc/nvme files while answering).

use serde::Serialize;

use crate::host::{HostError, HostPaths};

/// The connector properties moor knows today (iSCSI; FC/NVMe keys join with their
/// transports).
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
    pub do_local_attach: bool,
}

/// The `InitiatorName=` line of /etc/iscsi/initiatorname.iscsi (comments skipped).
pub fn iscsi_initiator(paths: &HostPaths) -> Result<Option<String>, HostError> {
    let Some(text) = paths.read_attr(&paths.etc("iscsi/initiatorname.iscsi"))? else {
        return Ok(None);
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix("InitiatorName="))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty()))
}

/// Collect the properties. `ip` is the address the control plane should export to
/// (os-brick's `my_ip`); moor does not guess it.
pub fn connector_properties(
    paths: &HostPaths,
    ip: Option<String>,
    multipath: bool,
    enforce_multipath: bool,
) -> Result<ConnectorProperties, HostError> {
    let host = paths
        .read_attr(&paths.proc("sys/kernel/hostname"))?
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    Ok(ConnectorProperties {
        platform: std::env::consts::ARCH.to_string(),
        os_type: "linux".into(),
        host,
        ip,
        multipath,
        enforce_multipath,
        initiator: iscsi_initiator(paths)?,
        do_local_attach: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_initiator_and_host() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/iscsi")).unwrap();
        std::fs::create_dir_all(d.path().join("proc/sys/kernel")).unwrap();
        std::fs::write(
            d.path().join("etc/iscsi/initiatorname.iscsi"),
            "## generated\n#InitiatorName=iqn.old\nInitiatorName=iqn.1993-08.org.debian:01:abc\n",
        )
        .unwrap();
        std::fs::write(d.path().join("proc/sys/kernel/hostname"), "compute-1\n").unwrap();
        let p = connector_properties(&HostPaths::under(d.path()), None, true, false).unwrap();
        assert_eq!(
            p.initiator.as_deref(),
            Some("iqn.1993-08.org.debian:01:abc")
        );
        assert_eq!(p.host, "compute-1");
        assert!(p.multipath);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            iscsi_initiator(&HostPaths::under(empty.path())).unwrap(),
            None
        );
    }
}
