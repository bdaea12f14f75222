//! The cluster configuration the server hands every launcher in the
//! CONNECTED frame: ciao's `configuration.yaml` document (see
//! ciao-launcher-server(8) and `payloads::config`).
//!
//! Built from the flags as the original did (ciao defaults, `n/a`
//! placeholders for the fields validation wants non-empty, the flag values
//! for the launcher section), or read from `--config FILE` and decoded over
//! the ciao defaults. Either way it is validated like the original SSNTP
//! server validates its configuration and re-serialised in the original's
//! key order (the types and the emitter are `crate::payloads::config`).
//! Unlike the original, an invalid configuration stops the server at
//! start-up with a message instead of silently sending CONNECTED without a
//! payload (which makes every launcher exit).

use super::config::{ConfigError, ServerConfig};
use crate::payloads::ident::parse_cidr;
use crate::payloads::{Configure, TestServerConfig};

/// The document the original test server fabricates from its flags.
pub(crate) fn from_flags(cfg: &ServerConfig) -> Configure {
    let net = |s: &str| (!s.is_empty()).then(|| s.to_string());
    TestServerConfig {
        ceph_id: cfg.ceph_id.clone(),
        compute_net: net(&cfg.compute_net),
        mgmt_net: net(&cfg.mgmt_net),
        disk_limit: cfg.disk_limit,
        mem_limit: cfg.mem_limit,
        ..TestServerConfig::default()
    }
    .configure()
}

/// The original's validation (non-empty required fields), plus a CIDR
/// check of the networks, which launchers would otherwise fail on.
/// Returns warnings (an empty `ceph_id`) on success.
pub(crate) fn validate(c: &Configure) -> Result<Vec<String>, String> {
    c.validate().map_err(|e| e.to_string())?;
    for (name, nets) in [
        ("compute_net", &c.launcher.compute_net),
        ("mgmt_net", &c.launcher.mgmt_net),
    ] {
        for n in nets {
            if parse_cidr(n).is_none() {
                return Err(format!(
                    "configure.launcher.{name} entry {n:?} is not a network in CIDR form such as 10.1.0.0/16"
                ));
            }
        }
    }
    let mut warnings = Vec::new();
    if c.storage.ceph_id.is_empty() {
        warnings.push("ceph_id not set: launchers get an empty ceph id".to_string());
    }
    Ok(warnings)
}

/// The cluster configuration for the CONNECTED payload, and any warnings to
/// log. Reads `--config FILE` if given (start-up only).
pub(crate) fn cluster_configuration(
    cfg: &ServerConfig,
) -> Result<(Vec<u8>, Vec<String>), ConfigError> {
    let (doc, source) = match &cfg.config_file {
        None => (from_flags(cfg), std::path::PathBuf::from("(command line)")),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|error| ConfigError::ReadConfig {
                path: path.clone(),
                error,
            })?;
            let doc =
                Configure::parse_with_defaults(&bytes).map_err(|e| ConfigError::BadConfig {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            (doc, path.clone())
        }
    };
    let warnings = validate(&doc).map_err(|why| ConfigError::BadConfig { path: source, why })?;
    Ok((doc.to_yaml().into_bytes(), warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testserver::config::{parse_args, ParseOutcome};

    fn cfg(extra: &[&str]) -> ServerConfig {
        let mut a: Vec<String> = ["-ca-server-cert", "ca", "-server-cert", "s"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        match parse_args(&a) {
            ParseOutcome::Run(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    // What the original sent with the default flags (storage_uri differs:
    // we have no temporary file; launchers ignore the value).
    const DEFAULT_DOC: &str = "configure:
  scheduler:
    storage_uri: file:///etc/ciao/configuration.yaml
  storage:
    ceph_id: ciao
  controller:
    volume_port: 8776
    compute_port: 8774
    ciao_port: 8889
    compute_ca: n/a
    compute_cert: n/a
    identity_user: n/a
    identity_password: n/a
  launcher:
    compute_net: []
    mgmt_net: []
    disk_limit: true
    mem_limit: true
  image_service:
    type: glance
    url: http://127.0.0.1
  identity_service:
    type: keystone
    url: http://127.0.0.1
";

    #[test]
    fn default_document() {
        let (bytes, warnings) = cluster_configuration(&cfg(&[])).unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), DEFAULT_DOC);
        assert!(warnings.is_empty());
    }

    #[test]
    fn flags_change_the_launcher_part() {
        let c = cfg(&[
            "-ceph-id",
            "",
            "-compute-net",
            "10.1.0.0/16",
            "-mgmt-net",
            "10.2.0.0/16",
            "-disk-limit=false",
            "-mem-limit=false",
        ]);
        let (bytes, warnings) = cluster_configuration(&c).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("  storage:\n    ceph_id: \"\"\n"), "{text}");
        assert!(
            text.contains(
                "  launcher:\n    compute_net:\n    - 10.1.0.0/16\n    mgmt_net:\n    - 10.2.0.0/16\n    disk_limit: false\n    mem_limit: false\n"
            ),
            "{text}"
        );
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn bad_network_is_refused() {
        let e = cluster_configuration(&cfg(&["-compute-net", "10.1.0.0"])).unwrap_err();
        assert!(e.to_string().contains("CIDR"), "{e}");
    }

    #[test]
    fn config_file_gets_defaults_and_validation() {
        let dir = std::env::temp_dir().join(format!("ciao-cluster-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.yaml");
        std::fs::write(
            &f,
            "configure:\n  scheduler:\n    storage_uri: file:///etc/ciao/configuration.yaml\n  controller:\n    compute_ca: a\n    compute_cert: b\n    identity_user: c\n    identity_password: d\n  launcher:\n    compute_net: [192.168.1.0/24]\n  identity_service:\n    url: http://k\n  unknown: 1\n",
        )
        .unwrap();
        let mut c = cfg(&[]);
        c.config_file = Some(f.clone());
        let (bytes, _) = cluster_configuration(&c).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("    volume_port: 8776\n"));
        assert!(
            text.contains(
                "    compute_net:\n    - 192.168.1.0/24\n    mgmt_net: []\n    disk_limit: true\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  image_service:\n    type: glance\n    url: \"\"\n"),
            "{text}"
        );

        std::fs::write(&f, "configure:\n  scheduler:\n    storage_uri: x\n").unwrap();
        let e = cluster_configuration(&c).unwrap_err();
        assert!(
            e.to_string().contains("compute_ca must not be empty"),
            "{e}"
        );
        std::fs::write(&f, "configure: [1]\n").unwrap();
        assert!(cluster_configuration(&c).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
