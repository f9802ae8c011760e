//! `/v1/dags...`: DAGs, their runs with task states, attempts (with logs) and check results,
//! triggering a run and backfilling a date range (the running scheduler picks the queued runs
//! up).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use weir_core::ErrorKind;
use weir_orchestrator::Weir;
use weir_orchestrator::dag::Orchestrator;
use weir_orchestrator::dag::store::{AttemptRow, CheckRow, RunRow, TaskRow};

use crate::openapi::{api_object, api_query};
use crate::{ApiError, parse_limit, query_error};

api_object! {
    /// A DAG run.
    pub struct Run {
        pub id: i64,
        pub dag: String,
        /// Start of the run's interval, µs since the epoch (UTC).
        pub logical_us: i64,
        /// The logical date, YYYY-MM-DD.
        pub logical_date: String,
        /// scheduled, manual, backfill, catchup or on_commit.
        pub kind: String,
        /// queued, running, success or failed.
        pub state: String,
        pub created_us: i64,
        pub started_us: Option<i64>,
        pub ended_us: Option<i64>,
        /// The process running it.
        pub owner: Option<String>,
        pub heartbeat_us: Option<i64>,
    }
}

impl From<RunRow> for Run {
    fn from(r: RunRow) -> Self {
        Run {
            id: r.id,
            dag: r.dag,
            logical_us: r.logical_us,
            logical_date: r.logical_date,
            kind: r.kind,
            state: r.state,
            created_us: r.created_us,
            started_us: r.started_us,
            ended_us: r.ended_us,
            owner: r.owner,
            heartbeat_us: r.heartbeat_us,
        }
    }
}

api_object! {
    /// A task of a run.
    pub struct Task {
        pub run_id: i64,
        pub task_id: String,
        /// none, running, up_for_retry, success, failed or upstream_failed.
        pub state: String,
        /// Attempts made so far.
        pub tries: u32,
        pub started_us: Option<i64>,
        pub ended_us: Option<i64>,
    }
}

impl From<TaskRow> for Task {
    fn from(t: TaskRow) -> Self {
        Task {
            run_id: t.run_id,
            task_id: t.task_id,
            state: t.state,
            tries: t.tries,
            started_us: t.started_us,
            ended_us: t.ended_us,
        }
    }
}

api_object! {
    /// One attempt of a task, with its log.
    pub struct Attempt {
        pub run_id: i64,
        pub task_id: String,
        pub try_number: u32,
        pub state: String,
        pub started_us: i64,
        pub ended_us: Option<i64>,
        pub error: Option<String>,
        pub log: String,
    }
}

impl From<AttemptRow> for Attempt {
    fn from(a: AttemptRow) -> Self {
        Attempt {
            run_id: a.run_id,
            task_id: a.task_id,
            try_number: a.try_number,
            state: a.state,
            started_us: a.started_us,
            ended_us: a.ended_us,
            error: a.error,
            log: a.log,
        }
    }
}

api_object! {
    /// The result of a table check run by a task.
    pub struct Check {
        pub run_id: i64,
        pub task_id: String,
        pub table_name: String,
        pub check_name: String,
        pub passed: bool,
        /// error or warn.
        pub severity: String,
        pub observed: String,
        pub at_us: i64,
    }
}

impl From<CheckRow> for Check {
    fn from(c: CheckRow) -> Self {
        Check {
            run_id: c.run_id,
            task_id: c.task_id,
            table_name: c.table_name,
            check_name: c.check_name,
            passed: c.passed,
            severity: c.severity,
            observed: c.observed,
            at_us: c.at_us,
        }
    }
}

api_object! {
    /// A DAG and its latest run.
    pub struct DagSummary {
        pub name: String,
        /// Cron expression, if scheduled.
        pub schedule: Option<String>,
        pub timezone: String,
        /// Number of tasks.
        pub tasks: u64,
        pub last_run: Option<Run>,
    }
}

api_object! {
    pub struct DagList {
        pub dags: Vec<DagSummary>,
    }
}

