//! `GET /v1/quality`: per streaming table, how its input fared against its expectations since
//! the pipeline started, with a pass/fail series of the last 15 minutes (one point per sample
//! of the sampler); and the latest result of each DAG check.

use std::collections::BTreeMap;

use axum::extract::State;
use weir_sql::spec::Action;

use crate::openapi::api_object;
use crate::{ApiError, AppState};

api_object! {
    /// One expectation of a table.
    pub struct ExpectationStats {
        pub name: String,
        /// The SQL predicate a row must satisfy.
        pub check: String,
        /// warn, drop, quarantine or fail.
        pub action: String,
        /// Rows that failed it since the pipeline started.
        pub failures: u64,
    }
}

api_object! {
    /// Rows that passed and failed the expectations during one sample's interval.
    pub struct QualityPoint {
        /// End of the interval, ms since the epoch.
        pub ts: i64,
        pub passed: u64,
        pub failed: u64,
    }
}

api_object! {
    /// A streaming table's data quality since the pipeline started.
    pub struct TableQuality {
        pub table: String,
        /// Input rows checked.
        pub rows_in: u64,
        /// Input rows that no expectation removed (`warn` failures included).
        pub passed: u64,
        /// Input rows removed by an expectation: quarantined plus dropped.
        pub failed: u64,
        pub quarantined: u64,
        pub dropped: u64,
        /// Failures of `warn` expectations (the rows were kept).
        pub warned: u64,
        /// Records quarantined as `malformed_json` (not a JSON object).
        pub malformed: u64,
        /// Rows removed as duplicates.
        pub duplicates: u64,
        /// Rows behind the watermark.
        pub late: u64,
        pub expectations: Vec<ExpectationStats>,
        /// The last 15 minutes, oldest first.
        pub series: Vec<QualityPoint>,
    }
}

api_object! {
    /// The latest result of one DAG check on one table.
    pub struct CheckResult {
        pub table: String,
        pub check: String,
        pub passed: bool,
        /// error or warn.
        pub severity: String,
        /// What the check saw.
        pub observed: String,
        pub run_id: i64,
        /// When it ran, ms since the epoch.
        pub at: i64,
    }
}

api_object! {
    /// Data quality of the project.
    pub struct Quality {
        pub tables: Vec<TableQuality>,
        pub checks: Vec<CheckResult>,
    }
}

/// Runs whose check results are read.
const CHECK_RUNS: usize = 50;

/// `GET /v1/quality`.
pub async fn quality(State(st): State<AppState>) -> Result<axum::Json<Quality>, ApiError> {
    st.live.sampler.ensure_started(&st.weir);
    let weir = &st.weir;
    let status = weir.pipeline_status();
    let history = st.live.sampler.history();
    let mut tables = Vec::new();
    for name in weir.project().stream_order().unwrap_or_default() {
        let cfg = &weir.project().config.tables[&name];
        let m = status
            .tables
            .get(&name)
            .map(|t| t.metrics.clone())
            .unwrap_or_default();
        let mut warned = 0;
        let mut named_quarantine = 0;
        let expectations = cfg
            .expectations
            .iter()
            .map(|x| {
                let failures = m.expectation_failures.get(&x.name).copied().unwrap_or(0);
                match x.action {
                    Action::Warn => warned += failures,
                    Action::Quarantine => named_quarantine += failures,
                    Action::Drop | Action::Fail => {}
                }
                ExpectationStats {
                    name: x.name.clone(),
                    check: x.check.clone(),
                    action: serde_json::to_value(x.action)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    failures,
                }
            })
            .collect();
        let failed = m.quarantined + m.dropped;
        tables.push(TableQuality {
            table: name.clone(),
            rows_in: m.rows_in,
            passed: m.rows_in.saturating_sub(failed),
            failed,
            quarantined: m.quarantined,
            dropped: m.dropped,
            warned,
            malformed: m.quarantined.saturating_sub(named_quarantine),
            duplicates: m.duplicates,
            late: m.late,
            expectations,
            series: history
                .iter()
                .filter_map(|s| {
                    let t = s.tables.get(&name)?;
                    Some(QualityPoint {
                        ts: s.ts,
                        passed: t.passed,
                        failed: t.failed,
                    })
                })
                .collect(),
        });
    }
    let checks = match weir.dags() {
        Some(o) => {
            let store = o.store().clone();
            tokio::task::spawn_blocking(move || latest_checks(store.as_ref()))
                .await
                .map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        weir_core::ErrorKind::Internal,
                        format!("reading check results stopped: {e}"),
                    )
                })??
        }
        None => Vec::new(),
    };
    Ok(axum::Json(Quality { tables, checks }))
}

/// The newest result per (table, check) over the latest runs.
fn latest_checks(
    store: &dyn weir_orchestrator::dag::store::MetaStore,
) -> Result<Vec<CheckResult>, ApiError> {
    let err =
        |e: weir_orchestrator::OrchestratorError| ApiError::from_kind(e.kind(), e.to_string());
    let mut latest: BTreeMap<(String, String), CheckResult> = BTreeMap::new();
    for run in store.runs(None, CHECK_RUNS).map_err(err)? {
        for c in store.checks(run.id).map_err(err)? {
            let key = (c.table_name.clone(), c.check_name.clone());
            let at = c.at_us / 1000;
            if latest.get(&key).is_some_and(|x| x.at >= at) {
                continue;
            }
            latest.insert(
                key,
                CheckResult {
                    table: c.table_name,
                    check: c.check_name,
                    passed: c.passed,
                    severity: c.severity,
                    observed: c.observed,
                    run_id: c.run_id,
                    at,
                },
            );
        }
    }
    Ok(latest.into_values().collect())
}
