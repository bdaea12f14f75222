//! START (COMMAND operand 1): splitting, decoding and validation, and the
//! instance configuration the launcher keeps.
//!
//! The original checks a START in this order; the first failure is reported:
//!
//! | # | check | reason | id sent | here |
//! |---|---|---|---|---|
//! | 1 | start section decodes | `invalid_payload` | `""` | [`parse_start`] |
//! | 2 | `instance_uuid` is hex groups | `invalid_data` | `""` | [`parse_start`] |
//! | 3 | `fw_type` ∈ {"", legacy, efi} | `invalid_data` | `""` | [`parse_start`] |
//! | 4 | `vm_type` ∈ {"", qemu, docker} | `invalid_data` | `""` | [`parse_start`] |
//! | 5 | every `storage` item has an id (ours: a hex-group id) | `invalid_data` | `""` | [`parse_start`] |
//! | 6 | room on the node | `full_cn` | id | launcher (capacity) |
//! | 7 | not running | `already_running` | id | launcher |
//! | 8 | no instance directory yet | `instance_exists` | id | launcher |
//! | 9 | an image or a boot volume (ours: a VM image is one safe file name) | `invalid_data` | id | [`StartCommand::check_image`] |
//! | 10 | networking fields parse | `invalid_data` | id | [`StartCommand::check_networking`] |
//! | 11 | image present / pulled | `image_failure` | id | launcher |
//! | 12 | VNIC created (needs tenant, vnic and concentrator ids) | `network_failure` | id | [`StartCommand::check_network_ids`], then launcher |
//! | 13 | instance files created | `image_failure` | id | launcher |
//! | 14 | launch | `launch_failure` | id | launcher |

use super::errors::{Failure, StartFailureReason};
use super::ident;
use super::lenient::{self, lenient_struct, OneOrMany};
use super::split::split_start_payload;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Disk allowance of a container, in MB (the original's hard-coded figure). VMs get 0.
pub(crate) const CONTAINER_DISK_MB: i64 = 10_000;
/// Largest `mem_mb` or disk figure accepted (2^40 MB, an exbibyte): anything
/// above is absurd, and below it every sum and byte conversion the launcher
/// makes fits an i64.
pub(crate) const MAX_RESOURCE_MB: i64 = 1 << 40;
/// Largest `vcpus` accepted.
pub(crate) const MAX_CPUS: i64 = 1 << 16;

// ---------------------------------------------------------------------------------------------
// The wire schema (payloads/start.go of the original). Every field the original decodes is
// decoded, even ignored ones, because a value of the wrong kind anywhere makes yaml.v2 fail.

#[derive(Debug, Default)]
struct StartDoc {
    start: StartCmd,
}
lenient_struct!(StartDoc { "start" => start });

#[derive(Debug, Default)]
struct StartCmd {
    tenant_uuid: String,
    instance_uuid: String,
    image_uuid: String,
    docker_image: String,
    fw_type: String,
    persistence: String,
    vm_type: String,
    requested_resources: Vec<RequestedResource>,
    estimated_resources: Vec<EstimatedResource>,
    networking: NetworkResources,
    storage: OneOrMany<StorageResource>,
}
lenient_struct!(StartCmd {
    "tenant_uuid" => tenant_uuid,
    "instance_uuid" => instance_uuid,
    "image_uuid" => image_uuid,
    "docker_image" => docker_image,
    "fw_type" => fw_type,
    "persistence" => persistence,
    "vm_type" => vm_type,
    "requested_resources" => requested_resources,
    "estimated_resources" => estimated_resources,
    "networking" => networking,
    "storage" => storage,
});

#[derive(Debug, Default)]
pub(crate) struct RequestedResource {
    pub(crate) kind: String,
    pub(crate) value: i64,
    pub(crate) mandatory: bool,
}
lenient_struct!(RequestedResource { "type" => kind, "value" => value, "mandatory" => mandatory });

#[derive(Debug, Default)]
pub(crate) struct EstimatedResource {
    kind: String,
    value: i64,
}
lenient_struct!(EstimatedResource { "type" => kind, "value" => value });

#[derive(Debug, Default)]
pub(crate) struct NetworkResources {
    vnic_mac: String,
    vnic_uuid: String,
    concentrator_uuid: String,
    concentrator_ip: String,
    subnet: String,
    subnet_key: String,
    subnet_uuid: String,
    private_ip: String,
    public_ip: bool,
}
lenient_struct!(NetworkResources {
    "vnic_mac" => vnic_mac,
    "vnic_uuid" => vnic_uuid,
    "concentrator_uuid" => concentrator_uuid,
    "concentrator_ip" => concentrator_ip,
    "subnet" => subnet,
    "subnet_key" => subnet_key,
    "subnet_uuid" => subnet_uuid,
    "private_ip" => private_ip,
    "public_ip" => public_ip,
});

#[derive(Debug, Default)]
struct StorageResource {
    id: String,
    boot: bool,
    boot_index: i64,
    ephemeral: bool,
    local: bool,
    swap: bool,
    tag: String,
    size: i64,
}
lenient_struct!(StorageResource {
    "id" => id,
    "boot" => boot,
    "boot_index" => boot_index,
    "ephemeral" => ephemeral,
    "local" => local,
    "swap" => swap,
    "tag" => tag,
    "size" => size,
});

// ---------------------------------------------------------------------------------------------
// What the launcher keeps

/// Virtual machine or container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmType {
    #[default]
    Qemu,
    Docker,
}

