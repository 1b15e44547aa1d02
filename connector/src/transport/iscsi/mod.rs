//! iSCSI transport (os-brick `ISCSIConnector`): validated connection properties
//! ([`props`]), sessions read from sysfs ([`sessions`]) and attach/detach
//! ([`connect`]).

pub mod connect;
pub mod extend;
pub mod multipath;
pub mod props;
pub mod sessions;
#[cfg(test)]
pub(crate) mod test_support;

pub use connect::{DetachOutcome, DeviceInfo, IscsiConnector, IscsiError, Leftover, Options};
pub use props::{AccessMode, AuthMethod, Chap, IscsiProps, IscsiTarget, PropsError, Secret};
