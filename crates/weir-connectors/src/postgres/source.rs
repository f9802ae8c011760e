//! The `postgres` source: rows of a PostgreSQL table or query polled on an increasing cursor
//! column (`mode = "poll"`, [`poll`]), or every insert, update and delete of some tables read
//! through logical replication (`mode = "cdc"`, [`cdc`], decoding [`pgoutput`]).
//!
//! This file holds the config, the run loop both modes share (its own current-thread tokio
//! runtime, reconnects with [`Backoff`], failures shown through [`SourceHealth`]) and how a
//! mode finds where it stopped. Both modes resume from their own records: every record
//! carries its position (the cursor column and key for `poll`, the commit LSN and the place
//! in the transaction for `cdc`), and each record's partition follows from its key, so on
//! start the source reads the last record of every partition and skips, per partition, what
//! that partition already holds. Per partition, because one append may span several
//! partitions and a crash can land between them.
//!
//! Values are read as PostgreSQL's text and converted to JSON the same way in both modes
//! ([`value`]); the session runs with `TimeZone = 'UTC'` and ISO dates so that text is
//! predictable.
//!
//! [`SourceHealth`]: crate::source::SourceHealth

mod cdc;
pub mod pgoutput;
mod poll;
pub mod value;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use weir_core::{ErrorKind, HumanDuration};
use weir_log::{StoredRecord, Topic};

use super::{check_table_name, connect, parse_url, remote};
use crate::error::{ConnectorError, Result};
use crate::source::{Appender, Backoff, PullSource, SourceContext};

/// `[sources.<name>] type = "postgres"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// Connection URL, e.g. `postgres://weir:${PG_PASSWORD}@db:5432/shop`; `${ENV}` is
    /// substituted at start.
    pub url: String,
    /// `poll` (query rows past a cursor column every `every`) or `cdc` (every change of
    /// `tables` through logical replication; needs `wal_level = logical`).
    #[serde(default)]
    pub mode: PostgresMode,
    /// Partitions of the source's topic. Records are keyed by the row's key, so the changes
    /// of one row stay in order in one partition.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// poll: the table to read, `name` or `schema.name` (or give `query`).
    #[serde(default)]
    pub table: Option<String>,
    /// poll: a `SELECT` whose rows are read instead of a table's (no trailing `ORDER BY` or
    /// `LIMIT` needed; weir wraps it).
    #[serde(default)]
    pub query: Option<String>,
    /// poll: a column whose value only grows as rows are written or updated (an integer id,
    /// a sequence, a `timestamp`/`timestamptz` such as `updated_at`, or a `date`). Rows whose
    /// cursor is NULL are not read.
    #[serde(default)]
    pub cursor: Option<String>,
    /// poll: the columns identifying a row (the record key, and the tie-breaker between rows
    /// with the same cursor value). Default: the table's primary key; none for a `query`.
    #[serde(default)]
    pub key: Vec<String>,
    /// How long to wait before asking again when there was nothing new (default 5s for
    /// `poll`, 1s for `cdc`).
    #[serde(default)]
    pub every: Option<HumanDuration>,
    /// Rows per query (`poll`) or changes per read of the slot (`cdc`; a transaction is never
    /// split, so a read may return more).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// cdc: the tables whose changes are read, `name` or `schema.name`.
    #[serde(default)]
    pub tables: Vec<String>,
    /// cdc: the publication to read; created `FOR TABLE <tables>` when absent, and the tables
    /// it lacks are added to it. Default `weir_<source name>`.
    #[serde(default)]
    pub publication: Option<String>,
    /// cdc: the logical replication slot (plugin `pgoutput`); created when absent. It keeps
    /// the server's WAL until weir has read it: drop it when the source is removed. Default
    /// `weir_<source name>`.
    #[serde(default)]
    pub slot: Option<String>,
    /// cdc: set `REPLICA IDENTITY FULL` on the tables so that updates and deletes carry the
    /// whole old row in `before` (otherwise `before` holds only the primary key, and only
    /// when it is a delete or the key changed).
    #[serde(default)]
    pub replica_identity_full: bool,
}