/// Firmware of a VM (ignored for containers). An absent `fw_type` means EFI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FwType {
    #[default]
    Efi,
    Legacy,
}

/// The instance's VNIC and tenant network, trimmed as the original trims them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkConfig {
    pub vnic_mac: String,
    pub vnic_uuid: String,
    /// The instance's own address (`private_ip`).
    pub private_ip: String,
    pub concentrator_ip: String,
    pub concentrator_uuid: String,
    pub subnet: String,
}

/// A ceph volume attached to the instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeConfig {
    pub uuid: String,
    /// The instance boots from this volume.
    pub bootable: bool,
}

/// Everything the launcher keeps about an instance, derived from its START and persisted in
/// the instance's state file. Field names are the state file's keys: keep them stable; new
/// fields must have a sensible default (`#[serde(default)]`), unknown keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceConfig {
    /// Trimmed `instance_uuid`, checked as hex groups: also the directory name.
    pub instance_uuid: String,
    /// Trimmed `tenant_uuid`.
    pub tenant_uuid: String,
    pub vm_type: VmType,
    pub fw_type: FwType,
    /// Backing image name of a VM, as sent (not trimmed). Checked by
    /// [`StartCommand::check_image`] before use.
    pub image_uuid: String,
    /// Docker image of a container, as sent.
    pub docker_image: String,
    /// `vcpus` resource; 0 (qemu default, no docker limit) when absent or not positive.
    pub cpus: i64,
    /// `mem_mb` resource; 0 when absent.
    pub mem_mb: i64,
    /// Disk allowance in MB: 0 for VMs, [`CONTAINER_DISK_MB`] for containers.
    pub disk_mb: i64,
    /// A non-zero `network_node` resource: a CNCI.
    pub network_node: bool,
    pub network: NetworkConfig,
    /// SSH port reported in STATS (`ident::ssh_port`).
    pub ssh_port: u16,
    /// Volumes from `storage`, then attached later; detached ones removed.
    pub volumes: Vec<VolumeConfig>,
}

impl InstanceConfig {
    pub fn is_container(&self) -> bool {
        self.vm_type == VmType::Docker
    }

    pub fn is_legacy(&self) -> bool {
        self.fw_type == FwType::Legacy
    }

    /// The image to run: the docker image for containers, the backing image for VMs.
    pub fn image(&self) -> &str {
        if self.is_container() {
            &self.docker_image
        } else {
            &self.image_uuid
        }
    }

