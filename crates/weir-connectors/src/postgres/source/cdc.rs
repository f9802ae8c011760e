//! `mode = "cdc"`: every insert, update, delete and truncate of some tables, read through a
//! logical replication slot over an ordinary connection.
//!
//! Setup (on every connect, idempotent): check `wal_level = logical`; find the tables and
//! their primary keys; create the publication `FOR TABLE ...` (or add the tables a reused one
//! lacks); optionally set `REPLICA IDENTITY FULL`; create the slot with the `pgoutput` plugin
//! (or check a reused one uses it). The publication comes first: `pgoutput` cannot decode
//! WAL written before its publication existed.
//!
//! Each round peeks at the slot (`pg_logical_slot_peek_binary_changes`, which does not
//! consume), decodes the `pgoutput` messages ([`super::pgoutput`]), turns each row change of
//! a complete transaction into one record, appends them durably, and only then advances the
//! slot past the last commit (`pg_replication_slot_advance`). A crash between the append and
//! the advance leaves changes that are both in the log and still in the slot; every record
//! carries its position (the transaction's commit LSN and its place `seq` in the
//! transaction), so on start the source skips, per partition, the changes that partition's
//! last record already covers. Transactions are delivered in commit order, so
//! `(commit_lsn_num, seq)` orders all changes.
//!
//! A record:
//!
//! ```json
//! {"op": "update", "table": "public.accounts", "lsn": "0/16B3748", "commit_lsn": "0/16B37A0",
//!  "commit_lsn_num": 23803808, "seq": 3, "xid": 745, "ts": "2026-01-15T10:00:00.123456Z",
//!  "before": {"id": 7}, "after": {"id": 7, "balance": 12.5}}
//! ```
//!
//! `before` is null for inserts; for updates and deletes it holds the old primary key (only
//! when the key changed, for updates), or the whole old row under `REPLICA IDENTITY FULL`.
//! `after` is null for deletes. A large (TOASTed) value an update did not change is not sent
//! by PostgreSQL: it is taken from `before` when that holds it (identity full), else left out
//! of `after`. A truncate is one record per table with `op = "truncate"` and both images null.
//! The record key is `["<schema.table>", <primary key values as text>...]`, so one row's
//! changes stay in one partition, in order.

use std::collections::HashMap;

use tokio_postgres::Client;
use weir_log::StoredRecord;

use super::pgoutput::{self, Datum, Message, OldKind, PG_EPOCH_UNIX_MICROS, format_lsn};
use super::value::{write_str, write_value};
use super::{PostgresSourceConfig, Round, pg_error, refused};
use crate::error::{ConnectorError, Result};
use crate::postgres::{quote_ident, quote_table};
use crate::source::{Appender, OutRecord};

/// `(commit LSN, place in the transaction)`: the order of every change.
type Position = (u64, u64);

/// A configured table, as found in the catalog.
struct Table {
    /// `schema.name` as the catalog spells it.
    name: String,
    /// Primary key columns (empty without one).
    pk: Vec<String>,
}

/// A relation as `pgoutput` described it, with what weir needs to render its changes.
struct Rel {
    /// `None` for a table the publication holds but the source does not follow.
    table: Option<String>,
    columns: Vec<pgoutput::RelColumn>,
    /// Columns of the record key: the primary key, else the replica identity, else all.
    key: Vec<usize>,
}

/// A transaction being read.
struct Txn {
    commit_lsn: u64,
    ts_micros: i64,
    xid: u32,
    records: Vec<Change>,
}

/// One rendered change.
struct Change {
    pos: Position,
    key: Vec<u8>,
    value: Vec<u8>,
    ts_ms: i64,
}

pub(super) struct Cdc {
    name: String,
    wanted: Vec<String>,
    publication: String,
    slot: String,
    identity_full: bool,
    batch_size: u32,
    /// Configured tables by OID (from setup).
    tables: HashMap<u32, Table>,
    relations: HashMap<u32, Rel>,
    /// Per partition, the last position it holds.
    resume: Vec<Option<Position>>,
    /// The slot's confirmed LSN as last seen or set.
    confirmed: u64,
}