/// How the `postgres` source reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostgresMode {
    #[default]
    Poll,
    Cdc,
}

fn default_partitions() -> u32 {
    1
}

fn default_batch_size() -> u32 {
    10_000
}

/// Longest wait for one round of queries before the connection is dropped and retried.
const ROUND_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl PostgresSourceConfig {
    /// Checks the fields; errors name the key and what was expected.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let key = |k: &str| format!("sources.{name}.{k}");
        if self.url.trim().is_empty() {
            return Err(format!(
                "{}: expected a URL like postgres://user@host:5432/db",
                key("url")
            ));
        }
        if self.batch_size == 0 {
            return Err(format!("{}: expected at least 1", key("batch_size")));
        }
        if self.every.is_some_and(|e| e.0.is_zero()) {
            return Err(format!("{}: expected a positive duration", key("every")));
        }
        let only = |set: bool, k: &str, mode: &str| {
            if set {
                Err(format!(
                    "{}: only used with `mode = \"{mode}\"`; remove it or change the mode",
                    key(k)
                ))
            } else {
                Ok(())
            }
        };
        match self.mode {
            PostgresMode::Poll => {
                only(!self.tables.is_empty(), "tables", "cdc")?;
                only(self.publication.is_some(), "publication", "cdc")?;
                only(self.slot.is_some(), "slot", "cdc")?;
                only(self.replica_identity_full, "replica_identity_full", "cdc")?;
                match (&self.table, &self.query) {
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "{}: give `table` or `query`, not both",
                            key("query")
                        ));
                    }
                    (None, None) => {
                        return Err(format!(
                            "{}: polling needs `table = \"schema.name\"` or `query = \"SELECT ...\"`",
                            key("table")
                        ));
                    }
                    (Some(t), None) => {
                        check_table_name(t).map_err(|m| format!("{}: {m}", key("table")))?
                    }
                    (None, Some(q)) if q.trim().trim_end_matches(';').trim().is_empty() => {
                        return Err(format!("{}: expected a SELECT, got nothing", key("query")));
                    }
                    (None, Some(_)) => {}
                }
                match &self.cursor {
                    None => {
                        return Err(format!(
                            "{}: polling needs an increasing column to resume from, e.g. cursor = \"updated_at\"",
                            key("cursor")
                        ));
                    }
                    Some(c) if c.is_empty() => {
                        return Err(format!("{}: expected a column name", key("cursor")));
                    }
                    Some(_) => {}
                }
                if self.key.iter().any(String::is_empty) {
                    return Err(format!("{}: expected column names", key("key")));
                }
            }
            PostgresMode::Cdc => {
                only(self.table.is_some(), "table", "poll")?;
                only(self.query.is_some(), "query", "poll")?;
                only(self.cursor.is_some(), "cursor", "poll")?;
                only(!self.key.is_empty(), "key", "poll")?;
                if self.tables.is_empty() {
                    return Err(format!(
                        "{}: CDC needs the tables to follow, e.g. tables = [\"public.accounts\"]",
                        key("tables")
                    ));
                }
                for t in &self.tables {
                    check_table_name(t).map_err(|m| format!("{}: {m}", key("tables")))?;
                }
                check_slot_name(&self.slot_name(name))
                    .map_err(|m| format!("{}: {m}", key("slot")))?;
                check_slot_name(&self.publication_name(name))
                    .map_err(|m| format!("{}: {m}", key("publication")))?;
            }
        }
        Ok(())
    }

    /// The slot CDC reads (`slot`, default `weir_<source>`).
    pub fn slot_name(&self, source: &str) -> String {
        self.slot
            .clone()
            .unwrap_or_else(|| format!("weir_{source}"))
    }

    /// The publication CDC reads (`publication`, default `weir_<source>`).
    pub fn publication_name(&self, source: &str) -> String {
        self.publication
            .clone()
            .unwrap_or_else(|| format!("weir_{source}"))
    }

    /// The running source. Does no IO: it connects when run.
    pub fn build(&self, name: &str) -> Result<PostgresSource> {
        let mut pg = parse_url(name, &format!("sources.{name}.url"), &self.url)?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        pg.application_name(format!("weir source {name}"));
        Ok(PostgresSource {
            name: name.to_owned(),
            cfg: self.clone(),
            pg,
        })
    }
}

