//! `mode = "poll"`: reads the rows of a table or query past a cursor, in cursor order, a batch
//! at a time.
//!
//! Each row becomes one JSON object (column → value, see [`super::value`]) keyed by the row's
//! key (the `key` columns, else the table's primary key). With a key, rows are read in
//! `(cursor, key)` order and the next batch starts after the last `(cursor, key)` read, so
//! rows sharing a cursor value are never skipped or read twice, however batches split them.
//! Integer key columns compare as numbers, others as their text in the "C" collation (byte
//! order), which is how the source compares them too when it resumes. Without a key, a batch always ends with every row of its
//! last cursor value, the next starts after that value, and the record key is the cursor's
//! text.
//!
//! Resuming: the cursor is a column of every record and the key is the record's key, so the
//! last record of each partition says where that partition stopped. The first query after a
//! start begins after the smallest of those positions and drops the rows a partition already
//! holds.
//!
//! Limits (as with any cursor polling): a row that commits with a cursor value below one
//! already read is never read (two writers taking `now()` whose transactions commit out of
//! order; prefer a sequence, or CDC); a deleted row is not noticed; an updated row is read
//! again only if the update raised its cursor.

use tokio_postgres::Client;
use weir_log::StoredRecord;

use super::value::{self, DATE, INT2, INT4, INT8, TIMESTAMP, TIMESTAMPTZ};
use super::{PostgresSourceConfig, Round, pg_error, refused};
use crate::error::{ConnectorError, Result};
use crate::postgres::{quote_ident, quote_table};
use crate::source::{Appender, OutRecord};

/// Where a row stands in read order. Ordered by `(order, key)`; `text` is the cursor as
/// PostgreSQL can read it back, for the next query's bound.
#[derive(Debug, Clone)]
struct Pos {
    order: i128,
    text: String,
    key: Vec<KeyValue>,
}

impl Pos {
    fn cmp_key(&self) -> (i128, &[KeyValue]) {
        (self.order, &self.key)
    }
}

/// A key column's value as it orders: integers as numbers (NULL first), the rest as text
/// in byte order (NULL as the empty text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum KeyValue {
    Int(i64),
    Text(String),
}

impl KeyValue {
    fn of(int: bool, text: Option<&str>) -> Option<KeyValue> {
        Some(match (int, text) {
            (true, None) => KeyValue::Int(i64::MIN),
            (true, Some(t)) => KeyValue::Int(t.parse().ok()?),
            (false, t) => KeyValue::Text(t.unwrap_or_default().to_owned()),
        })
    }

    /// The value as the paging query's parameter.
    fn param(&self) -> String {
        match self {
            KeyValue::Int(i) => i.to_string(),
            KeyValue::Text(t) => t.clone(),
        }
    }
}

/// The kinds of cursor column weir can order and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CursorKind {
    Int,
    Timestamp,
    Date,
}

/// What the query returns and the SQL that pages through it, found on the first connect.
struct Plan {
    /// Column names and type OIDs.
    columns: Vec<(String, u32)>,
    cursor: usize,
    kind: CursorKind,
    keys: Vec<usize>,
    /// Per key column, whether it is an integer (compared as a number).
    int_keys: Vec<bool>,
    /// The first page (no lower bound).
    first_sql: String,
    /// A page after `$1` (the cursor) and `$2..` (the key texts).
    after_sql: String,
}

pub(super) struct Poller {
    name: String,
    /// The rows' query, before weir wraps it.
    base: String,
    table: Option<String>,
    cursor: String,
    key: Vec<String>,
    batch_size: u32,
    /// The last record of each partition when the source started, read until the plan is
    /// known.
    last: Vec<Option<StoredRecord>>,
    plan: Option<Plan>,
    /// Per partition, the last position it holds; `None` for an empty partition.
    resume: Option<Vec<Option<Pos>>>,
}

