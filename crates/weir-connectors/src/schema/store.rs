//! [`SchemaRegistry`]: subjects, their versions, global schema ids and compatibility settings,
//! kept in `<data_dir>/registry/registry.json`.
//!
//! The whole registry is small (schemas, not data), so it lives in memory and every change
//! writes the file anew: to a temporary file, fsynced, renamed over the old one, and the folder
//! fsynced, so a crash leaves either the old or the new registry, never a mix. A change is
//! visible only once it is durable.
//!
//! Ids are global as in Confluent Schema Registry: the same schema (same type, same JSON up to
//! whitespace and key order) gets the same id under every subject, and ids are never reused.
//! Deleting is soft first (the version is hidden, its id still resolves) and permanent on
//! request (`permanent = true` after a soft delete).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::{Compatibility, RegistryError, Schema, SchemaType, canonical, compatibility_problems};

const FILE: &str = "registry.json";

/// A version of a subject: a number, or the latest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(u32),
}

impl VersionRef {
    /// `latest`, `-1` (Confluent's other spelling of latest) or 1..=2^31-1.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        match s {
            "latest" | "-1" => Ok(VersionRef::Latest),
            _ => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=i32::MAX as u32).contains(n))
                .map(VersionRef::Number)
                .ok_or_else(|| RegistryError::InvalidVersion {
                    version: s.to_owned(),
                }),
        }
    }
}

impl std::fmt::Display for VersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionRef::Latest => f.write_str("latest"),
            VersionRef::Number(n) => write!(f, "{n}"),
        }
    }
}

