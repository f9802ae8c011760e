//! What each task kind does for one attempt: build a batch table's partition, run SQL, run a
//! table's checks, run a shell command, call a URL, or nothing. An attempt returns its log
//! (kept with the attempt) or an error; retries and timeouts are the executor's.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use weir_lake::Lake;
use weir_sql::query::QuerySession;

use crate::config::{Project, batch_views};
use crate::dag::checks::run_checks;
use crate::dag::config::TaskKind;
use crate::dag::store::{CheckRow, MetaStore};

/// What an attempt knows about its run.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub dag: String,
    pub task: String,
    pub run_id: i64,
    /// The run's logical date, "YYYY-MM-DD".
    pub ds: String,
    /// The run's logical time, RFC 3339.
    pub ts: String,
}

impl TaskContext {
    /// Replaces `{{ ds }}`, `{{ ts }}`, `{{ run_id }}` and `{{ dag }}` in `text`.
    pub fn render(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (k, v) in [
            ("ds", self.ds.as_str()),
            ("ts", self.ts.as_str()),
            ("run_id", &self.run_id.to_string()),
            ("dag", self.dag.as_str()),
        ] {
            out = out.replace(&format!("{{{{ {k} }}}}"), v);
            out = out.replace(&format!("{{{{{k}}}}}"), v);
        }
        out
    }
}

/// Runs one attempt of `kind`. `Ok` holds the attempt's log; `Err` the failure (its log
/// included).
pub async fn run_attempt(
    project: &Project,
    lake: &Lake,
    store: &Arc<dyn MetaStore>,
    kind: &TaskKind,
    ctx: &TaskContext,
) -> Result<String, String> {
    match kind {
        TaskKind::Noop => Ok(String::new()),
        TaskKind::Shell(cmd) => shell(&ctx.render(cmd), ctx).await,
        TaskKind::Http {
            url,
            method,
            body,
            headers,
        } => {
            let url = ctx.render(url);
            let method = method.clone();
            let body = body.as_ref().map(|b| ctx.render(b));
            let headers = headers.clone();
            tokio::task::spawn_blocking(move || http(&url, &method, body, &headers))
                .await
                .map_err(|e| format!("http task panicked: {e}"))?
        }
        TaskKind::Sql(sql) => {
            let sql = ctx.render(sql);
            let session = session(project, lake, None).await?;
            let batches = session.run(&sql).await.map_err(|e| e.to_string())?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let shown = preview(&batches, 20);
            Ok(format!("{rows} rows\n{shown}"))
        }
        TaskKind::Build(table) => build(project, lake, table, ctx).await,
        TaskKind::Export(e) => export(project, lake, e, ctx).await,
        TaskKind::Maintain {
            table,
            compact,
            vacuum,
            expire,
        } => {
            let mut log = String::new();
            if *expire {
                let t = project.config.tables.get(table);
                let (Some(keep), Some(col)) = (
                    t.and_then(|t| t.retention),
                    t.and_then(|t| t.partition_by.first()),
                ) else {
                    return Err(format!(
                        "`{table}` has no `retention` (and one date `partition_by` column) to expire by"
                    ));
                };
                let days = i64::try_from(keep.0.as_secs() / 86_400).unwrap_or(i64::MAX);
                let cutoff = chrono::NaiveDate::parse_from_str(&ctx.ds, "%Y-%m-%d")
                    .map_err(|e| format!("logical date `{}`: {e}", ctx.ds))?
                    - chrono::Days::new(days.unsigned_abs());
                let n = if lake.exists(table) {
                    lake.delete_where(table, &format!("\"{col}\" < '{cutoff}'"))
                        .await
                        .map_err(|e| e.to_string())?
                } else {
                    0
                };
                log.push_str(&format!(
                    "expired `{table}` partitions before {cutoff} (retention {keep}): {n} rows deleted\n"
                ));
            }
            if *compact {
                let (removed, added) = lake.compact(table).await.map_err(|e| e.to_string())?;
                log.push_str(&format!(
                    "compacted `{table}`: {removed} files rewritten into {added}\n"
                ));
            }
            if let Some(r) = vacuum {
                let n = lake.vacuum(table, *r).await.map_err(|e| e.to_string())?;
                log.push_str(&format!("vacuumed `{table}`: {n} files deleted\n"));
            }
            Ok(log)
        }
        TaskKind::Check(table) => {
            let session = session(project, lake, None).await?;
            let results = run_checks(project, &session, table, &ctx.ds)
                .await
                .map_err(|e| e.to_string())?;
            let now = weir_core::now_ms() * 1000;
            let rows: Vec<CheckRow> = results
                .iter()
                .map(|r| CheckRow {
                    run_id: ctx.run_id,
                    task_id: ctx.task.clone(),
                    table_name: table.clone(),
                    check_name: r.name.clone(),
                    passed: r.passed,
                    severity: r.severity.clone(),
                    observed: r.observed.clone(),
                    at_us: now,
                })
                .collect();
            store.put_checks(&rows).map_err(|e| e.to_string())?;
            let log: String = results
                .iter()
                .map(|r| {
                    format!(
                        "{} {} [{}]: {}\n",
                        if r.passed { "PASS" } else { "FAIL" },
                        r.name,
                        r.severity,
                        r.observed
                    )
                })
                .collect();
            let failed: Vec<&str> = results
                .iter()
                .filter(|r| !r.passed && r.severity == "error")
                .map(|r| r.name.as_str())
                .collect();
            if failed.is_empty() {
                Ok(log)
            } else {
                Err(format!(
                    "checks failed on `{table}` for {}: {}\n{log}",
                    ctx.ds,
                    failed.join(", ")
                ))
            }
        }
    }
}