api_object! {
    /// A DAG's definition.
    pub struct DagDetail {
        pub name: String,
        /// The `[dags.<name>]` section of weir.toml as JSON.
        pub config: serde_json::Value,
    }
}

api_object! {
    /// A run with its tasks.
    pub struct RunWithTasks {
        pub run: Run,
        pub tasks: Vec<Task>,
    }
}

api_object! {
    /// Runs, newest first.
    pub struct RunList {
        pub runs: Vec<RunWithTasks>,
    }
}

api_object! {
    /// A run with its tasks, attempts and check results.
    pub struct RunDetail {
        pub run: Run,
        pub tasks: Vec<Task>,
        pub attempts: Vec<Attempt>,
        pub checks: Vec<Check>,
    }
}

api_object! {
    /// Body of `POST /v1/dags/{name}/runs` (may be empty).
    pub struct TriggerRequest {
        /// Logical date, YYYY-MM-DD (default: today, UTC).
        pub date: Option<String>,
    }
}

api_object! {
    /// A queued run.
    pub struct Triggered {
        pub run_id: i64,
        pub dag: String,
        pub logical_date: String,
        /// Always `queued`.
        pub state: String,
    }
}

api_object! {
    /// Body of `POST /v1/dags/{name}/backfill`: the logical dates to run, both included.
    pub struct BackfillRequest {
        /// First date, YYYY-MM-DD.
        pub start: String,
        /// Last date, YYYY-MM-DD.
        pub end: String,
    }
}

api_object! {
    /// The runs of a backfill.
    pub struct Backfill {
        pub dag: String,
        pub start: String,
        pub end: String,
        /// Every run of the range, oldest first: created now (queued) or existing already.
        pub run_ids: Vec<i64>,
        /// How many of them this request created.
        pub created: u64,
    }
}

api_query! {
    pub struct RunsQuery {
        /// Most runs to return: 1..=1000 (default 25).
        limit: integer,
    }
}

/// Longest backfill accepted in one request, in days.
const MAX_BACKFILL_DAYS: i64 = 3660;

fn orch(weir: &Weir) -> Result<&Arc<Orchestrator>, ApiError> {
    weir.dags().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::User,
            "this project has no DAGs ([dags.<name>] in weir.toml)",
        )
    })
}

fn store_err(e: weir_orchestrator::OrchestratorError) -> ApiError {
    ApiError::from_kind(e.kind(), e.to_string())
}

fn dag_exists(weir: &Weir, name: &str) -> Result<(), ApiError> {
    if weir.project().config.dags.contains_key(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::User,
            format!("no DAG named `{name}`"),
        ))
    }
}

pub async fn list(State(weir): State<Arc<Weir>>) -> Result<axum::Json<DagList>, ApiError> {
    let o = orch(&weir)?;
    let mut dags = Vec::new();
    for (name, d) in &weir.project().config.dags {
        let last = o.store().runs(Some(name), 1).map_err(store_err)?;
        dags.push(DagSummary {
            name: name.clone(),
            schedule: d.schedule.clone(),
            timezone: d.timezone.clone(),
            tasks: d.tasks.len() as u64,
            last_run: last.into_iter().next().map(Run::from),
        });
    }
    Ok(axum::Json(DagList { dags }))
}

pub async fn show(
    State(weir): State<Arc<Weir>>,
    Path(name): Path<String>,
) -> Result<axum::Json<DagDetail>, ApiError> {
    orch(&weir)?;
    dag_exists(&weir, &name)?;
    let config = serde_json::to_value(&weir.project().config.dags[&name]).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Internal,
            format!("DAG `{name}` did not render as JSON: {e}"),
        )
    })?;
    Ok(axum::Json(DagDetail { name, config }))
}

pub async fn runs(
    State(weir): State<Arc<Weir>>,
    Path(name): Path<String>,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<axum::Json<RunList>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let limit = parse_limit(q.limit.as_deref(), 25, 1000)?;
    let o = orch(&weir)?;
    dag_exists(&weir, &name)?;
    let mut runs = Vec::new();
    for r in o.store().runs(Some(&name), limit).map_err(store_err)? {
        let tasks = o.store().tasks(r.id).map_err(store_err)?;
        runs.push(RunWithTasks {
            run: r.into(),
            tasks: tasks.into_iter().map(Task::from).collect(),
        });
    }
    Ok(axum::Json(RunList { runs }))
}

