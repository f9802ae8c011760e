//! [`Log`]: the handle on one log directory. Owns the directory lock, the set of topics
//! (creating them atomically, finding them at open and recovering their partitions in
//! parallel), consumer cursors (through `cursor.rs`) and running retention over every
//! partition. Appending and reading happen on [`crate::Partition`].
//!
//! ```text
//! <dir>/LOCK                                  exclusive lock, holds the owner's pid
//! <dir>/topics/<topic>/<partition>/<base>.log  segments, <base> is 20 digits
//! <dir>/topics/<topic>/<partition>/<base>.index
//! <dir>/cursors/<group>.json
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::ErrorKind as IoErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::config::LogConfig;
use crate::cursor::CursorStore;
use crate::error::{LogError, Result};
use crate::partition::Partition;
use crate::retention::{RetentionPolicy, RetentionReport};
use crate::topic::Topic;
use crate::{MAX_PARTITIONS, lock, read_lock, sync_dir, validate_name, write_lock};

/// Prefix of the directory a topic is assembled in before being renamed into place. Topic
/// names cannot start with `.`, so it never collides with a topic.
const CREATING_PREFIX: &str = ".creating-";

/// An open log directory. `Send + Sync`; share it as `Arc<Log>`. The directory lock is released
/// once the `Log` and every [`Topic`] handle obtained from it are dropped.
pub struct Log {
    cfg: Arc<LogConfig>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes topic creation, so lookups never wait on its IO.
    create_lock: Mutex<()>,
    retention_lock: Mutex<()>,
    cursors: CursorStore,
    /// The exclusive lock on `<dir>/LOCK`, shared with every topic so it is held as long as
    /// anything can still write.
    lock_file: Arc<File>,
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.cfg.dir)
            .field("topics", &self.topic_names())
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Opens the log in `cfg.dir`, creating the directory if needed, takes the exclusive lock
    /// (a second opener gets [`LogError::Locked`]) and recovers every partition: torn or
    /// corrupt tails of active segments are truncated, missing indexes rebuilt.
    pub fn open(cfg: LogConfig) -> Result<Log> {
        cfg.validate()?;
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| LogError::io("create log directory", &dir, e))?;
        let lock_file = Arc::new(acquire_lock(&dir)?);
        let topics_dir = dir.join("topics");
        let cursors_dir = dir.join("cursors");
        for d in [&topics_dir, &cursors_dir] {
            fs::create_dir_all(d).map_err(|e| LogError::io("create directory", d, e))?;
        }
        let cfg = Arc::new(cfg);
        let topics = load_topics(&topics_dir, &cfg, &lock_file)?;
        tracing::info!(
            dir = %dir.display(),
            topics = topics.len(),
            "opened log"
        );
        Ok(Log {
            cursors: CursorStore::new(cursors_dir, cfg.fsync),
            cfg,
            topics: RwLock::new(topics),
            create_lock: Mutex::new(()),
            retention_lock: Mutex::new(()),
            lock_file,
        })
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }

    /// The log's root directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    fn topics_dir(&self) -> PathBuf {
        self.cfg.dir.join("topics")
    }

    /// Creates a topic with `partitions` partitions. Idempotent when the topic exists with the
    /// same count; a different count is a `User` error. Creation is atomic on disk: the topic
    /// is assembled under a temporary name and renamed into place.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<Arc<Topic>> {
        validate_name("topic", name)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(LogError::InvalidPartitionCount {
                topic: name.to_string(),
                requested: partitions,
                max: MAX_PARTITIONS,
            });
        }
        let _creating = lock(&self.create_lock);
        if let Some(existing) = self.topic(name) {
            if existing.partition_count() == partitions {
                return Ok(existing);
            }
            return Err(LogError::PartitionCountMismatch {
                topic: name.to_string(),
                existing: existing.partition_count(),
                requested: partitions,
            });
        }
        let topics_dir = self.topics_dir();
        let staging = topics_dir.join(format!("{CREATING_PREFIX}{name}"));
        remove_dir_if_exists(&staging)?;
        for p in 0..partitions {
            let d = staging.join(p.to_string());
            fs::create_dir_all(&d)
                .map_err(|e| LogError::io("create partition directory", &d, e))?;
        }
        let final_dir = topics_dir.join(name);
        if self.cfg.fsync {
            sync_dir(&staging)?;
        }
        fs::rename(&staging, &final_dir)
            .map_err(|e| LogError::io("create topic directory", &final_dir, e))?;
        if self.cfg.fsync {
            sync_dir(&topics_dir)?;
        }
        let topic = Arc::new(open_topic(
            name,
            &final_dir,
            partitions,
            &self.cfg,
            &self.lock_file,
        )?);
        write_lock(&self.topics).insert(name.to_string(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// The topic called `name`, if it exists.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        read_lock(&self.topics).get(name).cloned()
    }

    /// Names of all topics, sorted.
    pub fn topic_names(&self) -> Vec<String> {
        read_lock(&self.topics).keys().cloned().collect()
    }

    /// Durably records that `group` has consumed `topic`/`partition` up to (excluding)
    /// `next_offset`. The cursor file is replaced atomically. Unknown topics and partitions and
    /// invalid group names are `User` errors.
    pub fn commit_cursor(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<()> {
        validate_name("consumer group", group)?;
        let t = self.topic(topic).ok_or_else(|| LogError::UnknownTopic {
            topic: topic.to_string(),
        })?;
        if t.partition(partition).is_none() {
            return Err(LogError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                count: t.partition_count(),
            });
        }
        self.cursors.commit(group, topic, partition, next_offset)
    }

    /// The next offset `group` should read from `topic`/`partition`, if it ever committed one.
    pub fn cursor(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>> {
        validate_name("consumer group", group)?;
        self.cursors.get(group, topic, partition)
    }

    /// Deletes closed segments from the front of each partition while the partition is larger
    /// than `retention_bytes` or the segment's newest record is older than `retention_age`
    /// relative to `now_ms`. The active segment is never deleted. A failing partition does not
    /// stop the others; the first error is returned after all were tried (deletions are also
    /// logged, so they are not lost with the report).
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionReport> {
        let policy = RetentionPolicy {
            max_bytes: self.cfg.retention_bytes,
            max_age_ms: self.cfg.retention_age_ms(),
            now_ms,
        };
        let mut report = RetentionReport::default();
        if policy.max_bytes.is_none() && policy.max_age_ms.is_none() {
            return Ok(report);
        }
        let _running = lock(&self.retention_lock);
        let topics: Vec<Arc<Topic>> = read_lock(&self.topics).values().cloned().collect();
        let mut first_error = None;
        for topic in &topics {
            for partition in topic.partitions() {
                if let Err(e) = partition.enforce_retention(policy, &mut report.removed) {
                    tracing::warn!(
                        topic = topic.name(),
                        partition = partition.id(),
                        error = %e,
                        "log retention failed for partition"
                    );
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

/// Opens `<dir>/LOCK` and locks it without waiting; records our pid for whoever finds it.
fn acquire_lock(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| LogError::io("open lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(LogError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(LogError::io("lock", &path, e)),
    }
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
        .map_err(|e| LogError::io("write lock file", &path, e))?;
    Ok(file)
}

/// Finds the topics under `topics_dir` and recovers all their partitions.
fn load_topics(
    topics_dir: &Path,
    cfg: &Arc<LogConfig>,
    lock_file: &Arc<File>,
) -> Result<BTreeMap<String, Arc<Topic>>> {
    let mut found: Vec<(String, PathBuf, u32)> = Vec::new();
    let entries =
        fs::read_dir(topics_dir).map_err(|e| LogError::io("list topics", topics_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list topics", topics_dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(CREATING_PREFIX) {
            tracing::info!(dir = %path.display(), "removing topic left half-created by a crash");
            remove_dir_if_exists(&path)?;
            continue;
        }
        if !path.is_dir() || validate_name("topic", &name).is_err() {
            tracing::warn!(path = %path.display(), "ignoring unexpected entry in topics directory");
            continue;
        }
        let count = partition_count(&path)?;
        found.push((name, path, count));
    }
    let jobs: Vec<(Arc<str>, u32, PathBuf)> = found
        .iter()
        .flat_map(|(name, path, count)| {
            let name: Arc<str> = Arc::from(name.as_str());
            (0..*count).map(move |p| (Arc::clone(&name), p, path.join(p.to_string())))
        })
        .collect();
    let mut partitions = open_partitions(jobs, cfg)?.into_iter();
    let mut topics = BTreeMap::new();
    for (name, _, count) in found {
        let parts: Vec<Partition> = partitions.by_ref().take(count as usize).collect();
        let topic = Topic::new(name.clone(), parts, Arc::clone(lock_file));
        topics.insert(name, Arc::new(topic));
    }
    Ok(topics)
}

/// Number of partitions of a topic directory, whose subdirectories must be `0..n`.
fn partition_count(topic_dir: &Path) -> Result<u32> {
    let mut ids = Vec::new();
    let entries =
        fs::read_dir(topic_dir).map_err(|e| LogError::io("list partitions", topic_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list partitions", topic_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match name.parse::<u32>() {
            Ok(id) if id.to_string() == name && entry.path().is_dir() => ids.push(id),
            _ => tracing::warn!(
                path = %entry.path().display(),
                "ignoring unexpected entry in topic directory"
            ),
        }
    }
    ids.sort_unstable();
    let contiguous = ids
        .iter()
        .enumerate()
        .all(|(i, &id)| i as u64 == u64::from(id));
    let count = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    if ids.is_empty() || !contiguous || count > MAX_PARTITIONS {
        return Err(LogError::CorruptLayout {
            path: topic_dir.to_path_buf(),
            detail: format!(
                "expected partition directories 0..n (n at most {MAX_PARTITIONS}), found {ids:?}"
            ),
        });
    }
    Ok(count)
}

fn open_topic(
    name: &str,
    dir: &Path,
    partitions: u32,
    cfg: &Arc<LogConfig>,
    lock_file: &Arc<File>,
) -> Result<Topic> {
    let name_arc: Arc<str> = Arc::from(name);
    let jobs = (0..partitions)
        .map(|p| (Arc::clone(&name_arc), p, dir.join(p.to_string())))
        .collect();
    let partitions = open_partitions(jobs, cfg)?;
    Ok(Topic::new(
        name.to_string(),
        partitions,
        Arc::clone(lock_file),
    ))
}

/// Opens (recovering) partitions on up to one thread per core, keeping the input order.
fn open_partitions(
    jobs: Vec<(Arc<str>, u32, PathBuf)>,
    cfg: &Arc<LogConfig>,
) -> Result<Vec<Partition>> {
    let results: Vec<Mutex<Option<Result<Partition>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((topic, id, dir)) = jobs.get(i) else {
                break;
            };
            let opened = Partition::open(Arc::clone(topic), *id, dir.clone(), Arc::clone(cfg));
            if let Some(slot) = results.get(i) {
                *lock(slot) = Some(opened);
            }
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len())
        .saturating_sub(1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            // If the OS refuses a thread, the calling thread below does the remaining work.
            if std::thread::Builder::new()
                .name("weir-log-recover".into())
                .spawn_scoped(s, work)
                .is_err()
            {
                break;
            }
        }
        work();
    });
    results
        .into_iter()
        .zip(&jobs)
        .map(|(slot, (topic, id, dir))| {
            let taken = slot
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            taken.unwrap_or_else(|| {
                Err(LogError::CorruptLayout {
                    path: dir.clone(),
                    detail: format!("partition {id} of topic `{topic}` was not recovered"),
                })
            })
        })
        .collect()
}

fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != IoErrorKind::NotFound => {
            Err(LogError::io("delete directory", path, e))
        }
        _ => Ok(()),
    }
}
