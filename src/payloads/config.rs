//! The cluster configuration (`configure:` document, ciao's `configuration.yaml`) carried by
//! CONNECTED and CONFIGURE.
//!
//! Launcher side: [`ClusterConfig::parse`] decodes without defaults (absent booleans are
//! false), like the original's client library. Server side: [`Configure::parse_with_defaults`]
//! decodes over the ciao defaults and [`Configure::to_yaml`] writes the document the server
//! sends.

use super::lenient::{self, lenient_struct, DecodeError};
use super::yaml_out::{to_yaml, Node};
use std::fmt;

/// `configure.scheduler`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SchedulerConfig {
    pub storage_uri: String,
}
lenient_struct!(SchedulerConfig { "storage_uri" => storage_uri });

/// `configure.storage`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StorageConfig {
    pub ceph_id: String,
}
lenient_struct!(StorageConfig { "ceph_id" => ceph_id });

/// `configure.controller`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ControllerConfig {
    pub volume_port: i64,
    pub compute_port: i64,
    pub ciao_port: i64,
    pub compute_ca: String,
    pub compute_cert: String,
    pub identity_user: String,
    pub identity_password: String,
}
lenient_struct!(ControllerConfig {
    "volume_port" => volume_port,
    "compute_port" => compute_port,
    "ciao_port" => ciao_port,
    "compute_ca" => compute_ca,
    "compute_cert" => compute_cert,
    "identity_user" => identity_user,
    "identity_password" => identity_password,
});

/// `configure.launcher`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LauncherConfig {
    pub compute_net: Vec<String>,
    pub mgmt_net: Vec<String>,
    pub disk_limit: bool,
    pub mem_limit: bool,
}
lenient_struct!(LauncherConfig {
    "compute_net" => compute_net,
    "mgmt_net" => mgmt_net,
    "disk_limit" => disk_limit,
    "mem_limit" => mem_limit,
});

/// `configure.image_service` and `configure.identity_service`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceConfig {
    /// The YAML key `type`.
    pub service_type: String,
    pub url: String,
}
lenient_struct!(ServiceConfig { "type" => service_type, "url" => url });

/// The whole `configure:` document (payloads/configure.go of the original).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Configure {
    pub scheduler: SchedulerConfig,
    pub storage: StorageConfig,
    pub controller: ControllerConfig,
    pub launcher: LauncherConfig,
    pub image_service: ServiceConfig,
    pub identity_service: ServiceConfig,
}
lenient_struct!(Configure {
    "scheduler" => scheduler,
    "storage" => storage,
    "controller" => controller,
    "launcher" => launcher,
    "image_service" => image_service,
    "identity_service" => identity_service,
});

#[derive(Debug, Default)]
struct ConfigureDoc {
    configure: Configure,
}
lenient_struct!(ConfigureDoc { "configure" => configure });

/// A configuration the server would refuse to send (a required field is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub field: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cluster configuration: {} must not be empty", self.field)
    }
}

impl std::error::Error for ConfigError {}

impl Configure {
    /// The ciao defaults the server starts from (those of the original server).
    pub(crate) fn server_defaults() -> Self {
        Configure {
            controller: ControllerConfig {
                volume_port: 8776,
                compute_port: 8774,
                ciao_port: 8889,
                ..ControllerConfig::default()
            },
            launcher: LauncherConfig {
                disk_limit: true,
                mem_limit: true,
                ..LauncherConfig::default()
            },
            image_service: ServiceConfig {
                service_type: "glance".into(),
                url: String::new(),
            },
            identity_service: ServiceConfig {
                service_type: "keystone".into(),
                url: String::new(),
            },
            ..Configure::default()
        }
    }

