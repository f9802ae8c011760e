//! The project's tables as the dashboard shows them: every table the pipeline writes (the
//! bronze table of each source, the streaming tables and their quarantine and late side
//! tables) and every batch table, each with its medallion layer, its kind, its role and the
//! tables or sources it reads. Read from the config only; figures come from elsewhere.

use std::collections::BTreeSet;

use weir_orchestrator::Project;
use weir_orchestrator::config::TableMode;

use crate::openapi::api_enum;

api_enum! {
    /// Medallion layer: bronze (raw records as ingested), silver (typed and validated), gold
    /// (aggregated).
    pub enum Layer {
        Bronze = "bronze",
        Silver = "silver",
        Gold = "gold",
    }
}

api_enum! {
    /// `stream`: kept up to date by the micro-batch pipeline; `batch`: computed on demand and
    /// built by DAG tasks.
    pub enum TableKind {
        Stream = "stream",
        Batch = "batch",
    }
}

api_enum! {
    /// `table`: a table of the project; `quarantine`: rows that failed an expectation of its
    /// parent; `late`: rows that came behind the watermark of its parent's window.
    pub enum TableRole {
        Table = "table",
        Quarantine = "quarantine",
        Late = "late",
    }
}

/// One table of the project.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub layer: Option<Layer>,
    pub kind: TableKind,
    pub role: TableRole,
    /// The table whose side output this is (quarantine and late tables).
    pub parent: Option<String>,
    /// Sources and tables it reads.
    pub inputs: Vec<String>,
    pub partition_by: Vec<String>,
    pub sql: Option<String>,
    /// The `from` of a configured table.
    pub from: Option<String>,
}

/// Every table of `project`: bronze tables first, then configured tables in name order, each
/// followed by its side tables.
pub fn tables(project: &Project) -> Vec<Entry> {
    let c = &project.config;
    let mut out = Vec::new();
    for s in c.sources.keys() {
        out.push(Entry {
            name: format!("bronze_{s}"),
            layer: Some(Layer::Bronze),
            kind: TableKind::Stream,
            role: TableRole::Table,
            parent: None,
            inputs: vec![s.clone()],
            partition_by: Vec::new(),
            sql: None,
            from: Some(s.clone()),
        });
    }
    // A table reads a source only through `from` (as its bronze rows); other names in its
    // SQL count as inputs only when they are tables (a join), so a column called `events`
    // is not taken for the source.
    let known: BTreeSet<&str> = c.tables.keys().map(String::as_str).collect();
    for (name, t) in &c.tables {
        let sql = project.sql.get(name).cloned();
        let layer = layer_of(project, name);
        // The input named by `from`, then any other table the SQL names (a join).
        let first = if c.sources.contains_key(&t.from) {
            format!("bronze_{}", t.from)
        } else {
            t.from.clone()
        };
        let mut inputs = vec![first];
        for w in sql.as_deref().map(words).unwrap_or_default() {
            if w != *name && w != t.from && known.contains(w.as_str()) && !inputs.contains(&w) {
                inputs.push(w);
            }
        }
        let streaming = t.mode == TableMode::Streaming;
        out.push(Entry {
            name: name.clone(),
            layer,
            kind: if streaming {
                TableKind::Stream
            } else {
                TableKind::Batch
            },
            role: TableRole::Table,
            parent: None,
            inputs,
            partition_by: t.partition_by.clone(),
            sql,
            from: Some(t.from.clone()),
        });
        if streaming {
            out.push(side(name, "quarantine", TableRole::Quarantine, layer));
            if t.window.is_some() {
                out.push(side(name, "late", TableRole::Late, layer));
            }
        }
    }
    out
}

fn side(parent: &str, suffix: &str, role: TableRole, layer: Option<Layer>) -> Entry {
    Entry {
        name: format!("{parent}_{suffix}"),
        layer,
        kind: TableKind::Stream,
        role,
        parent: Some(parent.to_owned()),
        inputs: vec![parent.to_owned()],
        partition_by: Vec::new(),
        sql: None,
        from: None,
    }
}

/// The layer a configured table's name says (`bronze_`, `silver_`, `gold_`), else silver for a
/// table reading a source and gold for one reading a table.
fn layer_of(project: &Project, name: &str) -> Option<Layer> {
    for (prefix, layer) in [
        ("bronze_", Layer::Bronze),
        ("silver_", Layer::Silver),
        ("gold_", Layer::Gold),
    ] {
        if name.starts_with(prefix) {
            return Some(layer);
        }
    }
    let t = project.config.tables.get(name)?;
    Some(if project.config.sources.contains_key(&t.from) {
        Layer::Silver
    } else {
        Layer::Gold
    })
}

/// The identifiers of a SQL text, lowercased.
pub fn words(sql: &str) -> Vec<String> {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The entry named `name`.
pub fn find(project: &Project, name: &str) -> Option<Entry> {
    tables(project).into_iter().find(|e| e.name == name)
}
