//! What the launcher remembers about an instance across restarts, as
//! bytes: its configuration (from the START payload) and whether an
//! operator stopped it, as YAML, in a record of the state log
//! (`statelog.rs`). Pure: the file executor (`files.rs`) reads and
//! writes the bytes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::statelog::Record;
use crate::payloads::ident::is_hex_id;
use crate::payloads::InstanceConfig;

/// Where an instance's state was kept before the state log, one file in
/// each instance directory (same YAML): read once, moved into the log.
pub(crate) const LEGACY_FILE: &str = "instance.yaml";
/// Format version written into every state.
const VERSION: u32 = 1;
/// Mode of the state log: it may hold user data, so only root reads it.
pub(crate) const STATE_MODE: u32 = 0o600;
/// Mode of an instance directory.
pub(crate) const DIR_MODE: u32 = 0o750;

/// What is persisted per instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateFile {
    pub version: u32,
    /// True once an operator's STOP ended the instance (and no RESTART
    /// followed): recovery then leaves it exited.
    #[serde(default)]
    pub stopped: bool,
    pub config: InstanceConfig,
}

impl StateFile {
    pub(crate) fn new(config: InstanceConfig, stopped: bool) -> StateFile {
        StateFile {
            version: VERSION,
            stopped,
            config,
        }
    }

    /// The YAML.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serialising plain strings, numbers and lists cannot fail.
        serde_yaml::to_string(self).unwrap_or_default().into_bytes()
    }

    /// The state log record of instance `id` with this state.
    pub(crate) fn record(&self, id: &str) -> Vec<u8> {
        Record::Put {
            id,
            state: &self.encode(),
        }
        .frame()
    }

    /// Reads the state of instance `id`; the error says what is wrong.
    pub(crate) fn decode(id: &str, bytes: &[u8]) -> Result<StateFile, String> {
        crate::payloads::depth::check_depth(bytes)
            .map_err(|e| format!("not a valid state: {e}"))?;
        let state: StateFile =
            serde_yaml::from_slice(bytes).map_err(|e| format!("not a valid state: {e}"))?;
        if state.version != VERSION {
            return Err(format!("unknown state version {}", state.version));
        }
        if state.config.instance_uuid != id {
            return Err(format!(
                "the state describes instance {:?}, not {id}",
                state.config.instance_uuid
            ));
        }
        // The same checks as a START: a hand-edited state is not trusted.
        state.config.check_stored()?;
        Ok(state)
    }
}

/// The state log record that forgets instance `id`.
pub(crate) fn removal(id: &str) -> Vec<u8> {
    Record::Del { id }.frame()
}

/// `<root>/<id>` for a valid id (an invalid one never becomes a path).
pub(crate) fn instance_dir(root: &Path, id: &str) -> Option<PathBuf> {
    is_hex_id(id).then(|| root.join(id))
}

/// An instance found at start-up.
#[derive(Debug)]
pub(crate) enum Found {
    /// Its state was read.
    Instance(String, Box<StateFile>),
    /// Its state cannot be used: quarantined.
    Quarantined(String, String),
}

impl Found {
    /// The instance's id.
    pub(crate) fn id(&self) -> &str {
        match self {
            Found::Instance(id, _) | Found::Quarantined(id, _) => id,
        }
    }

    /// Classifies what the scan of the instances directory read.
    pub(crate) fn classify(id: String, bytes: Result<Vec<u8>, String>) -> Found {
        match bytes.and_then(|b| StateFile::decode(&id, &b)) {
            Ok(s) => Found::Instance(id, Box::new(s)),
            Err(why) => Found::Quarantined(id, why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str) -> InstanceConfig {
        InstanceConfig {
            instance_uuid: id.into(),
            cpus: 2,
            mem_mb: 370,
            ..InstanceConfig::default()
        }
    }

    #[test]
    fn round_trip() {
        let s = StateFile::new(config("abc1"), true);
        assert_eq!(StateFile::decode("abc1", &s.encode()).unwrap(), s);
    }

    #[test]
    fn corrupt_foreign_and_unknown_versions_are_refused() {
        assert!(StateFile::decode("abc1", b"\x00\x01 not yaml: [").is_err());
        let other = StateFile::new(config("abc2"), false).encode();
        assert!(StateFile::decode("abc1", &other)
            .unwrap_err()
            .contains("not abc1"));
        let v9 = String::from_utf8(StateFile::new(config("abc1"), false).encode())
            .unwrap()
            .replace("version: 1", "version: 9");
        assert!(StateFile::decode("abc1", v9.as_bytes())
            .unwrap_err()
            .contains("version 9"));
        assert!(matches!(
            Found::classify("abc1".into(), Err("missing".into())),
            Found::Quarantined(..)
        ));
    }

    /// A state file that START's validation would refuse is quarantined
    /// (issue 14: a path in `image_uuid` or a negative `mem_mb` was re-adopted).
    #[test]
    fn state_failing_start_validation_is_quarantined() {
        let good = StateFile::new(config("abc1"), false).encode();
        let good = String::from_utf8(good).unwrap();
        assert!(matches!(
            Found::classify("abc1".into(), Ok(good.clone().into_bytes())),
            Found::Instance(..)
        ));
        for bad in [
            good.replace("mem_mb: 370", "mem_mb: -5"),
            good.replace("image_uuid: ''", "image_uuid: ../../../../etc/passwd"),
            good.replace("cpus: 2", "cpus: -1"),
        ] {
            assert_ne!(bad, good);
            match Found::classify("abc1".into(), Ok(bad.into_bytes())) {
                Found::Quarantined(id, why) => assert_eq!(id, "abc1", "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }

    /// 200 KB of nested brackets is refused at once (issue 14: it cost
    /// 23 s of CPU at start-up before the nesting bound).
    #[test]
    fn deep_state_file_is_refused_in_linear_time() {
        let t = std::time::Instant::now();
        let deep = format!("version: 1\nconfig: {}\n", "[".repeat(200_000));
        let why = StateFile::decode("abc1", deep.as_bytes()).unwrap_err();
        assert!(why.contains("nested deeper"), "{why}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn ids_are_checked_before_becoming_paths() {
        for bad in ["../x", "", "a/b", ".", "..", "g00d"] {
            assert!(instance_dir(Path::new("/r"), bad).is_none(), "{bad}");
        }
        assert_eq!(
            instance_dir(Path::new("/r"), "ab-12"),
            Some(PathBuf::from("/r/ab-12"))
        );
    }
}
