//! Ad-hoc SQL over the lake: every Delta table under the lake root is a table of the default
//! schema, resolved when a query names it (on object storage, delta-rs registers each table's
//! object store with the session as it plans the scan). `"<table>@v<N>"` (a quoted name) reads version N
//! of a table (time travel). Batch tables are registered as views over their SQL.
//! Queries read Delta snapshots, so they are safe while `weir run` writes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use weir_lake::Lake;

use crate::error::{Result, SqlError};

/// A DataFusion session whose default schema is the lake.
pub struct QuerySession {
    ctx: SessionContext,
}

impl QuerySession {
    /// A session over `lake`, with `views` (name, SQL) registered on top. A view whose SQL
    /// cannot be planned yet (its upstream table has no data) is skipped and reported in the
    /// returned list.
    pub async fn try_new(lake: Lake, views: &[(String, String)]) -> Result<(Self, Vec<String>)> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("weir", "public");
        let ctx = SessionContext::new_with_config(config);
        let catalog = Arc::new(datafusion::catalog::MemoryCatalogProvider::new());
        let schema = Arc::new(LakeSchema {
            lake,
            extra: RwLock::new(HashMap::new()),
        });
        datafusion::catalog::CatalogProvider::register_schema(catalog.as_ref(), "public", schema)
            .map_err(|source| SqlError::Query { source })?;
        ctx.register_catalog("weir", catalog);
        let mut skipped = Vec::new();
        for (name, sql) in views {
            if schema_has_table(&ctx, name) {
                // A batch table the orchestrator has materialized: its Delta table wins.
                continue;
            }
            let ddl = format!("CREATE VIEW \"{name}\" AS {sql}");
            match ctx.sql(&ddl).await {
                Ok(df) => {
                    df.collect()
                        .await
                        .map_err(|source| SqlError::Query { source })?;
                }
                Err(e) => skipped.push(format!("{name}: {e}")),
            }
        }
        Ok((Self { ctx }, skipped))
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs one statement and collects its rows.
    pub async fn run(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let df = self
            .ctx
            .sql(sql)
            .await
            .map_err(|source| SqlError::Query { source })?;
        df.collect()
            .await
            .map_err(|source| SqlError::Query { source })
    }
}

fn schema_has_table(ctx: &SessionContext, name: &str) -> bool {
    ctx.catalog("weir")
        .and_then(|c| c.schema("public"))
        .is_some_and(|s| s.table_exist(name))
}

/// Splits `name@v3` into (`name`, Some(3)).
fn split_version(name: &str) -> Option<(&str, Option<i64>)> {
    match name.rsplit_once("@v") {
        Some((base, v)) => v.parse().ok().map(|v| (base, Some(v))),
        None => Some((name, None)),
    }
}

#[derive(Debug)]
struct LakeSchema {
    lake: Lake,
    extra: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.lake.table_names();
        if let Ok(extra) = self.extra.read() {
            names.extend(extra.keys().cloned());
        }
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self.extra.read().ok().and_then(|e| e.get(name).cloned()) {
            return Ok(Some(t));
        }
        let Some((base, version)) = split_version(name) else {
            return Ok(None);
        };
        if !self.lake.has_table(base).await {
            return Ok(None);
        }
        let table = self
            .lake
            .open(base, version)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(provider))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        let mut extra = self
            .extra
            .write()
            .map_err(|_| DataFusionError::Execution("view registry poisoned".into()))?;
        Ok(extra.insert(name, table))
    }

    fn deregister_table(
        &self,
        name: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        let mut extra = self
            .extra
            .write()
            .map_err(|_| DataFusionError::Execution("view registry poisoned".into()))?;
        Ok(extra.remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.extra.read().is_ok_and(|e| e.contains_key(name))
            || split_version(name).is_some_and(|(b, _)| self.lake.exists(b))
    }
}
