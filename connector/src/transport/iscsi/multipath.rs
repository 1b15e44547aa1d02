//! iSCSI over dm-multipath: sendtargets discovery when the paths are not listed,
//! parallel logins to every path, and the multipath map assembled (even for one
//! path) and checked ready before it is returned.

use std::time::{Duration, Instant};

use moor_privhelper::ops::{
    ChapSecret, IscsiDiscover, IscsiDiscoveryNew, IscsiDiscoveryRun, IscsiDiscoverySecret,
    IscsiDiscoveryUpdate, IscsiNodeUpdate, IscsiPortalNodes, MultipathdStatus, ScsiDelete,
    SecretText,
};

use super::connect::{DeviceInfo, IscsiConnector, IscsiError, Options};
use super::props::{Chap, IscsiProps, IscsiTarget, PropsError};
use crate::exec::{ExecOutput, run, run_exec};
use crate::host::scsi::ScsiDevice;
use crate::types::{Iqn, Portal};

/// The host before a multipath attach.
struct Before {
    disks: Vec<String>,
    sessions: Vec<(IscsiTarget, bool)>,
}

/// iscsiadm: "database failure" when a discovery record already exists.
const ISCSI_ERR_DB_RECORD_EXISTS: i32 = 6;

/// One `ip:port,tpgt iqn` line of sendtargets discovery output.
pub fn parse_discovery(stdout: &str) -> Vec<(Portal, Iqn)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (portal, iqn) = l.trim().split_once(' ')?;
            Some((portal.parse().ok()?, iqn.trim().parse().ok()?))
        })
        .collect()
}

/// `node.name`, portal and `node.startup` of every record in `iscsiadm -m node
/// --op show` output (records start with `# BEGIN RECORD`).
pub fn parse_node_startups(stdout: &str) -> Vec<(Iqn, Portal, String)> {
    let mut out = Vec::new();
    let (mut name, mut addr, mut port, mut startup) = (None, None, None, None);
    let mut flush = |name: &mut Option<String>,
                     addr: &mut Option<String>,
                     port: &mut Option<String>,
                     startup: &mut Option<String>| {
        if let (Some(n), Some(a), Some(p), Some(s)) =
            (name.take(), addr.take(), port.take(), startup.take())
        {
            let text = if a.contains(':') {
                format!("[{a}]:{p}")
            } else {
                format!("{a}:{p}")
            };
            if let (Ok(iqn), Ok(portal)) = (n.parse(), text.parse()) {
                out.push((iqn, portal, s));
            }
        }
    };
    for line in stdout.lines() {
        let line = line.trim();
        if line.starts_with("# BEGIN RECORD") {
            flush(&mut name, &mut addr, &mut port, &mut startup);
            continue;
        }
        let Some((k, v)) = line.split_once(" = ") else {
            continue;
        };
        match k {
            "node.name" => name = Some(v.to_string()),
            "node.conn[0].address" => addr = Some(v.to_string()),
            "node.conn[0].port" => port = Some(v.to_string()),
            "node.startup" => startup = Some(v.to_string()),
            _ => {}
        }
    }
    flush(&mut name, &mut addr, &mut port, &mut startup);
    out
}