    /// The SSH address reported in STATS: the concentrator IP (empty if none).
    pub fn ssh_ip(&self) -> &str {
        &self.network.concentrator_ip
    }

    pub fn has_boot_volume(&self) -> bool {
        self.volumes.iter().any(|v| v.bootable)
    }

    /// Resources are neither negative nor beyond what the capacity
    /// arithmetic can hold (a negative `mem_mb` used to switch capacity
    /// accounting off; docs/compatibility.md).
    pub fn check_resources(&self) -> Result<(), String> {
        for (what, value, max) in [
            ("vcpus", self.cpus, MAX_CPUS),
            ("mem_mb", self.mem_mb, MAX_RESOURCE_MB),
            ("disk_mb", self.disk_mb, MAX_RESOURCE_MB),
        ] {
            if !(0..=max).contains(&value) {
                return Err(format!("{what} {value} is outside 0..={max}"));
            }
        }
        Ok(())
    }

    /// The checks START makes that a configuration read back from a state
    /// file must pass too (a hand-edited file is not trusted more than a
    /// START): ids, resources and a VM's image name.
    pub fn check_stored(&self) -> Result<(), String> {
        if !ident::is_hex_id(&self.instance_uuid) {
            return Err(format!(
                "instance_uuid {:?} is not an id",
                self.instance_uuid
            ));
        }
        if let Some(v) = self.volumes.iter().find(|v| !ident::is_hex_id(&v.uuid)) {
            return Err(format!("volume id {:?} is not an id", v.uuid));
        }
        self.check_resources()?;
        self.check_image_name()
    }

    /// A VM's image name is one safe file name (it becomes a path).
    fn check_image_name(&self) -> Result<(), String> {
        if !self.is_container()
            && !self.image_uuid.is_empty()
            && !ident::is_safe_path_component(&self.image_uuid)
        {
            return Err(format!(
                "image_uuid {:?} is not a plain file name",
                self.image_uuid
            ));
        }
        Ok(())
    }
}

/// A decoded START: the instance's configuration plus the two parts passed to the instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartCommand {
    pub instance: InstanceConfig,
    /// Cloud-init user-data, exactly as split (may be empty, may be any bytes).
    pub user_data: Vec<u8>,
    /// Meta-data (JSON by convention), exactly as split; empty when absent.
    pub meta_data: Vec<u8>,
}

/// A refused START: the reason and the `instance_uuid` the StartFailure must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    pub reason: StartFailureReason,
    /// `""` for failures found on receipt, as the original reports them.
    pub instance_uuid: String,
    /// What exactly was wrong, for the log.
    pub detail: String,
}

impl StartError {
    fn receipt(reason: StartFailureReason, detail: impl Into<String>) -> Self {
        StartError {
            reason,
            instance_uuid: String::new(),
            detail: detail.into(),
        }
    }

    fn instance(
        cfg: &InstanceConfig,
        reason: StartFailureReason,
        detail: impl Into<String>,
    ) -> Self {
        StartError {
            reason,
            instance_uuid: cfg.instance_uuid.clone(),
            detail: detail.into(),
        }
    }

    /// The reason's wire text.
    pub fn reason_str(&self) -> &'static str {
        use super::errors::Reason;
        self.reason.as_str()
    }

    /// The StartFailure payload to send.
    pub fn failure(&self) -> Failure<StartFailureReason> {
        Failure::new(self.instance_uuid.clone(), self.reason)
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.instance_uuid.is_empty() {
            write!(f, "START refused ({}): {}", self.reason, self.detail)
        } else {
            write!(
                f,
                "START of {} refused ({}): {}",
                self.instance_uuid, self.reason, self.detail
            )
        }
    }
}

impl std::error::Error for StartError {}

