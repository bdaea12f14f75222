//! The names a ceph volume has inside qemu, shared by the boot-time drives
//! and hot-plug (docs/storage.md).

/// QEMU's limit on a block node name.
const MAX_NODE_NAME: usize = 31;

/// The block node of volume `uuid`: `v` and the UUID's hex digits, cut to
/// 31 characters (QEMU refuses longer node names; the original's
/// `drive_<uuid>` is 42).
pub(crate) fn node_name(uuid: &str) -> String {
    std::iter::once('v')
        .chain(uuid.chars().filter(|c| *c != '-'))
        .take(MAX_NODE_NAME)
        .collect()
}

/// The guest device of volume `uuid`: `device_<uuid>`, as the original.
pub(crate) fn device_id(uuid: &str) -> String {
    format!("device_{uuid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let u = "69e84267-ed01-4738-b15f-b47de06b62e7";
        assert_eq!(node_name(u), "v69e84267ed014738b15fb47de06b62");
        assert_eq!(node_name(u).len(), 31);
        assert_eq!(node_name("cccc0001"), "vcccc0001");
        assert_eq!(device_id(u), format!("device_{u}"));
    }
}
