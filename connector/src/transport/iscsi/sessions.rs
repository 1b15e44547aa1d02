//! iSCSI sessions as the kernel shows them in sysfs (no iscsiadm, no privilege):
//! `/sys/class/iscsi_session/sessionN/{targetname,state,target_id,ifacename}` and the
//! session's first connection `/sys/class/iscsi_connection/connectionN:0/
//! persistent_{address,port}`.

use std::net::IpAddr;

use crate::host::{HostError, HostPaths};
use crate::types::{Iqn, Portal, PortalHost};

/// One session, read from sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: u32,
    pub target: String,
    /// `address:port` of the connection (as the kernel prints the address).
    pub address: Option<String>,
    pub port: Option<u16>,
    /// `LOGGED_IN`, `FAILED`, `FREE`.
    pub state: Option<String>,
    /// SCSI target id the kernel uses for this session (`target_id`).
    pub target_id: Option<u32>,
    pub iface: Option<String>,
}

impl Session {
    /// Same target name and portal (address compared as an IP address when both
    /// are one, so `fd00::1` equals `fd00:0::1`; the port must match).
    pub fn is_for(&self, iqn: &Iqn, portal: &Portal) -> bool {
        if self.target != iqn.as_str() || self.port != Some(portal.port()) {
            return false;
        }
        let Some(addr) = &self.address else {
            return false;
        };
        match portal.host() {
            PortalHost::Ip(ip) => addr.parse::<IpAddr>().is_ok_and(|a| a == *ip),
            PortalHost::Name(n) => addr.eq_ignore_ascii_case(n),
        }
    }

    pub fn logged_in(&self) -> bool {
        self.state.as_deref() == Some("LOGGED_IN")
    }
}

/// Every iSCSI session on the host, by id.
pub fn sessions(paths: &HostPaths) -> Result<Vec<Session>, HostError> {
    let class = paths.sys("class/iscsi_session");
    let mut out = Vec::new();
    for name in paths.list_prefixed(&class, "session")? {
        let Ok(id) = name["session".len()..].parse::<u32>() else {
            continue;
        };
        let attr = |a: &str| paths.read_attr(&class.join(&name).join(a));
        let Some(target) = attr("targetname")? else {
            continue;
        };
        let conn = paths.sys(&format!("class/iscsi_connection/connection{id}:0"));
        // A connection that is down (a login being retried) answers ENOTCONN for
        // its addresses: treat that as unknown rather than failing the whole list.
        let lenient = |a: &str| paths.read_attr(&conn.join(a)).ok().flatten();
        let address = lenient("persistent_address").or_else(|| lenient("address"));
        let port = lenient("persistent_port")
            .or_else(|| lenient("port"))
            .and_then(|p| p.trim().parse().ok());
        let session = Session {
            id,
            target: target.trim().to_string(),
            address: address.map(|a| a.trim().to_string()),
            port,
            state: attr("state")?.map(|s| s.trim().to_string()),
            target_id: attr("target_id")?.and_then(|s| s.trim().parse().ok()),
            iface: attr("ifacename")?.map(|s| s.trim().to_string()),
        };
        // Logged out by someone else (a concurrent detach) while we read it: gone.
        if paths
            .read_attr(&class.join(&name).join("targetname"))?
            .is_none()
        {
            continue;
        }
        out.push(session);
    }
    out.sort_by_key(|s| s.id);
    Ok(out)
}

/// Sessions to (`iqn`, `portal`); there may be more than one (os-brick #2116553).
pub fn sessions_for(
    paths: &HostPaths,
    iqn: &Iqn,
    portal: &Portal,
) -> Result<Vec<Session>, HostError> {
    Ok(sessions(paths)?
        .into_iter()
        .filter(|s| s.is_for(iqn, portal))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &std::path::Path, rel: &str, v: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, v).unwrap();
    }

    #[test]
    fn reads_sessions_and_matches_portals() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(
            r,
            "sys/class/iscsi_session/session3/targetname",
            "iqn.2003-01.org.x:t1\n",
        );
        write(r, "sys/class/iscsi_session/session3/state", "LOGGED_IN\n");
        write(r, "sys/class/iscsi_session/session3/target_id", "0\n");
        write(
            r,
            "sys/class/iscsi_connection/connection3:0/persistent_address",
            "fd00::1\n",
        );
        write(
            r,
            "sys/class/iscsi_connection/connection3:0/persistent_port",
            "3260\n",
        );
        write(
            r,
            "sys/class/iscsi_session/session1/targetname",
            "iqn.2003-01.org.x:t2\n",
        );
        write(
            r,
            "sys/class/iscsi_connection/connection1:0/address",
            "10.0.0.1\n",
        );
        write(r, "sys/class/iscsi_connection/connection1:0/port", "3261\n");
        let paths = HostPaths::under(r);
        let all = sessions(&paths).unwrap();
        assert_eq!(all.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 3]);
        assert!(all[1].logged_in());
        assert_eq!(all[1].target_id, Some(0));
        let iqn: Iqn = "iqn.2003-01.org.x:t1".parse().unwrap();
        let p6: Portal = "[fd00:0::1]:3260".parse().unwrap();
        assert_eq!(sessions_for(&paths, &iqn, &p6).unwrap().len(), 1);
        let other_port: Portal = "[fd00::1]:3261".parse().unwrap();
        assert!(sessions_for(&paths, &iqn, &other_port).unwrap().is_empty());
        let iqn2: Iqn = "iqn.2003-01.org.x:t2".parse().unwrap();
        let p4: Portal = "10.0.0.1:3261".parse().unwrap();
        assert_eq!(sessions_for(&paths, &iqn2, &p4).unwrap()[0].id, 1);
        assert!(!all[0].logged_in());
    }
}