/// A JSON body of type `T`; an empty body is `T::default()` when `empty` is given.
fn json_body<T: serde::de::DeserializeOwned>(
    body: &Bytes,
    empty: Option<T>,
    shape: &str,
) -> Result<T, ApiError> {
    if let Some(d) = empty
        && body.iter().all(u8::is_ascii_whitespace)
    {
        return Ok(d);
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::User,
            format!("expected a JSON body {shape}: {e}"),
        )
    })
}

fn date(field: &str, value: &str) -> Result<chrono::NaiveDate, ApiError> {
    weir_orchestrator::dag::schedule::parse_date(value).map_err(|m| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::User,
            format!("`{field}`: {m}"),
        )
    })
}

pub async fn trigger(
    State(weir): State<Arc<Weir>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let o = orch(&weir)?;
    dag_exists(&weir, &name)?;
    let req: TriggerRequest = json_body(
        &body,
        Some(TriggerRequest { date: None }),
        "{\"date\": \"YYYY-MM-DD\"}",
    )?;
    let date = match &req.date {
        Some(d) => date("date", d)?,
        None => chrono::Utc::now().date_naive(),
    };
    let t = o.logical_time(&name, date).map_err(store_err)?;
    let id = o
        .trigger(&name, t, "manual")
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, ErrorKind::User, e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Triggered {
            run_id: id,
            dag: name,
            logical_date: date.to_string(),
            state: "queued".into(),
        }),
    )
        .into_response())
}

/// `POST /v1/dags/{name}/backfill`.
pub async fn backfill(
    State(weir): State<Arc<Weir>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let o = orch(&weir)?.clone();
    dag_exists(&weir, &name)?;
    let req: BackfillRequest = json_body(
        &body,
        None,
        "{\"start\": \"YYYY-MM-DD\", \"end\": \"YYYY-MM-DD\"}",
    )?;
    let (from, to) = (date("start", &req.start)?, date("end", &req.end)?);
    if from > to {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::User,
            format!("`start` {from} is after `end` {to}"),
        ));
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_BACKFILL_DAYS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::User,
            format!("{days} days from {from} to {to}: at most {MAX_BACKFILL_DAYS} per request"),
        ));
    }
    let dag = name.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<(Vec<i64>, u64), ApiError> {
        let started_us = chrono::Utc::now().timestamp_micros();
        let ids = o.backfill_runs(&dag, from, to).map_err(store_err)?;
        let mut created = 0;
        for id in &ids {
            if o.store()
                .run(*id)
                .map_err(store_err)?
                .is_some_and(|r| r.created_us >= started_us)
            {
                created += 1;
            }
        }
        Ok((ids, created))
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Internal,
            format!("the backfill stopped: {e}"),
        )
    })?;
    let (ids, created) = result?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Backfill {
            dag: name,
            start: from.to_string(),
            end: to.to_string(),
            run_ids: ids,
            created,
        }),
    )
        .into_response())
}

pub async fn run(
    State(weir): State<Arc<Weir>>,
    Path(id): Path<String>,
) -> Result<axum::Json<RunDetail>, ApiError> {
    let o = orch(&weir)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::User,
            format!("run id must be an integer, got `{id}`"),
        )
    })?;
    let s = o.store();
    let r = s.run(id).map_err(store_err)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::User,
            format!("no run {id}"),
        )
    })?;
    Ok(axum::Json(RunDetail {
        run: r.into(),
        tasks: s
            .tasks(id)
            .map_err(store_err)?
            .into_iter()
            .map(Task::from)
            .collect(),
        attempts: s
            .attempts(id)
            .map_err(store_err)?
            .into_iter()
            .map(Attempt::from)
            .collect(),
        checks: s
            .checks(id)
            .map_err(store_err)?
            .into_iter()
            .map(Check::from)
            .collect(),
    }))
}