/// A query session over the lake with the batch tables as views (except `without`).
pub async fn session(
    project: &Project,
    lake: &Lake,
    without: Option<&str>,
) -> Result<QuerySession, String> {
    let views: Vec<(String, String)> = batch_views(project)
        .into_iter()
        .filter(|(n, _)| Some(n.as_str()) != without)
        .collect();
    QuerySession::try_new(lake.clone(), &views)
        .await
        .map(|(s, _)| s)
        .map_err(|e| e.to_string())
}

/// Recomputes the partition `ds` of batch table `table` from its SQL and replaces it in the
/// table's Delta table, in one commit.
async fn build(
    project: &Project,
    lake: &Lake,
    table: &str,
    ctx: &TaskContext,
) -> Result<String, String> {
    let t = project
        .config
        .tables
        .get(table)
        .ok_or_else(|| format!("`{table}` is not a table"))?;
    let column = t
        .partition_by
        .first()
        .ok_or_else(|| format!("`{table}` has no partition_by column to build by date"))?;
    let sql = project.sql[table].trim().trim_end_matches(';');
    let session = session(project, lake, Some(table)).await?;
    let query = format!(
        "SELECT * FROM ({sql}) AS t WHERE t.\"{column}\" = DATE '{}'",
        ctx.ds
    );
    let df = session
        .context()
        .sql(&query)
        .await
        .map_err(|e| format!("planning `{table}` for {}: {e}", ctx.ds))?;
    let schema: arrow::datatypes::SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df
        .collect()
        .await
        .map_err(|e| format!("computing `{table}` for {}: {e}", ctx.ds))?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 && !lake.exists(table) {
        // Until a partition has rows, `weir query` keeps computing the table from its SQL.
        return Ok(format!(
            "`{table}` has no rows for {column}={}; the Delta table is not created yet",
            ctx.ds
        ));
    }
    let mut w = lake
        .writer(table, t.partition_by.clone())
        .await
        .map_err(|e| e.to_string())?;
    let version = w
        .replace_where(&schema, batches, &format!("\"{column}\" = '{}'", ctx.ds))
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "built `{table}` partition {column}={}: {rows} rows, Delta version {version}",
        ctx.ds
    ))
}

