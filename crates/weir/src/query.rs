//! `weir query`: one statement over the lake, printed as a table, CSV or JSON.

use weir_orchestrator::Project;
use weir_sql::query::QuerySession;

use crate::cli::Format;

pub async fn run(project: &Project, sql: &str, format: Format) -> anyhow::Result<()> {
    let lake = project.open_lake()?;
    let views = weir_orchestrator::config::batch_views(project);
    let (session, skipped) = QuerySession::try_new(lake, &views).await?;
    for s in skipped {
        tracing::info!(view = %s, "batch table not available yet");
    }
    let df = session
        .context()
        .sql(sql)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let rows = df.collect().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = match format {
        Format::Table => weir_sql::format::to_table(&rows)?,
        Format::Csv => weir_sql::format::to_csv(&rows, Some(&schema))?,
        Format::Json => weir_sql::format::to_json(&rows)?,
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(())
}
