//! SSNTP roles: a 32-bit mask, one bit per role, carried in certificates as
//! extended-key-usage OIDs under 1.3.6.1.4.1.343.8.

/// The SSNTP server role.
pub(crate) const SERVER: u32 = 0x01;
/// ciao-controller.
pub const CONTROLLER: u32 = 0x02;
/// A compute-node agent (ciao-launcher).
pub const AGENT: u32 = 0x04;
/// ciao-scheduler.
pub const SCHEDULER: u32 = 0x08;
/// A network-node agent (ciao-launcher on a network node).
pub const NETAGENT: u32 = 0x10;
/// The agent inside a CNCI VM.
pub(crate) const CNCIAGENT: u32 = 0x20;

/// Roles in the order Go's `Role.String()` lists them, with their names and
/// the last arc of their OID (1.3.6.1.4.1.343.8.<arc>).
pub(crate) const ROLES: [(u32, &str, u8); 6] = [
    (SERVER, "Server", 5),
    (CONTROLLER, "Controller", 3),
    (AGENT, "CNAgent", 1),
    (SCHEDULER, "Scheduler", 2),
    (NETAGENT, "NetworkingAgent", 4),
    (CNCIAGENT, "CNCIAgent", 6),
];

/// DER content bytes of the role OID prefix 1.3.6.1.4.1.343.8 (without the last arc).
pub(crate) const OID_PREFIX: [u8; 8] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x57, 0x08];

/// The role bit for the DER content bytes of an OID, if it is a ciao role OID.
pub(crate) fn from_oid(oid: &[u8]) -> Option<u32> {
    let (last, prefix) = oid.split_last()?;
    if prefix != OID_PREFIX {
        return None;
    }
    ROLES.iter().find(|r| r.2 == *last).map(|r| r.0)
}

/// Go's `Role.String()`: the names of the set bits joined with `-`
/// (`0x14` is `CNAgent-NetworkingAgent`, `0` is the empty string).
pub fn name(mask: u32) -> String {
    let names: Vec<&str> = ROLES
        .iter()
        .filter(|r| mask & r.0 != 0)
        .map(|r| r.1)
        .collect();
    names.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_go_order() {
        assert_eq!(name(AGENT | NETAGENT), "CNAgent-NetworkingAgent");
        assert_eq!(name(SCHEDULER), "Scheduler");
        assert_eq!(name(0), "");
        assert_eq!(
            name(0x3f),
            "Server-Controller-CNAgent-Scheduler-NetworkingAgent-CNCIAgent"
        );
    }

    #[test]
    fn oids_map_to_bits() {
        let mut agent = OID_PREFIX.to_vec();
        agent.push(1);
        assert_eq!(from_oid(&agent), Some(AGENT));
        agent[7] = 9;
        assert_eq!(from_oid(&agent), None);
        assert_eq!(from_oid(&[]), None);
    }
}
