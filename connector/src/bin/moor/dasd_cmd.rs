//! `moor connect|disconnect|extend|paths fibre-channel-eckd` (also spelled
//! `fibre_channel_eckd`, or `dasd`): s390x ECKD DASDs from the `connection_info` a
//! control plane produced, through the commands every transport shares
//! ([`crate::transport_cmd`]). See docs/dasd.md.

use std::time::Duration;

use moor_connector::attachments::Registry;
use moor_connector::exec::Privileged;
use moor_connector::host::HostPaths;
use moor_connector::host::udev::UdevEvents;
use moor_connector::lock::LockDir;
use moor_connector::transport::dasd::{
    DasdConnector, DasdError, DasdProps, DetachOutcome, DeviceInfo, Options,
};

use crate::transport_cmd::{Transport, transport_common};

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
    fn wwid(_: &Self::Info) -> Option<String> {
        // moord's LUKS guards check a WWID; a DASD has a uid instead.
        None
    }
    transport_common!(DasdError);
}
