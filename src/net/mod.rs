//! Tenant networking: the links the launcher makes for its instances
//! (docs/networking.md).
//!
//! * [`link`]: the vocabulary shared by the parts below: a link and an
//!   address as the kernel reports them, and the operations on links.
//! * [`names`]: link names, aliases (our links' identity), subnet keys.
//! * [`discovery`]: the node's physical addresses, classified by the
//!   cluster configuration's networks.
//! * [`topology`]: which links each instance needs and which links are
//!   ours (pure: plans of [`link::LinkOp`]s).
//! * [`rtnl`]: the rtnetlink client that carries the plans out.
//! * [`tapdev`]: a concentrator's macvtap character device, checked or
//!   made private.
//!
//! The kernel is reached through rtnetlink in this crate (no `ip` child
//! per operation); the decisions (which links an instance needs, which
//! links are ours, what to repair) are pure and tested without a kernel.

pub mod discovery;
pub mod link;
pub mod names;
pub mod rtnl;
pub mod tapdev;
pub mod topology;