/// Slot names are lower-case letters, digits and underscores, at most 63 bytes (PostgreSQL's
/// rule); weir holds publication names to the same so they need no quoting anywhere.
fn check_slot_name(n: &str) -> Result<(), String> {
    if n.is_empty()
        || n.len() > 63
        || !n
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "`{n}` is not a usable name: use lower-case letters, digits and `_`, at most 63 characters"
        ));
    }
    Ok(())
}

/// The running `postgres` source.
pub struct PostgresSource {
    name: String,
    cfg: PostgresSourceConfig,
    pg: tokio_postgres::Config,
}

/// What one round of a mode found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// A full batch: more may be waiting, ask again at once.
    More,
    /// Caught up: wait `every`.
    Idle,
}

impl PullSource for PostgresSource {
    fn run(&mut self, ctx: &SourceContext) -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConnectorError::Io {
                source_name: self.name.clone(),
                path: "tokio runtime".into(),
                error: e,
            })?;
        rt.block_on(self.run_async(ctx))
    }
}

impl PostgresSource {
    async fn run_async(&mut self, ctx: &SourceContext) -> Result<()> {
        let appender = ctx.appender();
        let last = last_record_per_partition(&self.name, &ctx.topic)?;
        let mut mode = match self.cfg.mode {
            PostgresMode::Poll => Mode::Poll(poll::Poller::new(&self.name, &self.cfg, last)),
            PostgresMode::Cdc => Mode::Cdc(cdc::Cdc::try_new(&self.name, &self.cfg, last)?),
        };
        let every = self.cfg.every.map_or(
            match self.cfg.mode {
                PostgresMode::Poll => Duration::from_secs(5),
                PostgresMode::Cdc => Duration::from_secs(1),
            },
            |e| e.0,
        );
        let mut client: Option<Client> = None;
        let mut backoff = Backoff::new(MAX_BACKOFF);
        while !ctx.stopping() {
            let round =
                tokio::time::timeout(ROUND_TIMEOUT, self.round(&mut client, &mut mode, &appender))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ConnectorError::Remote {
                            connector: self.name.clone(),
                            operation: "reading PostgreSQL".into(),
                            reason: format!("no answer within {}s", ROUND_TIMEOUT.as_secs()),
                            retry: true,
                        })
                    });
            match round {
                Ok(r) => {
                    ctx.health.ok();
                    backoff.reset();
                    if r == Round::Idle && !sleep(ctx, every).await {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::External => {
                    ctx.health.failed(&e.to_string());
                    tracing::warn!(source = %self.name, error = %e, "postgres source: retrying");
                    client = None;
                    if !sleep(ctx, backoff.next_delay()).await {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Connects (and sets the mode up) if needed, then reads once.
    async fn round(
        &self,
        client: &mut Option<Client>,
        mode: &mut Mode,
        appender: &Appender,
    ) -> Result<Round> {
        if client.as_ref().is_none_or(Client::is_closed) {
            let c = connect(&self.name, &self.pg).await?;
            c.batch_execute(
                "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
                 SET extra_float_digits = 3; SET bytea_output = 'hex'",
            )
            .await
            .map_err(|e| remote(&self.name, "setting up the session", &e))?;
            match mode {
                Mode::Poll(p) => p.setup(&c).await?,
                Mode::Cdc(m) => m.setup(&c).await?,
            }
            *client = Some(c);
        }
        // Set just above.
        let c = client.as_ref().expect("connected");
        match mode {
            Mode::Poll(p) => p.round(c, appender).await,
            Mode::Cdc(m) => m.round(c, appender).await,
        }
    }
}

enum Mode {
    Poll(poll::Poller),
    Cdc(cdc::Cdc),
}

/// Sleeps `d` in short steps; false when weir is stopping.
async fn sleep(ctx: &SourceContext, d: Duration) -> bool {
    let until = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < until {
        if ctx.stopping() {
            return false;
        }
        let left = until - tokio::time::Instant::now();
        tokio::time::sleep(left.min(Duration::from_millis(50))).await;
    }
    !ctx.stopping()
}

/// The last durable record of each partition (index = partition), which is where each
/// partition's share of the source's output stopped.
fn last_record_per_partition(name: &str, topic: &Arc<Topic>) -> Result<Vec<Option<StoredRecord>>> {
    let mut out = Vec::new();
    for p in 0..topic.partition_count() {
        let Some(part) = topic.partition(p) else {
            out.push(None);
            continue;
        };
        let end = part.end_offset();
        if end == 0 || end <= part.start_offset() {
            out.push(None);
            continue;
        }
        let mut recs = part
            .read(end - 1, 1, usize::MAX)
            .map_err(|error| ConnectorError::Log {
                source_name: name.to_owned(),
                error,
            })?;
        out.push(recs.pop());
    }
    Ok(out)
}

/// A PostgreSQL error as a connector error, like [`remote`], and also retried when the
/// object is busy (`55006`: a slot still held by the session of a weir that just died) or
/// was created concurrently (`42710`).
fn pg_error(name: &str, operation: &str, e: &tokio_postgres::Error) -> ConnectorError {
    let busy = e
        .as_db_error()
        .is_some_and(|d| matches!(d.code().code(), "55006" | "42710"));
    match remote(name, operation, e) {
        ConnectorError::Remote {
            connector,
            operation,
            reason,
            retry,
        } => ConnectorError::Remote {
            connector,
            operation,
            reason,
            retry: retry || busy,
        },
        other => other,
    }
}

/// A problem with what the server holds that a retry cannot fix.
fn refused(name: &str, operation: &str, reason: String) -> ConnectorError {
    ConnectorError::Remote {
        connector: name.to_owned(),
        operation: operation.to_owned(),
        reason,
        retry: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> PostgresSourceConfig {
        serde_json::from_value(
            toml_text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap();
                    (k.trim().to_owned(), serde_json::from_str(v.trim()).unwrap())
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
        )
        .unwrap()
    }

    #[test]
    fn poll_config_is_checked() {
        let ok = parse(
            r#"url = "postgres://u@h/db"
               table = "public.orders"
               cursor = "updated_at""#,
        );
        assert_eq!(ok.mode, PostgresMode::Poll);
        ok.validate("orders").unwrap();
        let e = parse(
            r#"url = "postgres://u@h/db"
                         table = "orders""#,
        )
        .validate("orders")
        .unwrap_err();
        assert!(e.contains("sources.orders.cursor"), "{e}");
        let e = parse(
            r#"url = "postgres://u@h/db"
               table = "a"
               query = "SELECT 1"
               cursor = "c""#,
        )
        .validate("o")
        .unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = parse(
            r#"url = "postgres://u@h/db"
               table = "a"
               cursor = "c"
               slot = "s""#,
        )
        .validate("o")
        .unwrap_err();
        assert!(e.contains("sources.o.slot") && e.contains("cdc"), "{e}");
    }

    #[test]
    fn cdc_config_is_checked() {
        let ok = parse(
            r#"url = "postgres://u@h/db"
               mode = "cdc"
               tables = ["public.accounts"]"#,
        );
        ok.validate("accounts").unwrap();
        assert_eq!(ok.slot_name("accounts"), "weir_accounts");
        assert_eq!(ok.publication_name("accounts"), "weir_accounts");
        let e = parse(
            r#"url = "postgres://u@h/db"
                         mode = "cdc""#,
        )
        .validate("a")
        .unwrap_err();
        assert!(e.contains("sources.a.tables"), "{e}");
        // The default slot name comes from the source name, which may not fit.
        let e = parse(
            r#"url = "postgres://u@h/db"
               mode = "cdc"
               tables = ["t"]"#,
        )
        .validate("Accounts-EU")
        .unwrap_err();
        assert!(e.contains("sources.Accounts-EU.slot"), "{e}");
        let e = parse(
            r#"url = "postgres://u@h/db"
               mode = "cdc"
               tables = ["t"]
               cursor = "x""#,
        )
        .validate("a")
        .unwrap_err();
        assert!(e.contains("sources.a.cursor"), "{e}");
    }
}
