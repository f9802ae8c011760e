//! Every route of the HTTP API with its documentation, in one list: [`router`] serves it and
//! `GET /v1/openapi.json` describes it, so the two cannot drift apart. (The dashboard's `/`
//! and `/assets/*` are added next to it in `lib.rs`; they are not part of the API.)

use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;

use crate::openapi::{ApiSchema, Endpoint, api_object, document};
use crate::{AppState, dags, dlq, logs, pipeline, quality, settings, stream, tables};

api_object! {
    /// Every error: what went wrong, and whose fault it is.
    pub struct ErrorBody {
        /// What went wrong, naming the value at fault.
        pub error: String,
        /// user (4xx: fix the request), external (503: retry later) or internal (500: a bug).
        pub kind: String,
    }
}

api_object! {
    /// A liveness or readiness answer.
    pub struct Health {
        /// ok or ready.
        pub status: String,
    }
}

api_object! {
    /// What an ingest request stored.
    pub struct IngestResult {
        /// Lines appended to the source's log.
        pub accepted: u64,
        /// Lines sent to the dead-letter topic (not UTF-8, too long).
        pub rejected: u64,
    }
}

api_object! {
    /// Body of `POST /v1/query`.
    pub struct QueryRequest {
        /// One SQL statement over the project's tables.
        pub sql: String,
    }
}

