//! What a container takes from the START user-data and meta-data: qemu
//! instances get both parts verbatim on a config drive, containers get a command and a host
//! name read out of them.

use super::lenient::{self, lenient_struct, LenientStruct, Source, Style};
use serde::de::{self, MapAccess};

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
/// regard to case and last one winning, as Go's `encoding/json`; `""` when absent or null);
/// the instance UUID when the meta-data is not a JSON object or `hostname` is not a string.
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
    let meta: MetaData = lenient::decode_bytes(text.as_bytes()).ok()?;
    Some(meta.hostname)
}

/// The one meta-data field a container uses.
#[derive(Debug, Default)]
struct MetaData {
    hostname: String,
}

impl LenientStruct for MetaData {
    fn decode_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        src: Source<'_>,
    ) -> Result<bool, A::Error> {
        if !key.eq_ignore_ascii_case("hostname") {
            return Ok(false);
        }
        match lenient::next_scalar(map, src)? {
            // JSON null leaves the field alone.
            None => {}
            // A JSON string is always double-quoted; a number or boolean is a type error.
            Some(s) if s.style == Style::Quoted => self.hostname = s.text,
            Some(s) => {
                return Err(de::Error::custom(format!(
                    "hostname {:?} is not a string",
                    s.text
                )))
            }
        }
        Ok(true)
    }
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
        assert_eq!(
            container_hostname(b"{\"hostname\": \"a\", \"HOSTNAME\": \"b\"}", "u"),
            "b"
        );
        assert_eq!(
            container_hostname(b"{\"hostname\": \"a\", \"hostname\": null}", "u"),
            "a"
        );
        assert_eq!(container_hostname(b"{\"hostname\": {\"a\": 1}}", "u"), "u");
        assert_eq!(container_hostname(b"{\"hostname\": true}", "u"), "u");
    }
}
