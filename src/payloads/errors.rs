//! ERROR payloads: failure reasons and the flat documents carrying them.
//!
//! Each reason enum's `as_str()` is the wire text and `text()` the description the Go
//! payloads package associates with it. Receivers treat reasons as an open set, so the
//! decoded forms ([`ErrorReport`], [`VolumeErrorReport`]) keep the reason as a string.

use super::lenient::{self, lenient_struct, DecodeError};
use super::yaml_out::{to_yaml, Node};
use std::fmt;

/// A failure reason of one ERROR frame type.
pub trait Reason: Copy + fmt::Debug {
    /// The wire text (`invalid_payload`, `full_cn`, ...).
    fn as_str(self) -> &'static str;
    /// The human-readable meaning, as the original payloads package words it.
    fn text(self) -> &'static str;
}

/// A failure found while decoding a command, before its instance is known: every reason
/// enum has these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptFault {
    /// The payload does not decode as YAML into the command's schema.
    InvalidPayload,
    /// The payload decodes but misses or garbles a required field.
    InvalidData,
}

macro_rules! reason_enum {
    ($(#[$meta:meta])* $vis:vis $name:ident { $($variant:ident => $wire:literal, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(#[doc = $text] $variant,)*
        }

        // For the tests (of some of the enums only).
        #[cfg(test)]
        #[allow(dead_code)]
        impl $name {
            /// Every reason, in the order of the original's table.
            $vis const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The reason for a wire text, if it is one of ours.
            $vis fn from_wire(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl Reason for $name {
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }

            fn text(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<ReceiptFault> for $name {
            fn from(f: ReceiptFault) -> Self {
                match f {
                    ReceiptFault::InvalidPayload => $name::InvalidPayload,
                    ReceiptFault::InvalidData => $name::InvalidData,
                }
            }
        }
    };
}

reason_enum!(
    /// StartFailure reasons (ERROR operand 1). `FullCloud`, `NoCn` and `NoNetCn` are sent by
    /// the scheduler only.
    pub StartFailureReason {
        FullCloud => "full_cloud", "Cloud is full";
        FullCn => "full_cn", "Compute node is full";
        NoCn => "no_cn", "No compute node available";
        NoNetCn => "no_net_cn", "No network node available";
        InvalidPayload => "invalid_payload", "YAML payload is corrupt";
        InvalidData => "invalid_data", "Command section of YAML payload is corrupt or missing required information";
        AlreadyRunning => "already_running", "Instance is already running";
        InstanceExists => "instance_exists", "Instance already exists";
        ImageFailure => "image_failure", "Failed to create instance image";
        LaunchFailure => "launch_failure", "Failed to launch instance";
        NetworkFailure => "network_failure", "Failed to create VNIC for instance";
    }
);

reason_enum!(
    /// StopFailure reasons (ERROR operand 2).
    pub(crate) StopFailureReason {
        NoInstance => "no_instance", "Instance does not exist";
        InvalidPayload => "invalid_payload", "YAML payload is corrupt";
        InvalidData => "invalid_data", "Command section of YAML payload is corrupt or missing required information";
        AlreadyStopped => "already_stopped", "Instance has already shut down";
    }
);

reason_enum!(
    /// RestartFailure reasons (ERROR operand 4).
    pub(crate) RestartFailureReason {
        NoInstance => "no_instance", "Instance does not exist";
        InvalidPayload => "invalid_payload", "YAML payload is corrupt";
        InvalidData => "invalid_data", "Command section of YAML payload is corrupt or missing required information";
        AlreadyRunning => "already_running", "Instance is already running";
        InstanceCorrupt => "instance_corrupt", "Instance is corrupt";
        LaunchFailure => "launch_failure", "Failed to launch instance";
        NetworkFailure => "network_failure", "Failed to locate VNIC for instance";
    }
);

reason_enum!(
    /// DeleteFailure reasons (ERROR operand 5).
    pub(crate) DeleteFailureReason {
        NoInstance => "no_instance", "Instance does not exist";
        InvalidPayload => "invalid_payload", "YAML payload is corrupt";
        InvalidData => "invalid_data", "Command section of YAML payload is corrupt or missing required information";
    }
);

reason_enum!(
    /// AttachVolumeFailure reasons (ERROR operand 8).
    pub(crate) AttachVolumeFailureReason {
        NoInstance => "no_instance", "Instance does not exist";
        InvalidPayload => "invalid_payload", "YAML payload is corrupt";
        InvalidData => "invalid_data", "Command section of YAML payload is corrupt or missing required information";
        AttachFailure => "attach_failure", "Failed to attach volume to instance";
        AlreadyAttached => "already_attached", "Volume already attached";
        StateFailure => "state_failure", "State failure";
        InstanceFailure => "instance_failure", "Instance failure";
        NotSupported => "not_supported", "Not Supported";
    }
);

reason_enum!(
    /// DetachVolumeFailure reasons (ERROR operand 9).
    pub(crate) DetachVolumeFailureReason {
        NoInstance => "no_instance", "Instance does not exist";
        InvalidPayload => "invalid_payload", "YAML payload is corrupt";
        InvalidData => "invalid_data", "Command section of YAML payload is corrupt or missing required information";
        DetachFailure => "detach_failure", "Failed to detach volume from instance";
        NotAttached => "not_attached", "Volume not attached";
        StateFailure => "state_failure", "State failure";
        InstanceFailure => "instance_failure", "Instance failure";
        NotSupported => "not_supported", "Not Supported";
    }
);

/// A Start/Stop/Restart/DeleteFailure payload: `instance_uuid`, `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure<R> {
    /// `""` for failures found on receipt (the original never echoes an unchecked id).
    pub instance_uuid: String,
    pub reason: R,
}

pub(crate) type StartFailure = Failure<StartFailureReason>;
pub(crate) type StopFailure = Failure<StopFailureReason>;
pub(crate) type RestartFailure = Failure<RestartFailureReason>;
pub(crate) type DeleteFailure = Failure<DeleteFailureReason>;

impl<R: Reason> Failure<R> {
    pub fn new(instance_uuid: impl Into<String>, reason: R) -> Self {
        Failure {
            instance_uuid: instance_uuid.into(),
            reason,
        }
    }

    pub fn to_node(&self) -> Node<'_> {
        Node::map([
            ("instance_uuid", Node::str(&self.instance_uuid)),
            ("reason", Node::str(self.reason.as_str())),
        ])
    }

    /// The payload as yaml.v2 writes it.
    pub fn to_yaml(&self) -> String {
        to_yaml(&self.to_node())
    }
}

/// An Attach/DetachVolumeFailure payload: `instance_uuid`, `volume_uuid`, `reason`.
///
/// The original put the volume id in `instance_uuid` and vice versa for most
/// DetachVolumeFailures (L17 in docs/compatibility.md); we always send them the right way round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeFailure<R> {
    pub instance_uuid: String,
    pub volume_uuid: String,
    pub reason: R,
}

