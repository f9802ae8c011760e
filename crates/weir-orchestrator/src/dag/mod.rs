//! DAG orchestration, in-process: `[dags.*]` in weir.toml, cron schedules with catchup,
//! manual triggers and backfills, task retries with exponential backoff and jitter, timeouts,
//! concurrency limits, upstream-failed propagation, table checks and alerts. Runs, task
//! instances, attempts and check results live in the [`store::MetaStore`].
//!
//! [`Orchestrator`] is the one entry point: the scheduler loop (`weir run`) and the `weir dag`
//! commands both create runs in the store and execute the runs they claim. A task hands off to
//! its downstream tasks through an in-memory channel, so the handoff costs microseconds plus
//! two store writes, not a scheduler poll.

pub mod alerts;
pub mod checks;
pub mod config;
pub mod rules;
pub mod schedule;
pub mod store;
pub mod tasks;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::Semaphore;
use weir_lake::Lake;

use crate::config::Project;
use crate::dag::alerts::{Alert, Alerter};
use crate::dag::config::{DagConfig, TaskKind, topo_order};
use crate::dag::schedule::Schedule;
use crate::dag::store::{
    AttemptRow, MetaStore, RunRow, SqliteStore, TaskRow, run_state, task_state,
};
use crate::dag::tasks::{TaskContext, run_attempt};
use crate::error::{OrchestratorError, Result};

/// A run whose heartbeat is older than this is taken over by another process.
const STALE_AFTER_US: i64 = 15_000_000;
const HEARTBEAT: Duration = Duration::from_secs(3);
/// Most runs catchup creates for one DAG in one pass (the newest are kept).
const MAX_CATCHUP: usize = 10_000;

fn now_us() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A random number from the standard library's randomly keyed hasher (enough for jitter and
/// nonces; not for cryptography).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us().unsigned_abs());
    h.finish()
}

fn to_dt(us: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default()
}

/// Delay before retry number `retry` (1 = the first retry): `base · 2^(retry−1)`, plus up to
/// half of that again at random, so delays grow strictly and retries of many tasks spread out.
pub fn backoff(base: Duration, retry: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.saturating_sub(1).min(20));
    let jitter = (random_u64() % 1000) as f64 / 2000.0;
    exp + exp.mul_f64(jitter)
}

/// A first attempt recorded as running by [`Orchestrator::launch`], with its execution slot.
struct Started {
    permit: tokio::sync::OwnedSemaphorePermit,
    attempt: AttemptRow,
}

/// Marks `row` as running its next attempt from `now`; returns that attempt's record.
fn begin_attempt(row: &mut TaskRow, now: i64) -> AttemptRow {
    row.tries += 1;
    row.state = task_state::RUNNING.into();
    row.started_us = Some(now);
    row.ended_us = None;
    AttemptRow {
        run_id: row.run_id,
        task_id: row.task_id.clone(),
        try_number: row.tries,
        state: task_state::RUNNING.into(),
        started_us: now,
        ended_us: None,
        error: None,
        log: String::new(),
    }
}

/// The final state of a run executed here.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub run_id: i64,
    pub state: String,
}

/// Executes DAG runs of one project.
pub struct Orchestrator {
    project: Project,
    lake: Lake,
    store: Arc<dyn MetaStore>,
    alerter: Alerter,
    owner: String,
    slots: Arc<Semaphore>,
    runs: Arc<Semaphore>,
}

impl Orchestrator {
    /// Opens the project's metadata store (`<data_dir>/meta.sqlite`).
    pub fn open(project: Project) -> Result<Arc<Self>> {
        let lake = project.open_lake()?;
        let store: Arc<dyn MetaStore> =
            Arc::new(SqliteStore::open(&project.data_dir().join("meta.sqlite"))?);
        let alerter = Alerter::new(project.config.alerts.clone(), store.clone());
        let o = &project.config.orchestrator;
        let slots = Arc::new(Semaphore::new(o.max_parallel_tasks.max(1)));
        let runs = Arc::new(Semaphore::new(o.max_active_runs.max(1)));
        let owner = format!("{}:{}:{}", host(), std::process::id(), random_u64() as u32);
        Ok(Arc::new(Self {
            project,
            lake,
            store,
            alerter,
            owner,
            slots,
            runs,
        }))
    }

