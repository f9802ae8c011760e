//! [`Weir`]: one running project. It owns the log, the lake, the source threads and the
//! pipeline thread, and answers status questions. `weir run`, `weir demo`, the HTTP server
//! and the benchmarks all drive a project through it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use weir_connectors::SourceConfig;
use weir_connectors::dlq::DLQ_TOPIC;
use weir_connectors::file::FileSource;
use weir_connectors::generator::{GeneratorConfig, run_generator};
use weir_connectors::http::{IngestReport, LineIngest};
use weir_connectors::schema::{SchemaRegistry, SchemaValidator};
use weir_connectors::source::{HealthSnapshot, SourceContext, SourceHealth};
use weir_lake::Lake;
use weir_log::{Log, LogConfig};

use crate::config::Project;
use crate::error::{OrchestratorError, Result};
use crate::pipeline::Pipeline;
use crate::status::PipelineStatus;

/// Why an ingest request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no source named `{0}` accepts HTTP records (http sources: {1})")]
    UnknownSource(String, String),
    #[error("the pipeline is {lag} records behind (limit {limit}); retry later")]
    Overloaded { lag: u64, limit: u64 },
    #[error(transparent)]
    Source(#[from] weir_connectors::ConnectorError),
}

/// A running project.
pub struct Weir {
    project: Project,
    log: Arc<Log>,
    lake: Lake,
    status: Arc<Mutex<PipelineStatus>>,
    stop: Arc<AtomicBool>,
    ingest: BTreeMap<String, Arc<LineIngest>>,
    produced: BTreeMap<String, Arc<AtomicU64>>,
    health: BTreeMap<String, Arc<SourceHealth>>,
    /// The schema registry (`<data_dir>/registry`), served by the HTTP API.
    schemas: Arc<SchemaRegistry>,
    /// The validator of each source that declares `schema = "<subject>"`.
    validators: BTreeMap<String, Arc<SchemaValidator>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    started: Instant,
    dags: std::sync::OnceLock<Arc<crate::dag::Orchestrator>>,
}