/// One version of a subject, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema_type: SchemaType,
    /// The schema text as first registered.
    pub schema: String,
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    format: u32,
    #[serde(default)]
    compatibility: Compatibility,
    next_id: u32,
    #[serde(default)]
    schemas: BTreeMap<u32, StoredSchema>,
    #[serde(default)]
    subjects: BTreeMap<String, Subject>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: 1,
            compatibility: Compatibility::default(),
            next_id: 1,
            schemas: BTreeMap::new(),
            subjects: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSchema {
    schema_type: SchemaType,
    schema: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Subject {
    #[serde(default)]
    compatibility: Option<Compatibility>,
    #[serde(default)]
    versions: Vec<StoredVersion>,
}

impl Subject {
    fn live(&self) -> impl DoubleEndedIterator<Item = &StoredVersion> {
        self.versions.iter().filter(|v| !v.deleted)
    }

    fn visible(&self, include_deleted: bool) -> impl DoubleEndedIterator<Item = &StoredVersion> {
        self.versions
            .iter()
            .filter(move |v| include_deleted || !v.deleted)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredVersion {
    version: u32,
    id: u32,
    #[serde(default)]
    deleted: bool,
}

struct Inner {
    state: State,
    parsed: BTreeMap<u32, Arc<Schema>>,
    by_text: HashMap<(SchemaType, String), u32>,
}

/// The registry of one project.
pub struct SchemaRegistry {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SchemaRegistry {
    /// Opens (or creates) the registry kept in folder `dir`.
    pub fn open(dir: &Path) -> Result<SchemaRegistry, RegistryError> {
        let io = |path: &Path, error| RegistryError::Io {
            path: path.display().to_string(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join(FILE);
        let state: State = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RegistryError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(&path, e)),
        };
        let corrupt = |reason: String| RegistryError::Corrupt {
            path: path.display().to_string(),
            reason,
        };
        if state.format != 1 {
            return Err(corrupt(format!(
                "format {} is not one this weir reads (1)",
                state.format
            )));
        }
        let mut parsed = BTreeMap::new();
        let mut by_text = HashMap::new();
        for (id, s) in &state.schemas {
            let schema = Schema::parse(s.schema_type, &s.schema)
                .map_err(|e| corrupt(format!("schema id {id}: {e}")))?;
            parsed.insert(*id, Arc::new(schema));
            if let Some(c) = canonical(&s.schema) {
                by_text.insert((s.schema_type, c), *id);
            }
            if *id >= state.next_id {
                return Err(corrupt(format!(
                    "schema id {id} is not below next_id {}",
                    state.next_id
                )));
            }
        }
        for (name, subj) in &state.subjects {
            if let Some(v) = subj
                .versions
                .iter()
                .find(|v| !state.schemas.contains_key(&v.id))
            {
                return Err(corrupt(format!(
                    "version {} of subject `{name}` refers to schema id {}, which is missing",
                    v.version, v.id
                )));
            }
        }
        Ok(SchemaRegistry {
            dir: dir.to_owned(),
            inner: Mutex::new(Inner {
                state,
                parsed,
                by_text,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half-changed: changes are
        // built on a copy and swapped in whole, so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `next` durably, then makes it the registry's state.
    fn commit(
        &self,
        inner: &mut Inner,
        next: State,
        added: Option<(u32, Arc<Schema>, String)>,
    ) -> Result<(), RegistryError> {
        let path = self.dir.join(FILE);
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let io = |p: &Path, error| RegistryError::Io {
            path: p.display().to_string(),
            error,
        };
        // Serializing maps of strings and numbers cannot fail.
        let bytes = serde_json::to_vec_pretty(&next).unwrap_or_default();
        {
            let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            d.sync_all().map_err(|e| io(&self.dir, e))?;
        }
        if let Some((id, schema, text)) = added {
            inner.parsed.insert(id, schema);
            inner
                .by_text
                .insert((next.schemas[&id].schema_type, text), id);
        }
        inner.parsed.retain(|id, _| next.schemas.contains_key(id));
        inner.by_text.retain(|_, id| next.schemas.contains_key(id));
        inner.state = next;
        Ok(())
    }

    /// Subjects with at least one version (soft-deleted ones too with `include_deleted`).
    pub fn subjects(&self, include_deleted: bool) -> Vec<String> {
        let inner = self.lock();
        inner
            .state
            .subjects
            .iter()
            .filter(|(_, s)| s.visible(include_deleted).next().is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The version numbers of `subject`, oldest first.
    pub fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let inner = self.lock();
        let v: Vec<u32> = inner
            .state
            .subjects
            .get(subject)
            .map(|s| s.visible(include_deleted).map(|v| v.version).collect())
            .unwrap_or_default();
        if v.is_empty() {
            return Err(not_found(subject));
        }
        Ok(v)
    }

    /// Registers `text` under `subject` and returns its id. A schema the subject already has
    /// returns its id without a new version; otherwise the subject's compatibility rule must
    /// hold against its earlier versions (409 naming what broke).
    pub fn register(
        &self,
        subject: &str,
        kind: SchemaType,
        text: &str,
    ) -> Result<u32, RegistryError> {
        if subject.trim().is_empty() || subject.chars().any(char::is_control) {
            return Err(RegistryError::BadRequest {
                reason: format!(
                    "subject name {:?} must be non-empty text without control characters",
                    subject
                ),
            });
        }
        let schema = Arc::new(Schema::parse(kind, text)?);
        let text_key = canonical(text).unwrap_or_else(|| text.to_owned());
        let mut inner = self.lock();
        let existing = inner.by_text.get(&(kind, text_key.clone())).copied();
        let subj = inner.state.subjects.get(subject);
        if let (Some(id), Some(s)) = (existing, subj)
            && s.live().any(|v| v.id == id)
        {
            return Ok(id);
        }
        let mode = subj
            .and_then(|s| s.compatibility)
            .unwrap_or(inner.state.compatibility);
        let earlier: Vec<(u32, Arc<Schema>)> = subj
            .map(|s| {
                s.live()
                    .filter_map(|v| inner.parsed.get(&v.id).map(|p| (v.version, p.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let refs: Vec<(u32, &Schema)> = earlier.iter().map(|(v, s)| (*v, s.as_ref())).collect();
        let problems = compatibility_problems(mode, &schema, &refs);
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                problems,
            });
        }
        let mut next = inner.state.clone();
        let (id, added) = match existing {
            Some(id) => (id, None),
            None => {
                let id = next.next_id;
                next.next_id += 1;
                next.schemas.insert(
                    id,
                    StoredSchema {
                        schema_type: kind,
                        schema: text.trim().to_owned(),
                    },
                );
                (id, Some((id, schema, text_key)))
            }
        };
        let s = next.subjects.entry(subject.to_owned()).or_default();
        let version = s.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        s.versions.push(StoredVersion {
            version,
            id,
            deleted: false,
        });
        self.commit(&mut inner, next, added)?;
        tracing::info!(subject, version, id, "schema registered");
        Ok(id)
    }

    /// One version of `subject`.
    pub fn version(
        &self,
        subject: &str,
        version: VersionRef,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let inner = self.lock();
        let s = inner
            .state
            .subjects
            .get(subject)
            .filter(|s| s.visible(include_deleted).next().is_some())
            .ok_or_else(|| not_found(subject))?;
        let v = match version {
            VersionRef::Latest => s.visible(include_deleted).next_back(),
            VersionRef::Number(n) => s.visible(include_deleted).find(|v| v.version == n),
        }
        .ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.to_owned(),
            version: version.to_string(),
        })?;
        Ok(view(&inner.state, subject, v))
    }

    /// The version of `subject` holding schema `text`, if it has one.
    pub fn lookup(
        &self,
        subject: &str,
        kind: SchemaType,
        text: &str,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        Schema::parse(kind, text)?;
        let text_key = canonical(text).unwrap_or_else(|| text.to_owned());
        let inner = self.lock();
        let s = inner
            .state
            .subjects
            .get(subject)
            .filter(|s| s.visible(include_deleted).next().is_some())
            .ok_or_else(|| not_found(subject))?;
        let missing = || RegistryError::SchemaNotFound {
            what: format!("this schema under subject `{subject}`"),
        };
        let id = *inner.by_text.get(&(kind, text_key)).ok_or_else(missing)?;
        let v = s
            .visible(include_deleted)
            .rev()
            .find(|v| v.id == id)
            .ok_or_else(missing)?;
        Ok(view(&inner.state, subject, v))
    }

    /// The type and text of schema `id`.
    pub fn schema_by_id(&self, id: u32) -> Result<(SchemaType, String), RegistryError> {
        let inner = self.lock();
        inner
            .state
            .schemas
            .get(&id)
            .map(|s| (s.schema_type, s.schema.clone()))
            .ok_or_else(|| RegistryError::SchemaNotFound {
                what: format!("schema id {id}"),
            })
    }

    /// Every (subject, version) holding schema `id`.
    pub fn subject_versions_of(
        &self,
        id: u32,
        include_deleted: bool,
    ) -> Result<Vec<(String, u32)>, RegistryError> {
        let inner = self.lock();
        if !inner.state.schemas.contains_key(&id) {
            return Err(RegistryError::SchemaNotFound {
                what: format!("schema id {id}"),
            });
        }
        Ok(inner
            .state
            .subjects
            .iter()
            .flat_map(|(n, s)| {
                s.visible(include_deleted)
                    .filter(|v| v.id == id)
                    .map(|v| (n.clone(), v.version))
            })
            .collect())
    }

    /// Why `text` would be refused under `subject` against `version` (against what its
    /// compatibility rule names for `latest`: the latest version, or every version when the
    /// rule is transitive); empty when compatible. A subject without versions accepts anything.
    pub fn compatibility(
        &self,
        subject: &str,
        version: VersionRef,
        kind: SchemaType,
        text: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let schema = Schema::parse(kind, text)?;
        let inner = self.lock();
        let subj = inner.state.subjects.get(subject);
        let mode = subj
            .and_then(|s| s.compatibility)
            .unwrap_or(inner.state.compatibility);
        let live: Vec<&StoredVersion> = subj.map(|s| s.live().collect()).unwrap_or_default();
        let (mode, against): (Compatibility, Vec<&StoredVersion>) = match version {
            VersionRef::Latest => (mode, live),
            VersionRef::Number(n) => {
                if live.is_empty() {
                    return Err(not_found(subject));
                }
                let v = live.into_iter().find(|v| v.version == n).ok_or_else(|| {
                    RegistryError::VersionNotFound {
                        subject: subject.to_owned(),
                        version: n.to_string(),
                    }
                })?;
                (non_transitive(mode), vec![v])
            }
        };
        let earlier: Vec<(u32, &Schema)> = against
            .iter()
            .filter_map(|v| inner.parsed.get(&v.id).map(|p| (v.version, p.as_ref())))
            .collect();
        Ok(compatibility_problems(mode, &schema, &earlier))
    }

    /// Soft-deletes every version of `subject` (or, with `permanent`, removes a subject that
    /// was soft-deleted); returns the version numbers deleted.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let mut inner = self.lock();
        let Some(s) = inner
            .state
            .subjects
            .get(subject)
            .filter(|s| !s.versions.is_empty())
        else {
            return Err(not_found(subject));
        };
        let mut next = inner.state.clone();
        let deleted: Vec<u32> = if permanent {
            if s.live().next().is_some() {
                return Err(RegistryError::SubjectNotSoftDeleted {
                    subject: subject.to_owned(),
                });
            }
            let versions = s.versions.iter().map(|v| v.version).collect();
            next.subjects.remove(subject);
            drop_unused(&mut next);
            versions
        } else {
            let versions: Vec<u32> = s.live().map(|v| v.version).collect();
            if versions.is_empty() {
                return Err(RegistryError::SubjectNotFound {
                    subject: subject.to_owned(),
                });
            }
            if let Some(ns) = next.subjects.get_mut(subject) {
                ns.versions.iter_mut().for_each(|v| v.deleted = true);
            }
            versions
        };
        self.commit(&mut inner, next, None)?;
        tracing::info!(subject, permanent, "schema subject deleted");
        Ok(deleted)
    }

    /// Soft-deletes one version (or, with `permanent`, removes a soft-deleted one).
    pub fn delete_version(
        &self,
        subject: &str,
        version: VersionRef,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        let mut inner = self.lock();
        let Some(s) = inner
            .state
            .subjects
            .get(subject)
            .filter(|s| !s.versions.is_empty())
        else {
            return Err(not_found(subject));
        };
        let found = match (version, permanent) {
            (VersionRef::Latest, false) => s.live().next_back(),
            (VersionRef::Latest, true) => s.versions.last(),
            (VersionRef::Number(n), false) => s.live().find(|v| v.version == n),
            (VersionRef::Number(n), true) => s.versions.iter().find(|v| v.version == n),
        };
        let v = found.ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.to_owned(),
            version: version.to_string(),
        })?;
        let number = v.version;
        if permanent && !v.deleted {
            return Err(RegistryError::VersionNotSoftDeleted {
                subject: subject.to_owned(),
                version: number,
            });
        }
        let mut next = inner.state.clone();
        if let Some(ns) = next.subjects.get_mut(subject) {
            if permanent {
                ns.versions.retain(|v| v.version != number);
                if ns.versions.is_empty() && ns.compatibility.is_none() {
                    next.subjects.remove(subject);
                }
                drop_unused(&mut next);
            } else if let Some(x) = ns.versions.iter_mut().find(|v| v.version == number) {
                x.deleted = true;
            }
        }
        self.commit(&mut inner, next, None)?;
        Ok(number)
    }

    /// The rule used for subjects without one of their own.
    pub fn global_compatibility(&self) -> Compatibility {
        self.lock().state.compatibility
    }

    pub fn set_global_compatibility(&self, c: Compatibility) -> Result<(), RegistryError> {
        let mut inner = self.lock();
        let mut next = inner.state.clone();
        next.compatibility = c;
        self.commit(&mut inner, next, None)
    }

    /// The rule set on `subject` itself, if any.
    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.lock()
            .state
            .subjects
            .get(subject)
            .and_then(|s| s.compatibility)
    }

    /// Sets `subject`'s rule (the subject need not have versions yet).
    pub fn set_subject_compatibility(
        &self,
        subject: &str,
        c: Compatibility,
    ) -> Result<(), RegistryError> {
        let mut inner = self.lock();
        let mut next = inner.state.clone();
        next.subjects
            .entry(subject.to_owned())
            .or_default()
            .compatibility = Some(c);
        self.commit(&mut inner, next, None)
    }

    /// Removes `subject`'s own rule (it falls back to the global one); returns the old rule.
    pub fn delete_subject_compatibility(
        &self,
        subject: &str,
    ) -> Result<Compatibility, RegistryError> {
        let mut inner = self.lock();
        let old = inner
            .state
            .subjects
            .get(subject)
            .and_then(|s| s.compatibility)
            .ok_or_else(|| RegistryError::SubjectConfigNotFound {
                subject: subject.to_owned(),
            })?;
        let mut next = inner.state.clone();
        if let Some(s) = next.subjects.get_mut(subject) {
            s.compatibility = None;
            if s.versions.is_empty() {
                next.subjects.remove(subject);
            }
        }
        self.commit(&mut inner, next, None)?;
        Ok(old)
    }

    /// The latest live version of `subject`: (version, id, schema). What sources validate
    /// against.
    pub fn latest(&self, subject: &str) -> Option<(u32, u32, Arc<Schema>)> {
        let inner = self.lock();
        let v = inner.state.subjects.get(subject)?.live().next_back()?;
        let schema = inner.parsed.get(&v.id)?.clone();
        Some((v.version, v.id, schema))
    }
}

fn not_found(subject: &str) -> RegistryError {
    RegistryError::SubjectNotFound {
        subject: subject.to_owned(),
    }
}

fn non_transitive(c: Compatibility) -> Compatibility {
    match c {
        Compatibility::BackwardTransitive => Compatibility::Backward,
        Compatibility::ForwardTransitive => Compatibility::Forward,
        Compatibility::FullTransitive => Compatibility::Full,
        other => other,
    }
}

/// Forgets schemas no version refers to any more (their ids are not reused).
fn drop_unused(s: &mut State) {
    let used: std::collections::BTreeSet<u32> = s
        .subjects
        .values()
        .flat_map(|x| x.versions.iter().map(|v| v.id))
        .collect();
    s.schemas.retain(|id, _| used.contains(id));
}

fn view(state: &State, subject: &str, v: &StoredVersion) -> SubjectVersion {
    let (schema_type, schema) = state
        .schemas
        .get(&v.id)
        .map(|s| (s.schema_type, s.schema.clone()))
        .unwrap_or((SchemaType::Avro, String::new()));
    SubjectVersion {
        subject: subject.to_owned(),
        version: v.version,
        id: v.id,
        schema_type,
        schema,
        deleted: v.deleted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#;
    const V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"age","type":"int","default":0}]}"#;
    const BAD: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"age","type":"int"}]}"#;

    #[test]
    fn ids_are_global_versions_per_subject_and_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let r = SchemaRegistry::open(dir.path()).unwrap();
        let a = r.register("users-value", SchemaType::Avro, V1).unwrap();
        // Same schema, other whitespace and key order, other subject: same id.
        let spaced =
            r#"{ "name": "User", "type": "record", "fields": [ {"type": "long", "name": "id"} ] }"#;
        assert_eq!(
            r.register("other-value", SchemaType::Avro, spaced).unwrap(),
            a
        );
        // Registering it again under the same subject makes no new version.
        assert_eq!(r.register("users-value", SchemaType::Avro, V1).unwrap(), a);
        assert_eq!(r.versions("users-value", false).unwrap(), vec![1]);
        // BACKWARD checks against the latest version (V1): a new required field without a
        // default cannot read V1's records.
        let e = r
            .register("users-value", SchemaType::Avro, BAD)
            .unwrap_err();
        assert_eq!(e.error_code(), 409);
        assert!(
            e.to_string()
                .contains("field `age`: added as required without a default (BACKWARD)"),
            "{e}"
        );
        let b = r.register("users-value", SchemaType::Avro, V2).unwrap();
        assert_ne!(a, b);
        // The same text as JSON Schema is another schema (and another id).
        let j = r
            .register("j", SchemaType::Json, r#"{"type":"string"}"#)
            .unwrap();
        assert!(j > b);
        drop(r);
        let r = SchemaRegistry::open(dir.path()).unwrap();
        assert_eq!(r.subjects(false), vec!["j", "other-value", "users-value"]);
        let latest = r.version("users-value", VersionRef::Latest, false).unwrap();
        assert_eq!((latest.version, latest.id), (2, b));
        assert_eq!(r.latest("users-value").unwrap().0, 2);
        assert_eq!(r.schema_by_id(a).unwrap().1, V1);
        assert_eq!(
            r.subject_versions_of(a, false).unwrap(),
            vec![
                ("other-value".to_string(), 1),
                ("users-value".to_string(), 1)
            ]
        );
        assert_eq!(
            r.lookup("users-value", SchemaType::Avro, spaced, false)
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            r.lookup("nope", SchemaType::Avro, V1, false)
                .unwrap_err()
                .error_code(),
            40401
        );
        assert_eq!(
            r.lookup("j", SchemaType::Json, r#"{"type":"integer"}"#, false)
                .unwrap_err()
                .error_code(),
            40403
        );
        assert_eq!(
            r.version("users-value", VersionRef::Number(9), false)
                .unwrap_err()
                .error_code(),
            40402
        );
        assert_eq!(r.schema_by_id(999).unwrap_err().error_code(), 40403);
    }

    #[test]
    fn compatibility_follows_subject_then_global_rules() {
        let dir = tempfile::tempdir().unwrap();
        let r = SchemaRegistry::open(dir.path()).unwrap();
        r.register("s", SchemaType::Avro, V1).unwrap();
        assert_eq!(
            r.compatibility("s", VersionRef::Latest, SchemaType::Avro, BAD)
                .unwrap()
                .len(),
            1
        );
        assert!(
            r.compatibility("s", VersionRef::Latest, SchemaType::Avro, V2)
                .unwrap()
                .is_empty()
        );
        assert!(
            r.compatibility("new", VersionRef::Latest, SchemaType::Avro, BAD)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            r.compatibility("new", VersionRef::Number(1), SchemaType::Avro, BAD)
                .unwrap_err()
                .error_code(),
            40401
        );
        r.set_subject_compatibility("s", Compatibility::None)
            .unwrap();
        assert!(
            r.compatibility("s", VersionRef::Latest, SchemaType::Avro, BAD)
                .unwrap()
                .is_empty()
        );
        assert_eq!(r.register("s", SchemaType::Avro, BAD).unwrap(), 2);
        assert_eq!(
            r.delete_subject_compatibility("s").unwrap(),
            Compatibility::None
        );
        assert_eq!(
            r.delete_subject_compatibility("s")
                .unwrap_err()
                .error_code(),
            40408
        );
        r.set_global_compatibility(Compatibility::Forward).unwrap();
        drop(r);
        let r = SchemaRegistry::open(dir.path()).unwrap();
        assert_eq!(r.global_compatibility(), Compatibility::Forward);
        assert_eq!(r.subject_compatibility("s"), None);
    }

    #[test]
    fn deletes_are_soft_then_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let r = SchemaRegistry::open(dir.path()).unwrap();
        let a = r.register("s", SchemaType::Avro, V1).unwrap();
        r.register("s", SchemaType::Avro, V2).unwrap();
        assert_eq!(
            r.delete_version("s", VersionRef::Number(1), true)
                .unwrap_err()
                .error_code(),
            40407
        );
        assert_eq!(r.delete_version("s", VersionRef::Latest, false).unwrap(), 2);
        assert_eq!(r.versions("s", false).unwrap(), vec![1]);
        assert_eq!(r.versions("s", true).unwrap(), vec![1, 2]);
        assert_eq!(r.latest("s").unwrap().0, 1);
        assert_eq!(r.delete_subject("s", true).unwrap_err().error_code(), 40405);
        assert_eq!(r.delete_subject("s", false).unwrap(), vec![1]);
        assert!(r.subjects(false).is_empty());
        assert_eq!(r.subjects(true), vec!["s"]);
        // A soft-deleted schema's id still resolves.
        assert_eq!(r.schema_by_id(a).unwrap().1, V1);
        // Registering again continues the numbering.
        r.register("s", SchemaType::Avro, V1).unwrap();
        assert_eq!(r.versions("s", false).unwrap(), vec![3]);
        r.delete_subject("s", false).unwrap();
        assert_eq!(r.delete_subject("s", true).unwrap(), vec![1, 2, 3]);
        assert_eq!(r.schema_by_id(a).unwrap_err().error_code(), 40403);
        assert_eq!(r.versions("s", true).unwrap_err().error_code(), 40401);
        // Ids are never reused.
        let c = r.register("s", SchemaType::Avro, V1).unwrap();
        assert!(c > a);
    }

    #[test]
    fn versions_parse_like_confluent() {
        assert_eq!(VersionRef::parse("latest").unwrap(), VersionRef::Latest);
        assert_eq!(VersionRef::parse("-1").unwrap(), VersionRef::Latest);
        assert_eq!(VersionRef::parse("7").unwrap(), VersionRef::Number(7));
        for bad in ["0", "x", "-2", "2147483648"] {
            assert_eq!(
                VersionRef::parse(bad).unwrap_err().error_code(),
                42202,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_damaged_store_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let e = SchemaRegistry::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("registry.json"), "{e}");
    }
}
