//! The request bodies `ciaolc` builds for `stop`, `restart`, `delete`,
//! `attach` and `detach`: byte for byte what the original sent (captured
//! from it), every key of the Go struct
//! present, the arguments quoted by yaml.v2 rules (`1234` becomes `"1234"`).

use crate::payloads::{to_yaml, Node};

fn doc(key: &str, fields: Vec<(&str, Node)>) -> Vec<u8> {
    to_yaml(&Node::map([(key, Node::map(fields))])).into_bytes()
}

fn instance_doc(key: &str, x: &str) -> Vec<u8> {
    doc(
        key,
        vec![
            ("instance_uuid", Node::str(x)),
            ("workload_agent_uuid", Node::str("")),
        ],
    )
}

fn volume_doc(key: &str, x: &str, v: &str) -> Vec<u8> {
    doc(
        key,
        vec![
            ("instance_uuid", Node::str(x)),
            ("volume_uuid", Node::str(v)),
            ("workload_agent_uuid", Node::str("")),
        ],
    )
}

/// `stop:` body for instance `x`.
pub(crate) fn stop(x: &str) -> Vec<u8> {
    instance_doc("stop", x)
}

/// `delete:` body for instance `x`.
pub(crate) fn delete(x: &str) -> Vec<u8> {
    instance_doc("delete", x)
}

/// `restart:` body for instance `x` (the whole Go struct, mostly empty).
pub(crate) fn restart(x: &str) -> Vec<u8> {
    let empty = || Node::str("");
    let networking = Node::map([
        ("vnic_mac", empty()),
        ("vnic_uuid", empty()),
        ("concentrator_uuid", empty()),
        ("concentrator_ip", empty()),
        ("subnet", empty()),
        ("subnet_key", empty()),
        ("subnet_uuid", empty()),
        ("private_ip", empty()),
        ("public_ip", Node::Bool(false)),
    ]);
    doc(
        "restart",
        vec![
            ("tenant_uuid", empty()),
            ("instance_uuid", Node::str(x)),
            ("image_uuid", empty()),
            ("workload_agent_uuid", empty()),
            ("fw_type", empty()),
            ("persistence", empty()),
            ("requested_resources", Node::Seq(Vec::new())),
            ("estimated_resources", Node::Seq(Vec::new())),
            ("networking", networking),
        ],
    )
}

/// `attach_volume:` body for instance `x` and volume `v`.
pub(crate) fn attach(x: &str, v: &str) -> Vec<u8> {
    volume_doc("attach_volume", x, v)
}

/// `detach_volume:` body for instance `x` and volume `v`.
pub(crate) fn detach(x: &str, v: &str) -> Vec<u8> {
    volume_doc("detach_volume", x, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lengths captured from the original.
    #[test]
    fn sizes_match_the_original() {
        assert_eq!(stop("1234").len(), 56);
        assert_eq!(stop("inst-1").len(), 56);
        assert_eq!(restart("1234").len(), 371);
        assert_eq!(delete("1234").len(), 58);
        assert_eq!(attach("inst", "vol").len(), 82);
        assert_eq!(detach("inst", "vol").len(), 82);
    }

    // The original's body for `ciaolc restart 1234`.
    #[test]
    fn exact_restart_body() {
        let want = "restart:
  tenant_uuid: \"\"
  instance_uuid: \"1234\"
  image_uuid: \"\"
  workload_agent_uuid: \"\"
  fw_type: \"\"
  persistence: \"\"
  requested_resources: []
  estimated_resources: []
  networking:
    vnic_mac: \"\"
    vnic_uuid: \"\"
    concentrator_uuid: \"\"
    concentrator_ip: \"\"
    subnet: \"\"
    subnet_key: \"\"
    subnet_uuid: \"\"
    private_ip: \"\"
    public_ip: false
";
        assert_eq!(String::from_utf8(restart("1234")).unwrap(), want);
        assert_eq!(
            String::from_utf8(attach("X", "V")).unwrap(),
            "attach_volume:\n  instance_uuid: X\n  volume_uuid: V\n  workload_agent_uuid: \"\"\n"
        );
        assert_eq!(
            String::from_utf8(detach("X", "V")).unwrap(),
            "detach_volume:\n  instance_uuid: X\n  volume_uuid: V\n  workload_agent_uuid: \"\"\n"
        );
        assert_eq!(
            delete("X"),
            b"delete:\n  instance_uuid: X\n  workload_agent_uuid: \"\"\n"
        );
    }

    #[test]
    fn exact_stop_body() {
        assert_eq!(
            stop("1234"),
            b"stop:\n  instance_uuid: \"1234\"\n  workload_agent_uuid: \"\"\n"
        );
        assert_eq!(
            stop("inst-1"),
            b"stop:\n  instance_uuid: inst-1\n  workload_agent_uuid: \"\"\n"
        );
    }
}