/// Writes a table partition or a query result to a file, atomically (temp file + rename).
async fn export(
    project: &Project,
    lake: &Lake,
    e: &crate::dag::config::ExportConfig,
    ctx: &TaskContext,
) -> Result<String, String> {
    let sql = match (&e.table, &e.query) {
        (Some(t), _) => {
            let part = project
                .config
                .tables
                .get(t)
                .and_then(|c| c.partition_by.first());
            match part {
                Some(c) => format!("SELECT * FROM \"{t}\" WHERE \"{c}\" = DATE '{}'", ctx.ds),
                None => format!("SELECT * FROM \"{t}\""),
            }
        }
        (None, Some(q)) => ctx.render(q),
        (None, None) => return Err("export needs `table` or `query`".into()),
    };
    let session = session(project, lake, None).await?;
    let df = session
        .context()
        .sql(&sql)
        .await
        .map_err(|err| format!("planning the export query: {err}"))?;
    let schema: arrow::datatypes::SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df
        .collect()
        .await
        .map_err(|err| format!("running the export query: {err}"))?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let path = project.root.join(ctx.render(&e.path));
    let format = e.resolved_format()?;
    let (schema2, path2) = (schema.clone(), path.clone());
    tokio::task::spawn_blocking(move || write_file(&path2, &format, &schema2, &batches))
        .await
        .map_err(|err| format!("export task panicked: {err}"))??;
    Ok(format!("exported {rows} rows to {}", path.display()))
}

fn write_file(
    path: &std::path::Path,
    format: &str,
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), String> {
    let io = |err: std::io::Error| format!("writing {}: {err}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("weir-tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let arrow_err = |err: arrow::error::ArrowError| format!("writing {}: {err}", path.display());
    match format {
        "csv" => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(file);
            for b in batches {
                w.write(b).map_err(arrow_err)?;
            }
        }
        "json" => {
            let mut w = arrow::json::LineDelimitedWriter::new(file);
            for b in batches {
                w.write(b).map_err(arrow_err)?;
            }
            w.finish().map_err(arrow_err)?;
        }
        _ => {
            let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)
                .map_err(|err| format!("writing {}: {err}", path.display()))?;
            for b in batches {
                w.write(b)
                    .map_err(|err| format!("writing {}: {err}", path.display()))?;
            }
            w.close()
                .map_err(|err| format!("writing {}: {err}", path.display()))?;
        }
    }
    std::fs::rename(&tmp, path).map_err(io)
}

async fn shell(cmd: &str, ctx: &TaskContext) -> Result<String, String> {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("WEIR_DAG", &ctx.dag)
        .env("WEIR_TASK", &ctx.task)
        .env("WEIR_RUN_ID", ctx.run_id.to_string())
        .env("WEIR_DS", &ctx.ds)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot start `sh -c {cmd}`: {e}"))?;
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.is_empty() {
        log.push_str(&err);
    }
    if out.status.success() {
        Ok(log)
    } else {
        Err(format!("`{cmd}` exited with {}\n{log}", out.status))
    }
}

fn http(
    url: &str,
    method: &str,
    body: Option<String>,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<String, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(60))
        .build();
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let r = match body {
        Some(b) => req.send_string(&b),
        None => req.call(),
    };
    match r {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.into_string().unwrap_or_default();
            Ok(format!("{method} {url} → {status}\n{}", clip(&text)))
        }
        Err(ureq::Error::Status(code, resp)) => {
            let text = resp.into_string().unwrap_or_default();
            Err(format!("{method} {url} → {code}\n{}", clip(&text)))
        }
        Err(e) => Err(format!("{method} {url} failed: {e}")),
    }
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(4096);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn preview(batches: &[RecordBatch], rows: usize) -> String {
    let mut left = rows;
    let mut shown = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let n = b.num_rows().min(left);
        shown.push(b.slice(0, n));
        left -= n;
    }
    arrow::util::pretty::pretty_format_batches(&shown)
        .map(|d| d.to_string())
        .unwrap_or_default()
}