    /// Decodes a configuration without defaults (the client side).
    pub(crate) fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        lenient::decode_bytes::<ConfigureDoc>(payload).map(|d| d.configure)
    }

    /// Decodes a configuration file over the server defaults (the server side).
    pub(crate) fn parse_with_defaults(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut doc = ConfigureDoc {
            configure: Configure::server_defaults(),
        };
        lenient::decode_bytes_into(payload, &mut doc)?;
        Ok(doc.configure)
    }

    /// The server's validation: these fields must be set. (An empty `ceph_id` is only a
    /// warning in the original.)
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let required = [
            ("scheduler.storage_uri", &self.scheduler.storage_uri),
            ("controller.compute_ca", &self.controller.compute_ca),
            ("controller.compute_cert", &self.controller.compute_cert),
            ("controller.identity_user", &self.controller.identity_user),
            (
                "controller.identity_password",
                &self.controller.identity_password,
            ),
            ("identity_service.url", &self.identity_service.url),
        ];
        match required.iter().find(|(_, v)| v.is_empty()) {
            Some((field, _)) => Err(ConfigError { field }),
            None => Ok(()),
        }
    }

    /// The launcher's part of the configuration.
    pub(crate) fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig {
            compute_net: self.launcher.compute_net.clone(),
            mgmt_net: self.launcher.mgmt_net.clone(),
            disk_limit: self.launcher.disk_limit,
            mem_limit: self.launcher.mem_limit,
            ceph_id: self.storage.ceph_id.clone(),
        }
    }

    pub(crate) fn to_node(&self) -> Node<'_> {
        let c = &self.controller;
        fn service(s: &ServiceConfig) -> Node<'_> {
            Node::map([
                ("type", Node::str(&s.service_type)),
                ("url", Node::str(&s.url)),
            ])
        }
        Node::map([(
            "configure",
            Node::map([
                (
                    "scheduler",
                    Node::map([("storage_uri", Node::str(&self.scheduler.storage_uri))]),
                ),
                (
                    "storage",
                    Node::map([("ceph_id", Node::str(&self.storage.ceph_id))]),
                ),
                (
                    "controller",
                    Node::map([
                        ("volume_port", Node::Int(c.volume_port)),
                        ("compute_port", Node::Int(c.compute_port)),
                        ("ciao_port", Node::Int(c.ciao_port)),
                        ("compute_ca", Node::str(&c.compute_ca)),
                        ("compute_cert", Node::str(&c.compute_cert)),
                        ("identity_user", Node::str(&c.identity_user)),
                        ("identity_password", Node::str(&c.identity_password)),
                    ]),
                ),
                (
                    "launcher",
                    Node::map([
                        ("compute_net", Node::str_seq(&self.launcher.compute_net)),
                        ("mgmt_net", Node::str_seq(&self.launcher.mgmt_net)),
                        ("disk_limit", Node::Bool(self.launcher.disk_limit)),
                        ("mem_limit", Node::Bool(self.launcher.mem_limit)),
                    ]),
                ),
                ("image_service", service(&self.image_service)),
                ("identity_service", service(&self.identity_service)),
            ]),
        )])
    }

    /// The document as the server sends it (yaml.v2 layout, keys in schema order).
    pub(crate) fn to_yaml(&self) -> String {
        to_yaml(&self.to_node())
    }
}

/// What the launcher takes from the cluster configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClusterConfig {
    /// Compute networks (CIDR text, checked by the network layer).
    pub compute_net: Vec<String>,
    /// Management networks (CIDR text).
    pub mgmt_net: Vec<String>,
    /// Disk part of admission control and FULL.
    pub disk_limit: bool,
    /// Memory part of admission control and FULL.
    pub mem_limit: bool,
    /// Ceph client id (unless `-ceph_id` is given).
    pub ceph_id: String,
}

impl ClusterConfig {
    /// Decodes the CONNECTED payload: no defaults, absent booleans are false, unknown keys
    /// ignored; any decode error means "no configuration" (the launcher then stops).
    pub(crate) fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        Configure::parse(payload).map(|c| c.cluster_config())
    }
}

/// The flags of ciao-launcher-server that shape the configuration it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestServerConfig {
    /// `scheduler.storage_uri`: not used by launchers; the original put `file://` + its
    /// temporary `conf.yaml` path here.
    pub storage_uri: String,
    /// `-ceph-id` (default `ciao`).
    pub ceph_id: String,
    /// `-compute-net` (one CIDR or none).
    pub compute_net: Option<String>,
    /// `-mgmt-net`
    pub mgmt_net: Option<String>,
    /// `-disk-limit` (default true)
    pub disk_limit: bool,
    /// `-mem-limit` (default true)
    pub mem_limit: bool,
}

/// The `storage_uri` our test server writes (launchers ignore it).
pub(crate) const TEST_SERVER_STORAGE_URI: &str = "file:///etc/ciao/configuration.yaml";

impl Default for TestServerConfig {
    fn default() -> Self {
        TestServerConfig {
            storage_uri: TEST_SERVER_STORAGE_URI.into(),
            ceph_id: "ciao".into(),
            compute_net: None,
            mgmt_net: None,
            disk_limit: true,
            mem_limit: true,
        }
    }
}

impl TestServerConfig {
    /// The configuration document: ciao defaults, the placeholders the server validation
    /// needs (`n/a`, `http://127.0.0.1`), then the flags.
    pub(crate) fn configure(&self) -> Configure {
        let mut c = Configure::server_defaults();
        c.scheduler.storage_uri = self.storage_uri.clone();
        c.storage.ceph_id = self.ceph_id.clone();
        c.controller.compute_ca = "n/a".into();
        c.controller.compute_cert = "n/a".into();
        c.controller.identity_user = "n/a".into();
        c.controller.identity_password = "n/a".into();
        c.launcher.compute_net = self
            .compute_net
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        c.launcher.mgmt_net = self
            .mgmt_net
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        c.launcher.disk_limit = self.disk_limit;
        c.launcher.mem_limit = self.mem_limit;
        c.image_service.url = "http://127.0.0.1".into();
        c.identity_service.url = "http://127.0.0.1".into();
        c
    }

