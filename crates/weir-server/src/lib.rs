//! weir's HTTP server: `app(weir) -> Router` with the REST API (ingest, query, status, the
//! dashboard's pipeline, tables, quality, logs, config and live-stream endpoints, DAGs), its
//! OpenAPI document, `/metrics` and the dashboard. Every API route and its documentation are
//! listed once, in `routes.rs`. Tests drive the router without a socket; [`serve`] binds it.
//!
//! Errors are JSON `{"error": "...", "kind": "user|external|internal"}` with a 4xx status
//! for the caller's mistakes and 5xx for ours.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use weir_connectors::SourceConfig;
use weir_core::ErrorKind;
use weir_orchestrator::Weir;
use weir_orchestrator::runtime::IngestError;

pub mod auth;
mod catalog;
mod dags;
pub mod dlq;
pub mod listen;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod pg;
mod pipeline;
mod quality;
pub mod registry;
pub mod routes;
mod settings;
mod stream;
mod tables;
mod ui;

/// A JSON error response.
pub struct ApiError {
    status: StatusCode,
    kind: ErrorKind,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    fn from_kind(kind: ErrorKind, message: String) -> Self {
        let status = match kind {
            ErrorKind::User => StatusCode::BAD_REQUEST,
            ErrorKind::External => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, kind, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "kind": self.kind});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// What every handler can reach: the project, and the server's live state (the sampler behind
/// `/v1/stream`, cached table snapshots). Handlers that need only the project extract
/// `State<Arc<Weir>>`.
#[derive(Clone)]
pub struct AppState {
    pub weir: Arc<Weir>,
    pub(crate) live: Arc<Live>,
}

pub(crate) struct Live {
    pub sampler: Arc<stream::Sampler>,
    pub tables: weir_lake::TableInspector,
}

impl AppState {
    pub fn new(weir: Arc<Weir>) -> Self {
        let live = Arc::new(Live {
            sampler: Arc::default(),
            tables: weir_lake::TableInspector::new(weir.lake().clone()),
        });
        Self { weir, live }
    }
}

impl FromRef<AppState> for Arc<Weir> {
    fn from_ref(s: &AppState) -> Self {
        s.weir.clone()
    }
}

/// A `limit` query parameter: absent → `default`; an integer → clamped to `1..=max`; anything
/// else → 400 naming the parameter.
pub(crate) fn parse_limit(
    value: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let Some(v) = value else {
        return Ok(default);
    };
    let n: i64 = v.trim().parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::User,
            format!("query parameter `limit` must be an integer from 1 to {max}, got `{v}`"),
        )
    })?;
    Ok(usize::try_from(n.max(1)).unwrap_or(max).min(max))
}

/// A query string that does not parse.
pub(crate) fn query_error(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorKind::User,
        format!("bad query string: {}", e.body_text()),
    )
}

/// The router over a running project.
pub fn app(weir: Arc<Weir>) -> Router {
    let body_limit = weir
        .project()
        .config
        .sources
        .values()
        .filter_map(|s| match s {
            SourceConfig::Http(h) => Some(h.max_body_size.0),
            _ => None,
        })
        .max()
        .unwrap_or(64 << 20);
    let state = AppState::new(weir);
    // Sampling starts with the server, so that /v1/stream has history when a browser opens.
    state.live.sampler.ensure_started(&state.weir);
    routes::router()
        .route("/", get(ui::index))
        .route("/assets/{*path}", get(ui::asset))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(
            usize::try_from(body_limit).unwrap_or(usize::MAX),
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::User,
        "no such endpoint; GET /v1/openapi.json lists them all",
    )
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn ready(State(weir): State<Arc<Weir>>) -> Response {
    let st = weir.pipeline_status();
    match st.error {
        Some(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::External,
            format!("pipeline stopped: {e}"),
        )
        .into_response(),
        None if weir.stopping() => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::External,
            "shutting down",
        )
        .into_response(),
        None => axum::Json(json!({"status": "ready"})).into_response(),
    }
}

async fn status(State(weir): State<Arc<Weir>>) -> impl IntoResponse {
    axum::Json(weir.status_json())
}

async fn ingest(
    State(weir): State<Arc<Weir>>,
    Path(name): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| {
        let status = e.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("body is over the largest accepted size for source `{name}` (max_body_size)")
        } else {
            format!("cannot read the request body: {e}")
        };
        ApiError::new(status, ErrorKind::User, message)
    })?;
    if let Some(SourceConfig::Http(h)) = weir.project().config.sources.get(&name)
        && body.len() as u64 > h.max_body_size.0
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::User,
            format!(
                "body of {} bytes is over source `{name}`'s max_body_size of {}",
                body.len(),
                h.max_body_size
            ),
        ));
    }
    let w = weir.clone();
    let n = name.clone();
    let result = tokio::task::spawn_blocking(move || w.ingest(&n, &body))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Internal,
                format!("ingest task failed: {e}"),
            )
        })?;
    match result {
        Ok(r) => {
            Ok(axum::Json(json!({"accepted": r.accepted, "rejected": r.rejected})).into_response())
        }
        Err(IngestError::UnknownSource(..)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::User,
            result.err().map(|e| e.to_string()).unwrap_or_default(),
        )),
        Err(e @ IngestError::Overloaded { .. }) => {
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::External,
                e.to_string(),
            );
            err.retry_after = Some(1);
            Err(err)
        }
        Err(IngestError::Source(e)) => Err(ApiError::from_kind(e.kind(), e.to_string())),
    }
}

#[derive(Deserialize)]
struct QueryRequest {
    sql: String,
}

async fn query(State(weir): State<Arc<Weir>>, body: Bytes) -> Result<Response, ApiError> {
    let req: QueryRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::User,
            format!("expected a JSON body {{\"sql\": \"...\"}}: {e}"),
        )
    })?;
    let views = batch_views(&weir);
    let (session, _) = weir_sql::query::QuerySession::try_new(weir.lake().clone(), &views)
        .await
        .map_err(|e| ApiError::from_kind(e.kind(), e.to_string()))?;
    let rows = session
        .run(&req.sql)
        .await
        .map_err(|e| ApiError::from_kind(e.kind(), e.to_string()))?;
    let json = weir_sql::format::to_json(&rows)
        .map_err(|e| ApiError::from_kind(e.kind(), e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The project's batch tables as (name, SQL) views.
pub fn batch_views(weir: &Weir) -> Vec<(String, String)> {
    weir_orchestrator::config::batch_views(weir.project())
}

/// Binds `listen` and serves until `shutdown` resolves.
pub async fn serve(
    weir: Arc<Weir>,
    listen: &str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let router = app(weir);
    tracing::info!(%addr, "serving HTTP");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    Ok(addr)
}