pub(crate) type AttachVolumeFailure = VolumeFailure<AttachVolumeFailureReason>;
pub(crate) type DetachVolumeFailure = VolumeFailure<DetachVolumeFailureReason>;

impl<R: Reason> VolumeFailure<R> {
    pub(crate) fn new(
        instance_uuid: impl Into<String>,
        volume_uuid: impl Into<String>,
        reason: R,
    ) -> Self {
        VolumeFailure {
            instance_uuid: instance_uuid.into(),
            volume_uuid: volume_uuid.into(),
            reason,
        }
    }

    pub(crate) fn to_node(&self) -> Node<'_> {
        Node::map([
            ("instance_uuid", Node::str(&self.instance_uuid)),
            ("volume_uuid", Node::str(&self.volume_uuid)),
            ("reason", Node::str(self.reason.as_str())),
        ])
    }

    pub(crate) fn to_yaml(&self) -> String {
        to_yaml(&self.to_node())
    }
}

/// A Start/Stop/Restart/DeleteFailure as a receiver decodes it (reason kept as text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorReport {
    pub instance_uuid: String,
    pub reason: String,
}
lenient_struct!(ErrorReport { "instance_uuid" => instance_uuid, "reason" => reason });

impl ErrorReport {
    /// Decodes the payload with yaml.v2 rules.
    pub fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        lenient::decode_bytes(payload)
    }

    pub fn to_node(&self) -> Node<'_> {
        Node::map([
            ("instance_uuid", Node::str(&self.instance_uuid)),
            ("reason", Node::str(&self.reason)),
        ])
    }

    pub fn to_yaml(&self) -> String {
        to_yaml(&self.to_node())
    }
}