    /// The CONNECTED payload.
    #[cfg(test)]
    pub(crate) fn to_yaml(&self) -> String {
        self.configure().to_yaml()
    }
}

/// The CONNECTED payload ciao-launcher-server sends with default flags.
#[cfg(test)]
pub(crate) fn default_server_configuration() -> String {
    TestServerConfig::default().to_yaml()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBSERVED: &str = "configure:
  scheduler:
    storage_uri: file:///tmp/ciao-server-launcher3781191452/conf.yaml
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

    const SCHEDULER_EXAMPLE: &str = "configure:
  scheduler:
    storage_uri: file:///etc/ciao/configuration.yaml
  storage:
    ceph_id: ciao
  controller:
    volume_port: 8776
    compute_port: 8774
    ciao_port: 8889
    compute_ca: /etc/pki/ciao/compute_ca.pem
    compute_cert: /etc/pki/ciao/compute_key.pem
    identity_user: controller
    identity_password: ciao
  launcher:
    compute_net:
    - 192.168.1.0/24
    mgmt_net:
    - 192.168.1.0/24
    disk_limit: true
    mem_limit: true
  image_service:
    type: glance
    url: http://glance.example.com
  identity_service:
    type: keystone
    url: http://keystone.example.com
";

    #[test]
    fn test_server_document_byte_for_byte() {
        let cfg = TestServerConfig {
            storage_uri: "file:///tmp/ciao-server-launcher3781191452/conf.yaml".into(),
            ..TestServerConfig::default()
        };
        let y = cfg.to_yaml();
        assert_eq!(y, OBSERVED);
        assert_eq!(y.len(), 509, "the original server sent a 509-byte payload");
        assert!(cfg.configure().validate().is_ok());
        let d = default_server_configuration();
        assert!(d.contains("storage_uri: file:///etc/ciao/configuration.yaml\n"));

        let flags = TestServerConfig {
            ceph_id: String::new(),
            compute_net: Some("10.1.0.0/16".into()),
            mgmt_net: Some("10.2.0.0/16".into()),
            disk_limit: false,
            mem_limit: false,
            ..TestServerConfig::default()
        };
        let y = flags.to_yaml();
        assert!(y.contains("  storage:\n    ceph_id: \"\"\n"));
        assert!(y.contains(
            "  launcher:\n    compute_net:\n    - 10.1.0.0/16\n    mgmt_net:\n    - 10.2.0.0/16\n    disk_limit: false\n    mem_limit: false\n"
        ));
    }

    #[test]
    fn launcher_side_parse() {
        let c = ClusterConfig::parse(SCHEDULER_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(c.compute_net, ["192.168.1.0/24"]);
        assert!(c.disk_limit && c.mem_limit);
        assert_eq!(c.ceph_id, "ciao");
        // No defaults on the launcher side.
        let c = ClusterConfig::parse(b"configure:\n  launcher:\n    compute_net: [10.0.0.0/8]\n")
            .unwrap();
        assert!(!c.disk_limit && !c.mem_limit);
        assert_eq!(c.ceph_id, "");
        // A wrong kind anywhere is a decode error, even in fields the launcher ignores.
        assert!(
            ClusterConfig::parse(b"configure:\n  controller:\n    volume_port: abc\n").is_err()
        );
        assert!(
            ClusterConfig::parse(b"configure:\n  launcher:\n    compute_net: 10.0.0.0/8\n")
                .is_err()
        );
        // Round trip through our own serialisation.
        let full = Configure::parse(SCHEDULER_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(full.to_yaml(), SCHEDULER_EXAMPLE);
    }

    #[test]
    fn server_side_defaults_and_validation() {
        let c = Configure::parse_with_defaults(b"configure:\n  scheduler:\n    storage_uri: x\n")
            .unwrap();
        assert_eq!(
            (
                c.controller.volume_port,
                c.controller.compute_port,
                c.controller.ciao_port
            ),
            (8776, 8774, 8889)
        );
        assert!(c.launcher.disk_limit && c.launcher.mem_limit);
        assert_eq!(c.image_service.service_type, "glance");
        assert_eq!(c.validate().unwrap_err().field, "controller.compute_ca");
        let c = Configure::parse_with_defaults(b"configure:\n  launcher:\n    disk_limit: false\n")
            .unwrap();
        assert!(!c.launcher.disk_limit && c.launcher.mem_limit);
    }
}