/// The API's routes and their documentation.
pub fn endpoints() -> Vec<Endpoint> {
    let mut all = vec![
        Endpoint::get("/health", "Liveness", crate::health)
            .tag("operations")
            .describe("200 while the process serves HTTP.")
            .json::<Health>(200, "The process is up."),
        Endpoint::get("/ready", "Readiness", crate::ready)
            .tag("operations")
            .describe("200 once the pipeline runs; 503 when it stopped on an error or is shutting down.")
            .json::<Health>(200, "The pipeline runs.")
            .errors(&[503]),
        Endpoint::get("/metrics", "Prometheus metrics", crate::metrics::metrics)
            .tag("operations")
            .describe("Sources, tables, pipeline, Delta, latency histogram, DAG runs and memory, in the Prometheus text format 0.0.4.")
            .text("text/plain", None, "The exposition text."),
        Endpoint::get("/v1/status", "Project status", crate::status)
            .tag("operations")
            .describe("Per source the log end offsets, committed offsets and lag; per streaming table its counters and Delta version; the pipeline's batch figures and latency quantiles.")
            .json::<serde_json::Map<String, serde_json::Value>>(200, "Keys: project, uptime_seconds, lag, dead_letters, sources, tables, delta_versions, pipeline."),
        Endpoint::get("/v1/openapi.json", "This document", openapi_json)
            .tag("operations")
            .json::<serde_json::Map<String, serde_json::Value>>(200, "The OpenAPI 3 document of the API."),
        Endpoint::post("/v1/sources/{name}/records", "Ingest records", crate::ingest)
            .tag("ingest")
            .param("name", "An http source of weir.toml.")
            .describe("Appends one record per line to the source's log, durably, before answering. Lines that are not UTF-8 or are too long go to the dead-letter topic. 503 with Retry-After when the pipeline lags too far behind.")
            .body_text("application/x-ndjson", "One JSON object per line.")
            .json::<IngestResult>(200, "Stored.")
            .errors(&[400, 404, 413, 503]),
        Endpoint::post("/v1/query", "Run SQL", crate::query)
            .tag("query")
            .describe("Runs one SQL statement over the lake's tables (batch tables as views until built) and returns its rows.")
            .body::<QueryRequest>(true, "The statement.")
            .json::<Vec<serde_json::Map<String, serde_json::Value>>>(200, "The rows, each a JSON object (null values left out).")
            .errors(&[400]),
        Endpoint::get("/v1/pipeline", "Pipeline graph", pipeline::graph)
            .tag("pipeline")
            .describe("Sources → bronze → silver → gold → sinks (quarantine and late tables, exports, dead letters), with live figures on each node.")
            .json::<pipeline::PipelineGraph>(200, "The graph."),
        Endpoint::get("/v1/sources", "Sources", pipeline::list_sources)
            .tag("pipeline")
            .json::<pipeline::SourceList>(200, "Every source with its log figures."),
        Endpoint::get("/v1/tables", "Tables", tables::list)
            .tag("tables")
            .describe("Every table of the project (bronze, streaming, batch and side tables) with its Delta figures.")
            .json::<tables::TableList>(200, "The tables."),
        Endpoint::get("/v1/tables/{name}", "Table detail", tables::show)
            .tag("tables")
            .param("name", "A table name, as listed by /v1/tables.")
            .json::<tables::TableDetail>(200, "The table with its schema, partitions and SQL.")
            .errors(&[404]),
        Endpoint::get("/v1/tables/{name}/history", "Table history", tables::history)
            .tag("tables")
            .param("name", "A table name.")
            .query::<tables::HistoryQuery>()
            .json::<tables::TableHistory>(200, "The table's Delta commits, newest first.")
            .errors(&[400, 404]),
        Endpoint::get("/v1/tables/{name}/preview", "Newest rows", tables::preview)
            .tag("tables")
            .param("name", "A table name.")
            .query::<tables::RowsQuery>()
            .describe("The rows of the most recently written files, newest first.")
            .json::<tables::TablePreview>(200, "The rows.")
            .errors(&[400, 404]),
        Endpoint::get("/v1/tables/{name}/quarantine", "Quarantined rows", tables::quarantine)
            .tag("quality")
            .param("name", "A streaming table of weir.toml (not its _quarantine table).")
            .query::<tables::RowsQuery>()
            .json::<tables::QuarantineRows>(200, "The newest quarantined rows with their reason.")
            .errors(&[400, 404]),
        Endpoint::get("/v1/quality", "Data quality", quality::quality)
            .tag("quality")
            .describe("Per streaming table: expectation pass and fail counts since start, with a series over the last 15 minutes; and the latest result of each DAG check.")
            .json::<quality::Quality>(200, "Quality figures."),
        Endpoint::get("/v1/dead-letters", "Dead letters", tables::dead_letters)
            .tag("quality")
            .query::<tables::RowsQuery>()
            .json::<tables::DeadLetterList>(200, "The newest records the sources refused.")
            .errors(&[400]),
        Endpoint::get("/v1/dlq", "Dead-letter queue", dlq::get_list)
            .tag("quality")
            .query::<dlq::DlqQuery>()
            .describe("The dead letters matching the filter (the newest `limit`, oldest first) with what replays made of them, and counts per source and reason. Payloads are cut to their first 200 bytes unless one entry is asked for by `id`.")
            .json::<dlq::DlqList>(200, "The dead letters.")
            .errors(&[400, 404]),
        Endpoint::post("/v1/dlq/replay", "Replay dead letters", dlq::post_replay)
            .tag("quality")
            .describe("Sends the payloads of the matching dead letters through their source's checks again, with the source's current settings: a payload that passes is appended to the source's log (and flows through the pipeline), one that fails becomes a new dead letter. Each dead letter is replayed at most once, also across crashes. 404 when nothing matches.")
            .body::<dlq::ReplayRequest>(false, "Which dead letters; an empty body replays every one not replayed yet.")
            .json::<dlq::ReplayReport>(200, "What the replay did.")
            .errors(&[400, 404]),
        Endpoint::get("/v1/logs", "Recent log", logs::list)
            .tag("operations")
            .query::<logs::LogQuery>()
            .describe("The newest lines of the process's log, oldest first: weir's events at info and above and other crates' at warn and above, whatever the console shows.")
            .json::<logs::LogList>(200, "Log lines.")
            .errors(&[400]),
        Endpoint::get("/v1/config", "Configuration", settings::config)
            .tag("operations")
            .describe("weir.toml as written, with secret values masked, and each table's SQL.")
            .json::<settings::ConfigView>(200, "The configuration."),
        Endpoint::get("/v1/stream", "Live samples (SSE)", stream::stream)
            .tag("pipeline")
            .describe("Server-Sent Events. On connect one `history` event whose data is a JSON array of the kept samples (up to 15 minutes, oldest first); then every second a `sample` event with one sample; `log` events carry new log lines (a LogLine each).")
            .text("text/event-stream", Some(<stream::Sample as ApiSchema>::schema), "An event stream; the schema is that of one sample."),
        Endpoint::get("/v1/dags", "DAGs", dags::list)
            .tag("dags")
            .json::<dags::DagList>(200, "Every DAG with its latest run.")
            .errors(&[404]),
        Endpoint::get("/v1/dags/{name}", "DAG definition", dags::show)
            .tag("dags")
            .param("name", "A DAG of weir.toml.")
            .json::<dags::DagDetail>(200, "The DAG.")
            .errors(&[404]),
        Endpoint::get("/v1/dags/{name}/runs", "DAG runs", dags::runs)
            .tag("dags")
            .param("name", "A DAG of weir.toml.")
            .query::<dags::RunsQuery>()
            .json::<dags::RunList>(200, "Runs with their tasks, newest first.")
            .errors(&[400, 404]),
        Endpoint::post("/v1/dags/{name}/runs", "Trigger a run", dags::trigger)
            .tag("dags")
            .param("name", "A DAG of weir.toml.")
            .body::<dags::TriggerRequest>(false, "The logical date (optional).")
            .json::<dags::Triggered>(201, "The run is queued; the scheduler starts it.")
            .errors(&[400, 404, 409]),
        Endpoint::post("/v1/dags/{name}/backfill", "Backfill a date range", dags::backfill)
            .tag("dags")
            .param("name", "A DAG of weir.toml.")
            .describe("Creates a queued run for every logical date of the range that has none (at most 3660 days); the scheduler runs them.")
            .body::<dags::BackfillRequest>(true, "The range.")
            .json::<dags::Backfill>(201, "The runs of the range.")
            .errors(&[400, 404]),
        Endpoint::get("/v1/runs/{id}", "Run detail", dags::run)
            .tag("dags")
            .param("id", "A run id.")
            .json::<dags::RunDetail>(200, "The run with its tasks, attempts (with logs) and check results.")
            .errors(&[400, 404]),
    ];
    // The schema registry, at the root paths Confluent's clients call.
    all.extend(crate::registry::endpoints());
    all
}

/// The routes of [`endpoints`], for `app`.
pub fn router() -> Router<AppState> {
    let mut r = Router::new();
    for e in endpoints() {
        r = r.route(e.path, e.router);
    }
    r
}

/// The document, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    // Serializing plain structs of strings and maps cannot fail.
    serde_json::to_string(&document(&endpoints())).unwrap_or_default()
});

/// The OpenAPI document as JSON text.
pub fn openapi() -> &'static str {
    &DOCUMENT
}

async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi())
}

/// `(method, path)` of every route, for tests and tools.
pub fn route_list() -> Vec<(&'static str, &'static str)> {
    endpoints().iter().map(|e| (e.method, e.path)).collect()
}
