//! NVMe-oF transport (os-brick `NVMeOFConnector`): validated connection properties
//! ([`props`]), the host's NVMe identity ([`hostid`]), controllers and namespaces
//! read from sysfs ([`sysfs`]), attach ([`connect`]), detach and extend ([`detach`]), replicated volumes on MD RAID1 ([`replica`]). See `docs/nvmeof.md`.

pub mod connect;
pub mod detach;
pub mod hostid;
pub mod props;
pub mod replica;
pub mod sysfs;

pub use connect::{DeviceInfo, NvmeofConnector, NvmeofError, Options};
pub use detach::DetachOutcome;
pub use hostid::{HostIdentity, HostIdentityError, IdentityPlan};
pub use props::{
    NamespaceId, NvmePortal, NvmeTarget, NvmeofProps, PropsError, ReconnectPolicy, Replication,
    Shape,
};
#[cfg(test)]
pub(crate) mod test_support;
