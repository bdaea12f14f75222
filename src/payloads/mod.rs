//! Payloads: the YAML documents carried by SSNTP frames, read and written the way the
//! original Go launcher (gopkg.in/yaml.v2) reads and writes them (the traps P13.x in
//! docs/compatibility.md).
//!
//! Sub-modules:
//!
//! * [`lenient`] — yaml.v2-compatible decoding on top of serde_yaml (nulls as zero values,
//!   YAML 1.1 booleans and integers, literal text for strings, last duplicate key wins,
//!   first document only). Every parser below uses it.
//! * [`yaml_out`] — a small emitter that writes yaml.v2's exact layout and quoting.
//! * [`split`] — the START payload splitter (start section / cloud-init / meta-data).
//! * [`ident`] — identifier checks (hex-group ids, safe file names) and Go-compatible MAC,
//!   IP and CIDR parsing; the SSH port rule.
//! * [`start`] — START: [`parse_start`], validation steps, [`InstanceConfig`] (the state the
//!   launcher persists per instance).
//! * [`commands`] — STOP, RESTART, DELETE, ATTACH_VOLUME, DETACH_VOLUME.
//! * [`config`] — the cluster configuration (CONNECTED / CONFIGURE payload).
//! * [`status`] — READY status and STATS.
//! * [`events`] — InstanceDeleted, TenantAdded/Removed, TraceReport.
//! * [`errors`] — ERROR payloads and their reason enums.
//! * [`depth`] — the nesting bound every YAML entry point checks before parsing.
//! * [`cloudinit`] — a container's command and host name from user-data / meta-data.
//! * `fuzz` — entry points of the payload fuzz targets (also replayed by `cargo test`).
//!
//! Every `parse` function takes raw frame bytes and never panics; every `to_yaml` returns the
//! bytes to send.

pub mod cloudinit;
mod commands;
mod config;
pub(crate) mod depth;
pub(crate) mod errors;
mod events;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod ident;
mod lenient;
mod split;
mod start;
mod status;
mod yaml_out;

pub use commands::{
    parse_attach_volume, parse_delete, parse_detach_volume, parse_restart, parse_stop,
};
pub(crate) use config::{ClusterConfig, Configure, TestServerConfig};
pub(crate) use errors::{
    AttachVolumeFailure, AttachVolumeFailureReason, DeleteFailure, DeleteFailureReason,
    DetachVolumeFailure, DetachVolumeFailureReason, RestartFailure, RestartFailureReason,
    StartFailure, StopFailure, StopFailureReason,
};
pub use errors::{ErrorReport, StartFailureReason, VolumeErrorReport};
pub use events::{InstanceDeleted, TenantEvent, TenantEventKind, TraceReport};
pub(crate) use events::{TraceFrame, TraceNode};
pub(crate) use lenient::DecodeError;
pub use split::split_start_payload;
pub(crate) use start::{default_meta_data, StartCommand, StartError};
pub use start::{parse_start, FwType, InstanceConfig, VmType, VolumeConfig};
pub use status::{InstanceStat, NetworkStat, Ready, Stat};
pub(crate) use status::{InstanceState, NodeStatus};
pub(crate) use yaml_out::{to_yaml, Node};
