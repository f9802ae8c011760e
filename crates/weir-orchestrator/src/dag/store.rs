//! The orchestrator's metadata: DAG runs, task instances, attempts with their logs, check
//! results and sent alerts. [`MetaStore`] is the contract; [`SqliteStore`] keeps it in one
//! SQLite file in the project's data dir (WAL mode, so `weir dag ...` commands read it while
//! `weir run` writes). A PostgreSQL implementation fills the same trait at scale.
//!
//! Runs are unique per (DAG, logical time): creating one twice is a no-op, which is what makes
//! catchup, backfill and a restarted scheduler create each run exactly once. A process takes a
//! run by *claiming* it (an atomic state change) and keeps the claim with heartbeats; a claim
//! whose heartbeat stopped is taken over, and the tasks it was running are failed by restart.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::{OrchestratorError, Result};

/// State of a DAG run.
pub mod run_state {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const SUCCESS: &str = "success";
    pub const FAILED: &str = "failed";
}

/// State of a task instance.
pub mod task_state {
    pub const NONE: &str = "none";
    pub const RUNNING: &str = "running";
    pub const UP_FOR_RETRY: &str = "up_for_retry";
    pub const SUCCESS: &str = "success";
    pub const FAILED: &str = "failed";
    pub const UPSTREAM_FAILED: &str = "upstream_failed";
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub dag: String,
    /// Start of the run's interval, µs since the epoch (UTC).
    pub logical_us: i64,
    /// The logical date, "YYYY-MM-DD".
    pub logical_date: String,
    /// scheduled, manual, backfill, catchup.
    pub kind: String,
    pub state: String,
    pub created_us: i64,
    pub started_us: Option<i64>,
    pub ended_us: Option<i64>,
    pub owner: Option<String>,
    pub heartbeat_us: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskRow {
    pub run_id: i64,
    pub task_id: String,
    pub state: String,
    /// Attempts made so far.
    pub tries: u32,
    pub started_us: Option<i64>,
    pub ended_us: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttemptRow {
    pub run_id: i64,
    pub task_id: String,
    pub try_number: u32,
    pub state: String,
    pub started_us: i64,
    pub ended_us: Option<i64>,
    pub error: Option<String>,
    pub log: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckRow {
    pub run_id: i64,
    pub task_id: String,
    pub table_name: String,
    pub check_name: String,
    pub passed: bool,
    pub severity: String,
    pub observed: String,
    pub at_us: i64,
}

/// Where runs, task instances, attempts and check results are kept.
///
/// Every method is one atomic step; none blocks for long. `claim_run` is the only way a
/// process starts executing a run, so two processes never run the same run at once.
pub trait MetaStore: Send + Sync {
    /// Creates a queued run unless the DAG already has one at `logical_us`; returns its id when
    /// created.
    fn create_run(
        &self,
        dag: &str,
        logical_us: i64,
        logical_date: &str,
        kind: &str,
        now_us: i64,
    ) -> Result<Option<i64>>;
    fn run(&self, id: i64) -> Result<Option<RunRow>>;
    fn run_at(&self, dag: &str, logical_us: i64) -> Result<Option<RunRow>>;
    /// Newest first; `dag` None lists every DAG's.
    fn runs(&self, dag: Option<&str>, limit: usize) -> Result<Vec<RunRow>>;
    /// Runs that can be claimed now: queued, or running with a heartbeat older than
    /// `stale_before_us`. Oldest logical time first.
    fn claimable_runs(&self, stale_before_us: i64) -> Result<Vec<RunRow>>;
    /// Takes a run for `owner` if it is claimable; true when taken.
    fn claim_run(&self, id: i64, owner: &str, now_us: i64, stale_before_us: i64) -> Result<bool>;
    fn heartbeat(&self, id: i64, owner: &str, now_us: i64) -> Result<()>;
    /// Ends a run; a run already taken over by another owner is left alone.
    fn finish_run(&self, id: i64, owner: &str, state: &str, now_us: i64) -> Result<()>;
    /// Running runs of `dag` with a live heartbeat.
    fn active_runs(&self, dag: &str, stale_before_us: i64) -> Result<usize>;
    /// The newest logical time of the DAG's scheduled (or catchup) runs.
    fn last_scheduled(&self, dag: &str) -> Result<Option<i64>>;
    fn tasks(&self, run_id: i64) -> Result<Vec<TaskRow>>;
    fn put_task(&self, t: &TaskRow) -> Result<()>;
    fn put_attempt(&self, a: &AttemptRow) -> Result<()>;
    /// `put_task` and `put_attempt` in one transaction.
    fn put_task_attempt(&self, t: &TaskRow, a: &AttemptRow) -> Result<()> {
        self.put_task_attempts(&[(t.clone(), a.clone())])
    }
    /// Many `put_task` + `put_attempt` pairs in one transaction (a wave of tasks starting).
    fn put_task_attempts(&self, items: &[(TaskRow, AttemptRow)]) -> Result<()>;
    fn attempts(&self, run_id: i64) -> Result<Vec<AttemptRow>>;
    fn put_checks(&self, rows: &[CheckRow]) -> Result<()>;
    fn checks(&self, run_id: i64) -> Result<Vec<CheckRow>>;
    /// Resets a run to queued with `tasks` (all when empty) set back to none.
    fn clear(&self, run_id: i64, tasks: &[String]) -> Result<()>;
    /// Runs per (DAG, state).
    fn run_counts(&self) -> Result<Vec<(String, String, u64)>>;
    /// Finished attempts per (DAG, state): count and total duration in seconds.
    fn attempt_totals(&self) -> Result<Vec<(String, String, u64, f64)>>;
    /// Records that alert `key` fired; false when it had already fired.
    fn mark_alert(&self, key: &str, now_us: i64) -> Result<bool>;
    /// Forgets alert `key` (it resolved); true when it was firing.
    fn resolve_alert(&self, key: &str) -> Result<bool>;
}

/// [`MetaStore`] in a SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: String,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS dag_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dag TEXT NOT NULL,
    logical_us INTEGER NOT NULL,
    logical_date TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    started_us INTEGER,
    ended_us INTEGER,
    owner TEXT,
    heartbeat_us INTEGER,
    UNIQUE (dag, logical_us)
);
CREATE TABLE IF NOT EXISTS task_instances (
    run_id INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    state TEXT NOT NULL,
    tries INTEGER NOT NULL,
    started_us INTEGER,
    ended_us INTEGER,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    try_number INTEGER NOT NULL,
    state TEXT NOT NULL,
    started_us INTEGER NOT NULL,
    ended_us INTEGER,
    error TEXT,
    log TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, try_number)
);
CREATE TABLE IF NOT EXISTS check_results (
    run_id INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    table_name TEXT NOT NULL,
    check_name TEXT NOT NULL,
    passed INTEGER NOT NULL,
    severity TEXT NOT NULL,
    observed TEXT NOT NULL,
    at_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY,
    fired_us INTEGER NOT NULL
);
"#;

const TASK_UPSERT: &str =
    "INSERT INTO task_instances (run_id, task_id, state, tries, started_us, ended_us)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (run_id, task_id) DO UPDATE SET state = ?3, tries = ?4,
         started_us = ?5, ended_us = ?6";

const ATTEMPT_UPSERT: &str =
    "INSERT INTO attempts (run_id, task_id, try_number, state, started_us, ended_us, error, log)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
     ON CONFLICT (run_id, task_id, try_number) DO UPDATE SET state = ?4,
         ended_us = ?6, error = ?7, log = ?8";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        dag: r.get(1)?,
        logical_us: r.get(2)?,
        logical_date: r.get(3)?,
        kind: r.get(4)?,
        state: r.get(5)?,
        created_us: r.get(6)?,
        started_us: r.get(7)?,
        ended_us: r.get(8)?,
        owner: r.get(9)?,
        heartbeat_us: r.get(10)?,
    })
}