impl Poller {
    pub(super) fn new(
        name: &str,
        cfg: &PostgresSourceConfig,
        last: Vec<Option<StoredRecord>>,
    ) -> Self {
        let base = match (&cfg.table, &cfg.query) {
            (Some(t), _) => format!("SELECT * FROM {}", quote_table(t)),
            (None, Some(q)) => q.trim().trim_end_matches(';').trim().to_owned(),
            // validate() requires one of the two; an empty query fails when prepared.
            (None, None) => String::new(),
        };
        Poller {
            name: name.to_owned(),
            base,
            table: cfg.table.clone(),
            cursor: cfg.cursor.clone().unwrap_or_default(),
            key: cfg.key.clone(),
            batch_size: cfg.batch_size,
            last,
            plan: None,
            resume: None,
        }
    }

    fn what(&self) -> String {
        match &self.table {
            Some(t) => format!("table `{t}`"),
            None => "the query".to_owned(),
        }
    }

    /// Learns the columns and key once, then builds the paging SQL and the resume positions.
    pub(super) async fn setup(&mut self, client: &Client) -> Result<()> {
        if self.plan.is_none() {
            self.plan = Some(self.plan(client).await?);
        }
        if self.resume.is_none() {
            // Set just above.
            let plan = self.plan.as_ref().expect("planned");
            let resume = self
                .last
                .iter()
                .enumerate()
                .map(|(p, r)| r.as_ref().map(|r| self.position_of(plan, p, r)).transpose())
                .collect::<Result<Vec<_>>>()?;
            self.resume = Some(resume);
        }
        Ok(())
    }

