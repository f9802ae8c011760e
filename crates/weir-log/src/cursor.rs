//! Consumer cursors: for each consumer group, the next offset to read per topic partition,
//! stored as `<dir>/cursors/<group>.json` and replaced atomically (write a temporary file,
//! fsync, rename, fsync the directory), so a crash leaves either the old or the new file. Each
//! group's file is loaded on first use and cached; commits of one group are serialized, groups
//! are independent. Validating group names and topics is done by `log.rs` before calling in.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{ErrorKind as IoErrorKind, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{LogError, Result};
use crate::{lock, sync_dir};

const VERSION: u32 = 1;

/// The content of one group's cursor file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupCursors {
    version: u32,
    /// topic → partition → next offset to read.
    topics: BTreeMap<String, BTreeMap<u32, u64>>,
}

/// `None` until the group's file was read.
type Slot = Arc<Mutex<Option<GroupCursors>>>;

/// All groups' cursors under one directory.
#[derive(Debug)]
pub(crate) struct CursorStore {
    dir: PathBuf,
    fsync: bool,
    groups: Mutex<HashMap<String, Slot>>,
}

impl CursorStore {
    pub fn new(dir: PathBuf, fsync: bool) -> Self {
        CursorStore {
            dir,
            fsync,
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// Durably records `next_offset` for the group; on error the previous value stays in force.
    pub fn commit(&self, group: &str, topic: &str, partition: u32, next_offset: u64) -> Result<()> {
        let slot = self.slot(group);
        let mut guard = lock(&slot);
        let cursors = self.loaded(group, &mut guard)?;
        let mut updated = cursors.clone();
        updated
            .topics
            .entry(topic.to_string())
            .or_default()
            .insert(partition, next_offset);
        self.persist(group, &updated)?;
        *cursors = updated;
        Ok(())
    }

    /// The committed next offset, if any.
    pub fn get(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>> {
        let slot = self.slot(group);
        let mut guard = lock(&slot);
        let cursors = self.loaded(group, &mut guard)?;
        Ok(cursors
            .topics
            .get(topic)
            .and_then(|parts| parts.get(&partition))
            .copied())
    }

    fn slot(&self, group: &str) -> Slot {
        Arc::clone(lock(&self.groups).entry(group.to_string()).or_default())
    }

    fn path(&self, group: &str) -> PathBuf {
        self.dir.join(format!("{group}.json"))
    }

    /// The cached cursors of `group`, reading its file the first time.
    fn loaded<'a>(
        &self,
        group: &str,
        slot: &'a mut Option<GroupCursors>,
    ) -> Result<&'a mut GroupCursors> {
        if slot.is_none() {
            *slot = Some(self.load(group)?);
        }
        // Filled just above when it was empty.
        Ok(slot.get_or_insert_with(GroupCursors::default))
    }

    fn load(&self, group: &str) -> Result<GroupCursors> {
        let path = self.path(group);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == IoErrorKind::NotFound => {
                return Ok(GroupCursors {
                    version: VERSION,
                    topics: BTreeMap::new(),
                });
            }
            Err(e) => return Err(LogError::io("read cursor file", path, e)),
        };
        let cursors: GroupCursors =
            serde_json::from_slice(&bytes).map_err(|e| LogError::CorruptCursor {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        if cursors.version != VERSION {
            return Err(LogError::CorruptCursor {
                path,
                detail: format!(
                    "unsupported version {}, this weir reads version {VERSION}",
                    cursors.version
                ),
            });
        }
        Ok(cursors)
    }

    fn persist(&self, group: &str, cursors: &GroupCursors) -> Result<()> {
        let path = self.path(group);
        let tmp = self.dir.join(format!("{group}.json.tmp"));
        let json = serde_json::to_vec_pretty(cursors).map_err(|e| LogError::CorruptCursor {
            // Unreachable in practice: string keys and integers always serialize.
            path: path.clone(),
            detail: format!("cannot serialize cursors: {e}"),
        })?;
        let mut file =
            File::create(&tmp).map_err(|e| LogError::io("create cursor file", &tmp, e))?;
        file.write_all(&json)
            .map_err(|e| LogError::io("write cursor file", &tmp, e))?;
        if self.fsync {
            file.sync_all()
                .map_err(|e| LogError::io("fsync cursor file", &tmp, e))?;
        }
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| LogError::io("replace cursor file", &path, e))?;
        if self.fsync {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}
