//! Table checks (`[[tables.<name>.checks]]`): row counts, freshness, uniqueness, nulls,
//! accepted values, schema drift and row-count anomalies, each a SQL query over the lake. A
//! table partitioned by a date column is checked on one partition (the run's logical date);
//! freshness and schema look at the whole table.

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use weir_sql::query::QuerySession;

use crate::config::Project;
use crate::dag::config::{CheckConfig, CheckKind, Severity};
use crate::error::{OrchestratorError, Result};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    /// "error" or "warn".
    pub severity: String,
    /// What was measured, for people: "12 rows (min 1)".
    pub observed: String,
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn scalar(session: &QuerySession, sql: &str) -> Result<Option<String>> {
    let batches = session.run(sql).await?;
    for b in batches {
        if b.num_rows() > 0 {
            let c = arrow::compute::cast(b.column(0), &DataType::Utf8).map_err(|e| {
                OrchestratorError::Check {
                    reason: format!("`{sql}`: {e}"),
                }
            })?;
            let s = c.as_string::<i32>();
            return Ok((!s.is_null(0)).then(|| s.value(0).to_owned()));
        }
    }
    Ok(None)
}

async fn int(session: &QuerySession, sql: &str) -> Result<i64> {
    Ok(scalar(session, sql)
        .await?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// Runs every check of `table` for logical date `ds`.
pub async fn run_checks(
    project: &Project,
    session: &QuerySession,
    table: &str,
    ds: &str,
) -> Result<Vec<CheckResult>> {
    let t = project
        .config
        .tables
        .get(table)
        .ok_or_else(|| OrchestratorError::Check {
            reason: format!("`{table}` is not a table"),
        })?;
    let date_col = t.partition_by.first().cloned();
    let filter = match &date_col {
        Some(c) => format!("{} = DATE {}", q(c), lit(ds)),
        None => "TRUE".to_owned(),
    };
    let from = q(table);
    let mut out = Vec::new();
    for c in &t.checks {
        let (passed, observed) = run_one(project, session, table, &from, &filter, &date_col, ds, c)
            .await
            .unwrap_or_else(|e| (false, format!("the check could not run: {e}")));
        out.push(CheckResult {
            name: c.display_name(),
            passed,
            severity: match c.severity {
                Severity::Error => "error".into(),
                Severity::Warn => "warn".into(),
            },
            observed,
        });
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    project: &Project,
    session: &QuerySession,
    table: &str,
    from: &str,
    filter: &str,
    date_col: &Option<String>,
    ds: &str,
    c: &CheckConfig,
) -> Result<(bool, String)> {
    Ok(match c.kind {
        CheckKind::RowCount => {
            let n = int(
                session,
                &format!("SELECT count(*) FROM {from} WHERE {filter}"),
            )
            .await?;
            let ok = c.min.is_none_or(|m| n >= m) && c.max.is_none_or(|m| n <= m);
            let bounds = match (c.min, c.max) {
                (Some(a), Some(b)) => format!("expected {a}..={b}"),
                (Some(a), None) => format!("expected at least {a}"),
                (None, Some(b)) => format!("expected at most {b}"),
                (None, None) => String::new(),
            };
            (ok, format!("{n} rows ({bounds})"))
        }
        CheckKind::NotNull => {
            let mut bad = Vec::new();
            for col in &c.columns {
                let n = int(
                    session,
                    &format!(
                        "SELECT count(*) FROM {from} WHERE {filter} AND {} IS NULL",
                        q(col)
                    ),
                )
                .await?;
                if n > 0 {
                    bad.push(format!("{col}: {n} nulls"));
                }
            }
            (
                bad.is_empty(),
                if bad.is_empty() {
                    "no nulls".into()
                } else {
                    bad.join("; ")
                },
            )
        }
        CheckKind::Unique => {
            let cols: Vec<String> = c.columns.iter().map(|c| q(c)).collect();
            let cols = cols.join(", ");
            let n = int(
                session,
                &format!(
                    "SELECT count(*) FROM (SELECT {cols} FROM {from} WHERE {filter} \
                     GROUP BY {cols} HAVING count(*) > 1) d"
                ),
            )
            .await?;
            (
                n == 0,
                format!("{n} duplicated values of ({})", c.columns.join(", ")),
            )
        }
        CheckKind::AcceptedValues => {
            let values: Vec<String> = c.values.iter().map(|v| lit(v)).collect();
            let values = values.join(", ");
            let mut bad = Vec::new();
            for col in &c.columns {
                let col_q = q(col);
                let n = int(
                    session,
                    &format!(
                        "SELECT count(*) FROM {from} WHERE {filter} AND {col_q} IS NOT NULL \
                         AND CAST({col_q} AS VARCHAR) NOT IN ({values})"
                    ),
                )
                .await?;
                if n > 0 {
                    let example = scalar(
                        session,
                        &format!(
                            "SELECT CAST({col_q} AS VARCHAR) FROM {from} WHERE {filter} \
                             AND {col_q} IS NOT NULL AND CAST({col_q} AS VARCHAR) NOT IN ({values}) LIMIT 1"
                        ),
                    )
                    .await?
                    .unwrap_or_default();
                    bad.push(format!(
                        "{col}: {n} rows outside the list (e.g. `{example}`)"
                    ));
                }
            }
            (
                bad.is_empty(),
                if bad.is_empty() {
                    "all values accepted".into()
                } else {
                    bad.join("; ")
                },
            )
        }
        CheckKind::Freshness => {
            let col = q(&c.columns[0]);
            let newest = int(
                session,
                &format!("SELECT CAST(to_unixtime(max({col})) AS BIGINT) FROM {from}"),
            )
            .await?;
            let max_age = c.max_age.map_or(0, |d| d.0.as_secs() as i64);
            if newest == 0 {
                (false, format!("`{}` has no value", c.columns[0]))
            } else {
                let age = weir_core::now_ms() / 1000 - newest;
                (
                    age <= max_age,
                    format!("newest `{}` is {age} s old (max {max_age} s)", c.columns[0]),
                )
            }
        }
        CheckKind::Schema => {
            let declared = declared_columns(project, table).await?;
            let actual = session
                .context()
                .table(from)
                .await
                .map_err(|e| OrchestratorError::Check {
                    reason: format!("cannot read `{table}`: {e}"),
                })?
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect::<Vec<_>>();
            let mut problems = Vec::new();
            for (name, ty) in &declared {
                match actual.iter().find(|(n, _)| n == name) {
                    None => problems.push(format!("missing column `{name}`")),
                    Some((_, t)) if !same_kind(t, ty) => {
                        problems.push(format!("`{name}` is {t}, declared {ty}"))
                    }
                    Some(_) => {}
                }
            }
            for (name, _) in &actual {
                if !declared.iter().any(|(n, _)| n == name) {
                    problems.push(format!("unexpected column `{name}`"));
                }
            }
            (
                problems.is_empty(),
                if problems.is_empty() {
                    format!("{} columns as declared", declared.len())
                } else {
                    problems.join("; ")
                },
            )
        }
        CheckKind::Anomaly => {
            let Some(col) = date_col else {
                return Ok((
                    false,
                    "anomaly checks need a table partitioned by a date column".into(),
                ));
            };
            let col = q(col);
            let today = int(
                session,
                &format!("SELECT count(*) FROM {from} WHERE {filter}"),
            )
            .await?;
            let batches = session
                .run(&format!(
                    "SELECT count(*) FROM {from} WHERE {col} < DATE {} GROUP BY {col} \
                     ORDER BY {col} DESC LIMIT {}",
                    lit(ds),
                    c.lookback
                ))
                .await?;
            let mut history = Vec::new();
            for b in &batches {
                let a = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
                history.extend(a.iter().flatten().map(|v| v as f64));
            }
            if history.len() < 2 {
                return Ok((
                    true,
                    format!(
                        "{today} rows; only {} earlier partitions, nothing to compare",
                        history.len()
                    ),
                ));
            }
            let n = history.len() as f64;
            let mean = history.iter().sum::<f64>() / n;
            let var = history.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let sd = var.sqrt();
            let x = today as f64;
            let z = if sd > 0.0 {
                (x - mean) / sd
            } else if x == mean {
                0.0
            } else {
                f64::INFINITY
            };
            let pct = if mean > 0.0 {
                (x - mean).abs() / mean * 100.0
            } else {
                0.0
            };
            let ok = c.max_z.is_none_or(|m| z.abs() <= m) && c.max_pct.is_none_or(|m| pct <= m);
            (
                ok,
                format!(
                    "{today} rows vs mean {mean:.1} of {} partitions: z = {z:.2}, {pct:.1} % off",
                    history.len()
                ),
            )
        }
    })
}

/// The columns a table should have: its SQL's output (batch tables are planned over the lake;
/// streaming tables by the pipeline planner).
async fn declared_columns(project: &Project, table: &str) -> Result<Vec<(String, DataType)>> {
    let (_, schemas) = crate::pipeline::plan_tables_with_schemas(project).await?;
    if let Some(s) = schemas.get(table) {
        return Ok(s
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect());
    }
    let lake = project.open_lake()?;
    let session = crate::dag::tasks::session(project, &lake, Some(table))
        .await
        .map_err(|reason| OrchestratorError::Check { reason })?;
    let sql = project.sql[table].trim().trim_end_matches(';').to_owned();
    let df = session
        .context()
        .sql(&sql)
        .await
        .map_err(|e| OrchestratorError::Check {
            reason: format!("planning `{table}`: {e}"),
        })?;
    Ok(df
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect())
}

/// Types equal up to what Delta storage changes (timestamp units, string views).
fn same_kind(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (Timestamp(_, x), Timestamp(_, y)) => x.is_some() == y.is_some(),
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        _ => a == b,
    }
}
