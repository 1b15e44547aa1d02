//! Storage transports. Each submodule owns one protocol's connection properties and,
//! as they land, its attach/detach logic.

pub mod iscsi;
pub mod nvmeof;
