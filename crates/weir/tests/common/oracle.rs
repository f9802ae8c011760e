//! An independent oracle for the shop-events processing contract (`shared/bench/SPEC.md`,
//! "Processing contract"): plain Rust over the input lines with serde_json and chrono, sharing no
//! code with weir, so a bug in weir's SQL or parsing cannot hide in both.
//!
//! `compute` is the batch semantics (quarantine, SILVER, GOLD1, GOLD2); `late_ids` is the one
//! streaming fact the batch contract does not cover: which silver rows a 1-minute watermark drops.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The quarantine reasons, in the SPEC's order of precedence (first failing test wins).
pub const REASONS: [&str; 5] = [
    "malformed_json",
    "missing_customer_id",
    "unknown_event_type",
    "unparseable_ts",
    "negative_amount",
];

const EVENT_TYPES: [&str; 4] = ["view", "add_to_cart", "purchase", "refund"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub lines: usize,
    /// reason -> count, only reasons that occur (like a `GROUP BY reason`)
    pub quarantine: BTreeMap<String, usize>,
    /// valid event_ids, deduplicated keeping the first occurrence
    pub silver_ids: BTreeSet<String>,
    pub silver_count: usize,
    /// GOLD1: (window_start "YYYY-MM-DDTHH:MM:SSZ", category) -> (events, purchases, revenue_cents, customers)
    pub gold1: BTreeMap<(String, String), (i64, i64, i64, i64)>,
    /// GOLD2: (date "YYYY-MM-DD", customer_id) -> (events, revenue_cents)
    pub gold2: BTreeMap<(String, String), (i64, i64)>,
}

/// A valid line's fields as the contract uses them.
struct Row {
    event_id: String,
    ts: DateTime<Utc>,
    customer_id: String,
    event_type: String,
    category: String,
    cents: i64,
}

/// The first failing test of the SPEC's VALID definition, or the row.
fn classify(line: &str) -> Result<Row, &'static str> {
    let obj: Map<String, Value> = match serde_json::from_str(line) {
        Ok(Value::Object(m)) => m,
        _ => return Err("malformed_json"),
    };
    let customer_id = match obj.get("customer_id") {
        None | Some(Value::Null) => return Err("missing_customer_id"),
        Some(v) => text(v),
    };
    let event_type = match obj.get("event_type").and_then(Value::as_str) {
        Some(t) if EVENT_TYPES.contains(&t) => t.to_owned(),
        _ => return Err("unknown_event_type"),
    };
    let ts = match obj
        .get("ts")
        .and_then(Value::as_str)
        .map(DateTime::parse_from_rfc3339)
    {
        Some(Ok(t)) => t.with_timezone(&Utc),
        _ => return Err("unparseable_ts"),
    };
    let cents = match obj.get("amount").and_then(Value::as_f64) {
        Some(a) if a >= 0.0 => (a * 100.0).round() as i64,
        _ => return Err("negative_amount"),
    };
    Ok(Row {
        event_id: obj.get("event_id").map(text).unwrap_or_default(),
        ts,
        customer_id,
        event_type,
        category: obj.get("product_category").map(text).unwrap_or_default(),
        cents,
    })
}

/// A JSON value as a grouping key: strings as themselves, anything else as its JSON text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Purchase adds, refund subtracts, other event types do not count.
fn revenue_cents(row: &Row) -> i64 {
    match row.event_type.as_str() {
        "purchase" => row.cents,
        "refund" => -row.cents,
        _ => 0,
    }
}

/// The silver rows in input order: valid lines, first occurrence of each event_id.
fn silver_rows(lines: &[&str], quarantine: Option<&mut BTreeMap<String, usize>>) -> Vec<Row> {
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    let mut counts = BTreeMap::new();
    for line in lines {
        match classify(line) {
            Ok(row) => {
                if seen.insert(row.event_id.clone()) {
                    rows.push(row);
                }
            }
            Err(reason) => *counts.entry(reason.to_owned()).or_insert(0) += 1,
        }
    }
    if let Some(q) = quarantine {
        *q = counts;
    }
    rows
}

pub fn compute(lines: &[&str]) -> Expected {
    let mut quarantine = BTreeMap::new();
    let rows = silver_rows(lines, Some(&mut quarantine));

    /// events, purchases, revenue cents, distinct customers
    type Window<'a> = (i64, i64, i64, HashSet<&'a str>);
    let mut gold1: BTreeMap<(String, String), Window> = BTreeMap::new();
    let mut gold2: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for row in &rows {
        let window = row.ts.format("%Y-%m-%dT%H:%M:00Z").to_string();
        let g = gold1
            .entry((window, row.category.clone()))
            .or_insert_with(|| (0, 0, 0, HashSet::new()));
        g.0 += 1;
        g.1 += i64::from(row.event_type == "purchase");
        g.2 += revenue_cents(row);
        g.3.insert(&row.customer_id);

        let date = row.ts.format("%Y-%m-%d").to_string();
        let d = gold2
            .entry((date, row.customer_id.clone()))
            .or_insert((0, 0));
        d.0 += 1;
        d.1 += revenue_cents(row);
    }

    Expected {
        lines: lines.len(),
        quarantine,
        silver_ids: rows.iter().map(|r| r.event_id.clone()).collect(),
        silver_count: rows.len(),
        gold1: gold1
            .into_iter()
            .map(|(k, (e, p, r, c))| (k, (e, p, r, c.len() as i64)))
            .collect(),
        gold2,
    }
}

/// The streaming late rows for a watermark of `lateness_ms` behind the maximum event time, with
/// rows processed one by one in input order: a silver row is late if its ts is below (max ts of
/// the silver rows before it) − lateness. Returns their event_ids.
pub fn late_ids(lines: &[&str], lateness_ms: i64) -> BTreeSet<String> {
    let mut late = BTreeSet::new();
    let mut max_ts: Option<i64> = None;
    for row in silver_rows(lines, None) {
        let ts = row.ts.timestamp_millis();
        if let Some(m) = max_ts
            && ts < m - lateness_ms
        {
            late.insert(row.event_id);
        }
        max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
    }
    late
}

/// Integer cents in the SPEC's canonical form: `0.00`, `-12.30`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// The inverse of [`format_cents`]; `None` unless the text has exactly two decimals.
pub fn parse_cents(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.')?;
    if frac.len() != 2
        || int.is_empty()
        || !(int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let v = int.parse::<i64>().ok()? * 100 + frac.parse::<i64>().ok()?;
    Some(if neg { -v } else { v })
}

/// Silver rows counted by `event_type`, `product_category` or `customer_id`.
pub fn silver_counts_by(lines: &[&str], key: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    let mut seen = HashSet::new();
    for line in lines {
        let Ok(row) = classify(line) else { continue };
        if !seen.insert(row.event_id.clone()) {
            continue;
        }
        let k = match key {
            "event_type" => row.event_type,
            "product_category" => row.category,
            "customer_id" => row.customer_id,
            _ => continue,
        };
        *out.entry(k).or_insert(0) += 1;
    }
    out
}