const RUN_COLS: &str = "id, dag, logical_us, logical_date, kind, state, created_us, started_us, \
     ended_us, owner, heartbeat_us";

impl SqliteStore {
    /// Opens (creating when missing) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| OrchestratorError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let shown = path.display().to_string();
        let err = |e: rusqlite::Error| OrchestratorError::Store {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: shown,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut c = self.conn.lock().map_err(|_| OrchestratorError::Store {
            path: self.path.clone(),
            reason: "a thread panicked while holding the store".into(),
        })?;
        f(&mut c).map_err(|e| OrchestratorError::Store {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }
}

impl MetaStore for SqliteStore {
    fn create_run(
        &self,
        dag: &str,
        logical_us: i64,
        logical_date: &str,
        kind: &str,
        now_us: i64,
    ) -> Result<Option<i64>> {
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO dag_runs (dag, logical_us, logical_date, kind, state, created_us)
                 VALUES (?1, ?2, ?3, ?4, 'queued', ?5)",
                params![dag, logical_us, logical_date, kind, now_us],
            )?;
            Ok((n == 1).then(|| c.last_insert_rowid()))
        })
    }

    fn run(&self, id: i64) -> Result<Option<RunRow>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {RUN_COLS} FROM dag_runs WHERE id = ?1"),
                [id],
                run_row,
            )
            .optional()
        })
    }

    fn run_at(&self, dag: &str, logical_us: i64) -> Result<Option<RunRow>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {RUN_COLS} FROM dag_runs WHERE dag = ?1 AND logical_us = ?2"),
                params![dag, logical_us],
                run_row,
            )
            .optional()
        })
    }

    fn runs(&self, dag: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {RUN_COLS} FROM dag_runs WHERE ?1 IS NULL OR dag = ?1
                 ORDER BY logical_us DESC, id DESC LIMIT ?2"
            ))?;
            st.query_map(params![dag, limit], run_row)?.collect()
        })
    }

    fn claimable_runs(&self, stale_before_us: i64) -> Result<Vec<RunRow>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {RUN_COLS} FROM dag_runs
                 WHERE state = 'queued' OR (state = 'running' AND coalesce(heartbeat_us, 0) < ?1)
                 ORDER BY logical_us, id"
            ))?;
            st.query_map([stale_before_us], run_row)?.collect()
        })
    }

    fn claim_run(&self, id: i64, owner: &str, now_us: i64, stale_before_us: i64) -> Result<bool> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE dag_runs SET state = 'running', owner = ?2, heartbeat_us = ?3,
                        started_us = coalesce(started_us, ?3), ended_us = NULL
                 WHERE id = ?1 AND (state = 'queued'
                       OR (state = 'running' AND coalesce(heartbeat_us, 0) < ?4))",
                params![id, owner, now_us, stale_before_us],
            )?;
            Ok(n == 1)
        })
    }

    fn heartbeat(&self, id: i64, owner: &str, now_us: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE dag_runs SET heartbeat_us = ?3 WHERE id = ?1 AND owner = ?2",
                params![id, owner, now_us],
            )
            .map(|_| ())
        })
    }

    fn finish_run(&self, id: i64, owner: &str, state: &str, now_us: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE dag_runs SET state = ?3, ended_us = ?4, heartbeat_us = NULL
                 WHERE id = ?1 AND owner = ?2 AND state = 'running'",
                params![id, owner, state, now_us],
            )
            .map(|_| ())
        })
    }

    fn active_runs(&self, dag: &str, stale_before_us: i64) -> Result<usize> {
        self.with(|c| {
            c.query_row(
                "SELECT count(*) FROM dag_runs WHERE dag = ?1 AND state = 'running'
                 AND coalesce(heartbeat_us, 0) >= ?2",
                params![dag, stale_before_us],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap_or(0))
        })
    }

    fn last_scheduled(&self, dag: &str) -> Result<Option<i64>> {
        self.with(|c| {
            c.query_row(
                "SELECT max(logical_us) FROM dag_runs WHERE dag = ?1
                 AND kind IN ('scheduled', 'catchup')",
                [dag],
                |r| r.get(0),
            )
        })
    }

    fn tasks(&self, run_id: i64) -> Result<Vec<TaskRow>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT run_id, task_id, state, tries, started_us, ended_us
                 FROM task_instances WHERE run_id = ?1 ORDER BY task_id",
            )?;
            st.query_map([run_id], |r| {
                Ok(TaskRow {
                    run_id: r.get(0)?,
                    task_id: r.get(1)?,
                    state: r.get(2)?,
                    tries: r.get(3)?,
                    started_us: r.get(4)?,
                    ended_us: r.get(5)?,
                })
            })?
            .collect()
        })
    }

    fn put_task(&self, t: &TaskRow) -> Result<()> {
        self.with(|c| {
            c.prepare_cached(TASK_UPSERT)?
                .execute(params![
                    t.run_id,
                    t.task_id,
                    t.state,
                    t.tries,
                    t.started_us,
                    t.ended_us
                ])
                .map(|_| ())
        })
    }

    fn put_attempt(&self, a: &AttemptRow) -> Result<()> {
        self.with(|c| {
            c.prepare_cached(ATTEMPT_UPSERT)?
                .execute(params![
                    a.run_id,
                    a.task_id,
                    a.try_number,
                    a.state,
                    a.started_us,
                    a.ended_us,
                    a.error,
                    a.log
                ])
                .map(|_| ())
        })
    }

    fn put_task_attempts(&self, items: &[(TaskRow, AttemptRow)]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut task = tx.prepare_cached(TASK_UPSERT)?;
                let mut attempt = tx.prepare_cached(ATTEMPT_UPSERT)?;
                for (t, a) in items {
                    task.execute(params![
                        t.run_id,
                        t.task_id,
                        t.state,
                        t.tries,
                        t.started_us,
                        t.ended_us
                    ])?;
                    attempt.execute(params![
                        a.run_id,
                        a.task_id,
                        a.try_number,
                        a.state,
                        a.started_us,
                        a.ended_us,
                        a.error,
                        a.log
                    ])?;
                }
            }
            tx.commit()
        })
    }

    fn attempts(&self, run_id: i64) -> Result<Vec<AttemptRow>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT run_id, task_id, try_number, state, started_us, ended_us, error, log
                 FROM attempts WHERE run_id = ?1 ORDER BY started_us, task_id, try_number",
            )?;
            st.query_map([run_id], |r| {
                Ok(AttemptRow {
                    run_id: r.get(0)?,
                    task_id: r.get(1)?,
                    try_number: r.get(2)?,
                    state: r.get(3)?,
                    started_us: r.get(4)?,
                    ended_us: r.get(5)?,
                    error: r.get(6)?,
                    log: r.get(7)?,
                })
            })?
            .collect()
        })
    }

    fn put_checks(&self, rows: &[CheckRow]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            for r in rows {
                tx.execute(
                    "INSERT INTO check_results (run_id, task_id, table_name, check_name, passed, severity, observed, at_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        r.run_id,
                        r.task_id,
                        r.table_name,
                        r.check_name,
                        r.passed,
                        r.severity,
                        r.observed,
                        r.at_us
                    ],
                )?;
            }
            tx.commit()
        })
    }

    fn checks(&self, run_id: i64) -> Result<Vec<CheckRow>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT run_id, task_id, table_name, check_name, passed, severity, observed, at_us
                 FROM check_results WHERE run_id = ?1 ORDER BY at_us, check_name",
            )?;
            st.query_map([run_id], |r| {
                Ok(CheckRow {
                    run_id: r.get(0)?,
                    task_id: r.get(1)?,
                    table_name: r.get(2)?,
                    check_name: r.get(3)?,
                    passed: r.get(4)?,
                    severity: r.get(5)?,
                    observed: r.get(6)?,
                    at_us: r.get(7)?,
                })
            })?
            .collect()
        })
    }

    fn clear(&self, run_id: i64, tasks: &[String]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            if tasks.is_empty() {
                tx.execute(
                    "UPDATE task_instances SET state = 'none', ended_us = NULL WHERE run_id = ?1",
                    [run_id],
                )?;
            } else {
                for t in tasks {
                    tx.execute(
                        "UPDATE task_instances SET state = 'none', ended_us = NULL
                         WHERE run_id = ?1 AND task_id = ?2",
                        params![run_id, t],
                    )?;
                }
            }
            tx.execute(
                "UPDATE dag_runs SET state = 'queued', ended_us = NULL, owner = NULL,
                        heartbeat_us = NULL WHERE id = ?1",
                [run_id],
            )?;
            tx.commit()
        })
    }

    fn run_counts(&self) -> Result<Vec<(String, String, u64)>> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT dag, state, count(*) FROM dag_runs GROUP BY 1, 2 ORDER BY 1, 2")?;
            st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.unsigned_abs()))
            })?
            .collect()
        })
    }

    fn attempt_totals(&self) -> Result<Vec<(String, String, u64, f64)>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT r.dag, a.state, count(*), coalesce(sum(a.ended_us - a.started_us), 0)
                 FROM attempts a JOIN dag_runs r ON r.id = a.run_id
                 WHERE a.ended_us IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
            )?;
            st.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, i64>(2)?.unsigned_abs(),
                    r.get::<_, i64>(3)? as f64 / 1e6,
                ))
            })?
            .collect()
        })
    }

    fn mark_alert(&self, key: &str, now_us: i64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO alerts (key, fired_us) VALUES (?1, ?2)",
                params![key, now_us],
            )
            .map(|n| n == 1)
        })
    }

    fn resolve_alert(&self, key: &str) -> Result<bool> {
        self.with(|c| {
            c.execute("DELETE FROM alerts WHERE key = ?1", [key])
                .map(|n| n == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_unique_per_logical_time_and_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("meta.sqlite")).unwrap();
        let id = s
            .create_run("d", 100, "2026-01-15", "scheduled", 1)
            .unwrap()
            .unwrap();
        assert_eq!(
            s.create_run("d", 100, "2026-01-15", "catchup", 2).unwrap(),
            None
        );
        assert!(s.claim_run(id, "a", 10, 0).unwrap());
        assert!(!s.claim_run(id, "b", 11, 0).unwrap(), "a live claim holds");
        // a's heartbeat (10) is older than b's staleness bound: b takes over.
        assert!(s.claim_run(id, "b", 50, 20).unwrap());
        s.finish_run(id, "a", run_state::SUCCESS, 60).unwrap();
        assert_eq!(s.run(id).unwrap().unwrap().state, run_state::RUNNING);
        s.finish_run(id, "b", run_state::SUCCESS, 70).unwrap();
        assert_eq!(s.run(id).unwrap().unwrap().state, run_state::SUCCESS);
        assert_eq!(s.last_scheduled("d").unwrap(), Some(100));
        assert!(s.mark_alert("k", 1).unwrap());
        assert!(!s.mark_alert("k", 2).unwrap());
        assert!(s.resolve_alert("k").unwrap());
    }
}
