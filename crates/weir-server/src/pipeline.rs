//! `GET /v1/pipeline` (the graph sources → bronze → silver → gold → sinks with live figures on
//! each node) and `GET /v1/sources` (each source's log: records, lag, partitions).

use std::collections::BTreeMap;

use axum::extract::State;
use weir_orchestrator::Weir;

use crate::AppState;
use crate::catalog::{self, Layer, TableKind, TableRole};
use crate::openapi::{api_enum, api_object};

api_enum! {
    /// What a node is.
    pub enum NodeKind {
        Source = "source",
        Table = "table",
        Sink = "sink",
    }
}

api_object! {
    @omit_nulls
    /// Live figures of a node; a figure that does not apply to the node is left out.
    pub struct NodeStats {
        /// Records appended per second over the last sample (sources).
        pub events_per_s: Option<f64>,
        /// Rows written per second over the last sample (tables).
        pub rows_per_s: Option<f64>,
        /// Records in the source's log (sources, and the dead-letter sink).
        pub records_in: Option<u64>,
        /// Rows in the table at its latest version, from the Delta statistics (tables).
        pub rows: Option<u64>,
        /// Records of the source not yet committed by the pipeline (sources).
        pub lag: Option<u64>,
        /// Rows quarantined since the pipeline started (streaming tables).
        pub quarantined: Option<u64>,
        /// Rows behind the watermark since the pipeline started (windowed tables).
        pub late: Option<u64>,
        /// Latest Delta version (tables).
        pub version: Option<i64>,
        /// Time of the latest Delta commit, ms since the epoch (tables).
        pub last_commit: Option<i64>,
    }
}

api_object! {
    /// A source, table or sink of the pipeline.
    pub struct Node {
        /// Unique in the graph: the source or table name, `export:<dag>.<task>` for an export,
        /// `dead_letters` for the dead-letter topic.
        pub id: String,
        pub kind: NodeKind,
        pub layer: Option<Layer>,
        /// Tables only.
        pub mode: Option<TableKind>,
        /// Tables only.
        pub role: Option<TableRole>,
        pub stats: NodeStats,
    }
}

api_object! {
    /// Data flows from `from` to `to`.
    pub struct Edge {
        pub from: String,
        pub to: String,
    }
}

api_object! {
    /// The pipeline as a graph.
    pub struct PipelineGraph {
        pub nodes: Vec<Node>,
        pub edges: Vec<Edge>,
    }
}

api_object! {
    /// One partition of a source's log.
    pub struct SourcePartition {
        pub partition: u32,
        /// Offset the next record will get.
        pub end_offset: u64,
        /// Offset the pipeline reads next.
        pub committed_offset: u64,
        pub lag: u64,
    }
}

api_object! {
    /// A source and its log topic.
    pub struct SourceStatus {
        pub name: String,
        /// http, file or generator.
        pub kind: String,
        /// Records in its log.
        pub records_in: u64,
        /// Records not yet committed by the pipeline.
        pub lag: u64,
        /// Records appended per second over the last sample.
        pub events_per_s: Option<f64>,
        pub partitions: Vec<SourcePartition>,
    }
}

api_object! {
    pub struct SourceList {
        pub sources: Vec<SourceStatus>,
    }
}

/// Every source's log figures.
pub fn sources(weir: &Weir, rates: Option<&BTreeMap<String, f64>>) -> Vec<SourceStatus> {
    let st = weir.pipeline_status();
    let mut out = Vec::new();
    for (name, s) in &weir.project().config.sources {
        let parts: Vec<SourcePartition> = weir
            .partition_offsets(name, &st.committed)
            .into_iter()
            .map(|(p, end, committed)| SourcePartition {
                partition: p,
                end_offset: end,
                committed_offset: committed,
                lag: end.saturating_sub(committed),
            })
            .collect();
        out.push(SourceStatus {
            name: name.clone(),
            kind: s.kind().to_owned(),
            records_in: parts.iter().map(|p| p.end_offset).sum(),
            lag: parts.iter().map(|p| p.lag).sum(),
            events_per_s: rates.and_then(|r| r.get(name).copied()),
            partitions: parts,
        });
    }
    out
}