    async fn plan(&self, client: &Client) -> Result<Plan> {
        let op = format!("reading the columns of {}", self.what());
        let stmt = client
            .prepare(&format!("SELECT * FROM ({}) AS weir_q LIMIT 0", self.base))
            .await
            .map_err(|e| pg_error(&self.name, &op, &e))?;
        let columns: Vec<(String, u32)> = stmt
            .columns()
            .iter()
            .map(|c| (c.name().to_owned(), c.type_().oid()))
            .collect();
        for (i, (n, _)) in columns.iter().enumerate() {
            if columns[..i].iter().any(|(m, _)| m == n) {
                return Err(refused(
                    &self.name,
                    &op,
                    format!("column `{n}` appears twice; give the query's columns distinct names"),
                ));
            }
        }
        let names = || {
            columns
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let find = |col: &str, key: &str| {
            columns.iter().position(|(n, _)| n == col).ok_or_else(|| {
                refused(
                    &self.name,
                    &op,
                    format!(
                        "{key} column `{col}` is not a column of {} (columns: {})",
                        self.what(),
                        names()
                    ),
                )
            })
        };
        let cursor = find(&self.cursor, "cursor")?;
        let kind = match columns[cursor].1 {
            INT2 | INT4 | INT8 => CursorKind::Int,
            TIMESTAMP | TIMESTAMPTZ => CursorKind::Timestamp,
            DATE => CursorKind::Date,
            oid => {
                let ty = stmt.columns()[cursor].type_().name().to_owned();
                return Err(refused(
                    &self.name,
                    &op,
                    format!(
                        "cursor column `{}` has type `{ty}` (oid {oid}); expected an integer, timestamp, timestamptz or date column that grows as rows are written",
                        self.cursor
                    ),
                ));
            }
        };
        let key_names = if self.key.is_empty() {
            match &self.table {
                Some(t) => self.primary_key(client, t).await?,
                None => Vec::new(),
            }
        } else {
            self.key.clone()
        };
        let keys = key_names
            .iter()
            .map(|k| find(k, "key"))
            .collect::<Result<Vec<_>>>()?;
        let int_keys: Vec<bool> = keys
            .iter()
            .map(|&k| matches!(columns[k].1, INT2 | INT4 | INT8))
            .collect();
        let cast = match columns[cursor].1 {
            INT2 | INT4 | INT8 => "bigint",
            TIMESTAMP => "timestamp",
            TIMESTAMPTZ => "timestamptz",
            _ => "date",
        };
        let (first_sql, after_sql) =
            self.paging_sql(&columns, &columns[cursor].0, cast, &key_names, &int_keys);
        Ok(Plan {
            columns,
            cursor,
            kind,
            keys,
            int_keys,
            first_sql,
            after_sql,
        })
    }

    /// The table's primary key columns, in key order (none without a primary key).
    async fn primary_key(&self, client: &Client, table: &str) -> Result<Vec<String>> {
        let rows = client
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = to_regclass($1) AND i.indisprimary \
                 ORDER BY array_position(i.indkey::int2[], a.attnum)",
                &[&quote_table(table)],
            )
            .await
            .map_err(|e| {
                pg_error(
                    &self.name,
                    &format!("reading the primary key of `{table}`"),
                    &e,
                )
            })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn paging_sql(
        &self,
        columns: &[(String, u32)],
        cursor: &str,
        cast: &str,
        keys: &[String],
        int_keys: &[bool],
    ) -> (String, String) {
        let cols = columns
            .iter()
            .map(|(n, _)| format!("weir_q.{}::text", quote_ident(n)))
            .collect::<Vec<_>>()
            .join(", ");
        let from = format!("({}) AS weir_q", self.base);
        let c = format!("weir_q.{}", quote_ident(cursor));
        let n = self.batch_size;
        if keys.is_empty() {
            // A page holds every row of its last cursor value: the rows up to the `n`-th
            // smallest value past the bound.
            let upto = |bound: &str| {
                format!(
                    "{c} <= (SELECT max(weir_s.weir_c) FROM (SELECT {c} AS weir_c FROM {from} \
                     WHERE {bound} ORDER BY 1 LIMIT {n}) AS weir_s)"
                )
            };
            let first = format!(
                "SELECT {cols} FROM {from} WHERE {} ORDER BY {c}",
                upto(&format!("{c} IS NOT NULL"))
            );
            let bound = format!("{c} > $1::text::{cast}");
            let after = format!(
                "SELECT {cols} FROM {from} WHERE {bound} AND {} ORDER BY {c}",
                upto(&bound)
            );
            return (first, after);
        }
        let kt: Vec<String> = keys
            .iter()
            .zip(int_keys)
            .map(|(k, &int)| {
                if int {
                    format!(
                        "coalesce(weir_q.{}::bigint, '{}'::bigint)",
                        quote_ident(k),
                        i64::MIN
                    )
                } else {
                    format!(
                        "coalesce(weir_q.{}::text, '') COLLATE \"C\"",
                        quote_ident(k)
                    )
                }
            })
            .collect();
        let order = format!("{c}, {}", kt.join(", "));
        let params: Vec<String> = int_keys
            .iter()
            .enumerate()
            .map(|(i, &int)| format!("${}::text{}", i + 2, if int { "::bigint" } else { "" }))
            .collect();
        let first =
            format!("SELECT {cols} FROM {from} WHERE {c} IS NOT NULL ORDER BY {order} LIMIT {n}");
        let after = format!(
            "SELECT {cols} FROM {from} WHERE ({order}) > ($1::text::{cast}, {}) ORDER BY {order} LIMIT {n}",
            params.join(", ")
        );
        (first, after)
    }

    /// Where the record `r`, the last of partition `p`, stands.
    fn position_of(&self, plan: &Plan, p: usize, r: &StoredRecord) -> Result<Pos> {
        let bad = |why: String| ConnectorError::Config {
            source_name: self.name.clone(),
            reason: format!(
                "cannot resume: the last record of partition {p} {why}; was `cursor` or `key` changed? (start with a new source name to read from the beginning)"
            ),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&r.value).map_err(|e| bad(format!("is not JSON: {e}")))?;
        let cursor = &plan.columns[plan.cursor].0;
        let text = match v.get(cursor) {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => {
                return Err(bad(format!(
                    "has no value for the cursor column `{cursor}`"
                )));
            }
        };
        let order = cursor_order(plan.kind, &text).ok_or_else(|| {
            bad(format!(
                "has cursor `{text}`, which is not a {:?}",
                plan.kind
            ))
        })?;
        let key_bytes = r.key.as_deref().unwrap_or_default();
        let texts: Vec<String> = match plan.keys.len() {
            0 => Vec::new(),
            1 => vec![
                String::from_utf8(key_bytes.to_vec())
                    .map_err(|_| bad("has a key that is not UTF-8".into()))?,
            ],
            _ => serde_json::from_slice(key_bytes)
                .map_err(|_| bad("has a key that is not a JSON array of the key values".into()))?,
        };
        if texts.len() != plan.keys.len() {
            return Err(bad(format!(
                "has {} key values, not {}",
                texts.len(),
                plan.keys.len()
            )));
        }
        let key = texts
            .iter()
            .zip(&plan.int_keys)
            .map(|(t, &int)| KeyValue::of(int, (!t.is_empty()).then_some(t.as_str())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                bad(format!(
                    "has key {texts:?}, which does not fit the key columns"
                ))
            })?;
        Ok(Pos { order, text, key })
    }

    /// Reads one page and appends the rows no partition holds yet.
    pub(super) async fn round(&mut self, client: &Client, appender: &Appender) -> Result<Round> {
        let op = format!("polling {}", self.what_short());
        // setup() ran on connect.
        let plan = self.plan.as_ref().expect("planned");
        let resume = self.resume.as_mut().expect("resume positions read");
        // The smallest position of all partitions; an empty partition means from the start.
        let lower = resume
            .iter()
            .try_fold(None::<&Pos>, |min, p| {
                let p = p.as_ref()?;
                Some(match min {
                    Some(m) if m.cmp_key() <= p.cmp_key() => Some(m),
                    _ => Some(p),
                })
            })
            .flatten();
        let rows = match lower {
            None => client.query(&plan.first_sql, &[]).await,
            Some(pos) => {
                let keys: Vec<String> = pos.key.iter().map(KeyValue::param).collect();
                let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&pos.text];
                params.extend(
                    keys.iter()
                        .map(|k| k as &(dyn tokio_postgres::types::ToSql + Sync)),
                );
                client.query(&plan.after_sql, &params).await
            }
        }
        .map_err(|e| pg_error(&self.name, &op, &e))?;
        if rows.is_empty() {
            return Ok(Round::Idle);
        }
        let topic = appender.topic();
        let mut out = Vec::with_capacity(rows.len());
        let now = weir_core::now_ms();
        let mut last_pos = None;
        for row in &rows {
            let texts: Vec<Option<&str>> = (0..plan.columns.len()).map(|c| row.get(c)).collect();
            let cursor_text = texts[plan.cursor].unwrap_or_default();
            let order = cursor_order(plan.kind, cursor_text).ok_or_else(|| {
                refused(
                    &self.name,
                    &op,
                    format!("cannot order cursor value `{cursor_text}`"),
                )
            })?;
            let key_texts: Vec<&str> = plan
                .keys
                .iter()
                .map(|&k| texts[k].unwrap_or_default())
                .collect();
            let key = plan
                .keys
                .iter()
                .zip(&plan.int_keys)
                .map(|(&k, &int)| KeyValue::of(int, texts[k]))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    refused(&self.name, &op, format!("cannot read key {key_texts:?}"))
                })?;
            let key_bytes = match key_texts.len() {
                0 => cursor_text.as_bytes().to_vec(),
                1 => key_texts[0].as_bytes().to_vec(),
                // Serializing strings cannot fail.
                _ => serde_json::to_vec(&key_texts).unwrap_or_default(),
            };
            let pos = Pos {
                order,
                text: cursor_text.to_owned(),
                key,
            };
            let p = topic.partition_for(Some(key_bytes.as_slice())) as usize;
            let held = resume
                .get(p)
                .and_then(Option::as_ref)
                .is_some_and(|r| pos.cmp_key() <= r.cmp_key());
            if !held {
                out.push(OutRecord {
                    key: Some(key_bytes),
                    value: row_json(&plan.columns, &texts).into_bytes(),
                    timestamp_ms: now,
                });
            }
            last_pos = Some(pos);
        }
        appender.append(&out)?;
        if let Some(pos) = last_pos {
            for r in resume.iter_mut() {
                *r = Some(pos.clone());
            }
        }
        Ok(if rows.len() >= self.batch_size as usize {
            Round::More
        } else {
            Round::Idle
        })
    }

    fn what_short(&self) -> String {
        self.table.clone().unwrap_or_else(|| "the query".into())
    }
}

