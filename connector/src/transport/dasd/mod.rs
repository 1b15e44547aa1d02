//! s390x ECKD/DASD (FICON) volumes, protocol `fibre_channel_eckd`: see
//! `docs/dasd.md`. Validated connection properties ([`props`]), what sysfs and
//! `/proc/cio_ignore` show of a DASD ([`sysfs`]), attach ([`connect`]: make the
//! device visible, set it online, check it is a base device with the expected uid,
//! format it only when asked and allowed), detach, extend and volume paths
//! ([`detach`]: uid re-verified, safe offline, typed outcome).

pub mod connect;
pub mod detach;
pub mod props;
pub mod sysfs;

pub use connect::{DasdConnector, DasdError, DeviceInfo, Options};
pub use detach::DetachOutcome;
pub use props::{DasdProps, PropsError, SubsystemId, UnitAddress};
#[cfg(test)]
pub(crate) mod test_support;