/// Splits and decodes a START payload and runs the checks done on receipt (steps 1–5 of the
/// module's table).
/// Never panics, whatever the input.
pub fn parse_start(payload: &[u8]) -> Result<StartCommand, StartError> {
    use StartFailureReason::{InvalidData, InvalidPayload};
    let parts = split_start_payload(payload);
    let doc: StartDoc = lenient::decode_bytes(&parts.start)
        .map_err(|e| StartError::receipt(InvalidPayload, e.to_string()))?;
    let cmd = doc.start;

    let instance_uuid = cmd.instance_uuid.trim();
    if !ident::is_hex_id(instance_uuid) {
        return Err(StartError::receipt(
            InvalidData,
            format!(
                "instance_uuid {:?} is missing or not hexadecimal groups joined by '-'",
                cmd.instance_uuid
            ),
        ));
    }
    let fw_type = match cmd.fw_type.as_str() {
        "" | "efi" => FwType::Efi,
        "legacy" => FwType::Legacy,
        other => {
            return Err(StartError::receipt(
                InvalidData,
                format!("unknown fw_type {other:?}"),
            ))
        }
    };
    let vm_type = match cmd.vm_type.as_str() {
        "" | "qemu" => VmType::Qemu,
        "docker" => VmType::Docker,
        other => {
            return Err(StartError::receipt(
                InvalidData,
                format!("unknown vm_type {other:?}"),
            ))
        }
    };
    let mut volumes = Vec::with_capacity(cmd.storage.0.len());
    for item in &cmd.storage.0 {
        // The original only required a non-empty id; the id becomes part of rbd and qemu
        // arguments and of a mount path, so it must pass the identifier check.
        let id = item.id.trim();
        if id.is_empty() {
            return Err(StartError::receipt(InvalidData, "a storage item has no id"));
        }
        if !ident::is_hex_id(id) {
            return Err(StartError::receipt(
                InvalidData,
                format!(
                    "storage id {:?} is not hexadecimal groups joined by '-'",
                    item.id
                ),
            ));
        }
        volumes.push(VolumeConfig {
            uuid: id.to_owned(),
            bootable: item.boot,
        });
    }

    let (mut cpus, mut mem_mb, mut network_node) = (0, 0, false);
    for r in &cmd.requested_resources {
        match r.kind.as_str() {
            "vcpus" => cpus = r.value,
            "mem_mb" => mem_mb = r.value,
            "network_node" => network_node = r.value != 0,
            _ => {}
        }
    }
    let net = &cmd.networking;
    let network = NetworkConfig {
        vnic_mac: net.vnic_mac.trim().to_owned(),
        vnic_uuid: net.vnic_uuid.trim().to_owned(),
        private_ip: net.private_ip.trim().to_owned(),
        concentrator_ip: net.concentrator_ip.trim().to_owned(),
        concentrator_uuid: net.concentrator_uuid.trim().to_owned(),
        subnet: net.subnet.trim().to_owned(),
    };
    let instance = InstanceConfig {
        instance_uuid: instance_uuid.to_owned(),
        tenant_uuid: cmd.tenant_uuid.trim().to_owned(),
        vm_type,
        fw_type,
        image_uuid: cmd.image_uuid,
        docker_image: cmd.docker_image,
        cpus,
        mem_mb,
        disk_mb: if vm_type == VmType::Docker {
            CONTAINER_DISK_MB
        } else {
            0
        },
        network_node,
        ssh_port: ident::ssh_port(&network.private_ip, network_node),
        network,
        volumes,
    };
    instance
        .check_resources()
        .map_err(|e| StartError::instance(&instance, InvalidData, e))?;
    Ok(StartCommand {
        instance,
        user_data: parts.cloud_init,
        meta_data: parts.meta_data,
    })
}