/// One row as a JSON object.
fn row_json(columns: &[(String, u32)], texts: &[Option<&str>]) -> String {
    let mut s = String::with_capacity(64 * columns.len());
    s.push('{');
    for (i, ((name, oid), text)) in columns.iter().zip(texts).enumerate() {
        if i > 0 {
            s.push(',');
        }
        value::write_str(&mut s, name);
        s.push(':');
        match text {
            None => s.push_str("null"),
            Some(t) => value::write_value(&mut s, *oid, t),
        }
    }
    s.push('}');
    s
}

/// A cursor value (PostgreSQL's text or the record's JSON text) as a number that orders like
/// the column.
fn cursor_order(kind: CursorKind, text: &str) -> Option<i128> {
    match (kind, text) {
        (CursorKind::Timestamp | CursorKind::Date, "infinity") => Some(i128::MAX),
        (CursorKind::Timestamp | CursorKind::Date, "-infinity") => Some(i128::MIN),
        (CursorKind::Int, t) => t.parse().ok(),
        (CursorKind::Timestamp, t) => {
            let rfc = value::rfc3339(t);
            let t = rfc.as_deref().unwrap_or(t);
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|d| i128::from(d.timestamp_micros()))
        }
        (CursorKind::Date, t) => chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .map(|d| i128::from(chrono::Datelike::num_days_from_ce(&d))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_values_order_like_postgres() {
        let ts = |t| cursor_order(CursorKind::Timestamp, t).unwrap();
        // PostgreSQL's text and the record's RFC 3339 text of one instant agree.
        assert_eq!(ts("2026-01-15 10:00:00.5+00"), ts("2026-01-15T10:00:00.5Z"));
        assert_eq!(ts("2026-01-15 10:00:00.5"), ts("2026-01-15T10:00:00.500Z"));
        assert!(ts("2026-01-15 10:00:00.000001+00") > ts("2026-01-15 10:00:00+00"));
        assert!(ts("infinity") > ts("9999-12-31 23:59:59+00"));
        assert!(ts("-infinity") < ts("0001-01-01 00:00:00+00"));
        assert!(
            cursor_order(CursorKind::Int, "-5").unwrap()
                < cursor_order(CursorKind::Int, "3").unwrap()
        );
        assert_eq!(cursor_order(CursorKind::Int, "x"), None);
        let d = |t| cursor_order(CursorKind::Date, t).unwrap();
        assert!(d("2026-01-15") < d("2026-01-16"));
    }

    #[test]
    fn rows_become_json_objects() {
        let cols = vec![
            ("id".to_owned(), INT8),
            ("ok".to_owned(), value::BOOL),
            ("name".to_owned(), 25),
            ("at".to_owned(), TIMESTAMPTZ),
        ];
        let s = row_json(
            &cols,
            &[Some("7"), Some("t"), None, Some("2026-01-15 10:00:00+00")],
        );
        assert_eq!(
            s,
            r#"{"id":7,"ok":true,"name":null,"at":"2026-01-15T10:00:00Z"}"#
        );
    }
}
