//! Tenant networking: the links the launcher makes for its instances
//! (docs/networking.md).
//!
//! * [`link`]: the vocabulary shared by the parts below: a link and an
//!   address as the kernel reports them, and the operations on links.
//!
//! The kernel is reached through rtnetlink in this crate (no `ip` child
//! per operation); the decisions (which links an instance needs, which
//! links are ours, what to repair) are pure and tested without a kernel.

pub mod link;
pub mod rtnl;
pub mod tapdev;
