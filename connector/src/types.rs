//! Validated value types (`Iqn`, `Portal`, `Lun`, …), shared with moord through the
//! `moor-types` crate so both sides parse the same way.
pub use moor_types::*;
