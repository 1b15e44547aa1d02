//! moor-privhelper: moord, the privileged helper daemon, and its clients.
//!
//! Without the `server` feature this crate is the wire protocol ([`protocol`]), the
//! typed operations ([`ops`]), a blocking [`client`] and the Prometheus text format
//! both moord and the connector write their metrics in ([`prom`]): std and serde
//! only, for the synchronous connector. With it (the default) it is also the daemon.

pub mod civil;
pub mod client;
pub mod ops;
pub mod prom;
pub mod protocol;

#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod create;
#[cfg(feature = "server")]
pub mod exec;
#[cfg(feature = "server")]
pub mod guard;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod peer;
#[cfg(feature = "server")]
pub mod privs;
#[cfg(feature = "server")]
pub mod records;
#[cfg(feature = "server")]
pub mod server;

/// The filter engine moord decides with, for tests that check the shipped filters
/// against the typed operations' plans.
#[cfg(feature = "server")]
pub use moor_filters;
