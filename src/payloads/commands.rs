//! STOP, RESTART, DELETE, ATTACH_VOLUME and DETACH_VOLUME payloads.
//!
//! Each parser decodes the whole schema the original decodes (a value of the wrong kind in a
//! field the launcher ignores still makes the payload `invalid_payload`), then checks the ids
//! it uses. A missing or wrong wrapper key is not a decode error: the ids are then empty and
//! the result is `invalid_data`, as in the original. Failures found here are reported with
//! empty ids.

use super::errors::ReceiptFault;
use super::ident;
use super::lenient::{self, lenient_struct};
use super::start::{EstimatedResource, NetworkResources, RequestedResource};
use std::fmt;

/// A command refused on receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// `invalid_payload` or `invalid_data`; converts into every failure-reason enum.
    pub fault: ReceiptFault,
    /// What exactly was wrong, for the log.
    pub detail: String,
}

impl CommandError {
    /// The reason's wire text.
    pub fn reason_str(&self) -> &'static str {
        match self.fault {
            ReceiptFault::InvalidPayload => "invalid_payload",
            ReceiptFault::InvalidData => "invalid_data",
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command refused ({}): {}",
            self.reason_str(),
            self.detail
        )
    }
}

impl std::error::Error for CommandError {}

/// STOP, DELETE or RESTART: the instance concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceCommand {
    /// Trimmed and checked as hex groups.
    pub instance_uuid: String,
    /// Routing information for the scheduler; not used by the launcher.
    pub workload_agent_uuid: String,
}

/// ATTACH_VOLUME or DETACH_VOLUME.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeCommand {
    /// Trimmed and checked as hex groups.
    pub instance_uuid: String,
    /// Trimmed and checked as hex groups (the ceph RBD image name).
    pub volume_uuid: String,
    pub workload_agent_uuid: String,
}

#[derive(Debug, Default)]
struct StopCmd {
    instance_uuid: String,
    workload_agent_uuid: String,
}
lenient_struct!(StopCmd { "instance_uuid" => instance_uuid, "workload_agent_uuid" => workload_agent_uuid });

#[derive(Debug, Default)]
struct StopDoc {
    stop: StopCmd,
}
lenient_struct!(StopDoc { "stop" => stop });

#[derive(Debug, Default)]
struct DeleteDoc {
    delete: StopCmd,
}
lenient_struct!(DeleteDoc { "delete" => delete });

#[derive(Debug, Default)]
struct RestartCmd {
    tenant_uuid: String,
    instance_uuid: String,
    image_uuid: String,
    workload_agent_uuid: String,
    fw_type: String,
    persistence: String,
    requested_resources: Vec<RequestedResource>,
    estimated_resources: Vec<EstimatedResource>,
    networking: NetworkResources,
}
lenient_struct!(RestartCmd {
    "tenant_uuid" => tenant_uuid,
    "instance_uuid" => instance_uuid,
    "image_uuid" => image_uuid,
    "workload_agent_uuid" => workload_agent_uuid,
    "fw_type" => fw_type,
    "persistence" => persistence,
    "requested_resources" => requested_resources,
    "estimated_resources" => estimated_resources,
    "networking" => networking,
});

#[derive(Debug, Default)]
struct RestartDoc {
    restart: RestartCmd,
}
lenient_struct!(RestartDoc { "restart" => restart });

#[derive(Debug, Default)]
struct VolumeCmd {
    instance_uuid: String,
    volume_uuid: String,
    workload_agent_uuid: String,
}
lenient_struct!(VolumeCmd {
    "instance_uuid" => instance_uuid,
    "volume_uuid" => volume_uuid,
    "workload_agent_uuid" => workload_agent_uuid,
});

#[derive(Debug, Default)]
struct AttachDoc {
    attach_volume: VolumeCmd,
}
lenient_struct!(AttachDoc { "attach_volume" => attach_volume });

#[derive(Debug, Default)]
struct DetachDoc {
    detach_volume: VolumeCmd,
}
lenient_struct!(DetachDoc { "detach_volume" => detach_volume });

fn decode<T: lenient::LenientStruct>(payload: &[u8]) -> Result<T, CommandError> {
    lenient::decode_bytes(payload).map_err(|e| CommandError {
        fault: ReceiptFault::InvalidPayload,
        detail: e.to_string(),
    })
}

fn checked_id(what: &str, raw: &str) -> Result<String, CommandError> {
    let id = raw.trim();
    if ident::is_hex_id(id) {
        Ok(id.to_owned())
    } else {
        Err(CommandError {
            fault: ReceiptFault::InvalidData,
            detail: format!("{what} {raw:?} is missing or not hexadecimal groups joined by '-'"),
        })
    }
}

fn instance_command(
    instance_uuid: &str,
    workload_agent_uuid: String,
) -> Result<InstanceCommand, CommandError> {
    Ok(InstanceCommand {
        instance_uuid: checked_id("instance_uuid", instance_uuid)?,
        workload_agent_uuid,
    })
}

fn volume_command(cmd: VolumeCmd) -> Result<VolumeCommand, CommandError> {
    Ok(VolumeCommand {
        instance_uuid: checked_id("instance_uuid", &cmd.instance_uuid)?,
        volume_uuid: checked_id("volume_uuid", &cmd.volume_uuid)?,
        workload_agent_uuid: cmd.workload_agent_uuid,
    })
}