impl Cdc {
    pub(super) fn try_new(
        name: &str,
        cfg: &PostgresSourceConfig,
        last: Vec<Option<StoredRecord>>,
    ) -> Result<Self> {
        let resume = last
            .iter()
            .enumerate()
            .map(|(p, r)| r.as_ref().map(|r| position_of(name, p, r)).transpose())
            .collect::<Result<Vec<_>>>()?;
        Ok(Cdc {
            name: name.to_owned(),
            wanted: cfg.tables.clone(),
            publication: cfg.publication_name(name),
            slot: cfg.slot_name(name),
            identity_full: cfg.replica_identity_full,
            batch_size: cfg.batch_size,
            tables: HashMap::new(),
            relations: HashMap::new(),
            resume,
            confirmed: 0,
        })
    }

    fn err(&self, op: &str, e: &tokio_postgres::Error) -> ConnectorError {
        pg_error(&self.name, op, e)
    }

    /// Checks the server, then creates or checks the publication and the slot.
    pub(super) async fn setup(&mut self, client: &Client) -> Result<()> {
        let op = "checking the server for logical replication";
        let wal_level: String = client
            .query_one("SHOW wal_level", &[])
            .await
            .map_err(|e| self.err(op, &e))?
            .get(0);
        if wal_level != "logical" {
            return Err(refused(
                &self.name,
                op,
                format!(
                    "wal_level is `{wal_level}`; CDC needs logical decoding: set wal_level = logical in postgresql.conf and restart PostgreSQL (see the postgres source in docs/connectors.md)"
                ),
            ));
        }
        self.tables.clear();
        self.relations.clear();
        for t in self.wanted.clone() {
            self.find_table(client, &t).await?;
        }
        self.ensure_publication(client).await?;
        self.ensure_slot(client).await
    }

