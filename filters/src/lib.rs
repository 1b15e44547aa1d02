//! moor-filters: reads oslo.rootwrap `.filters` files as they are and decides like
//! oslo.rootwrap 7.10 where rootwrap is safe, stricter where it is not (see
//! docs/filters.md for every deliberate deviation). Free of async and OS crates so it
//! can be fuzzed and property-tested.
#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod filter;
pub mod ini;
pub mod load;
pub mod pyre;
pub mod set;
pub mod system;

pub use config::{Config, ConfigError};
pub use filter::{Class, DefinitionError, Filter, Origin};
pub use load::{Diagnostic, LoadOptions, Loaded, Severity, load, parse_filters_text};
pub use set::{Decision, FilterRef, FilterSet, Outcome, WriteDecision};
pub use system::{RealSystem, System};
