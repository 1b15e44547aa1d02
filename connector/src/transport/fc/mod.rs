//! Fibre Channel (x86_64, ppc64le, s390x zFCP): validated connection properties
//! ([`props`]) and what sysfs shows of HBAs, remote ports and targets
//! ([`sysfs`]), attach, detach and extend ([`connect`]) on the SCSI disk steps every
//! SCSI transport shares. See `docs/fc.md`.

pub mod connect;
pub mod props;
pub mod sysfs;
#[cfg(test)]
pub(crate) mod test_support;
pub mod zfcp;

pub use connect::{DetachOutcome, DeviceInfo, FcConnector, FcError, Options};
pub use props::{FcProps, FcTarget, PropsError};