impl IscsiConnector<'_> {
    /// Attach through dm-multipath. Falls back to single path when multipathd is
    /// not running, unless the volume enforces multipath.
    pub(super) fn connect_multipath(
        &self,
        props: &IscsiProps,
        deadline: Instant,
    ) -> Result<DeviceInfo, IscsiError> {
        let running = matches!(
            run_exec(self.privileged, &MultipathdStatus {}, deadline),
            Ok(o) if o.success()
        );
        if !running {
            if props.enforce_multipath {
                return Err(IscsiError::Multipath(
                    "multipathd is not running and the volume requires multipath (enforce_multipath); nothing was attached".into(),
                ));
            }
            tracing::warn!("multipathd is not running: attaching a single path");
            // As a plain single-path attach (no multipath-only session settings).
            let single = IscsiConnector {
                paths: self.paths.clone(),
                privileged: self.privileged,
                events: self.events,
                locks: self.locks.clone(),
                registry: self.registry.clone(),
                options: Options {
                    multipath: false,
                    ..self.options.clone()
                },
            };
            return single.connect_single(props, deadline);
        }
        let paths = if props.has_target_lists {
            props.targets().to_vec()
        } else {
            self.discover(props, deadline)?
        };
        // What exists before this attach: a refused attach undoes only what it added.
        let disks_before = self.paths.list_prefixed(&self.paths.sys("block"), "sd")?;
        let sessions_before: Vec<bool> = paths
            .iter()
            .map(|t| {
                super::sessions::sessions_for(&self.paths, &t.iqn, &t.portal).map(|s| !s.is_empty())
            })
            .collect::<Result<_, _>>()?;
        let before = Before {
            disks: disks_before,
            sessions: paths.iter().cloned().zip(sessions_before).collect(),
        };
        tracing::info!(paths = paths.len(), "logging in to every path");
        let results: Vec<(IscsiTarget, Result<ScsiDevice, IscsiError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = paths
                .iter()
                .map(|t| {
                    (
                        t.clone(),
                        s.spawn(move || self.connect_path(props, t, deadline)),
                    )
                })
                .collect();
            handles
                .into_iter()
                .map(|(t, h)| {
                    let r = h.join().unwrap_or_else(|_| {
                        Err(IscsiError::Multipath("a path thread panicked".into()))
                    });
                    (t, r)
                })
                .collect()
        });
        let mut found: Vec<(IscsiTarget, ScsiDevice)> = Vec::new();
        let mut failures = Vec::new();
        for (t, r) in results {
            match r {
                Ok(d) => found.push((t, d)),
                Err(e @ IscsiError::DryRun(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(target = %format!("{}@{}", t.iqn, t.portal), error = %e, "path failed");
                    failures.push(format!("{}@{}: {e}", t.iqn, t.portal));
                }
            }
        }
        let Some((_, first)) = found.first() else {
            return Err(IscsiError::AllPathsFailed(failures));
        };
        let wwid = first.wwid.clone().unwrap_or_default();
        let disagree: Vec<String> = found
            .iter()
            .filter(|(_, d)| d.wwid.as_deref() != Some(wwid.as_str()))
            .map(|(t, d)| {
                format!(
                    "{} via {}@{} has WWID {}",
                    d.name,
                    t.iqn,
                    t.portal,
                    d.wwid.as_deref().unwrap_or("(none)")
                )
            })
            .collect();
        if !disagree.is_empty() {
            self.abandon(&found, &before);
            return Err(IscsiError::Multipath(format!(
                "the paths do not agree on the volume's identity ({} has {wwid}; {}): refusing to build a map over different volumes",
                first.name,
                disagree.join("; ")
            )));
        }
        let disks: Vec<ScsiDevice> = found.iter().map(|(_, d)| d.clone()).collect();
        let assembled = self.scsi_host().assemble_map(&disks, &wwid, deadline);
        let dm = match assembled.map_err(|e| super::connect::disk_error(&paths[0], e)) {
            Ok(dm) => dm,
            Err(e @ IscsiError::DryRun(_)) => return Err(e),
            Err(e) => {
                self.abandon(&found, &before);
                return Err(e);
            }
        };
        for (t, d) in &found {
            self.remember(props, t, d);
        }
        if !failures.is_empty() {
            tracing::warn!(failed = ?failures, "attached with fewer paths than listed");
        }
        tracing::info!(map = %dm, wwid = %wwid, paths = disks.len(), "attached (multipath)");
        Ok(DeviceInfo {
            kind: "block".into(),
            path: format!("/dev/{dm}"),
            scsi_wwn: wwid.clone(),
            multipath_id: Some(wwid),
            devices: disks
                .iter()
                .map(|d| format!("{} {}", d.name, d.hctl))
                .collect(),
            encryption: None,
        })
    }

    /// Undo what a refused multipath attach added: the disks its scans created
    /// (moord checks each WWID) and the sessions it opened, when no other disk uses
    /// them (best effort, own deadline). Disks and sessions that existed before the
    /// attach are left as they were.
    fn abandon(&self, found: &[(IscsiTarget, ScsiDevice)], before: &Before) {
        let dl = Instant::now() + Duration::from_secs(30);
        for (_, d) in found {
            if before.disks.contains(&d.name) {
                continue;
            }
            let Some(w) = d.wwid.clone() else { continue };
            if let Err(e) = run(
                self.privileged,
                &ScsiDelete {
                    device: d.name.clone(),
                    expected_wwid: w,
                },
                dl,
            ) {
                tracing::warn!(device = %d.name, "not removed: {e}");
            }
        }
        for (t, had_session) in &before.sessions {
            if !had_session && found.iter().any(|(ft, _)| ft == t) {
                self.undo_login(t, true);
            }
        }
    }

    /// sendtargets discovery through `target_portal` (with discovery CHAP when
    /// given), keeping the `node.startup` of the portal's existing records, which
    /// discovery resets. The volume's paths are the discovered portals of
    /// `target_iqn`, or every discovered target when none has that name.
    fn discover(&self, props: &IscsiProps, dl: Instant) -> Result<Vec<IscsiTarget>, IscsiError> {
        let (Some(portal), Some(iqn), Some(lun)) = (
            props.target_portal.clone(),
            props.target_iqn.clone(),
            props.primary().map(|t| t.lun),
        ) else {
            return Err(PropsError::Missing {
                key: "target_portal",
            }
            .into());
        };
        let iface = self.options.iface.clone();
        let before = self
            .iscsiadm(
                &IscsiPortalNodes {
                    portal: portal.clone(),
                },
                dl,
            )
            .map(|o| parse_node_startups(&o.stdout))
            .unwrap_or_default();
        let out: ExecOutput = match &props.discovery_auth {
            None => self.iscsiadm(
                &IscsiDiscover {
                    portal: portal.clone(),
                    iface,
                },
                dl,
            )?,
            Some(chap) => self.discover_chap(&portal, chap, dl)?,
        };
        // Put back node.startup of records that existed before.
        let after = self
            .iscsiadm(
                &IscsiPortalNodes {
                    portal: portal.clone(),
                },
                dl,
            )
            .map(|o| parse_node_startups(&o.stdout))
            .unwrap_or_default();
        for (n, p, startup) in &before {
            let changed = after
                .iter()
                .any(|(n2, p2, s2)| n2 == n && p2 == p && s2 != startup);
            if changed {
                let r = self.iscsiadm(
                    &IscsiNodeUpdate {
                        iqn: n.clone(),
                        portal: p.clone(),
                        name: "node.startup".into(),
                        value: startup.clone(),
                    },
                    dl,
                );
                if let Err(e) = r {
                    tracing::warn!(target = %format!("{n}@{p}"), "node.startup not restored: {e}");
                }
            }
        }
        if !out.success() {
            return Err(IscsiError::Target {
                target: portal.to_string(),
                message: format!("sendtargets discovery failed: {}", out.summary()),
            });
        }
        let found = parse_discovery(&out.stdout);
        let same: Vec<&(Portal, Iqn)> = found.iter().filter(|(_, i)| *i == iqn).collect();
        let chosen: Vec<&(Portal, Iqn)> = if same.is_empty() {
            found.iter().collect()
        } else {
            same
        };
        if chosen.is_empty() {
            return Err(IscsiError::Target {
                target: portal.to_string(),
                message: "sendtargets discovery found no target".into(),
            });
        }
        tracing::info!(paths = ?chosen.iter().map(|(p, i)| format!("{i}@{p}")).collect::<Vec<_>>(), "discovered");
        Ok(chosen
            .into_iter()
            .map(|(p, i)| IscsiTarget {
                portal: p.clone(),
                iqn: i.clone(),
                lun,
            })
            .collect())
    }

    /// Discovery with CHAP: the discovery record gets the method and user names via
    /// iscsiadm and the passwords from moord directly (never in an argv).
    fn discover_chap(
        &self,
        portal: &Portal,
        chap: &Chap,
        dl: Instant,
    ) -> Result<ExecOutput, IscsiError> {
        let iface = self.options.iface.clone();
        // Not retried on exit 6: for `--op new` that means "exists already".
        let new = run_exec(
            self.privileged,
            &IscsiDiscoveryNew {
                portal: portal.clone(),
                iface: iface.clone(),
            },
            dl,
        )?;
        if !(new.success() || new.exit_code == Some(ISCSI_ERR_DB_RECORD_EXISTS)) {
            return Err(IscsiError::Target {
                target: portal.to_string(),
                message: format!("creating the discovery record failed: {}", new.summary()),
            });
        }
        let update = |name: &str, value: &str| -> Result<(), IscsiError> {
            let r = self.iscsiadm(
                &IscsiDiscoveryUpdate {
                    portal: portal.clone(),
                    iface: iface.clone(),
                    name: name.into(),
                    value: value.into(),
                },
                dl,
            )?;
            if r.success() {
                Ok(())
            } else {
                Err(IscsiError::Target {
                    target: portal.to_string(),
                    message: format!(
                        "setting {name} in the discovery record failed: {}",
                        r.summary()
                    ),
                })
            }
        };
        let secret = |key: ChapSecret, s: &str| {
            run(
                self.privileged,
                &IscsiDiscoverySecret {
                    portal: portal.clone(),
                    key,
                    secret: SecretText::new(s),
                },
                dl,
            )
        };
        update("discovery.sendtargets.auth.authmethod", "CHAP")?;
        update("discovery.sendtargets.auth.username", &chap.username)?;
        secret(ChapSecret::Password, chap.password.expose())?;
        match &chap.mutual {
            Some((u, p)) => {
                update("discovery.sendtargets.auth.username_in", u)?;
                secret(ChapSecret::PasswordIn, p.expose())?;
            }
            None => update("discovery.sendtargets.auth.username_in", "")?,
        }
        Ok(self.iscsiadm(
            &IscsiDiscoveryRun {
                portal: portal.clone(),
                iface,
            },
            dl,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sendtargets_output() {
        let out = "10.0.0.1:3260,1 iqn.2010-10.org.openstack:volume-1\n\
                   [fd00::2]:3260,2 iqn.2010-10.org.openstack:volume-1\n\
                   iscsiadm: cruft line\n\
                   10.0.0.3:3260,1 eui.0123456789abcdef\n";
        let got = parse_discovery(out);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0.to_string(), "[fd00::2]:3260");
        assert_eq!(got[2].1.as_str(), "eui.0123456789abcdef");
    }

    #[test]
    fn parses_node_records() {
        let out = "# BEGIN RECORD 2.1.8\nnode.name = iqn.2003-01.org.x:a\nnode.startup = manual\n\
                   node.conn[0].address = 10.0.0.1\nnode.conn[0].port = 3260\n# END RECORD\n\
                   # BEGIN RECORD 2.1.8\nnode.name = iqn.2003-01.org.x:b\nnode.startup = automatic\n\
                   node.conn[0].address = fd00::1\nnode.conn[0].port = 3261\n# END RECORD\n";
        let got = parse_node_startups(out);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].2, "manual");
        assert_eq!(got[1].1.to_string(), "[fd00::1]:3261");
        assert_eq!(got[1].2, "automatic");
    }
}
