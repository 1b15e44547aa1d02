//! `moor connect|disconnect|extend|paths fibre-channel-eckd` (also spelled
//! `fibre_channel_eckd`, or `dasd`): s390x ECKD DASDs from the `connection_info` a
//! control plane produced, through the commands every transport shares
//! ([`crate::transport_cmd`]). See docs/dasd.md.

use std::time::Duration;

use anyhow::Result;
use moor_connector::attachments::Registry;
use moor_connector::exec::Privileged;
use moor_connector::host::HostPaths;
use moor_connector::host::udev::UdevEvents;
use moor_connector::lock::LockDir;
use moor_connector::transport::Extended;
use moor_connector::transport::dasd::{
    DasdConnector, DasdError, DasdProps, DetachOutcome, DeviceInfo, Options,
};
use serde_json::Value;

use crate::transport_cmd::Transport;

/// s390x ECKD DASD (FICON).
pub struct FibreChannelEckd;

impl Transport for FibreChannelEckd {
    const PROTOCOL: &'static str = "fibre_channel_eckd";
    type Props = DasdProps;
    type Info = DeviceInfo;
    type Outcome = DetachOutcome;
    type Connector<'a> = DasdConnector<'a>;
    type Error = DasdError;

    fn build<'a>(
        paths: HostPaths,
        privileged: &'a dyn Privileged,
        events: &'a UdevEvents,
        locks: LockDir,
        registry: Registry,
        timeout: Duration,
        multipath: bool,
    ) -> Self::Connector<'a> {
        if multipath {
            tracing::info!(
                "--multipath has no effect on a DASD: its channel paths are the channel subsystem's"
            );
        }
        DasdConnector {
            paths,
            privileged,
            events,
            locks,
            registry,
            options: Options { timeout },
        }
    }
    fn parse(data: &Value) -> Result<Self::Props> {
        Ok(DasdProps::from_connection_info(data)?)
    }
    fn encrypted(props: &Self::Props) -> bool {
        props.encrypted
    }
    fn connect(c: &Self::Connector<'_>, props: &Self::Props) -> Result<Self::Info, Self::Error> {
        c.connect(props)
    }
    fn disconnect(
        c: &Self::Connector<'_>,
        props: &Self::Props,
        info: &Self::Info,
        force: bool,
        ignore_errors: bool,
    ) -> Result<Self::Outcome, Self::Error> {
        c.disconnect(props, info, force, ignore_errors)
    }
    fn extend(
        c: &Self::Connector<'_>,
        props: &Self::Props,
        info: &Self::Info,
    ) -> Result<Extended, Self::Error> {
        c.extend(props, info)
    }
    fn paths(c: &Self::Connector<'_>, props: &Self::Props) -> Result<Vec<String>, Self::Error> {
        c.volume_paths(props)
    }
    fn dry_stop(e: &Self::Error) -> Option<&str> {
        match e {
            DasdError::DryRun(why) => Some(why),
            _ => None,
        }
    }
    fn incomplete(e: Self::Error) -> Result<(Self::Outcome, String), Self::Error> {
        match e {
            DasdError::Incomplete(o) => {
                let summary = o.summary();
                Ok((*o, summary))
            }
            other => Err(other),
        }
    }
}