impl StartCommand {
    /// Step 9: there is something to boot. A VM's image name must also be one safe file name
    /// (O20 in docs/compatibility.md: the original let `../` through into a path).
    pub fn check_image(&self) -> Result<(), StartError> {
        let cfg = &self.instance;
        if cfg.image().is_empty() && !cfg.has_boot_volume() {
            let what = if cfg.is_container() {
                "docker_image"
            } else {
                "image_uuid"
            };
            return Err(StartError::instance(
                cfg,
                StartFailureReason::InvalidData,
                format!("no {what} and no bootable volume"),
            ));
        }
        cfg.check_image_name()
            .map_err(|e| StartError::instance(cfg, StartFailureReason::InvalidData, e))
    }

    /// Step 10 (networking enabled only): the VNIC MAC parses; for instances that are not
    /// network-node instances the subnet, concentrator IP and private IP parse too.
    pub fn check_networking(&self) -> Result<(), StartError> {
        let cfg = &self.instance;
        let net = &cfg.network;
        let bad = |what: &str, value: &str| {
            Err(StartError::instance(
                cfg,
                StartFailureReason::InvalidData,
                format!("invalid {what} {value:?}"),
            ))
        };
        if ident::parse_mac(&net.vnic_mac).is_none() {
            return bad("vnic_mac", &net.vnic_mac);
        }
        if cfg.network_node {
            return Ok(());
        }
        if ident::parse_cidr(&net.subnet).is_none() {
            return bad("subnet", &net.subnet);
        }
        if ident::parse_ip(&net.concentrator_ip).is_none() {
            return bad("concentrator_ip", &net.concentrator_ip);
        }
        if ident::parse_ip(&net.private_ip).is_none() {
            return bad("private_ip", &net.private_ip);
        }
        Ok(())
    }

    /// The identifiers VNIC creation needs (step 12, `network_failure`): tenant and VNIC ids,
    /// and for instances that are not network-node instances the concentrator id.
    pub fn check_network_ids(&self) -> Result<(), StartError> {
        let cfg = &self.instance;
        let missing = |what: &str| {
            Err(StartError::instance(
                cfg,
                StartFailureReason::NetworkFailure,
                format!("{what} is empty"),
            ))
        };
        if cfg.tenant_uuid.is_empty() {
            return missing("tenant_uuid");
        }
        if cfg.network.vnic_uuid.is_empty() {
            return missing("networking.vnic_uuid");
        }
        if !cfg.network_node && cfg.network.concentrator_uuid.is_empty() {
            return missing("networking.concentrator_uuid");
        }
        Ok(())
    }

    /// The `meta_data.json` of the config drive: the meta-data part, or the original's default
    /// when the payload had none.
    pub fn meta_data_json(&self) -> Vec<u8> {
        if self.meta_data.is_empty() {
            default_meta_data(&self.instance.instance_uuid).into_bytes()
        } else {
            self.meta_data.clone()
        }
    }
}

