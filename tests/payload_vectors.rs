//! Payload golden data: the START splitter vectors produced by running the original splitter
//! (tests/data/payloads/start_split_vectors.json), the original's example payloads (copies
//! of its tests/examples), START payloads in the form the original controller generates
//! (accepted by the original's parser), and the payloads the original launcher sends
//! (byte-identical after a round trip through its Go types and yaml.v2), all through the
//! public parsers.

use ciao::payloads::{self, FwType, StartFailureReason, VmType};
use serde::Deserialize;
use std::path::PathBuf;

fn data(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/payloads")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    input: String,
    start: String,
    cloud_init: String,
    meta_data: String,
}

#[test]
fn start_split_vectors() {
    // JSON is YAML: the vectors are read with the crate's own YAML library.
    let vectors: Vec<Vector> = serde_yaml::from_slice(&data("start_split_vectors.json")).unwrap();
    assert_eq!(vectors.len(), 24);
    let mut failed = Vec::new();
    for v in &vectors {
        let got = payloads::split_start_payload(v.input.as_bytes());
        let want = (
            v.start.as_bytes(),
            v.cloud_init.as_bytes(),
            v.meta_data.as_bytes(),
        );
        if (&got.start[..], &got.cloud_init[..], &got.meta_data[..]) != want {
            failed.push(format!(
                "{}: got start={:?} cloud_init={:?} meta_data={:?}",
                v.name,
                String::from_utf8_lossy(&got.start),
                String::from_utf8_lossy(&got.cloud_init),
                String::from_utf8_lossy(&got.meta_data)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn split_vectors_never_panic_the_parser() {
    let vectors: Vec<Vector> = serde_yaml::from_slice(&data("start_split_vectors.json")).unwrap();
    for v in &vectors {
        // Every vector whose start part has an instance id parses; the others are invalid_data.
        match payloads::parse_start(v.input.as_bytes()) {
            Ok(c) => assert!(
                c.instance.instance_uuid.starts_with("d7d86208"),
                "{}",
                v.name
            ),
            Err(e) => {
                assert_eq!(e.reason, StartFailureReason::InvalidData, "{}: {e}", v.name);
                assert_eq!(e.instance_uuid, "", "{}", v.name);
            }
        }
    }
}

#[test]
fn original_example_files() {
    let legacy = payloads::parse_start(&data("start_legacy.yaml")).unwrap();
    let c = &legacy.instance;
    assert_eq!(c.instance_uuid, "d7d86208-b46c-4465-9018-fe14087d415f");
    assert_eq!(c.tenant_uuid, "67d86208-000-4465-9018-fe14087d415f");
    assert_eq!(
        (c.vm_type, c.fw_type, c.cpus, c.mem_mb),
        (VmType::Qemu, FwType::Legacy, 2, 370)
    );
    assert_eq!((c.ssh_port, c.ssh_ip()), (35050, "192.168.42.21"));
    assert_eq!(c.image(), "b286cd45-7d0c-4525-a140-4db6c95e41fa");
    assert!(legacy.user_data.starts_with(b"#cloud-config\nruncmd:\n"));
    assert!(legacy.user_data.ends_with(b"ciao@ciao\n"));
    assert_eq!(
        legacy.meta_data,
        b"{\n  \"uuid\": \"ciao\",\n  \"hostname\": \"ciao\"\n}\n"
    );
    legacy.check_image().unwrap();
    legacy.check_networking().unwrap();
    legacy.check_network_ids().unwrap();

    let efi = payloads::parse_start(&data("start_efi.yaml")).unwrap();
    assert_eq!(efi.instance.fw_type, FwType::Efi);
    assert_eq!(
        efi.instance.instance_uuid,
        "67d86208-b46c-4465-9018-fe14087d415"
    );
    assert_eq!(
        efi.instance.image_uuid,
        "clear-1ff6bf3883708a56446d863f20c810c99b3aea6f"
    );
    efi.check_image().unwrap();
    // The cloud-config with its doubled backslashes is passed through untouched.
    assert!(efi.user_data.windows(12).any(|w| w == b"\\\\$1\\\\$vzmNm"));

    let container = payloads::parse_start(&data("start_container.yaml")).unwrap();
    let c = &container.instance;
    assert_eq!(
        (c.vm_type, c.cpus, c.mem_mb, c.ssh_port),
        (VmType::Docker, 1, 16, 61518)
    );
    assert_eq!(c.image(), "ubuntu:latest");
    assert_eq!(
        payloads::cloudinit::container_command(&container.user_data).unwrap(),
        ["/bin/bash", "-c", "while true; do sleep 60; done"]
    );
    assert_eq!(
        payloads::cloudinit::container_hostname(&container.meta_data, &c.instance_uuid),
        "ciao"
    );
    container.check_networking().unwrap();

    let nn = payloads::parse_start(&data("start_nn.yaml")).unwrap();
    assert!(nn.instance.network_node);
    assert_eq!(
        (nn.instance.cpus, nn.instance.mem_mb, nn.instance.ssh_port),
        (2, 256, 0)
    );
    assert_eq!(
        nn.user_data,
        b"#cloud-config\nruncmd:\n  - [ touch, \"/etc/bootdone\" ]\n"
    );
    assert_eq!(
        nn.meta_data,
        b"{\n  \"uuid\": \"ciao\",\n  \"hostname\": \"ciao\"\n}\n"
    );
    nn.check_networking().unwrap();

    // The original rejects these two (storage written as a mapping, README style) with
    // invalid_payload; we accept the single-mapping form on purpose.
    let vol = payloads::parse_start(&data("start_legacy_volume.yaml")).unwrap();
    assert_eq!(vol.instance.volumes.len(), 1);
    assert_eq!(
        vol.instance.volumes[0].uuid,
        "67d86208-000-4465-9018-fe14087d415f"
    );
    assert!(!vol.instance.volumes[0].bootable);
    let boot = payloads::parse_start(&data("start_legacy_volume_boot.yaml")).unwrap();
    assert!(boot.instance.volumes[0].bootable);
    assert_eq!(boot.instance.image_uuid, "");
    boot.check_image().unwrap();

    let id = "d7d86208-b46c-4465-9018-fe14087d415f";
    assert_eq!(
        payloads::parse_stop(&data("stop_legacy.yaml"))
            .unwrap()
            .instance_uuid,
        id
    );
    assert_eq!(
        payloads::parse_restart(&data("restart_legacy.yaml"))
            .unwrap()
            .instance_uuid,
        id
    );
    assert_eq!(
        payloads::parse_delete(&data("delete_legacy.yaml"))
            .unwrap()
            .instance_uuid,
        id
    );
    // Sent as the wrong command: wrapper key does not match, so the id is missing.
    let e = payloads::parse_stop(&data("delete_legacy.yaml")).unwrap_err();
    assert_eq!(e.reason_str(), "invalid_data");
}

/// What the original controller produces for a compute-node VM.
const CONTROLLER_VM: &str = "---
start:
  tenant_uuid: 67d86208-d46c-4465-9018-fe14087d415f
  instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f
  image_uuid: b286cd45-7d0c-4525-a140-4db6c95e41fa
  docker_image: \"\"
  fw_type: legacy
  persistence: host
  vm_type: qemu
  requested_resources:
  - type: vcpus
    value: 2
    mandatory: true
  - type: mem_mb
    value: 370
    mandatory: true
  estimated_resources: []
  networking:
    vnic_mac: 02:00:c0:a8:08:02
    vnic_uuid: 7f49d00d-1995-4156-8c79-5f5ab24ce138
    concentrator_uuid: 67d86208-b46c-4465-0000-fe14087d415f
    concentrator_ip: 192.168.42.21
    subnet: 192.168.8.0/24
    subnet_key: \"\"
    subnet_uuid: \"\"
    private_ip: 192.168.8.2
    public_ip: false
  storage:
  - id: 69e84267-ed01-4738-b15f-b47de06b62e7
...
---
#cloud-config
runcmd:
  - [ touch, \"/etc/bootdone\" ]
...
---
{
\t\"uuid\": \"d7d86208-b46c-4465-9018-fe14087d415f\",
\t\"hostname\": \"d7d86208-b46c-4465-9018-fe14087d415f\"
}
...
";

/// The original controller's START of a CNCI.
const CONTROLLER_CNCI: &str = "---
start:
  tenant_uuid: 67d86208-d46c-4465-9018-fe14087d415f
  instance_uuid: c6beb8b5-0bfc-43fd-9638-7dd788179fd8
  image_uuid: 4e16e743-265a-4bf2-9fd1-57ada0b28904
  docker_image: \"\"
  fw_type: efi
  persistence: host
  vm_type: qemu
  requested_resources:
  - type: vcpus
    value: 4
    mandatory: true
  - type: mem_mb
    value: 2048
    mandatory: true
  - type: network_node
    value: 1
    mandatory: true
  estimated_resources: []
  networking:
    vnic_mac: 02:00:8c:ba:f9:45
    vnic_uuid: 0e4e6b3c-1c3a-4d8c-9d5e-2a1e8b5f6c70
    concentrator_uuid: \"\"
    concentrator_ip: \"\"
    subnet: \"\"
    subnet_key: \"\"
    subnet_uuid: \"\"
    private_ip: \"\"
    public_ip: false
...
---
#cloud-config
runcmd:
  - [ touch, \"/etc/bootdone\" ]
...
---
{
\t\"uuid\": \"c6beb8b5-0bfc-43fd-9638-7dd788179fd8\",
\t\"hostname\": \"cnci-67d86208-d46c-4465-9018-fe14087d415f\"
}
...
";

/// A docker container as the original controller sends it.
const CONTROLLER_DOCKER: &str = "---
start:
  tenant_uuid: 67d86208-d46c-4465-9018-fe14087d415f
  instance_uuid: 3390740c-dce9-48d6-b83a-a717417072ce
  image_uuid: fa7d86d8-fa46-11e5-8493-38607786d9ec
  docker_image: ubuntu:latest
  fw_type: \"\"
  persistence: host
  vm_type: docker
  requested_resources:
  - type: vcpus
    value: 2
    mandatory: true
  - type: mem_mb
    value: 128
    mandatory: true
  estimated_resources: []
  networking:
    vnic_mac: 02:00:c0:a8:08:03
    vnic_uuid: 5a3e1d0f-6a3b-4f0e-8f55-6d3b1f1c2a11
    concentrator_uuid: 67d86208-b46c-4465-0000-fe14087d415f
    concentrator_ip: 192.168.42.21
    subnet: 192.168.8.0/24
    subnet_key: \"\"
    subnet_uuid: \"\"
    private_ip: 192.168.8.3
    public_ip: false
...
---
#cloud-config
runcmd:
  - [ /bin/bash, -c, \"while true; do sleep 60; done\" ]
...
---
{
\t\"uuid\": \"3390740c-dce9-48d6-b83a-a717417072ce\",
\t\"hostname\": \"3390740c-dce9-48d6-b83a-a717417072ce\"
}
...
";

/// A VM booting from a volume, single document, as the original controller sends it.
const VOLUME_BOOT: &str = "start:
  instance_uuid: d7d86208-b46c-4465-9018-ee14087d415f
  tenant_uuid: 67d86208-d46c-4465-9018-fe14087d415f
  fw_type: legacy
  requested_resources:
    - type: vcpus
      value: 2
    - type: mem_mb
      value: 370
  networking:
    vnic_mac: 02:00:e6:f5:af:f9
    vnic_uuid: 67d86208-b46c-0000-9018-fe14087d415f
    concentrator_ip: 192.168.42.21
    concentrator_uuid: 67d86208-b46c-4465-0000-fe14087d415f
    subnet: 192.168.8.0/21
    private_ip: 192.168.8.2
  storage:
    - id: 69e84267-ed01-4738-b15f-b47de06b62e7
      boot: true
";

#[test]
fn spec_received_start_examples() {
    let vm = payloads::parse_start(CONTROLLER_VM.as_bytes()).unwrap();
    let c = &vm.instance;
    assert_eq!(
        (c.cpus, c.mem_mb, c.ssh_port, c.fw_type),
        (2, 370, 35050, FwType::Legacy)
    );
    assert_eq!(c.volumes.len(), 1);
    assert!(!c.volumes[0].bootable);
    assert_eq!(
        vm.user_data,
        b"#cloud-config\nruncmd:\n  - [ touch, \"/etc/bootdone\" ]\n"
    );
    assert!(vm.meta_data.starts_with(b"{\n\t\"uuid\""));
    vm.check_image().unwrap();
    vm.check_networking().unwrap();
    vm.check_network_ids().unwrap();

    let cnci = payloads::parse_start(CONTROLLER_CNCI.as_bytes()).unwrap();
    assert!(cnci.instance.network_node);
    assert_eq!((cnci.instance.ssh_port, cnci.instance.ssh_ip()), (0, ""));
    cnci.check_networking().unwrap();
    cnci.check_network_ids().unwrap();
    assert_eq!(
        payloads::cloudinit::container_hostname(&cnci.meta_data, "x"),
        "cnci-67d86208-d46c-4465-9018-fe14087d415f"
    );

    let docker = payloads::parse_start(CONTROLLER_DOCKER.as_bytes()).unwrap();
    assert_eq!(docker.instance.image(), "ubuntu:latest");
    assert_eq!(docker.instance.ssh_port, 35051);
    docker.check_image().unwrap();

    let boot = payloads::parse_start(VOLUME_BOOT.as_bytes()).unwrap();
    assert!(boot.instance.has_boot_volume());
    assert!(boot.user_data.is_empty() && boot.meta_data.is_empty());
    assert_eq!(
        boot.meta_data_json(),
        b"{\n  \"uuid\": \"d7d86208-b46c-4465-9018-ee14087d415f\",\n  \"hostname\": \"d7d86208-b46c-4465-9018-ee14087d415f\"\n}\n"
    );
    boot.check_image().unwrap();
}

#[test]
fn spec_received_command_examples() {
    let id = "d7d86208-b46c-4465-9018-fe14087d415f";
    let vol = "69e84267-ed01-4738-b15f-b47de06b62e7";
    let agent = "4cb19522-1e18-439a-883a-f9b2a3a95f5e";
    let body = format!("  instance_uuid: {id}\n  workload_agent_uuid: {agent}\n");
    assert_eq!(
        payloads::parse_stop(format!("stop:\n{body}").as_bytes())
            .unwrap()
            .workload_agent_uuid,
        agent
    );
    assert_eq!(
        payloads::parse_delete(format!("delete:\n{body}").as_bytes())
            .unwrap()
            .instance_uuid,
        id
    );
    let vbody =
        format!("  instance_uuid: {id}\n  volume_uuid: {vol}\n  workload_agent_uuid: {agent}\n");
    let a = payloads::parse_attach_volume(format!("attach_volume:\n{vbody}").as_bytes()).unwrap();
    assert_eq!(
        (a.instance_uuid.as_str(), a.volume_uuid.as_str()),
        (id, vol)
    );
    let d = payloads::parse_detach_volume(format!("detach_volume:\n{vbody}").as_bytes()).unwrap();
    assert_eq!(
        (d.instance_uuid.as_str(), d.volume_uuid.as_str()),
        (id, vol)
    );
}

/// Every `send-*.yaml` payload in tests/data/payloads/ (byte for byte what the original emits),
/// decoded with the receive-side parser and re-encoded: the bytes must come back unchanged.
#[test]
fn spec_sent_examples_byte_for_byte() {
    use payloads::{
        ErrorReport, InstanceDeleted, Ready, Stat, TenantEvent, TenantEventKind, TraceReport,
        VolumeErrorReport,
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/payloads");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(kind) = name.strip_prefix("send-") else {
            continue;
        };
        let kind = kind.split('-').next().unwrap();
        let want = std::fs::read_to_string(&path).unwrap();
        let b = want.as_bytes();
        let got = match kind {
            "ready" => Ready::parse(b).unwrap().to_yaml(),
            "stats" => Stat::parse(b).unwrap().to_yaml(),
            "instancedeleted" => InstanceDeleted::parse(b).unwrap().to_yaml(),
            "tenantadded" => TenantEvent::parse(b, TenantEventKind::Added)
                .unwrap()
                .to_yaml(TenantEventKind::Added),
            "tenantremoved" => TenantEvent::parse(b, TenantEventKind::Removed)
                .unwrap()
                .to_yaml(TenantEventKind::Removed),
            "trace" => TraceReport::parse(b).unwrap().to_yaml(),
            "startfailure" | "stopfailure" | "restartfailure" | "deletefailure" => {
                ErrorReport::parse(b).unwrap().to_yaml()
            }
            "attachfailure" | "detachfailure" => VolumeErrorReport::parse(b).unwrap().to_yaml(),
            other => panic!("unexpected example kind {other}"),
        };
        assert_eq!(got, want, "{name}");
        seen += 1;
    }
    assert_eq!(seen, 16);
}