/// `GET /v1/sources`.
pub async fn list_sources(State(st): State<AppState>) -> axum::Json<SourceList> {
    st.live.sampler.ensure_started(&st.weir);
    let last = st.live.sampler.last();
    axum::Json(SourceList {
        sources: sources(&st.weir, last.as_ref().map(|s| &s.sources)),
    })
}

/// `GET /v1/pipeline`.
pub async fn graph(State(st): State<AppState>) -> axum::Json<PipelineGraph> {
    st.live.sampler.ensure_started(&st.weir);
    let weir = &st.weir;
    let project = weir.project();
    let last = st.live.sampler.last();
    let status = weir.pipeline_status();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let none = NodeStats {
        events_per_s: None,
        rows_per_s: None,
        records_in: None,
        rows: None,
        lag: None,
        quarantined: None,
        late: None,
        version: None,
        last_commit: None,
    };
    for s in sources(weir, last.as_ref().map(|s| &s.sources)) {
        edges.push(Edge {
            from: s.name.clone(),
            to: "dead_letters".into(),
        });
        nodes.push(Node {
            id: s.name,
            kind: NodeKind::Source,
            layer: None,
            mode: None,
            role: None,
            stats: NodeStats {
                events_per_s: s.events_per_s,
                records_in: Some(s.records_in),
                lag: Some(s.lag),
                ..none.clone()
            },
        });
    }
    for e in catalog::tables(project) {
        let detail = if weir.lake().has_table(&e.name).await {
            st.live.tables.detail(&e.name).await.ok()
        } else {
            None
        };
        let metrics = status.tables.get(&e.name).map(|t| &t.metrics);
        for i in &e.inputs {
            edges.push(Edge {
                from: i.clone(),
                to: e.name.clone(),
            });
        }
        let sink = e.role != TableRole::Table;
        nodes.push(Node {
            id: e.name.clone(),
            kind: if sink {
                NodeKind::Sink
            } else {
                NodeKind::Table
            },
            layer: e.layer,
            mode: Some(e.kind),
            role: Some(e.role),
            stats: NodeStats {
                rows_per_s: last
                    .as_ref()
                    .and_then(|s| s.tables.get(&e.name))
                    .map(|t| t.rows_per_s),
                rows: detail.as_ref().map(|d| d.rows),
                quarantined: metrics.map(|m| m.quarantined),
                late: metrics
                    .filter(|_| {
                        project
                            .config
                            .tables
                            .get(&e.name)
                            .is_some_and(|t| t.window.is_some())
                    })
                    .map(|m| m.late),
                version: detail.as_ref().map(|d| d.version),
                last_commit: detail.as_ref().and_then(|d| d.last_commit_ms),
                ..none.clone()
            },
        });
    }
    nodes.push(Node {
        id: "dead_letters".into(),
        kind: NodeKind::Sink,
        layer: None,
        mode: None,
        role: None,
        stats: NodeStats {
            records_in: Some(weir.dead_letters()),
            ..none.clone()
        },
    });
    for (dag, d) in &project.config.dags {
        for t in &d.tasks {
            let Some(x) = &t.export else { continue };
            let id = format!("export:{dag}.{}", t.id);
            let inputs: Vec<String> = match (&x.table, &x.query) {
                (Some(table), _) => vec![table.clone()],
                (None, Some(q)) => {
                    let mut v: Vec<String> = catalog::words(q)
                        .into_iter()
                        .filter(|w| project.config.tables.contains_key(w))
                        .collect();
                    v.dedup();
                    v
                }
                (None, None) => Vec::new(),
            };
            for i in inputs {
                edges.push(Edge {
                    from: i,
                    to: id.clone(),
                });
            }
            nodes.push(Node {
                id,
                kind: NodeKind::Sink,
                layer: None,
                mode: None,
                role: None,
                stats: none.clone(),
            });
        }
    }
    axum::Json(PipelineGraph { nodes, edges })
}