/// An Attach/DetachVolumeFailure as a receiver decodes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeErrorReport {
    pub instance_uuid: String,
    pub volume_uuid: String,
    pub reason: String,
}
lenient_struct!(VolumeErrorReport {
    "instance_uuid" => instance_uuid,
    "volume_uuid" => volume_uuid,
    "reason" => reason,
});

impl VolumeErrorReport {
    pub fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        lenient::decode_bytes(payload)
    }

    pub fn to_node(&self) -> Node<'_> {
        Node::map([
            ("instance_uuid", Node::str(&self.instance_uuid)),
            ("volume_uuid", Node::str(&self.volume_uuid)),
            ("reason", Node::str(&self.reason)),
        ])
    }

    pub fn to_yaml(&self) -> String {
        to_yaml(&self.to_node())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples_byte_for_byte() {
        assert_eq!(
            StartFailure::new("", StartFailureReason::InvalidPayload).to_yaml(),
            "instance_uuid: \"\"\nreason: invalid_payload\n"
        );
        assert_eq!(
            StartFailure::new(
                "d7d86208-b46c-4465-9018-fe14087d415f",
                StartFailureReason::FullCn
            )
            .to_yaml(),
            "instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\nreason: full_cn\n"
        );
        assert_eq!(
            StopFailure::new(
                "d7d86208-b46c-4465-9018-fe14087d415f",
                StopFailureReason::AlreadyStopped
            )
            .to_yaml(),
            "instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\nreason: already_stopped\n"
        );
        assert_eq!(
            RestartFailure::new(
                "d7d86208-b46c-4465-9018-fe14087d415f",
                RestartFailureReason::AlreadyRunning
            )
            .to_yaml(),
            "instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\nreason: already_running\n"
        );
        assert_eq!(
            DeleteFailure::new(
                "d7d86208-b46c-4465-9018-fe14087d415f",
                DeleteFailureReason::NoInstance
            )
            .to_yaml(),
            "instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\nreason: no_instance\n"
        );
        assert_eq!(
            AttachVolumeFailure::new(
                "d7d86208-b46c-4465-9018-fe14087d415f",
                "69e84267-ed01-4738-b15f-b47de06b62e7",
                AttachVolumeFailureReason::AlreadyAttached
            )
            .to_yaml(),
            "instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\nvolume_uuid: 69e84267-ed01-4738-b15f-b47de06b62e7\nreason: already_attached\n"
        );
        assert_eq!(
            AttachVolumeFailure::new("", "", AttachVolumeFailureReason::InvalidData).to_yaml(),
            "instance_uuid: \"\"\nvolume_uuid: \"\"\nreason: invalid_data\n"
        );
        // The original's swapped detach example, produced deliberately here.
        assert_eq!(
            DetachVolumeFailure::new(
                "69e84267-ed01-4738-b15f-b47de06b62e7",
                "d7d86208-b46c-4465-9018-fe14087d415f",
                DetachVolumeFailureReason::NotAttached
            )
            .to_yaml(),
            "instance_uuid: 69e84267-ed01-4738-b15f-b47de06b62e7\nvolume_uuid: d7d86208-b46c-4465-9018-fe14087d415f\nreason: not_attached\n"
        );
    }

    #[test]
    fn reasons_round_trip() {
        for r in StartFailureReason::ALL {
            assert_eq!(StartFailureReason::from_wire(r.as_str()), Some(*r));
        }
        assert_eq!(DetachVolumeFailureReason::ALL.len(), 8);
        assert_eq!(
            RestartFailureReason::NetworkFailure.text(),
            "Failed to locate VNIC for instance"
        );
        assert_eq!(
            StopFailureReason::from(ReceiptFault::InvalidData),
            StopFailureReason::InvalidData
        );
    }

    #[test]
    fn decoding_reports() {
        let r =
            ErrorReport::parse(b"instance_uuid: abc\nreason: whatever_new\nextra: 1\n").unwrap();
        assert_eq!(r.reason, "whatever_new");
        assert_eq!(r.to_yaml(), "instance_uuid: abc\nreason: whatever_new\n");
        let v = VolumeErrorReport::parse(b"reason: not_attached\n").unwrap();
        assert_eq!(
            v.to_yaml(),
            "instance_uuid: \"\"\nvolume_uuid: \"\"\nreason: not_attached\n"
        );
        assert!(ErrorReport::parse(b"- x\n").is_err());
    }
}