/// The meta-data written when a START has none (two-space indentation, final newline).
pub(crate) fn default_meta_data(instance_uuid: &str) -> String {
    format!("{{\n  \"uuid\": \"{instance_uuid}\",\n  \"hostname\": \"{instance_uuid}\"\n}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(body: &str) -> Result<StartCommand, StartError> {
        parse_start(format!("start:\n{body}").as_bytes())
    }

    fn reason(r: Result<StartCommand, StartError>) -> (&'static str, String) {
        let e = r.unwrap_err();
        (e.reason_str(), e.instance_uuid)
    }

    #[test]
    fn receipt_checks_in_order() {
        let bad = |b: &str| reason(start(b));
        assert_eq!(
            bad("  instance_uuid: [x]\n"),
            ("invalid_payload", String::new())
        );
        assert_eq!(
            bad("  instance_uuid: g7\n  fw_type: bios\n"),
            ("invalid_data", String::new())
        );
        assert_eq!(
            bad("  instance_uuid: ab\n  fw_type: EFI\n"),
            ("invalid_data", String::new())
        );
        assert_eq!(
            bad("  instance_uuid: ab\n  vm_type: lxc\n"),
            ("invalid_data", String::new())
        );
        assert_eq!(
            bad("  instance_uuid: ab\n  storage:\n  - boot: true\n"),
            ("invalid_data", String::new())
        );
        assert_eq!(
            bad("  instance_uuid: ab\n  storage:\n  - id: ../x\n"),
            ("invalid_data", String::new())
        );
        assert_eq!(reason(parse_start(b"")), ("invalid_data", String::new()));
        assert_eq!(
            reason(parse_start(b"stop:\n  instance_uuid: ab\n")),
            ("invalid_data", String::new())
        );
        assert_eq!(
            reason(parse_start(b"start:\n  instance_uuid: \xff\n")),
            ("invalid_payload", String::new())
        );
        assert!(start("  instance_uuid: ' ab '\n").is_ok());
    }

    /// Negative or absurd resources are refused as `invalid_data` with the
    /// instance's id (issue 14: `mem_mb: -100000000` switched capacity off);
    /// absent ones keep the default 0; the state-file check refuses them too.
    #[test]
    fn negative_or_absurd_resources_are_invalid_data() {
        let res = |kind: &str, v: &str| {
            format!(
                "  instance_uuid: ab\n  requested_resources:\n  - type: {kind}\n    value: {v}\n"
            )
        };
        for (kind, v) in [
            ("mem_mb", "-100000000"),
            ("mem_mb", "-1"),
            ("vcpus", "-2"),
            ("mem_mb", "9223372036854775807"),
            ("mem_mb", "1099511627777"),
            ("vcpus", "70000"),
        ] {
            assert_eq!(
                reason(start(&res(kind, v))),
                ("invalid_data", "ab".to_string()),
                "{kind}: {v}"
            );
        }
        let ok = start(&res("mem_mb", "1099511627776")).unwrap().instance;
        assert_eq!(ok.mem_mb, MAX_RESOURCE_MB);
        let absent = start("  instance_uuid: ab\n").unwrap().instance;
        assert_eq!((absent.cpus, absent.mem_mb), (0, 0));
        let stored = |f: &dyn Fn(&mut InstanceConfig)| {
            let mut c = absent.clone();
            f(&mut c);
            c.check_stored()
        };
        assert!(stored(&|_| {}).is_ok());
        assert!(stored(&|c| c.mem_mb = -5).is_err());
        assert!(stored(&|c| c.disk_mb = i64::MAX).is_err());
        assert!(stored(&|c| c.image_uuid = "../../../../etc/passwd".into()).is_err());
        assert!(stored(&|c| c.volumes.push(VolumeConfig {
            uuid: "../x".into(),
            bootable: false
        }))
        .is_err());
        assert!(stored(&|c| c.instance_uuid = "../x".into()).is_err());
    }

    /// A START nesting ~30k levels in an ignored key is refused as
    /// `invalid_payload` in linear time (issue 14: the loop froze ~2 s),
    /// while brackets in its cloud-init part are data.
    #[test]
    fn deep_nesting_is_refused_at_once() {
        let t = std::time::Instant::now();
        let deep = format!("  instance_uuid: ab\n  junk: {}\n", "[".repeat(30_000));
        assert_eq!(reason(start(&deep)), ("invalid_payload", String::new()));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
        let user_data = format!(
            "start:\n  instance_uuid: ab\n  image_uuid: img\n...\n---\n#cloud-config\nruncmd:\n - echo '{}'\n...\n",
            "[".repeat(500)
        );
        assert!(parse_start(user_data.as_bytes()).is_ok());
    }

    #[test]
    fn derived_values() {
        let c = start(
            "  instance_uuid: ' AB-cd '\n  vm_type: docker\n  docker_image: ubuntu:latest\n  requested_resources:\n  - type: vcpus\n    value: 2\n  - type: vcpus\n    value: 3\n  - type: mem_mb\n    value: 0x10\n  - type: disk\n    value: 9\n  networking:\n    private_ip: ' 192.168.111.102 '\n    concentrator_ip: 192.168.200.200\n",
        )
        .unwrap()
        .instance;
        assert_eq!(c.instance_uuid, "AB-cd");
        assert_eq!((c.cpus, c.mem_mb, c.disk_mb), (3, 16, CONTAINER_DISK_MB));
        assert_eq!(c.image(), "ubuntu:latest");
        assert_eq!(c.ssh_port, 61518);
        assert_eq!(c.ssh_ip(), "192.168.200.200");
        assert!(c.is_container());
        let nn = start("  instance_uuid: ab\n  requested_resources:\n  - type: network_node\n    value: 1\n  networking:\n    private_ip: 192.168.8.2\n")
            .unwrap()
            .instance;
        assert!(nn.network_node);
        assert_eq!((nn.ssh_port, nn.fw_type, nn.disk_mb), (0, FwType::Efi, 0));
    }

    #[test]
    fn image_and_network_checks() {
        let ok = start("  instance_uuid: ab\n  image_uuid: clear-123\n  networking:\n    vnic_mac: 02:00:e6:f5:af:f9\n    subnet: 192.168.8.0/21\n    concentrator_ip: 192.168.42.21\n    private_ip: 192.168.8.2\n").unwrap();
        assert!(ok.check_image().is_ok());
        assert!(ok.check_networking().is_ok());
        assert_eq!(
            ok.check_network_ids().unwrap_err().reason_str(),
            "network_failure"
        );

        let e = start("  instance_uuid: ab\n")
            .unwrap()
            .check_image()
            .unwrap_err();
        assert_eq!(
            (e.reason_str(), e.instance_uuid.as_str()),
            ("invalid_data", "ab")
        );
        assert!(
            start("  instance_uuid: ab\n  storage: {id: cd, boot: yes}\n")
                .unwrap()
                .check_image()
                .is_ok()
        );
        for bad in ["..", "../../etc/passwd", "a/b"] {
            let e = start(&format!("  instance_uuid: ab\n  image_uuid: '{bad}'\n"))
                .unwrap()
                .check_image()
                .unwrap_err();
            assert_eq!(e.reason_str(), "invalid_data", "{bad}");
        }
        // A container ignores image_uuid.
        assert!(start(
            "  instance_uuid: ab\n  vm_type: docker\n  docker_image: x\n  image_uuid: ../x\n"
        )
        .unwrap()
        .check_image()
        .is_ok());

        let e = start("  instance_uuid: ab\n  networking:\n    vnic_mac: zz\n")
            .unwrap()
            .check_networking()
            .unwrap_err();
        assert_eq!(
            (e.reason_str(), e.instance_uuid.as_str()),
            ("invalid_data", "ab")
        );
        // A CNCI needs only the MAC.
        assert!(start("  instance_uuid: ab\n  requested_resources: [{type: network_node, value: 1}]\n  networking: {vnic_mac: 02:00:8c:ba:f9:45}\n")
            .unwrap()
            .check_networking()
            .is_ok());
    }

    #[test]
    fn meta_data_default() {
        let c = start("  instance_uuid: ab\n").unwrap();
        assert_eq!(
            c.meta_data_json(),
            b"{\n  \"uuid\": \"ab\",\n  \"hostname\": \"ab\"\n}\n"
        );
        assert!(c.user_data.is_empty());
    }

    #[test]
    fn instance_config_state_file_round_trip() {
        let c = start("  instance_uuid: ab\n  fw_type: legacy\n  image_uuid: img\n  storage: [{id: cd, boot: true}]\n")
            .unwrap()
            .instance;
        let y = serde_yaml::to_string(&c).unwrap();
        assert!(y.contains("fw_type: legacy"));
        let back: InstanceConfig = serde_yaml::from_str(&y).unwrap();
        assert_eq!(back, c);
        // Forward/backward compatible: unknown keys ignored, missing keys defaulted.
        let old: InstanceConfig =
            serde_yaml::from_str("instance_uuid: ab\nfuture_field: 1\n").unwrap();
        assert_eq!(old.vm_type, VmType::Qemu);
    }
}