    pub fn alerter(&self) -> &Alerter {
        &self.alerter
    }

    pub fn store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    fn dag(&self, name: &str) -> Result<&DagConfig> {
        self.project
            .config
            .dags
            .get(name)
            .ok_or_else(|| OrchestratorError::Dag {
                reason: format!(
                    "no DAG named `{name}` (DAGs: {})",
                    self.project
                        .config
                        .dags
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    fn schedule_of(&self, dag: &DagConfig) -> Option<Schedule> {
        dag.schedule
            .as_ref()
            .and_then(|s| Schedule::try_new(s, &dag.timezone).ok())
    }

    /// The logical time of a run on `date`: the first schedule tick of that day (so manual
    /// runs and scheduled runs of one date are the same run), or midnight without a schedule.
    pub fn logical_time(&self, dag: &str, date: NaiveDate) -> Result<DateTime<Utc>> {
        let d = self.dag(dag)?;
        let tz =
            schedule::parse_tz(&d.timezone).map_err(|reason| OrchestratorError::Dag { reason })?;
        Ok(match self.schedule_of(d) {
            Some(s) => s
                .next_tick(s.day_start(date), true)
                .filter(|t| s.date_of(*t) == date)
                .unwrap_or_else(|| s.day_start(date)),
            None => {
                let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
                chrono::TimeZone::from_local_datetime(&tz, &midnight)
                    .earliest()
                    .map_or_else(|| to_dt(0), |t| t.with_timezone(&Utc))
            }
        })
    }

    fn date_of(&self, dag: &DagConfig, t: DateTime<Utc>) -> String {
        let tz = schedule::parse_tz(&dag.timezone).unwrap_or(chrono_tz::UTC);
        t.with_timezone(&tz).date_naive().to_string()
    }

    /// Creates a run of `dag` at logical time `t`; an existing run there is an error naming it.
    pub fn trigger(&self, dag: &str, t: DateTime<Utc>, kind: &str) -> Result<i64> {
        let d = self.dag(dag)?;
        let date = self.date_of(d, t);
        match self
            .store
            .create_run(dag, t.timestamp_micros(), &date, kind, now_us())?
        {
            Some(id) => Ok(id),
            None => {
                let r = self.store.run_at(dag, t.timestamp_micros())?;
                Err(OrchestratorError::Dag {
                    reason: format!(
                        "DAG `{dag}` already has a run for {date} (run {}, {}); `weir dag clear {}` runs it again",
                        r.as_ref().map_or(0, |r| r.id),
                        r.as_ref().map_or("?", |r| r.state.as_str()),
                        r.as_ref().map_or(0, |r| r.id),
                    ),
                })
            }
        }
    }

    /// Creates the runs of `dag` for every logical date in `from..=to` that has none yet;
    /// returns every run id of the range, oldest first (existing ones included).
    pub fn backfill_runs(&self, dag: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<i64>> {
        let d = self.dag(dag)?;
        let times: Vec<DateTime<Utc>> = match self.schedule_of(d) {
            Some(s) => s.between_dates(from, to),
            None => from
                .iter_days()
                .take_while(|x| *x <= to)
                .map(|x| self.logical_time(dag, x))
                .collect::<Result<_>>()?,
        };
        let mut ids = Vec::new();
        for t in times {
            let date = self.date_of(d, t);
            let us = t.timestamp_micros();
            let id = match self
                .store
                .create_run(dag, us, &date, "backfill", now_us())?
            {
                Some(id) => id,
                None => self.store.run_at(dag, us)?.map_or(0, |r| r.id),
            };
            ids.push(id);
        }
        Ok(ids)
    }

    /// Creates the scheduled runs that are due by `now`: with catchup, every missed interval
    /// since `start` (or the last scheduled run); without, only the latest. Returns how many
    /// were created. Creating is idempotent, so a restarted scheduler creates none twice.
    pub fn schedule_due(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut created = 0;
        for (name, d) in &self.project.config.dags {
            let Some(s) = self.schedule_of(d) else {
                continue;
            };
            let start = d
                .start
                .as_deref()
                .and_then(|x| schedule::parse_date(x).ok())
                .map(|x| s.day_start(x));
            let last = self.store.last_scheduled(name)?.map(to_dt);
            let due: Vec<(DateTime<Utc>, &str)> = if d.catchup {
                let from = match (last, start) {
                    (Some(l), _) => s.next_tick(l, false),
                    (None, st) => st,
                };
                let Some(from) = from else { continue };
                let mut v: Vec<(DateTime<Utc>, &str)> = s
                    .due(from, now, MAX_CATCHUP)
                    .into_iter()
                    .map(|t| (t, "catchup"))
                    .collect();
                if let Some(l) = v.last_mut() {
                    l.1 = "scheduled";
                }
                v
            } else {
                match s.latest_due(now) {
                    Some(t) if start.is_none_or(|st| t >= st) && last.is_none_or(|l| t > l) => {
                        vec![(t, "scheduled")]
                    }
                    _ => Vec::new(),
                }
            };
            for (t, kind) in due {
                let date = self.date_of(d, t);
                if self
                    .store
                    .create_run(name, t.timestamp_micros(), &date, kind, now_us())?
                    .is_some()
                {
                    created += 1;
                }
            }
        }
        Ok(created)
    }

    /// Claims and starts every claimable run that the concurrency limits allow; returns the
    /// handles of the runs started.
    pub fn start_claimable(
        self: &Arc<Self>,
        only: Option<&BTreeSet<i64>>,
    ) -> Result<Vec<tokio::task::JoinHandle<Result<RunOutcome>>>> {
        let mut started = Vec::new();
        let stale = now_us() - STALE_AFTER_US;
        // Every queued and running run; a running one is taken over when its owner stopped
        // heartbeating or, on this host, its process is gone.
        for run in self.store.claimable_runs(i64::MAX)? {
            if only.is_some_and(|o| !o.contains(&run.id)) {
                continue;
            }
            let bound = if run.state == run_state::QUEUED || run.heartbeat_us.unwrap_or(0) < stale {
                stale
            } else if run.owner.as_deref().is_some_and(owner_gone) {
                i64::MAX
            } else {
                continue;
            };
            let Ok(d) = self.dag(&run.dag) else {
                continue; // a DAG removed from the config: its runs stay as they are
            };
            let counted_self =
                run.state == run_state::RUNNING && run.heartbeat_us.unwrap_or(0) >= stale;
            let active = self.store.active_runs(&run.dag, stale)?;
            if active.saturating_sub(usize::from(counted_self)) >= d.max_active_runs {
                continue;
            }
            let Ok(permit) = self.runs.clone().try_acquire_owned() else {
                break;
            };
            if !self.store.claim_run(run.id, &self.owner, now_us(), bound)? {
                continue;
            }
            let me = self.clone();
            started.push(tokio::spawn(async move {
                let _permit = permit;
                me.execute(run.id).await
            }));
        }
        Ok(started)
    }

    /// Runs the claimed run `run_id` to its end.
    async fn execute(self: Arc<Self>, run_id: i64) -> Result<RunOutcome> {
        let run = self
            .store
            .run(run_id)?
            .ok_or_else(|| OrchestratorError::Dag {
                reason: format!("run {run_id} does not exist"),
            })?;
        let dag = Arc::new(self.dag(&run.dag)?.clone());
        let heart = {
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    if let Err(e) = me.store.heartbeat(run_id, &me.owner, now_us()) {
                        tracing::warn!(error = %e, run_id, "heartbeat failed");
                    }
                }
            })
        };
        let result = self.drive(&run, &dag).await;
        heart.abort();
        let state = match &result {
            Ok(true) => run_state::SUCCESS,
            _ => run_state::FAILED,
        };
        self.store
            .finish_run(run_id, &self.owner, state, now_us())?;
        let alert = |event: &str, error: Option<String>| Alert {
            event: event.into(),
            dag: run.dag.clone(),
            task: None,
            run_id: Some(run_id),
            logical_date: Some(run.logical_date.clone()),
            error,
            resolved: false,
        };
        let key = format!("run_failed:{}:{}", run.dag, run.logical_date);
        if state == run_state::FAILED {
            let error = match &result {
                Err(e) => Some(e.to_string()),
                _ => Some("a task failed".into()),
            };
            self.alerter.fire(&key, alert("run_failed", error));
        } else {
            self.alerter.resolve(&key, alert("run_failed", None));
        }
        result?;
        Ok(RunOutcome {
            run_id,
            state: state.into(),
        })
    }

    /// Runs the tasks of `run` in dependency order; true when all succeeded.
    async fn drive(self: &Arc<Self>, run: &RunRow, dag: &Arc<DagConfig>) -> Result<bool> {
        let order = topo_order(&dag.tasks).map_err(|reason| OrchestratorError::Dag { reason })?;
        let index: BTreeMap<&str, usize> = dag
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        let mut down: Vec<Vec<usize>> = vec![Vec::new(); dag.tasks.len()];
        for (i, t) in dag.tasks.iter().enumerate() {
            for a in &t.after {
                down[index[a.as_str()]].push(i);
            }
        }
        let known: BTreeMap<String, TaskRow> = self
            .store
            .tasks(run.id)?
            .into_iter()
            .map(|t| (t.task_id.clone(), t))
            .collect();
        let mut rows: Vec<TaskRow> = dag
            .tasks
            .iter()
            .map(|t| {
                known.get(&t.id).cloned().unwrap_or(TaskRow {
                    run_id: run.id,
                    task_id: t.id.clone(),
                    state: task_state::NONE.into(),
                    tries: 0,
                    started_us: None,
                    ended_us: None,
                })
            })
            .collect();
        // Tasks left running by a process that died: that attempt failed by restart.
        for (i, r) in rows.iter_mut().enumerate() {
            if r.state == task_state::RUNNING {
                let t = &dag.tasks[i];
                let attempt = AttemptRow {
                    run_id: run.id,
                    task_id: t.id.clone(),
                    try_number: r.tries,
                    state: task_state::FAILED.into(),
                    started_us: r.started_us.unwrap_or_else(now_us),
                    ended_us: Some(now_us()),
                    error: Some("failed by restart: the process running it stopped".into()),
                    log: String::new(),
                };
                self.store.put_attempt(&attempt)?;
                r.state = if r.tries <= t.retries {
                    task_state::UP_FOR_RETRY.into()
                } else {
                    task_state::FAILED.into()
                };
                r.ended_us = Some(now_us());
                self.store.put_task(r)?;
            }
        }
        // Upstream-failed first, in topological order.
        for &i in &order {
            let failed_up = dag.tasks[i].after.iter().any(|a| {
                let s = rows[index[a.as_str()]].state.as_str();
                s == task_state::FAILED || s == task_state::UPSTREAM_FAILED
            });
            if failed_up && rows[i].state != task_state::SUCCESS {
                rows[i].state = task_state::UPSTREAM_FAILED.into();
                self.store.put_task(&rows[i])?;
            }
        }
        let ready = |rows: &[TaskRow], i: usize| {
            let s = rows[i].state.as_str();
            (s == task_state::NONE || s == task_state::UP_FOR_RETRY)
                && dag.tasks[i]
                    .after
                    .iter()
                    .all(|a| rows[index[a.as_str()]].state == task_state::SUCCESS)
        };
        let mut set = tokio::task::JoinSet::new();
        let mut launched = vec![false; dag.tasks.len()];
        let first: Vec<usize> = (0..dag.tasks.len()).filter(|&i| ready(&rows, i)).collect();
        self.launch(&mut set, run, dag, &rows, &mut launched, first)?;
        while let Some(done) = set.join_next().await {
            let (i, row) = done.map_err(|e| OrchestratorError::Dag {
                reason: format!("a task of run {} panicked: {e}", run.id),
            })??;
            rows[i] = row;
            if rows[i].state == task_state::SUCCESS {
                let wave: Vec<usize> = down[i]
                    .iter()
                    .copied()
                    .filter(|&d| !launched[d] && ready(&rows, d))
                    .collect();
                self.launch(&mut set, run, dag, &rows, &mut launched, wave)?;
            } else {
                let mut stack = down[i].clone();
                while let Some(d) = stack.pop() {
                    if rows[d].state != task_state::UPSTREAM_FAILED {
                        rows[d].state = task_state::UPSTREAM_FAILED.into();
                        self.store.put_task(&rows[d])?;
                        stack.extend(down[d].iter().copied());
                    }
                }
            }
        }
        Ok(rows.iter().all(|r| r.state == task_state::SUCCESS))
    }

    /// Starts the tasks of `wave`. Fresh tasks that get an execution slot at once are
    /// recorded as running in one store transaction, so a task finishing hands off to many
    /// downstream tasks in one write, not one per task.
    #[allow(clippy::type_complexity)]
    fn launch(
        self: &Arc<Self>,
        set: &mut tokio::task::JoinSet<Result<(usize, TaskRow)>>,
        run: &RunRow,
        dag: &Arc<DagConfig>,
        rows: &[TaskRow],
        launched: &mut [bool],
        wave: Vec<usize>,
    ) -> Result<()> {
        let mut started = Vec::new();
        let mut later = Vec::new();
        let now = now_us();
        for i in wave {
            launched[i] = true;
            let fresh = rows[i].state == task_state::NONE;
            match (fresh, self.slots.clone().try_acquire_owned()) {
                (true, Ok(permit)) => {
                    let mut row = rows[i].clone();
                    let attempt = begin_attempt(&mut row, now);
                    started.push((i, permit, row, attempt));
                }
                _ => later.push(i),
            }
        }
        if !started.is_empty() {
            let records: Vec<(TaskRow, AttemptRow)> = started
                .iter()
                .map(|(_, _, r, a)| (r.clone(), a.clone()))
                .collect();
            self.store.put_task_attempts(&records)?;
        }
        for (i, permit, row, attempt) in started {
            set.spawn(self.clone().run_task(
                run.clone(),
                dag.clone(),
                i,
                row,
                Some(Started { permit, attempt }),
            ));
        }
        for i in later {
            set.spawn(
                self.clone()
                    .run_task(run.clone(), dag.clone(), i, rows[i].clone(), None),
            );
        }
        Ok(())
    }

    /// Runs task `i` of `run` through its attempts; returns its final row. `pre` is a first
    /// attempt already recorded as running, with its slot.
    async fn run_task(
        self: Arc<Self>,
        run: RunRow,
        dag: Arc<DagConfig>,
        i: usize,
        mut row: TaskRow,
        mut pre: Option<Started>,
    ) -> Result<(usize, TaskRow)> {
        let t = &dag.tasks[i];
        let kind: TaskKind = t
            .kind()
            .map_err(|reason| OrchestratorError::Dag { reason })?;
        let ctx = TaskContext {
            dag: run.dag.clone(),
            task: t.id.clone(),
            run_id: run.id,
            ds: run.logical_date.clone(),
            ts: to_dt(run.logical_us).to_rfc3339(),
        };
        let max_tries = t.retries + 1;
        loop {
            let (permit, mut attempt) = match pre.take() {
                Some(p) => (p.permit, p.attempt),
                None => {
                    if row.tries > 0 {
                        tokio::time::sleep(backoff(t.retry_delay.0, row.tries)).await;
                    }
                    let permit = self.slots.clone().acquire_owned().await.map_err(|_| {
                        OrchestratorError::Dag {
                            reason: "the orchestrator is shutting down".into(),
                        }
                    })?;
                    let attempt = begin_attempt(&mut row, now_us());
                    self.store.put_task_attempt(&row, &attempt)?;
                    (permit, attempt)
                }
            };
            let work = run_attempt(&self.project, &self.lake, &self.store, &kind, &ctx);
            let result = match t.timeout {
                Some(limit) => match tokio::time::timeout(limit.0, work).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("timed out after {limit}")),
                },
                None => work.await,
            };
            drop(permit);
            let ended = now_us();
            attempt.ended_us = Some(ended);
            row.ended_us = Some(ended);
            match result {
                Ok(log) => {
                    attempt.state = task_state::SUCCESS.into();
                    attempt.log = log;
                    row.state = task_state::SUCCESS.into();
                    self.store.put_task_attempt(&row, &attempt)?;
                    return Ok((i, row));
                }
                Err(error) => {
                    attempt.state = task_state::FAILED.into();
                    let first_line = error.lines().next().unwrap_or_default().to_owned();
                    attempt.log = error.clone();
                    attempt.error = Some(first_line.clone());
                    let last = row.tries >= max_tries;
                    row.state = if last {
                        task_state::FAILED.into()
                    } else {
                        task_state::UP_FOR_RETRY.into()
                    };
                    self.store.put_task_attempt(&row, &attempt)?;
                    tracing::warn!(
                        dag = run.dag,
                        task = t.id,
                        run_id = run.id,
                        attempt = row.tries,
                        error = first_line,
                        "task attempt failed"
                    );
                    let alert = |event: &str| Alert {
                        event: event.into(),
                        dag: run.dag.clone(),
                        task: Some(t.id.clone()),
                        run_id: Some(run.id),
                        logical_date: Some(run.logical_date.clone()),
                        error: Some(clip(&error, 1000)),
                        resolved: false,
                    };
                    let is_check = matches!(kind, TaskKind::Check(_));
                    if last {
                        let event = if is_check {
                            "check_failed"
                        } else if t.retries > 0 {
                            "retries_exhausted"
                        } else {
                            "task_failed"
                        };
                        self.alerter.fire(
                            &format!("{event}:{}:{}:{}", run.dag, run.id, t.id),
                            alert(event),
                        );
                        return Ok((i, row));
                    }
                    self.alerter.fire(
                        &format!("task_failed:{}:{}:{}:{}", run.dag, run.id, t.id, row.tries),
                        alert("task_failed"),
                    );
                }
            }
        }
    }

