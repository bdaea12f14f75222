//! What a container takes from the START user-data and meta-data (payloads.md §3.3): qemu
//! instances get both parts verbatim on a config drive, containers get a command and a host
//! name read out of them.

use super::lenient::{self, lenient_struct};

#[derive(Debug, Default)]
struct CloudConfig {
    runcmd: Vec<Vec<String>>,
}
lenient_struct!(CloudConfig { "runcmd" => runcmd });

/// The container command: the first entry of a top-level `runcmd` that is a list of lists of
/// strings. `None` (image default) when the user-data does not decode that way or the list is
/// empty; further entries are ignored, as in the original.
pub fn container_command(user_data: &[u8]) -> Option<Vec<String>> {
    let cfg: CloudConfig = lenient::decode_bytes(user_data).ok()?;
    if cfg.runcmd.len() > 1 {
        log::warn!(
            "user-data runcmd has {} entries, a container runs only the first",
            cfg.runcmd.len()
        );
    }
    cfg.runcmd.into_iter().next()
}

/// The container host name: the `hostname` string of the JSON meta-data (key matched without
/// regard to case, as Go's `encoding/json`; `""` when absent); the instance UUID when the
/// meta-data is not a JSON object with a string (or null) `hostname`.
pub fn container_hostname(meta_data: &[u8], instance_uuid: &str) -> String {
    json_hostname(meta_data).unwrap_or_else(|| instance_uuid.to_owned())
}

fn json_hostname(meta_data: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(meta_data).ok()?.trim();
    // JSON is YAML, but YAML is not JSON: insist on an object so that plain YAML meta-data
    // (which Go's JSON decoder refuses) falls back to the UUID.
    if !(text.starts_with('{') && text.ends_with('}')) {
        return None;
    }
    let value: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let map = value.as_mapping()?;
    let mut hostname = String::new();
    for (k, v) in map {
        if k.as_str()
            .is_some_and(|k| k.eq_ignore_ascii_case("hostname"))
        {
            match v {
                serde_yaml::Value::String(s) => hostname = s.clone(),
                serde_yaml::Value::Null => {}
                _ => return None,
            }
        }
    }
    Some(hostname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_from_runcmd() {
        let ud = b"#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"while true; do sleep 60; done\" ]\n  - [ ls ]\n";
        assert_eq!(
            container_command(ud),
            Some(vec![
                "/bin/bash".into(),
                "-c".into(),
                "while true; do sleep 60; done".into()
            ])
        );
        assert_eq!(
            container_command(b"runcmd:\n  - [ touch, 12 ]\n"),
            Some(vec!["touch".into(), "12".into()])
        );
        assert_eq!(container_command(b"runcmd:\n  - ls -l\n"), None);
        assert_eq!(container_command(b"runcmd: []\n"), None);
        assert_eq!(container_command(b""), None);
        assert_eq!(container_command(b"#!/bin/sh\necho hi\n"), None);
    }

    #[test]
    fn hostname_from_meta_data() {
        let tabbed = b"{\n\t\"uuid\": \"d7d8\",\n\t\"hostname\": \"d7d8-host\"\n}\n";
        assert_eq!(container_hostname(tabbed, "u"), "d7d8-host");
        assert_eq!(container_hostname(b"{\"HostName\": \"h\"}", "u"), "h");
        assert_eq!(container_hostname(b"{\"uuid\": \"x\"}", "u"), "");
        assert_eq!(container_hostname(b"{\"hostname\": null}", "u"), "");
        assert_eq!(container_hostname(b"{\"hostname\": 3}", "u"), "u");
        assert_eq!(container_hostname(b"", "u"), "u");
        assert_eq!(container_hostname(b"hostname: h\n", "u"), "u");
        assert_eq!(container_hostname(b"{broken", "u"), "u");
    }
}
