//! iSCSI transport (os-brick `ISCSIConnector`). Today: validated connection
//! properties ([`props::IscsiProps`]).

pub mod props;

pub use props::{AccessMode, AuthMethod, Chap, IscsiProps, IscsiTarget, PropsError, Secret};