    /// Data-aware triggers: a DAG with `on_commit = "t"` gets a run once table `t` has a new
    /// Delta version and no newer one for `debounce`. Commits made before this process
    /// started do not trigger. Returns the runs created.
    pub fn trigger_on_commit(
        &self,
        watch: &mut CommitWatch,
        now: std::time::Instant,
    ) -> Result<Vec<i64>> {
        let mut created = Vec::new();
        for (name, d) in &self.project.config.dags {
            let Some(table) = &d.on_commit else { continue };
            let version = self.lake.latest_version(table);
            let w = watch.tables.entry(name.clone()).or_insert(WatchState {
                triggered: version,
                seen: version,
                changed_at: now,
            });
            if version != w.seen {
                w.seen = version;
                w.changed_at = now;
            }
            if w.seen > w.triggered && now.duration_since(w.changed_at) >= d.debounce.0 {
                w.triggered = w.seen;
                let t = Utc::now();
                let date = self.date_of(d, t);
                if let Some(id) = self.store.create_run(
                    name,
                    t.timestamp_micros(),
                    &date,
                    "on_commit",
                    now_us(),
                )? {
                    tracing::info!(
                        dag = name,
                        table,
                        version,
                        run_id = id,
                        "table committed: run queued"
                    );
                    created.push(id);
                }
            }
        }
        Ok(created)
    }