impl Weir {
    /// Opens the project's log (taking its lock) and lake, and creates the source topics.
    pub fn open(project: Project) -> Result<Arc<Weir>> {
        let data = project.data_dir();
        let lc = &project.config.log;
        let mut cfg = LogConfig::new(data.join("log"));
        cfg.segment_bytes = lc.segment_size.0;
        cfg.retention_age = lc.retention.map(|d| d.0);
        cfg.retention_bytes = lc.retention_size.map(|s| s.0);
        cfg.fsync = lc.fsync;
        let log = Arc::new(Log::open(cfg)?);
        let dlq = log.create_topic(DLQ_TOPIC, 1)?;
        let lake = project.open_lake()?;
        let registry_dir = data.join("registry");
        let schemas = Arc::new(SchemaRegistry::open(&registry_dir).map_err(|e| {
            OrchestratorError::Store {
                path: registry_dir.display().to_string(),
                reason: e.to_string(),
            }
        })?);
        let health: BTreeMap<String, Arc<SourceHealth>> = project
            .config
            .sources
            .keys()
            .map(|n| (n.clone(), Arc::new(SourceHealth::default())))
            .collect();
        let mut validators = BTreeMap::new();
        let mut ingest = BTreeMap::new();
        let mut produced = BTreeMap::new();
        for (name, s) in &project.config.sources {
            let topic = log.create_topic(name, s.partitions())?;
            let validator = s.schema().map(|subject| {
                let mut v = SchemaValidator::new(schemas.clone(), name, subject);
                if let Some(h) = health.get(name) {
                    v = v.with_health(h.clone());
                }
                Arc::new(v)
            });
            if let SourceConfig::Http(h) = s {
                let mut li =
                    LineIngest::new(name, topic, dlq.clone(), h.key.clone(), h.max_line_size);
                if let Some(v) = &validator {
                    li = li.with_validator(v.clone());
                }
                ingest.insert(name.clone(), Arc::new(li));
            }
            if let Some(v) = validator {
                validators.insert(name.clone(), v);
            }
            produced.insert(name.clone(), Arc::new(AtomicU64::new(0)));
        }
        Ok(Arc::new(Weir {
            project,
            log,
            lake,
            status: Arc::new(Mutex::new(PipelineStatus::default())),
            stop: Arc::new(AtomicBool::new(false)),
            ingest,
            produced,
            health,
            schemas,
            validators,
            threads: Mutex::new(Vec::new()),
            started: Instant::now(),
            dags: std::sync::OnceLock::new(),
        }))
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The project's schema registry.
    pub fn schemas(&self) -> &Arc<SchemaRegistry> {
        &self.schemas
    }

    /// Starts the pipeline thread (after planning and recovery succeed) and the source
    /// threads. `extra_generators` adds generator sources writing to existing topics (what
    /// `weir demo` and `weir bench` use).
    pub fn start(self: &Arc<Self>, extra_generators: Vec<(String, GeneratorConfig)>) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel::<Result<()>>();
        let me = self.clone();
        let pipeline = std::thread::Builder::new()
            .name("weir-pipeline".into())
            .spawn(move || me.pipeline_thread(tx))
            .map_err(|source| OrchestratorError::Io {
                path: "pipeline thread".into(),
                source,
            })?;
        self.threads.lock().map(|mut t| t.push(pipeline)).ok();
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.stop();
                return Err(e);
            }
            Err(_) => {
                self.stop();
                return Err(OrchestratorError::Corrupt {
                    path: "pipeline".into(),
                    reason: "the pipeline thread ended while starting".into(),
                });
            }
        }
        // The registry lives in the data dir, so an unknown subject is found only now: say so
        // in the log and the source's status (its records are dead-lettered until a schema is
        // registered under the subject).
        for v in self.validators.values() {
            v.report_if_missing();
        }
        let mut gens: Vec<(String, GeneratorConfig)> = self
            .project
            .config
            .sources
            .iter()
            .filter_map(|(n, s)| match s {
                SourceConfig::Generator(g) => Some((n.clone(), g.clone())),
                _ => None,
            })
            .collect();
        gens.extend(extra_generators);
        for (name, g) in gens {
            let topic = self
                .log
                .topic(&name)
                .ok_or_else(|| OrchestratorError::Config {
                    file: self.project.path.display().to_string(),
                    key: format!("sources.{name}"),
                    message: "the generator's topic does not exist".into(),
                })?;
            let already: u64 = (0..topic.partition_count())
                .filter_map(|p| topic.partition(p).map(|x| x.end_offset()))
                .sum();
            let stop = self.stop.clone();
            let produced = self.produced.get(&name).cloned().unwrap_or_default();
            let h = std::thread::Builder::new()
                .name(format!("weir-gen-{name}"))
                .spawn(move || {
                    if let Err(e) = run_generator(&name, &g, topic, already, &stop, &produced) {
                        tracing::error!(source = %name, error = %e, "generator stopped");
                    }
                })
                .map_err(|source| OrchestratorError::Io {
                    path: "generator thread".into(),
                    source,
                })?;
            self.threads.lock().map(|mut t| t.push(h)).ok();
        }
        let dags = !self.project.config.dags.is_empty();
        let rules = !self.project.config.alerts.rules.is_empty();
        if dags || rules {
            let orch = crate::dag::Orchestrator::open(self.project.clone())?;
            let _ = self.dags.set(orch.clone());
            let stop = self.stop.clone();
            let me = self.clone();
            let h = std::thread::Builder::new()
                .name("weir-scheduler".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .thread_name("weir-dag")
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(async move {
                            let alerts = tokio::spawn(me.clone().watch_rules(orch.clone()));
                            if dags {
                                orch.serve(stop).await;
                            } else {
                                while !me.stopping() {
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                            }
                            alerts.abort();
                        }),
                        Err(e) => tracing::error!(error = %e, "cannot start the scheduler"),
                    }
                })
                .map_err(|source| OrchestratorError::Io {
                    path: "scheduler thread".into(),
                    source,
                })?;
            self.threads.lock().map(|mut t| t.push(h)).ok();
        }
        for (name, s) in &self.project.config.sources {
            if let SourceConfig::File(f) = s {
                let topic = self
                    .log
                    .topic(name)
                    .ok_or_else(|| OrchestratorError::Config {
                        file: self.project.path.display().to_string(),
                        key: format!("sources.{name}"),
                        message: "the source's topic does not exist".into(),
                    })?;
                let dlq = self.log.create_topic(DLQ_TOPIC, 1)?;
                let folder = self.project.root.join(&f.path);
                let state = self.project.data_dir().join("sources").join(name);
                let mut src = FileSource::try_new(name, f.clone(), folder, state, topic, dlq)?;
                if let Some(v) = self.validators.get(name) {
                    src = src.with_validator(v.clone());
                }
                let stop = self.stop.clone();
                let n = name.clone();
                let h = std::thread::Builder::new()
                    .name(format!("weir-file-{name}"))
                    .spawn(move || {
                        if let Err(e) = src.run(&stop) {
                            tracing::error!(source = %n, error = %e, "file source stopped");
                        }
                    })
                    .map_err(|source| OrchestratorError::Io {
                        path: "file source thread".into(),
                        source,
                    })?;
                self.threads.lock().map(|mut t| t.push(h)).ok();
            }
        }
        for (name, s) in &self.project.config.sources {
            let Some(mut src) = s.pull_source(name)? else {
                continue;
            };
            let topic = self
                .log
                .topic(name)
                .ok_or_else(|| OrchestratorError::Config {
                    file: self.project.path.display().to_string(),
                    key: format!("sources.{name}"),
                    message: "the source's topic does not exist".into(),
                })?;
            let ctx = SourceContext {
                name: name.clone(),
                topic,
                dlq: self.log.create_topic(DLQ_TOPIC, 1)?,
                stop: self.stop.clone(),
                produced: self.produced.get(name).cloned().unwrap_or_default(),
                state_dir: self.project.data_dir().join("sources").join(name),
                health: self.health.get(name).cloned().unwrap_or_default(),
                validator: self.validators.get(name).cloned(),
            };
            let kind = s.kind();
            let h = std::thread::Builder::new()
                .name(format!("weir-{kind}-{name}"))
                .spawn(move || {
                    if let Err(e) = src.run(&ctx) {
                        ctx.health.failed(&e.to_string());
                        tracing::error!(source = %ctx.name, error = %e, "source stopped");
                    }
                })
                .map_err(|source| OrchestratorError::Io {
                    path: "source thread".into(),
                    source,
                })?;
            self.threads.lock().map(|mut t| t.push(h)).ok();
        }
        Ok(())
    }

    /// Errors and liveness of a pulling source (all zero for the others).
    pub fn source_health(&self, name: &str) -> HealthSnapshot {
        self.health
            .get(name)
            .map(|h| h.snapshot())
            .unwrap_or_default()
    }

    fn pipeline_thread(self: Arc<Self>, ready: std::sync::mpsc::Sender<Result<()>>) {
        // Two workers: the Delta commits of batch N (Parquet encoding, mostly CPU) run on one
        // while batch N+1 is processed on the other.
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-pipeline")
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(source) => {
                let _ = ready.send(Err(OrchestratorError::Io {
                    path: "pipeline runtime".into(),
                    source,
                }));
                return;
            }
        };
        rt.block_on(async move {
            let mut pipeline = match Pipeline::open(
                &self.project,
                self.log.clone(),
                self.lake.clone(),
                self.status.clone(),
                self.stop.clone(),
            )
            .await
            {
                Ok(p) => p,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            let interval = self.project.config.pipeline.interval.0;
            let mut last_retention = Instant::now();
            while !self.stop.load(Ordering::Relaxed) {
                match pipeline.step().await {
                    Ok(0) => tokio::time::sleep(interval).await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "micro-batch failed");
                        if let Ok(mut st) = self.status.lock() {
                            st.error = Some(e.to_string());
                        }
                        // The previous batch's commits must end before anything else
                        // writes to its tables; their own errors are repaired by recovery.
                        if let Err(e) = pipeline.flush().await {
                            tracing::warn!(error = %e, "committing the previous micro-batch failed");
                        }
                        if e.kind() == weir_core::ErrorKind::User {
                            // Bad data or SQL under `fail`: stop processing, keep serving.
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        // Reopen: recovery replays the last checkpoint exactly.
                        match Pipeline::open(
                            &self.project,
                            self.log.clone(),
                            self.lake.clone(),
                            self.status.clone(),
                            self.stop.clone(),
                        )
                        .await
                        {
                            Ok(p) => pipeline = p,
                            Err(e) => tracing::error!(error = %e, "reopening the pipeline failed"),
                        }
                    }
                }
                if last_retention.elapsed() > Duration::from_secs(60) {
                    last_retention = Instant::now();
                    if let Err(e) = self.log.enforce_retention(weir_core::now_ms()) {
                        tracing::warn!(error = %e, "log retention failed");
                    }
                }
            }
            // A clean stop leaves every checkpointed batch committed (a crash here would be
            // repaired by recovery, but a stop should not need it).
            if let Err(e) = pipeline.flush().await {
                tracing::error!(error = %e, "committing the last micro-batch failed");
            }
        });
    }

    /// The DAG orchestrator, once [`Weir::start`] has started the scheduler (projects with
    /// DAGs only).
    pub fn dags(&self) -> Option<&Arc<crate::dag::Orchestrator>> {
        self.dags.get()
    }

    /// Records in the dead-letter topic.
    pub fn dead_letters(&self) -> u64 {
        self.log
            .topic(DLQ_TOPIC)
            .and_then(|t| t.partition(0).map(|p| p.end_offset()))
            .unwrap_or(0)
    }

    /// The metrics alert rules watch, sampled now; rates and the latency quantile cover the
    /// time since the previous sample (`prev`, updated).
    pub fn sample_metrics(
        &self,
        prev: &mut Option<(crate::status::LatencyHistogram, u64, u64)>,
    ) -> BTreeMap<String, f64> {
        let st = self.pipeline_status();
        let (quarantined, rows_in) = st.tables.values().fold((0, 0), |(q, r), t| {
            (q + t.metrics.quarantined, r + t.metrics.rows_in)
        });
        let mut m = BTreeMap::new();
        m.insert("lag_records".to_string(), self.lag() as f64);
        m.insert("dead_letters".to_string(), self.dead_letters() as f64);
        if let Some(rss) = crate::status::rss_bytes() {
            m.insert("rss_bytes".to_string(), rss as f64);
        }
        if let Some((lat, q0, r0)) = prev.as_ref() {
            if let Some(p99) = st.latency.since(lat).quantile(0.99) {
                m.insert("latency_p99_seconds".to_string(), p99 / 1000.0);
            }
            let rows = rows_in.saturating_sub(*r0);
            if rows > 0 {
                m.insert(
                    "quarantine_rate".to_string(),
                    quarantined.saturating_sub(*q0) as f64 / rows as f64,
                );
            }
        }
        *prev = Some((st.latency.clone(), quarantined, rows_in));
        m
    }

    /// Evaluates `[[alerts.rules]]` every `rule_interval` until the project stops.
    async fn watch_rules(self: Arc<Self>, orch: Arc<crate::dag::Orchestrator>) {
        let cfg = &self.project.config.alerts;
        if cfg.rules.is_empty() {
            return;
        }
        let mut engine = crate::dag::rules::RuleEngine::new(cfg.rules.clone());
        let mut prev = None;
        while !self.stopping() {
            let metrics = self.sample_metrics(&mut prev);
            for ev in engine.evaluate(Instant::now(), &metrics) {
                let (rule, value, resolved) = match ev {
                    crate::dag::rules::RuleEvent::Fire { rule, value } => (rule, value, false),
                    crate::dag::rules::RuleEvent::Resolve { rule, value } => (rule, value, true),
                };
                let Some(r) = engine.rule(&rule) else {
                    continue;
                };
                let alert = crate::dag::alerts::Alert {
                    event: "metric_rule".into(),
                    dag: self.project.config.project.name.clone(),
                    task: Some(rule.clone()),
                    run_id: None,
                    logical_date: None,
                    error: Some(format!(
                        "{} = {value:.4} (threshold {}{})",
                        r.metric,
                        r.above,
                        r.for_.map_or(String::new(), |d| format!(" for {d}"))
                    )),
                    resolved: false,
                };
                let key = format!("rule:{rule}");
                if resolved {
                    orch.alerter().resolve(&key, alert);
                } else {
                    orch.alerter().fire(&key, alert);
                }
            }
            tokio::time::sleep(cfg.rule_interval.0).await;
        }
    }

    /// Asks every thread to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Waits for every thread to finish (call [`Weir::stop`] first).
    pub fn join(&self) {
        let threads: Vec<JoinHandle<()>> = self
            .threads
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }

    /// Records waiting for the pipeline, over all source topics.
    pub fn lag(&self) -> u64 {
        let committed = self
            .status
            .lock()
            .map(|s| s.committed.clone())
            .unwrap_or_default();
        self.project
            .config
            .sources
            .keys()
            .flat_map(|name| self.partition_offsets(name, &committed))
            .map(|(_, end, done)| end.saturating_sub(done))
            .sum()
    }

    /// Each partition of source `name`'s log topic as (partition, end offset, committed
    /// offset), the committed offsets read from `committed` (a [`PipelineStatus`]'s).
    pub fn partition_offsets(
        &self,
        name: &str,
        committed: &std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u64>>,
    ) -> Vec<(u32, u64, u64)> {
        let Some(t) = self.log.topic(name) else {
            return Vec::new();
        };
        (0..t.partition_count())
            .map(|p| {
                let end = t.partition(p).map_or(0, |x| x.end_offset());
                let done = committed
                    .get(name)
                    .and_then(|m| m.get(&p))
                    .copied()
                    .unwrap_or(0);
                (p, end, done)
            })
            .collect()
    }

    /// Whether the pipeline has started and processed everything in the log.
    pub fn caught_up(&self) -> bool {
        self.status.lock().is_ok_and(|s| s.ready) && self.lag() == 0
    }

    /// Durably ingests a JSON-lines body into an http source.
    pub fn ingest(
        &self,
        source: &str,
        body: &[u8],
    ) -> std::result::Result<IngestReport, IngestError> {
        let Some(ing) = self.ingest.get(source) else {
            return Err(IngestError::UnknownSource(
                source.to_owned(),
                self.ingest.keys().cloned().collect::<Vec<_>>().join(", "),
            ));
        };
        let limit = self.project.config.pipeline.max_lag_records;
        let lag = self.lag();
        if lag > limit {
            return Err(IngestError::Overloaded { lag, limit });
        }
        let r = ing.ingest(body, weir_core::now_ms())?;
        if let Some(c) = self.produced.get(source) {
            c.fetch_add(r.accepted, Ordering::Relaxed);
        }
        Ok(r)
    }

    /// The pipeline's live figures.
    pub fn pipeline_status(&self) -> PipelineStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// `GET /v1/status`: per source the log end offsets, committed offsets and lag; per table
    /// the counters and Delta version; and the pipeline's figures.
    pub fn status_json(&self) -> serde_json::Value {
        let st = self.pipeline_status();
        let mut sources = serde_json::Map::new();
        let mut total_lag = 0u64;
        for (name, s) in &self.project.config.sources {
            if self.log.topic(name).is_none() {
                continue;
            }
            let mut parts = Vec::new();
            let mut lag = 0;
            for (p, end, committed) in self.partition_offsets(name, &st.committed) {
                lag += end.saturating_sub(committed);
                parts.push(json!({"partition": p, "end_offset": end, "committed_offset": committed, "lag": end.saturating_sub(committed)}));
            }
            total_lag += lag;
            sources.insert(
                name.clone(),
                json!({"kind": s.kind(), "partitions": parts, "lag": lag,
                       "health": self.source_health(name),
                       "records_in": parts.iter().map(|p| p["end_offset"].as_u64().unwrap_or(0)).sum::<u64>()}),
            );
        }
        let dlq = self.dead_letters();
        json!({
            "project": self.project.config.project.name,
            "uptime_seconds": self.started.elapsed().as_secs_f64(),
            "lag": total_lag,
            "dead_letters": dlq,
            "sources": sources,
            "tables": st.tables,
            "sinks": st.sinks,
            "delta_versions": st.delta_versions,
            "pipeline": {
                "batches": st.batches,
                "last_batch_id": st.last_batch_id,
                "last_batch_records": st.last_batch_records,
                "last_batch_seconds": st.last_batch_seconds,
                "records_processed": st.records_processed,
                "latency_ms": {"p50": st.latency.quantile(0.5), "p99": st.latency.quantile(0.99), "count": st.latency.count},
                "error": st.error,
            }
        })
    }
}
