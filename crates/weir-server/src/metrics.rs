//! `GET /metrics`: the running project in Prometheus text exposition format (version 0.0.4).
//! Counters end in `_total`, durations are in seconds, sizes in bytes; every value is read
//! from the pipeline's status and the log at scrape time.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use weir_orchestrator::Weir;

/// Upper bounds (seconds) of the end-to-end latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

/// User + system CPU seconds of this process (Linux `/proc/self/stat`, in clock ticks of
/// 1/100 s, the kernel's USER_HZ).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

impl Out {
    /// The buckets, sum and count of a histogram kept in milliseconds.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        h: &weir_orchestrator::status::LatencyHistogram,
    ) {
        for b in LATENCY_BUCKETS {
            let le = b.to_string();
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.val(&format!("{name}_bucket"), &l, h.count_le(b * 1000.0) as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.val(&format!("{name}_bucket"), &l, h.count as f64);
        self.val(&format!("{name}_sum"), labels, h.sum_ms / 1000.0);
        self.val(&format!("{name}_count"), labels, h.count as f64);
    }

    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn val(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, x)| format!("{k}=\"{}\"", esc(x)))
            .collect();
        if l.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {v}", l.join(","));
        }
    }
}

/// Reads one counter of a table's metrics.
type Counter = fn(&weir_sql::stream::TableMetrics) -> u64;

