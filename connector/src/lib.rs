//! moor-connector: attaches and detaches block storage through moord.
//!
//! The transports (iSCSI, Fibre Channel, zFCP, DASD, NVMe-oF) and LUKS land here one
//! protocol module at a time; today the crate carries the `moor` command-line tool,
//! whose `filters` subcommands audit rootwrap-compatible filter sets.
#![forbid(unsafe_code)]
