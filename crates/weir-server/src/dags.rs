//! `/v1/dags...`: DAGs, their runs with task states, attempts (with logs) and check results,
//! and triggering a run (the running scheduler picks it up).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use weir_core::ErrorKind;
use weir_orchestrator::Weir;
use weir_orchestrator::dag::Orchestrator;

use crate::ApiError;

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

pub async fn list(State(weir): State<Arc<Weir>>) -> Result<Response, ApiError> {
    let o = orch(&weir)?;
    let mut out = Vec::new();
    for (name, d) in &weir.project().config.dags {
        let last = o.store().runs(Some(name), 1).map_err(store_err)?;
        out.push(json!({
            "name": name,
            "schedule": d.schedule,
            "timezone": d.timezone,
            "tasks": d.tasks.len(),
            "last_run": last.first(),
        }));
    }
    Ok(axum::Json(json!({ "dags": out })).into_response())
}

pub async fn show(
    State(weir): State<Arc<Weir>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    orch(&weir)?;
    dag_exists(&weir, &name)?;
    Ok(
        axum::Json(json!({ "name": name, "config": weir.project().config.dags[&name] }))
            .into_response(),
    )
}

#[derive(Deserialize)]
pub struct RunsQuery {
    limit: Option<usize>,
}

pub async fn runs(
    State(weir): State<Arc<Weir>>,
    Path(name): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<Response, ApiError> {
    let o = orch(&weir)?;
    dag_exists(&weir, &name)?;
    let mut out = Vec::new();
    for r in o
        .store()
        .runs(Some(&name), q.limit.unwrap_or(25))
        .map_err(store_err)?
    {
        let tasks = o.store().tasks(r.id).map_err(store_err)?;
        out.push(json!({ "run": r, "tasks": tasks }));
    }
    Ok(axum::Json(json!({ "runs": out })).into_response())
}

#[derive(Deserialize, Default)]
struct TriggerRequest {
    /// Logical date, YYYY-MM-DD (default: today, UTC).
    date: Option<String>,
}

pub async fn trigger(
    State(weir): State<Arc<Weir>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let o = orch(&weir)?;
    dag_exists(&weir, &name)?;
    let req: TriggerRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TriggerRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::User,
                format!("expected a JSON body {{\"date\": \"YYYY-MM-DD\"}}: {e}"),
            )
        })?
    };
    let date = match &req.date {
        Some(d) => weir_orchestrator::dag::schedule::parse_date(d)
            .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, ErrorKind::User, m))?,
        None => chrono::Utc::now().date_naive(),
    };
    let t = o.logical_time(&name, date).map_err(store_err)?;
    let id = o
        .trigger(&name, t, "manual")
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, ErrorKind::User, e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "run_id": id, "dag": name, "logical_date": date.to_string(), "state": "queued" })),
    )
        .into_response())
}

pub async fn run(State(weir): State<Arc<Weir>>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let o = orch(&weir)?;
    let s = o.store();
    let r = s.run(id).map_err(store_err)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::User,
            format!("no run {id}"),
        )
    })?;
    Ok(axum::Json(json!({
        "run": r,
        "tasks": s.tasks(id).map_err(store_err)?,
        "attempts": s.attempts(id).map_err(store_err)?,
        "checks": s.checks(id).map_err(store_err)?,
    }))
    .into_response())
}