    async fn find_table(&mut self, client: &Client, t: &str) -> Result<()> {
        let op = format!("finding table `{t}`");
        let row = client
            .query_opt(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relreplident::text \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = to_regclass($1)",
                &[&quote_table(t)],
            )
            .await
            .map_err(|e| self.err(&op, &e))?;
        let Some(row) = row else {
            return Err(refused(
                &self.name,
                &op,
                format!("table `{t}` does not exist (sources.{}.tables)", self.name),
            ));
        };
        let (oid, schema, rel, kind, ident): (u32, String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        if kind != "r" {
            return Err(refused(
                &self.name,
                &op,
                format!("`{t}` is not a plain table (relkind `{kind}`); CDC reads tables"),
            ));
        }
        let pk: Vec<String> = client
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1 AND i.indisprimary \
                 ORDER BY array_position(i.indkey::int2[], a.attnum)",
                &[&oid],
            )
            .await
            .map_err(|e| self.err(&op, &e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let name = format!("{schema}.{rel}");
        if self.identity_full {
            if ident != "f" {
                client
                    .batch_execute(&format!(
                        "ALTER TABLE {} REPLICA IDENTITY FULL",
                        quote_table(&name)
                    ))
                    .await
                    .map_err(|e| {
                        self.err(&format!("setting REPLICA IDENTITY FULL on `{name}`"), &e)
                    })?;
            }
        } else if ident == "n" || (ident == "d" && pk.is_empty()) {
            // Publishing updates of such a table makes PostgreSQL refuse its UPDATEs and
            // DELETEs: refuse here instead of breaking the application writing it.
            return Err(refused(
                &self.name,
                &op,
                format!(
                    "table `{name}` has no primary key or replica identity, so its updates and deletes cannot be replicated (and PostgreSQL would refuse them once published); add a primary key or set replica_identity_full = true"
                ),
            ));
        }
        self.tables.insert(oid, Table { name, pk });
        Ok(())
    }

    async fn ensure_publication(&self, client: &Client) -> Result<()> {
        let op = format!("creating publication `{}`", self.publication);
        let pub_ident = quote_ident(&self.publication);
        let all: Option<bool> = client
            .query_opt(
                "SELECT puballtables FROM pg_publication WHERE pubname = $1",
                &[&self.publication],
            )
            .await
            .map_err(|e| self.err(&op, &e))?
            .map(|r| r.get(0));
        match all {
            None => {
                let sql = format!(
                    "CREATE PUBLICATION {pub_ident} FOR TABLE {}",
                    table_list(self.tables.values())
                );
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| self.err(&op, &e))?;
                tracing::info!(source = %self.name, publication = %self.publication, "created publication");
            }
            Some(true) => {}
            Some(false) => {
                let has: Vec<String> = client
                    .query(
                        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1",
                        &[&self.publication],
                    )
                    .await
                    .map_err(|e| self.err(&op, &e))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let mut missing = self
                    .tables
                    .values()
                    .filter(|t| !has.contains(&t.name))
                    .peekable();
                if missing.peek().is_some() {
                    let sql = format!(
                        "ALTER PUBLICATION {pub_ident} ADD TABLE {}",
                        table_list(missing)
                    );
                    client.batch_execute(&sql).await.map_err(|e| {
                        self.err(
                            &format!("adding tables to publication `{}`", self.publication),
                            &e,
                        )
                    })?;
                }
            }
        }
        Ok(())
    }

    async fn ensure_slot(&mut self, client: &Client) -> Result<()> {
        let op = format!("checking replication slot `{}`", self.slot);
        let row = client
            .query_opt(
                "SELECT s.plugin::text, s.slot_type, s.database::text, current_database()::text, \
                 s.confirmed_flush_lsn::text FROM pg_replication_slots s WHERE s.slot_name = $1",
                &[&self.slot],
            )
            .await
            .map_err(|e| self.err(&op, &e))?;
        let confirmed = match row {
            None => {
                let op = format!("creating replication slot `{}`", self.slot);
                let lsn: String = client
                    .query_one(
                        "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                        &[&self.slot],
                    )
                    .await
                    .map_err(|e| self.err(&op, &e))?
                    .get(0);
                tracing::info!(source = %self.name, slot = %self.slot, lsn = %lsn, "created replication slot");
                lsn
            }
            Some(r) => {
                let (plugin, ty, db, here, lsn): (
                    Option<String>,
                    Option<String>,
                    Option<String>,
                    String,
                    Option<String>,
                ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                let fix = format!(
                    "drop it (SELECT pg_drop_replication_slot('{}')) or set sources.{}.slot to another name",
                    self.slot, self.name
                );
                if ty.as_deref() != Some("logical") {
                    return Err(refused(
                        &self.name,
                        &op,
                        format!(
                            "slot `{}` is a physical slot, not a logical one; {fix}",
                            self.slot
                        ),
                    ));
                }
                if plugin.as_deref() != Some("pgoutput") {
                    return Err(refused(
                        &self.name,
                        &op,
                        format!(
                            "slot `{}` uses the `{}` plugin; weir reads `pgoutput`: {fix}",
                            self.slot,
                            plugin.unwrap_or_default()
                        ),
                    ));
                }
                if db.as_deref() != Some(here.as_str()) {
                    return Err(refused(
                        &self.name,
                        &op,
                        format!(
                            "slot `{}` belongs to database `{}`, not `{here}`; {fix}",
                            self.slot,
                            db.unwrap_or_default()
                        ),
                    ));
                }
                lsn.unwrap_or_default()
            }
        };
        self.confirmed = pgoutput::parse_lsn(&confirmed).unwrap_or(0);
        Ok(())
    }

    /// Peeks at the slot, appends the changes of the complete transactions, then advances
    /// the slot past them.
    pub(super) async fn round(&mut self, client: &Client, appender: &Appender) -> Result<Round> {
        let op = format!("reading replication slot `{}`", self.slot);
        // A WAL position every change before which this peek will see, when the WAL is
        // flushed up to it (the insert position is a record boundary; the flush position
        // need not be).
        let wal = client
            .query_one(
                "SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text",
                &[],
            )
            .await
            .map_err(|e| self.err(&op, &e))?;
        let (insert, flush): (String, String) = (wal.get(0), wal.get(1));
        let seen_through = match (pgoutput::parse_lsn(&insert), pgoutput::parse_lsn(&flush)) {
            (Some(i), Some(f)) if f >= i => Some(i),
            _ => None,
        };
        let rows = client
            .query(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
                 'proto_version', '1', 'publication_names', $3)",
                &[
                    &self.slot,
                    &(self.batch_size.min(i32::MAX as u32) as i32),
                    &self.publication,
                ],
            )
            .await
            .map_err(|e| self.err(&op, &e))?;
        let limited = rows.len() >= self.batch_size as usize;
        let mut done: Vec<Change> = Vec::new();
        let mut txn: Option<Txn> = None;
        let mut last_commit: Option<(u64, u64)> = None;
        for row in &rows {
            let lsn_text: &str = row.get(0);
            let data: &[u8] = row.get(1);
            let lsn = pgoutput::parse_lsn(lsn_text).unwrap_or(0);
            let msg = pgoutput::decode(data).map_err(|e| {
                refused(
                    &self.name,
                    &format!("decoding the change at LSN {lsn_text}"),
                    e.0,
                )
            })?;
            self.apply(msg, lsn, &mut txn, &mut done, &mut last_commit)?;
        }
        let topic = appender.topic();
        let out: Vec<OutRecord> = done
            .into_iter()
            .filter(|c| {
                let p = topic.partition_for(Some(c.key.as_slice())) as usize;
                self.resume
                    .get(p)
                    .copied()
                    .flatten()
                    .is_none_or(|r| c.pos > r)
            })
            .map(|c| OutRecord {
                key: Some(c.key),
                value: c.value,
                timestamp_ms: c.ts_ms,
            })
            .collect();
        appender.append(&out)?;
        if let Some((commit_lsn, _)) = last_commit {
            for r in self.resume.iter_mut() {
                *r = Some((*r).map_or((commit_lsn, u64::MAX), |r| r.max((commit_lsn, u64::MAX))));
            }
        }
        // Past the last complete transaction; when the peek was not cut short, past
        // everything the WAL held when it started too, so the slot moves (and the server
        // frees WAL) while the tables are idle.
        let mut target = last_commit.map(|(_, end)| end).unwrap_or(0);
        if !limited {
            target = target.max(seen_through.unwrap_or(0));
        }
        if target > self.confirmed {
            client
                .query(
                    "SELECT 1 FROM pg_replication_slot_advance($1, $2::text::pg_lsn)",
                    &[&self.slot, &format_lsn(target)],
                )
                .await
                .map_err(|e| {
                    self.err(&format!("advancing replication slot `{}`", self.slot), &e)
                })?;
            self.confirmed = target;
        }
        Ok(if limited { Round::More } else { Round::Idle })
    }

    fn apply(
        &mut self,
        msg: Message<'_>,
        lsn: u64,
        txn: &mut Option<Txn>,
        done: &mut Vec<Change>,
        last_commit: &mut Option<(u64, u64)>,
    ) -> Result<()> {
        let outside = |what: &str| {
            refused(
                &self.name,
                "reading replication slot",
                format!(
                    "a {what} message outside a transaction at LSN {}",
                    format_lsn(lsn)
                ),
            )
        };
        match msg {
            Message::Begin {
                final_lsn,
                commit_ts,
                xid,
            } => {
                *txn = Some(Txn {
                    commit_lsn: final_lsn,
                    ts_micros: commit_ts.saturating_add(PG_EPOCH_UNIX_MICROS),
                    xid,
                    records: Vec::new(),
                });
            }
            Message::Commit { end_lsn, .. } => {
                let t = txn.take().ok_or_else(|| outside("commit"))?;
                *last_commit = Some((t.commit_lsn, end_lsn));
                done.extend(t.records);
            }
            Message::Relation(r) => {
                let table = self.tables.get(&r.id);
                let by_name = |names: &[String]| -> Vec<usize> {
                    names
                        .iter()
                        .filter_map(|n| r.columns.iter().position(|c| &c.name == n))
                        .collect()
                };
                let mut key = table.map(|t| by_name(&t.pk)).unwrap_or_default();
                if key.is_empty() {
                    key = (0..r.columns.len()).filter(|&i| r.columns[i].key).collect();
                }
                if key.is_empty() {
                    key = (0..r.columns.len()).collect();
                }
                self.relations.insert(
                    r.id,
                    Rel {
                        table: table.map(|t| t.name.clone()),
                        columns: r.columns,
                        key,
                    },
                );
            }
            Message::Insert { relid, new } => {
                let t = txn.as_mut().ok_or_else(|| outside("insert"))?;
                self.change(t, relid, "insert", lsn, None, Some(&new[..]))?;
            }
            Message::Update { relid, old, new } => {
                let t = txn.as_mut().ok_or_else(|| outside("update"))?;
                let old = old.as_ref().map(|(k, d)| (*k, d.as_slice()));
                self.change(t, relid, "update", lsn, old, Some(&new[..]))?;
            }
            Message::Delete { relid, old } => {
                let t = txn.as_mut().ok_or_else(|| outside("delete"))?;
                self.change(
                    t,
                    relid,
                    "delete",
                    lsn,
                    Some((old.0, old.1.as_slice())),
                    None,
                )?;
            }
            Message::Truncate { relids, .. } => {
                let t = txn.as_mut().ok_or_else(|| outside("truncate"))?;
                for relid in relids {
                    if let Some(table) = self.tables.get(&relid) {
                        let table = table.name.clone();
                        let mut key = String::from("[");
                        write_str(&mut key, &table);
                        key.push(']');
                        let value = envelope(t, "truncate", &table, lsn, "null", "null");
                        push(t, key, value);
                    }
                }
            }
            Message::Skipped(_) => {}
        }
        Ok(())
    }

    /// Renders one row change into `t`.
    fn change(
        &self,
        t: &mut Txn,
        relid: u32,
        op: &str,
        lsn: u64,
        old: Option<(OldKind, &[Datum<'_>])>,
        new: Option<&[Datum<'_>]>,
    ) -> Result<()> {
        let Some(rel) = self.relations.get(&relid) else {
            return Err(refused(
                &self.name,
                "reading replication slot",
                format!(
                    "a change of relation {relid} arrived before its description (LSN {})",
                    format_lsn(lsn)
                ),
            ));
        };
        let Some(table) = &rel.table else {
            // In the publication, but not a table this source follows.
            return Ok(());
        };
        for d in [old.map(|o| o.1), new].into_iter().flatten() {
            if d.len() != rel.columns.len() {
                return Err(refused(
                    &self.name,
                    "reading replication slot",
                    format!(
                        "a change of `{table}` has {} values for {} columns (LSN {})",
                        d.len(),
                        rel.columns.len(),
                        format_lsn(lsn)
                    ),
                ));
            }
        }
        let full_old = old.filter(|o| o.0 == OldKind::Full).map(|o| o.1);
        let before = match old {
            None => "null".to_owned(),
            Some((kind, d)) => image(rel, d, kind == OldKind::Key, None),
        };
        let after = match new {
            None => "null".to_owned(),
            Some(d) => image(rel, d, false, full_old),
        };
        let key_from = new.or(old.map(|o| o.1)).unwrap_or_default();
        let mut key = String::from("[");
        write_str(&mut key, table);
        for &i in &rel.key {
            key.push(',');
            match key_from.get(i) {
                Some(Datum::Text(s)) => write_str(&mut key, s),
                _ => key.push_str("null"),
            }
        }
        key.push(']');
        let value = envelope(t, op, table, lsn, &before, &after);
        push(t, key, value);
        Ok(())
    }
}

/// Tables as a quoted, comma-separated list.
fn table_list<'a>(tables: impl Iterator<Item = &'a Table>) -> String {
    tables
        .map(|t| quote_table(&t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn push(t: &mut Txn, key: String, value: String) {
    let seq = t.records.len() as u64;
    t.records.push(Change {
        pos: (t.commit_lsn, seq),
        key: key.into_bytes(),
        value: value.into_bytes(),
        ts_ms: t.ts_micros.div_euclid(1000),
    });
}

/// A change record around its two images (JSON text).
fn envelope(t: &Txn, op: &str, table: &str, lsn: u64, before: &str, after: &str) -> String {
    let mut s = String::with_capacity(200 + before.len() + after.len());
    s.push_str("{\"op\":\"");
    s.push_str(op);
    s.push_str("\",\"table\":");
    write_str(&mut s, table);
    s.push_str(",\"lsn\":\"");
    s.push_str(&format_lsn(lsn));
    s.push_str("\",\"commit_lsn\":\"");
    s.push_str(&format_lsn(t.commit_lsn));
    s.push_str("\",\"commit_lsn_num\":");
    s.push_str(&t.commit_lsn.to_string());
    s.push_str(",\"seq\":");
    s.push_str(&t.records.len().to_string());
    s.push_str(",\"xid\":");
    s.push_str(&t.xid.to_string());
    s.push_str(",\"ts\":");
    match chrono::DateTime::from_timestamp_micros(t.ts_micros) {
        Some(ts) => write_str(
            &mut s,
            &ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
        None => s.push_str("null"),
    }
    s.push_str(",\"before\":");
    s.push_str(before);
    s.push_str(",\"after\":");
    s.push_str(after);
    s.push('}');
    s
}

/// One tuple as a JSON object: only the identity columns of a key-only old tuple; an
/// unchanged TOASTed value taken from the full old row when there is one, else left out.
fn image(rel: &Rel, d: &[Datum<'_>], key_only: bool, old: Option<&[Datum<'_>]>) -> String {
    let mut s = String::from("{");
    let mut first = true;
    for (i, col) in rel.columns.iter().enumerate() {
        if key_only && !col.key {
            continue;
        }
        let datum = match d[i] {
            Datum::Unchanged => match old.map(|o| o[i]) {
                Some(v @ Datum::Text(_)) => v,
                _ => continue,
            },
            v => v,
        };
        if !first {
            s.push(',');
        }
        first = false;
        write_str(&mut s, &col.name);
        s.push(':');
        match datum {
            Datum::Text(t) => write_value(&mut s, col.type_oid, t),
            _ => s.push_str("null"),
        }
    }
    s.push('}');
    s
}

/// The position of `r`, the last record of partition `p`.
fn position_of(name: &str, p: usize, r: &StoredRecord) -> Result<Position> {
    let v: serde_json::Value =
        serde_json::from_slice(&r.value).map_err(|e| ConnectorError::Config {
            source_name: name.to_owned(),
            reason: format!("cannot resume: the last record of partition {p} is not JSON: {e}"),
        })?;
    match (v["commit_lsn_num"].as_u64(), v["seq"].as_u64()) {
        (Some(l), Some(s)) => Ok((l, s)),
        _ => Err(ConnectorError::Config {
            source_name: name.to_owned(),
            reason: format!(
                "cannot resume: the last record of partition {p} has no `commit_lsn_num` and `seq`; is this topic another source's? (start with a new source name)"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::source::value::{INT4, NUMERIC};

    fn rel() -> Rel {
        let col = |name: &str, key: bool, oid: u32| pgoutput::RelColumn {
            key,
            name: name.into(),
            type_oid: oid,
            type_mod: -1,
        };
        Rel {
            table: Some("public.accounts".into()),
            columns: vec![
                col("id", true, INT4),
                col("note", false, 25),
                col("balance", false, NUMERIC),
            ],
            key: vec![0],
        }
    }

    fn cdc() -> Cdc {
        let mut c = Cdc {
            name: "acc".into(),
            wanted: vec![],
            publication: "p".into(),
            slot: "s".into(),
            identity_full: false,
            batch_size: 10,
            tables: HashMap::new(),
            relations: HashMap::new(),
            resume: vec![None],
            confirmed: 0,
        };
        c.relations.insert(16387, rel());
        c
    }

    fn txn() -> Txn {
        Txn {
            commit_lsn: 0x16B37A0,
            ts_micros: 1_768_471_200_000_000,
            xid: 745,
            records: vec![],
        }
    }

    fn json(c: &Change) -> serde_json::Value {
        serde_json::from_slice(&c.value).unwrap()
    }

    #[test]
    fn changes_render_as_records() {
        let c = cdc();
        let mut t = txn();
        let new = [
            Datum::Text("7"),
            Datum::Text("a \"note\""),
            Datum::Text("12.50"),
        ];
        c.change(&mut t, 16387, "insert", 0x16B3748, None, Some(&new[..]))
            .unwrap();
        let upd = [Datum::Text("7"), Datum::Unchanged, Datum::Null];
        c.change(&mut t, 16387, "update", 0x16B3750, None, Some(&upd[..]))
            .unwrap();
        let old = [Datum::Text("7"), Datum::Null, Datum::Null];
        c.change(
            &mut t,
            16387,
            "delete",
            0x16B3758,
            Some((OldKind::Key, &old[..])),
            None,
        )
        .unwrap();
        let v: Vec<serde_json::Value> = t.records.iter().map(json).collect();
        assert_eq!(
            v[0],
            serde_json::json!({"op": "insert", "table": "public.accounts", "lsn": "0/16B3748",
                "commit_lsn": "0/16B37A0", "commit_lsn_num": 0x16B37A0u64, "seq": 0, "xid": 745,
                "ts": "2026-01-15T10:00:00.000000Z", "before": null,
                "after": {"id": 7, "note": "a \"note\"", "balance": 12.50}})
        );
        // The numeric keeps PostgreSQL's digits.
        assert!(String::from_utf8_lossy(&t.records[0].value).contains("\"balance\":12.50}"));
        // An unchanged TOASTed value without a full old row is left out.
        assert_eq!(v[1]["after"], serde_json::json!({"id": 7, "balance": null}));
        assert_eq!(v[1]["seq"], 1);
        assert_eq!(v[2]["before"], serde_json::json!({"id": 7}));
        assert_eq!(v[2]["after"], serde_json::Value::Null);
        assert_eq!(
            t.records.iter().map(|r| r.pos).collect::<Vec<_>>(),
            vec![(0x16B37A0, 0), (0x16B37A0, 1), (0x16B37A0, 2)]
        );
        assert!(
            t.records
                .iter()
                .all(|r| r.key == br#"["public.accounts","7"]"#)
        );
        assert_eq!(t.records[0].ts_ms, 1_768_471_200_000);
    }

    #[test]
    fn full_old_rows_fill_unchanged_values() {
        let c = cdc();
        let mut t = txn();
        let old = [Datum::Text("7"), Datum::Text("long text"), Datum::Text("1")];
        let new = [Datum::Text("8"), Datum::Unchanged, Datum::Text("2")];
        c.change(
            &mut t,
            16387,
            "update",
            1,
            Some((OldKind::Full, &old[..])),
            Some(&new[..]),
        )
        .unwrap();
        let v = json(&t.records[0]);
        assert_eq!(
            v["before"],
            serde_json::json!({"id": 7, "note": "long text", "balance": 1})
        );
        assert_eq!(
            v["after"],
            serde_json::json!({"id": 8, "note": "long text", "balance": 2})
        );
        assert_eq!(t.records[0].key, br#"["public.accounts","8"]"#);
    }

    #[test]
    fn only_whole_transactions_of_followed_tables_are_kept() {
        let mut c = cdc();
        c.relations.get_mut(&16387).unwrap().table = None;
        let mut txn = None;
        let mut done = vec![];
        let mut last = None;
        let begin = Message::Begin {
            final_lsn: 100,
            commit_ts: 0,
            xid: 1,
        };
        c.apply(begin, 90, &mut txn, &mut done, &mut last).unwrap();
        let ins = Message::Insert {
            relid: 16387,
            new: vec![Datum::Text("1"), Datum::Null, Datum::Null],
        };
        c.apply(ins.clone(), 95, &mut txn, &mut done, &mut last)
            .unwrap();
        // An unfollowed table's change is dropped; nothing is done before the commit.
        assert!(txn.as_ref().unwrap().records.is_empty() && done.is_empty());
        c.relations.get_mut(&16387).unwrap().table = Some("public.accounts".into());
        c.apply(ins, 96, &mut txn, &mut done, &mut last).unwrap();
        assert!(done.is_empty());
        let commit = Message::Commit {
            flags: 0,
            commit_lsn: 100,
            end_lsn: 130,
            commit_ts: 0,
        };
        c.apply(commit, 130, &mut txn, &mut done, &mut last)
            .unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(last, Some((100, 130)));
        // A change of an undescribed relation or outside a transaction is an error.
        let stray = Message::Delete {
            relid: 16387,
            old: (
                OldKind::Key,
                vec![Datum::Text("1"), Datum::Null, Datum::Null],
            ),
        };
        let e = c
            .apply(stray, 140, &mut txn, &mut done, &mut last)
            .unwrap_err();
        assert!(e.to_string().contains("outside a transaction"), "{e}");
    }

    #[test]
    fn resume_positions_come_from_records() {
        let rec = |v: &str| StoredRecord {
            offset: 0,
            timestamp_ms: 0,
            key: None,
            value: v.as_bytes().to_vec(),
        };
        let p = position_of("s", 0, &rec(r#"{"commit_lsn_num": 23803808, "seq": 3}"#)).unwrap();
        assert_eq!(p, (23_803_808, 3));
        let e = position_of("s", 1, &rec(r#"{"id": 1}"#)).unwrap_err();
        assert!(e.to_string().contains("partition 1"), "{e}");
    }
}
