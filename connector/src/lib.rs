//! moor-connector: attaches and detaches block storage through moord.
//!
//! The transports (iSCSI, Fibre Channel, zFCP, DASD, NVMe-oF) and LUKS land here one
//! protocol module at a time. Today: validated identifiers ([`types`]: `Iqn`, `Portal`,
//! `Lun` with os-brick's addressing modes), the typed iSCSI connection properties
//! ([`transport::iscsi`]), `HostPaths` and the sysfs readers attach and detach need
//! ([`host`]); plus the `moor` command-line tool (`filters`, `call`).
#![forbid(unsafe_code)]

pub mod attachments;
pub mod doctor;
pub mod encryption;
pub mod exec;
pub mod host;
mod json;
pub mod lock;
pub mod metrics;
pub mod progress;
pub mod properties;
pub mod transport;
pub mod types;
