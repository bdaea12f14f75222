//! Instance directories and their state files (design decision 6).
//!
//! `<data root>/instances/<uuid>/instance.yaml` holds what the launcher must
//! remember about an instance across restarts: its configuration (from the
//! START payload) and whether an operator stopped it. Writes are atomic
//! (temporary file + rename) and durability is batched: every file staged
//! during one loop turn becomes durable with one pair of `syncfs` calls in
//! [`Store::commit`], so a burst of STARTs does not cost one fsync each.
//!
//! Directory names are validated instance ids before they become paths.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use log::{error, warn};
use serde::{Deserialize, Serialize};

use crate::payloads::ident::is_hex_id;
use crate::payloads::InstanceConfig;
use crate::sys::fs::{mkdir_p, remove_dir_all_same_fs, WriteBatch};

/// The state file's name inside an instance directory.
pub const STATE_FILE: &str = "instance.yaml";
/// Format version written into every state file.
const VERSION: u32 = 1;

/// What is persisted per instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    /// True once an operator's STOP ended the instance (and no RESTART
    /// followed): recovery then leaves it exited.
    #[serde(default)]
    pub stopped: bool,
    pub config: InstanceConfig,
}

impl StateFile {
    pub fn new(config: InstanceConfig) -> StateFile {
        StateFile {
            version: VERSION,
            stopped: false,
            config,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug)]
pub enum StoreError {
    /// The instance directory already exists.
    Exists(PathBuf),
    /// The id is not a valid instance id (never becomes a path).
    BadId(String),
    /// A file-system error.
    Io(PathBuf, io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Exists(p) => write!(f, "{} already exists", p.display()),
            StoreError::BadId(id) => write!(f, "{id:?} is not a valid instance id"),
            StoreError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for StoreError {}

/// An instance directory found at start-up.
#[derive(Debug)]
pub enum Found {
    /// The state file was read.
    Instance(String, Box<StateFile>),
    /// The directory exists but its state cannot be used: quarantined.
    Quarantined(String, String),
}

/// The instances directory.
pub struct Store {
    root: PathBuf,
    batch: WriteBatch,
}

impl Store {
    pub fn new(root: PathBuf) -> Store {
        Store {
            root,
            batch: WriteBatch::new(),
        }
    }

    /// `<root>/<id>` for a valid id.
    pub fn dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        if !is_hex_id(id) {
            return Err(StoreError::BadId(id.to_string()));
        }
        Ok(self.root.join(id))
    }

    /// Creates a new instance directory (0750); an existing one is an error.
    pub fn create(&self, id: &str) -> Result<PathBuf, StoreError> {
        let dir = self.dir(id)?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750));
                Ok(dir)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StoreError::Exists(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                mkdir_p(&self.root, 0o755).map_err(|e| StoreError::Io(self.root.clone(), e))?;
                self.create(id)
            }
            Err(e) => Err(StoreError::Io(dir, e)),
        }
    }

    /// True when the instance directory exists.
    pub fn exists(&self, id: &str) -> bool {
        self.dir(id).map(|d| d.exists()).unwrap_or(false)
    }

    /// Stages the state file (mode 0600); durable after [`Store::commit`].
    pub fn save(&mut self, id: &str, state: &StateFile) -> Result<(), StoreError> {
        let path = self.dir(id)?.join(STATE_FILE);
        let text = serde_yaml::to_string(state)
            .map_err(|e| StoreError::Io(path.clone(), io::Error::other(e)))?;
        self.batch
            .stage(&path, text.as_bytes(), 0o600)
            .map_err(|e| StoreError::Io(path, e))
    }

    /// Makes every staged state file durable (call once per loop turn).
    pub fn commit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        for (path, res) in std::mem::take(&mut self.batch).commit() {
            match res {
                Ok(()) => {}
                // The instance was deleted in the same turn.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) if !path.parent().is_some_and(|d| d.exists()) => {}
                Err(e) => error!("cannot save {}: {e}", path.display()),
            }
        }
    }

    /// Removes an instance directory, never crossing into another file
    /// system (a mount inside it is left alone and reported).
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.dir(id)?;
        match remove_dir_all_same_fs(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io(dir, e)),
        }
    }

    /// Reads one state file.
    pub fn load(&self, id: &str) -> Result<StateFile, String> {
        let path = self.dir(id).map_err(|e| e.to_string())?.join(STATE_FILE);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let state: StateFile = serde_yaml::from_slice(&bytes)
            .map_err(|e| format!("{}: not a valid state file: {e}", path.display()))?;
        if state.version != VERSION {
            return Err(format!(
                "{}: unknown state file version {}",
                path.display(),
                state.version
            ));
        }
        if state.config.instance_uuid != id {
            return Err(format!(
                "{}: describes instance {:?}, not {id}",
                path.display(),
                state.config.instance_uuid
            ));
        }
        Ok(state)
    }

    /// Every direct child directory of the instances directory, in name
    /// order (launcher defect 14: never descends further).
    pub fn scan(&self) -> Vec<Found> {
        let mut names: Vec<String> = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    error!("cannot read {}: {e}", self.root.display());
                }
                return Vec::new();
            }
        };
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if !is_hex_id(&name) {
                warn!(
                    "ignoring {}: not an instance id",
                    self.root.join(&name).display()
                );
                continue;
            }
            match self.load(&name) {
                Ok(s) => out.push(Found::Instance(name, Box::new(s))),
                Err(why) => out.push(Found::Quarantined(name, why)),
            }
        }
        out
    }

    /// The instances directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ciao-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn config(id: &str) -> InstanceConfig {
        InstanceConfig {
            instance_uuid: id.into(),
            cpus: 2,
            mem_mb: 370,
            ..InstanceConfig::default()
        }
    }

    #[test]
    fn save_commit_scan_round_trip() {
        let root = tmp("rt");
        let mut s = Store::new(root.clone());
        s.create("abc-1").unwrap();
        s.save("abc-1", &StateFile::new(config("abc-1"))).unwrap();
        s.commit();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(root.join("abc-1").join(STATE_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        match &s.scan()[..] {
            [Found::Instance(id, st)] => {
                assert_eq!(id, "abc-1");
                assert_eq!(st.config, config("abc-1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.create("abc-1"), Err(StoreError::Exists(_))));
        s.remove("abc-1").unwrap();
        assert!(s.scan().is_empty());
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn corrupt_and_foreign_state_files_are_quarantined() {
        let root = tmp("q");
        let s = Store::new(root.clone());
        s.create("bad-1").unwrap();
        std::fs::write(root.join("bad-1").join(STATE_FILE), b"\x00\x01 not yaml: [").unwrap();
        s.create("empty-2").unwrap_err(); // not hex: never a path
        s.create("e0e0").unwrap(); // no state file at all
        std::fs::create_dir_all(root.join("not-an-id")).unwrap();
        let found = s.scan();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|f| matches!(f, Found::Quarantined(..))));
        let _ = std::fs::remove_dir_all(root);
    }

    /// The original's gob `state` file is not read: such a directory is
    /// quarantined (never re-adopted, never deleted by the scan).
    #[test]
    fn original_gob_state_file_is_quarantined_not_read() {
        let root = tmp("gob");
        let s = Store::new(root.clone());
        s.create("d7d86208").unwrap();
        // The first bytes of a gob-encoded state file of the original.
        std::fs::write(
            root.join("d7d86208").join("state"),
            b"\x3f\xff\x81\x03\x01\x01\x0bvmConfig\x01\xff\x82",
        )
        .unwrap();
        match &s.scan()[..] {
            [Found::Quarantined(id, why)] => {
                assert_eq!(id, "d7d86208");
                assert!(why.contains(STATE_FILE), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(root.join("d7d86208").join("state").exists());
        let _ = std::fs::remove_dir_all(root);
    }

    /// Launcher defect 14: only direct children of the instances directory
    /// are instances; nested directories (a container's volume tree) are
    /// never scanned.
    #[test]
    fn scan_never_descends_into_instance_directories() {
        let root = tmp("nested");
        let mut s = Store::new(root.clone());
        s.create("abc-1").unwrap();
        s.save("abc-1", &StateFile::new(config("abc-1"))).unwrap();
        s.commit();
        let nested = root.join("abc-1").join("volumes").join("abc-2");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(
            nested.join(STATE_FILE),
            serde_yaml::to_string(&StateFile::new(config("abc-2"))).unwrap(),
        )
        .unwrap();
        match &s.scan()[..] {
            [Found::Instance(id, _)] => assert_eq!(id, "abc-1"),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(root);
    }

    /// Launcher defect 13: a state file is replaced whole (temporary file
    /// and rename), so a reader sees the old or the new version, and no
    /// temporary file is left behind.
    #[test]
    fn state_files_are_replaced_whole() {
        let root = tmp("atomic");
        let mut s = Store::new(root.clone());
        s.create("abc-1").unwrap();
        s.save("abc-1", &StateFile::new(config("abc-1"))).unwrap();
        s.commit();
        let mut stopped = StateFile::new(config("abc-1"));
        stopped.stopped = true;
        s.save("abc-1", &stopped).unwrap();
        s.commit();
        assert_eq!(s.load("abc-1").unwrap(), stopped);
        let names: Vec<_> = std::fs::read_dir(root.join("abc-1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [STATE_FILE], "no temporary file left");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn ids_are_checked_before_becoming_paths() {
        let s = Store::new(tmp("ids"));
        for bad in ["../x", "", "a/b", ".", "..", "g00d"] {
            assert!(matches!(s.dir(bad), Err(StoreError::BadId(_))), "{bad}");
        }
    }
}
