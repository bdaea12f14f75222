//! The YAML documents the test server stores and serves and `ciaolc`
//! decodes (listed in ciao-launcher-server(8)). They are the payload types of
//! `crate::payloads` (yaml.v2 decoding and emitting); this module only
//! gathers them and adds the top-level list of strings of `/clients` and
//! `/instances`.

pub(crate) use crate::payloads::{
    to_yaml, DecodeError, ErrorReport, InstanceDeleted, Node, Ready, Stat, TenantEvent,
    TenantEventKind, VolumeErrorReport,
};

/// A top-level YAML list of strings: one `- item` line each, `[]` when empty.
pub(crate) fn string_list(items: &[String]) -> String {
    to_yaml(&Node::str_seq(items))
}