/// Decodes a STOP payload (`stop: {instance_uuid, workload_agent_uuid}`).
pub fn parse_stop(payload: &[u8]) -> Result<InstanceCommand, CommandError> {
    let c = decode::<StopDoc>(payload)?.stop;
    instance_command(&c.instance_uuid, c.workload_agent_uuid)
}

/// Decodes a DELETE payload (`delete: {instance_uuid, workload_agent_uuid}`).
pub fn parse_delete(payload: &[u8]) -> Result<InstanceCommand, CommandError> {
    let c = decode::<DeleteDoc>(payload)?.delete;
    instance_command(&c.instance_uuid, c.workload_agent_uuid)
}

/// Decodes a RESTART payload. Only `instance_uuid` is used (the instance boots with its stored
/// configuration); the other fields are decoded for their types only.
pub fn parse_restart(payload: &[u8]) -> Result<InstanceCommand, CommandError> {
    let c = decode::<RestartDoc>(payload)?.restart;
    instance_command(&c.instance_uuid, c.workload_agent_uuid)
}

/// Decodes an ATTACH_VOLUME payload.
pub fn parse_attach_volume(payload: &[u8]) -> Result<VolumeCommand, CommandError> {
    volume_command(decode::<AttachDoc>(payload)?.attach_volume)
}

/// Decodes a DETACH_VOLUME payload.
pub fn parse_detach_volume(payload: &[u8]) -> Result<VolumeCommand, CommandError> {
    volume_command(decode::<DetachDoc>(payload)?.detach_volume)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payloads::errors::{Reason, StopFailureReason};

    const ID: &str = "d7d86208-b46c-4465-9018-fe14087d415f";
    const VOL: &str = "69e84267-ed01-4738-b15f-b47de06b62e7";

    #[test]
    fn spec_examples() {
        let stop = parse_stop(
            b"stop:\n  instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\n  workload_agent_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e\n",
        )
        .unwrap();
        assert_eq!(stop.instance_uuid, ID);
        assert_eq!(
            stop.workload_agent_uuid,
            "4cb19522-1e18-439a-883a-f9b2a3a95f5e"
        );
        // The example files: two spaces after the colon, no workload agent.
        assert_eq!(
            parse_stop(format!("stop:\n  instance_uuid:  {ID}").as_bytes())
                .unwrap()
                .instance_uuid,
            ID
        );
        assert_eq!(
            parse_delete(format!("delete:\n  instance_uuid:  {ID}").as_bytes())
                .unwrap()
                .instance_uuid,
            ID
        );
        assert_eq!(
            parse_restart(format!("restart:\n  instance_uuid:  {ID}").as_bytes())
                .unwrap()
                .instance_uuid,
            ID
        );
        let restart = format!(
            "restart:\n  tenant_uuid: \"\"\n  instance_uuid: {ID}\n  image_uuid: \"\"\n  workload_agent_uuid: x\n  fw_type: \"\"\n  persistence: \"\"\n  requested_resources: []\n  estimated_resources: []\n  networking:\n    vnic_mac: \"\"\n    vnic_uuid: \"\"\n    concentrator_uuid: \"\"\n    concentrator_ip: \"\"\n    subnet: \"\"\n    subnet_key: \"\"\n    subnet_uuid: \"\"\n    private_ip: \"\"\n    public_ip: false\n"
        );
        assert_eq!(parse_restart(restart.as_bytes()).unwrap().instance_uuid, ID);
        for (wrapper, parse) in [
            (
                "attach_volume",
                parse_attach_volume as fn(&[u8]) -> Result<VolumeCommand, CommandError>,
            ),
            ("detach_volume", parse_detach_volume),
        ] {
            let v = parse(format!("{wrapper}:\n  instance_uuid: {ID}\n  volume_uuid: {VOL}\n  workload_agent_uuid: x\n").as_bytes())
                .unwrap();
            assert_eq!(
                (v.instance_uuid.as_str(), v.volume_uuid.as_str()),
                (ID, VOL)
            );
        }
    }

    #[test]
    fn errors() {
        let fault = |r: Result<InstanceCommand, CommandError>| r.unwrap_err().reason_str();
        assert_eq!(fault(parse_stop(b"stop: x\n")), "invalid_payload");
        assert_eq!(fault(parse_stop(b"just text")), "invalid_payload");
        assert_eq!(fault(parse_stop(b"- a\n")), "invalid_payload");
        assert_eq!(fault(parse_stop(b"  -")), "invalid_payload");
        assert_eq!(
            fault(parse_stop(
                format!("delete:\n  instance_uuid: {ID}\n").as_bytes()
            )),
            "invalid_data"
        );
        assert_eq!(fault(parse_stop(b"")), "invalid_data");
        assert_eq!(
            fault(parse_stop(b"stop:\n  instance_uuid: g7d86208\n")),
            "invalid_data"
        );
        assert_eq!(
            fault(parse_restart(
                b"restart:\n  instance_uuid: ab\n  networking: {public_ip: 3}\n"
            )),
            "invalid_payload"
        );
        assert_eq!(
            fault(parse_restart(
                b"restart:\n  instance_uuid: ab\n  requested_resources: [{value: \"2\"}]\n"
            )),
            "invalid_payload"
        );
        let v = parse_attach_volume(
            format!("attach_volume:\n  instance_uuid: {ID}\n  volume_uuid: ../x\n").as_bytes(),
        );
        assert_eq!(v.unwrap_err().reason_str(), "invalid_data");
        let e = parse_stop(b"stop: [x]\n").unwrap_err();
        assert_eq!(StopFailureReason::from(e.fault).as_str(), "invalid_payload");
    }
}