/// The exposition text of `weir`'s metrics.
pub fn render(weir: &Weir) -> String {
    let st = weir.pipeline_status();
    let mut o = Out(String::new());
    let log = weir.log();

    o.head(
        "weir_source_records_total",
        "counter",
        "Records appended to each source's log topic.",
    );
    let mut lag_rows = Vec::new();
    for name in weir.project().config.sources.keys() {
        if log.topic(name).is_none() {
            continue;
        }
        let mut total = 0;
        for (p, end, done) in weir.partition_offsets(name, &st.committed) {
            total += end;
            lag_rows.push((name.clone(), p.to_string(), end.saturating_sub(done)));
        }
        o.val(
            "weir_source_records_total",
            &[("source", name)],
            total as f64,
        );
    }
    o.head(
        "weir_log_size_bytes",
        "gauge",
        "Bytes of each source's log topic on disk (all partitions, after retention).",
    );
    for name in weir.project().config.sources.keys() {
        let Some(t) = log.topic(name) else { continue };
        let bytes: u64 = (0..t.partition_count())
            .filter_map(|p| t.partition(p).map(|x| x.size_bytes()))
            .sum();
        o.val("weir_log_size_bytes", &[("topic", name)], bytes as f64);
    }
    o.head(
        "weir_consumer_lag_records",
        "gauge",
        "Records in the log not yet committed by the pipeline, per partition.",
    );
    for (t, p, lag) in &lag_rows {
        o.val(
            "weir_consumer_lag_records",
            &[("topic", t), ("partition", p)],
            *lag as f64,
        );
    }

    o.head(
        "weir_source_errors_total",
        "counter",
        "Failed attempts of each pulling source to reach its outside system (each retried).",
    );
    for name in weir.project().config.sources.keys() {
        let h = weir.source_health(name);
        o.val(
            "weir_source_errors_total",
            &[("source", name)],
            h.errors as f64,
        );
    }
    o.head(
        "weir_source_connected",
        "gauge",
        "1 when a pulling source's last attempt to reach its outside system worked.",
    );
    for (name, s) in &weir.project().config.sources {
        if s.pull_source_kind() {
            let h = weir.source_health(name);
            o.val(
                "weir_source_connected",
                &[("source", name)],
                if h.connected { 1.0 } else { 0.0 },
            );
        }
    }
    type SinkValue = fn(&weir_orchestrator::status::SinkStatus) -> f64;
    let sinks: [(&str, &str, &str, SinkValue); 3] = [
        (
            "weir_sink_rows_total",
            "counter",
            "Rows each sink wrote to its outside system.",
            |s| s.rows as f64,
        ),
        (
            "weir_sink_errors_total",
            "counter",
            "Failed attempts of each sink to write a batch (outside failures are retried).",
            |s| s.errors as f64,
        ),
        (
            "weir_sink_retrying",
            "gauge",
            "1 while a sink is retrying a batch (its target is failing).",
            |s| if s.retrying { 1.0 } else { 0.0 },
        ),
    ];
    for (metric, kind, help, f) in sinks {
        o.head(metric, kind, help);
        for (name, s) in &st.sinks {
            o.val(metric, &[("sink", name), ("kind", &s.kind)], f(s));
        }
    }

    let dlq = weir.dead_letters();
    o.head(
        "weir_dead_letters_total",
        "counter",
        "Records the sources could not accept (dead-letter topic).",
    );
    o.val("weir_dead_letters_total", &[], dlq as f64);

    let per_table: [(&str, &str, Counter); 6] = [
        (
            "weir_table_input_rows_total",
            "Rows read by each streaming table.",
            |m| m.rows_in,
        ),
        (
            "weir_table_output_rows_total",
            "Rows written by each streaming table.",
            |m| m.rows_out,
        ),
        (
            "weir_table_quarantined_rows_total",
            "Rows sent to each table's quarantine.",
            |m| m.quarantined,
        ),
        (
            "weir_table_dropped_rows_total",
            "Rows dropped by `drop` expectations.",
            |m| m.dropped,
        ),
        (
            "weir_table_duplicate_rows_total",
            "Rows removed by deduplication.",
            |m| m.duplicates,
        ),
        (
            "weir_table_late_rows_total",
            "Rows behind the watermark, sent to the late table.",
            |m| m.late,
        ),
    ];
    for (name, help, f) in per_table {
        o.head(name, "counter", help);
        for (t, s) in &st.tables {
            o.val(name, &[("table", t)], f(&s.metrics) as f64);
        }
    }
    o.head(
        "weir_expectation_failures_total",
        "counter",
        "Rows failing each expectation, all actions.",
    );
    for (t, s) in &st.tables {
        for (e, n) in &s.metrics.expectation_failures {
            o.val(
                "weir_expectation_failures_total",
                &[("table", t), ("expectation", e)],
                *n as f64,
            );
        }
    }
    o.head(
        "weir_delta_table_version",
        "gauge",
        "Latest Delta version committed per table.",
    );
    for (t, v) in &st.delta_versions {
        o.val("weir_delta_table_version", &[("table", t)], *v as f64);
    }
    o.head(
        "weir_pipeline_batches_total",
        "counter",
        "Micro-batches committed.",
    );
    o.val("weir_pipeline_batches_total", &[], st.batches as f64);
    o.head(
        "weir_pipeline_records_total",
        "counter",
        "Input records processed by committed micro-batches.",
    );
    o.val(
        "weir_pipeline_records_total",
        &[],
        st.records_processed as f64,
    );
    o.head(
        "weir_pipeline_last_batch_duration_seconds",
        "gauge",
        "Duration of the last micro-batch, read to commit.",
    );
    o.val(
        "weir_pipeline_last_batch_duration_seconds",
        &[],
        st.last_batch_seconds,
    );
    o.head(
        "weir_pipeline_up",
        "gauge",
        "1 while the pipeline runs without error.",
    );
    o.val(
        "weir_pipeline_up",
        &[],
        if st.error.is_none() && st.ready {
            1.0
        } else {
            0.0
        },
    );

    let name = "weir_end_to_end_latency_seconds";
    o.head(
        name,
        "histogram",
        "Ingest to Delta commit latency of each record.",
    );
    o.histogram(name, &[], &st.latency);
    let name = "weir_batch_duration_seconds";
    o.head(
        name,
        "histogram",
        "Wall time of each micro-batch, from reading the log to its Delta commits.",
    );
    o.histogram(name, &[], &st.batch_duration);
    let name = "weir_delta_commit_duration_seconds";
    o.head(
        name,
        "histogram",
        "Wall time of each Delta commit (Parquet encoding and log entry), per table.",
    );
    for (table, h) in &st.commit_duration {
        o.histogram(name, &[("table", table)], h);
    }
    if let Some(cpu) = cpu_seconds() {
        o.head(
            "weir_process_cpu_seconds_total",
            "counter",
            "User and system CPU time of the weir process.",
        );
        o.val("weir_process_cpu_seconds_total", &[], cpu);
    }

    if let Some(orch) = weir.dags() {
        let store = orch.store();
        if let Ok(runs) = store.run_counts() {
            o.head(
                "weir_dag_runs",
                "gauge",
                "DAG runs in the metadata store, by state.",
            );
            for (dag, state, n) in runs {
                o.val(
                    "weir_dag_runs",
                    &[("dag", &dag), ("state", &state)],
                    n as f64,
                );
            }
        }
        if let Ok(attempts) = store.attempt_totals() {
            o.head(
                "weir_dag_task_attempts_total",
                "counter",
                "Finished task attempts, by outcome.",
            );
            for (dag, state, n, _) in &attempts {
                o.val(
                    "weir_dag_task_attempts_total",
                    &[("dag", dag), ("state", state)],
                    *n as f64,
                );
            }
            o.head(
                "weir_dag_task_attempt_seconds_total",
                "counter",
                "Time spent in finished task attempts.",
            );
            for (dag, state, _, secs) in &attempts {
                o.val(
                    "weir_dag_task_attempt_seconds_total",
                    &[("dag", dag), ("state", state)],
                    *secs,
                );
            }
        }
    }
    if let Some(rss) = weir_orchestrator::status::rss_bytes() {
        o.head(
            "weir_process_resident_memory_bytes",
            "gauge",
            "Resident memory of the weir process.",
        );
        o.val("weir_process_resident_memory_bytes", &[], rss as f64);
    }
    o.0
}

pub async fn metrics(State(weir): State<Arc<Weir>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&weir),
    )
}