    /// Sends SLA alerts for runs that have not succeeded `sla` after their scheduled time.
    pub fn check_slas(&self, now: DateTime<Utc>) -> Result<()> {
        for (name, d) in &self.project.config.dags {
            let (Some(sla), Some(s)) = (d.sla, self.schedule_of(d)) else {
                continue;
            };
            for r in self.store.runs(Some(name), 50)? {
                if r.state == run_state::SUCCESS {
                    continue;
                }
                let Some(due) = s.next_tick(to_dt(r.logical_us), false) else {
                    continue;
                };
                let late = now - due;
                if late.to_std().is_ok_and(|l| l > sla.0) {
                    self.alerter.fire(
                        &format!("sla_missed:{name}:{}", r.logical_date),
                        Alert {
                            event: "sla_missed".into(),
                            dag: name.clone(),
                            task: None,
                            run_id: Some(r.id),
                            logical_date: Some(r.logical_date.clone()),
                            error: Some(format!(
                                "not done {} after its scheduled time {} (SLA {sla}); state {}",
                                humanize(late.num_seconds()),
                                due.to_rfc3339(),
                                r.state
                            )),
                            resolved: false,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// The scheduler loop of `weir run`: creates due runs, starts what the limits allow, checks
    /// SLAs; returns when `stop` is set (runs in flight are left to be taken over at the next
    /// start, like after a crash).
    pub async fn serve(self: Arc<Self>, stop: Arc<std::sync::atomic::AtomicBool>) {
        let mut handles: Vec<tokio::task::JoinHandle<Result<RunOutcome>>> = Vec::new();
        let mut watch = CommitWatch::default();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let now = Utc::now();
            if let Err(e) = self.schedule_due(now) {
                tracing::error!(error = %e, "scheduling runs failed");
            }
            if let Err(e) = self.trigger_on_commit(&mut watch, std::time::Instant::now()) {
                tracing::error!(error = %e, "data-aware triggers failed");
            }
            match self.start_claimable(None) {
                Ok(h) => handles.extend(h),
                Err(e) => tracing::error!(error = %e, "starting runs failed"),
            }
            if let Err(e) = self.check_slas(now) {
                tracing::warn!(error = %e, "SLA check failed");
            }
            handles.retain(|h| !h.is_finished());
            for _ in 0..5 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Executes the runs `ids` here (claiming each when the limits allow; a run another
    /// process holds is waited for), calling `progress(done, total)` as runs end. Returns the
    /// final state of each run.
    pub async fn execute_runs(
        self: &Arc<Self>,
        ids: &[i64],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<RunRow>> {
        let wanted: BTreeSet<i64> = ids.iter().copied().collect();
        let mut handles = Vec::new();
        loop {
            handles.extend(self.start_claimable(Some(&wanted))?);
            let mut done = 0;
            let mut rows = Vec::new();
            for id in ids {
                if let Some(r) = self.store.run(*id)? {
                    if r.state == run_state::SUCCESS || r.state == run_state::FAILED {
                        done += 1;
                    }
                    rows.push(r);
                }
            }
            progress(done, ids.len());
            if done == ids.len() {
                for h in handles {
                    if let Ok(Err(e)) = h.await {
                        tracing::warn!(error = %e, "a run ended with an error");
                    }
                }
                return Ok(rows);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with "…" when cut.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.trim_end().to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Whether `owner` ("host:pid:nonce") is a process of this host that no longer exists.
fn owner_gone(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(h), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    h == host()
        && pid.parse::<u32>().is_ok_and(|p| p != std::process::id())
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// What the data-aware triggers have seen, per DAG.
#[derive(Debug, Default)]
pub struct CommitWatch {
    tables: BTreeMap<String, WatchState>,
}

#[derive(Debug)]
struct WatchState {
    /// The version the last run was created for.
    triggered: i64,
    /// The newest version seen.
    seen: i64,
    changed_at: std::time::Instant,
}

fn humanize(secs: i64) -> String {
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_delays_grow() {
        let base = Duration::from_millis(100);
        for _ in 0..100 {
            let d: Vec<Duration> = (1..=4).map(|r| backoff(base, r)).collect();
            assert!(d[0] >= base && d[0] < base * 3 / 2, "{d:?}");
            assert!(d.windows(2).all(|w| w[1] > w[0]), "{d:?}");
        }
    }
}
