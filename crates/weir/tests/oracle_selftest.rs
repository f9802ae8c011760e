//! Checks the test oracle itself: on hand-written lines always, and against the official expected
//! results of the shop-events benchmark when the reference file is available:
//!
//! ```text
//! python3 shared/bench/gen_events.py --events 1000000 --seed 42 --out /tmp/events_1m.jsonl
//! WEIR_SHOP_1M=/tmp/events_1m.jsonl WEIR_SHOP_EXPECTED=shared/bench/expected/events_1m_seed42 \
//!     cargo test -p weir --test oracle_selftest -- --nocapture
//! ```

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::oracle::{self, format_cents, parse_cents};

const CLEAN: &str = r#"{"event_id":"e000000000001","ts":"2026-01-15T00:00:10.000Z","customer_id":"cust_000001","event_type":"purchase","product_category":"toys","product_id":"prod_00001","amount":20.40,"quantity":1,"location":"Zürich"}"#;

fn line(
    id: &str,
    ts: &str,
    customer: &str,
    event_type: &str,
    category: &str,
    amount: &str,
) -> String {
    format!(
        r#"{{"event_id":"{id}","ts":"{ts}",{customer}"event_type":"{event_type}","product_category":"{category}","product_id":"prod_00001","amount":{amount},"quantity":1,"location":"München"}}"#
    )
}

fn cust(c: &str) -> String {
    format!(r#""customer_id":"{c}","#)
}

#[test]
fn hand_written_lines_cover_every_reason_and_duplicates() {
    let lines = [
        CLEAN.to_owned(),
        // exact duplicate of the first line
        CLEAN.to_owned(),
        line(
            "e2",
            "2026-01-15T00:00:20.000Z",
            &cust("cust_000002"),
            "view",
            "toys",
            "0.00",
        ),
        line(
            "e3",
            "2026-01-15T00:00:59.999Z",
            &cust("cust_000001"),
            "refund",
            "toys",
            "5.10",
        ),
        line(
            "e4",
            "2026-01-15T00:01:00.500Z",
            &cust("cust_000002"),
            "add_to_cart",
            "books",
            "0.00",
        ),
        // one per reason
        r#"{"event_id":"e5","ts":"2026-01-15T00:00:20.000Z","customer_id":"cust_0"#.to_owned(),
        "[1,2,3]".to_owned(),
        String::new(),
        line("e6", "2026-01-15T00:00:20.000Z", "", "view", "toys", "0.00"),
        line(
            "e7",
            "2026-01-15T00:00:20.000Z",
            r#""customer_id":null,"#,
            "view",
            "toys",
            "0.00",
        ),
        line(
            "e8",
            "2026-01-15T00:00:20.000Z",
            &cust("cust_000003"),
            "VIEW",
            "toys",
            "0.00",
        ),
        line(
            "e9",
            "2026-02-30T10:00:00.000Z",
            &cust("cust_000003"),
            "view",
            "toys",
            "0.00",
        ),
        line(
            "e10",
            "15/01/2026 10:30:00",
            &cust("cust_000003"),
            "view",
            "toys",
            "0.00",
        ),
        line(
            "e11",
            "2026-01-15T00:00:20.000Z",
            &cust("cust_000003"),
            "purchase",
            "toys",
            "-3.00",
        ),
        line(
            "e12",
            "2026-01-15T00:00:20.000Z",
            &cust("cust_000003"),
            "purchase",
            "toys",
            "null",
        ),
        line(
            "e13",
            "2026-01-15T00:00:20.000Z",
            &cust("cust_000003"),
            "purchase",
            "toys",
            r#""3.00""#,
        ),
        // two defects: the first in SPEC order wins
        line("e14", "not-a-timestamp", "", "click", "toys", "-1.00"),
        line(
            "e15",
            "not-a-timestamp",
            &cust("cust_000003"),
            "click",
            "toys",
            "-1.00",
        ),
        // a valid event whose id repeats with other content: keep the first
        line(
            "e2",
            "2026-01-15T00:05:00.000Z",
            &cust("cust_000009"),
            "purchase",
            "toys",
            "99.00",
        ),
        // late against a 60 s watermark: the max silver ts so far is 00:01:00.500 (the duplicate
        // e2 at 00:05 does not count), so the watermark is 00:00:00.500
        line(
            "e16",
            "2026-01-15T00:00:00.000Z",
            &cust("cust_000004"),
            "purchase",
            "toys",
            "1.01",
        ),
        // exactly at the watermark: not late
        line(
            "e17",
            "2026-01-15T00:00:00.500Z",
            &cust("cust_000004"),
            "view",
            "toys",
            "0.00",
        ),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let exp = oracle::compute(&refs);

    assert_eq!(exp.lines, 21);
    let q: BTreeMap<&str, usize> = exp
        .quarantine
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        q,
        BTreeMap::from([
            ("malformed_json", 3),
            ("missing_customer_id", 3),
            ("unknown_event_type", 2),
            ("unparseable_ts", 2),
            ("negative_amount", 3),
        ])
    );
    let valid = exp.lines - exp.quarantine.values().sum::<usize>();
    assert_eq!(valid, 8);
    assert_eq!(exp.silver_count, 6);
    let ids: Vec<&str> = exp.silver_ids.iter().map(String::as_str).collect();
    assert_eq!(ids, ["e000000000001", "e16", "e17", "e2", "e3", "e4"]);

    let g = |w: &str, c: &str| exp.gold1[&(w.to_owned(), c.to_owned())];
    // 00:00 toys: e1 purchase 20.40, e2 view, e3 refund 5.10, e16 purchase 1.01, e17 view
    assert_eq!(
        g("2026-01-15T00:00:00Z", "toys"),
        (5, 2, 2040 - 510 + 101, 3)
    );
    assert_eq!(g("2026-01-15T00:01:00Z", "books"), (1, 0, 0, 1));
    assert_eq!(
        exp.gold1.len(),
        2,
        "the second e2 (00:05) is a duplicate id, not a window"
    );

    let d = |c: &str| exp.gold2[&("2026-01-15".to_owned(), c.to_owned())];
    assert_eq!(d("cust_000001"), (2, 2040 - 510));
    assert_eq!(d("cust_000002"), (2, 0));
    assert_eq!(d("cust_000004"), (2, 101));
    assert_eq!(exp.gold2.len(), 3);

    let late = oracle::late_ids(&refs, 60_000);
    assert_eq!(late.into_iter().collect::<Vec<_>>(), ["e16"]);
    // with no allowed lateness, everything behind the running max is late
    let strict = oracle::late_ids(&refs, 0);
    assert_eq!(strict.into_iter().collect::<Vec<_>>(), ["e16", "e17"]);

    assert_eq!(format_cents(0), "0.00");
    assert_eq!(format_cents(-1230), "-12.30");
    assert_eq!(format_cents(5), "0.05");
    assert_eq!(parse_cents("-12.30"), Some(-1230));
    assert_eq!(parse_cents("31786.96"), Some(3_178_696));
    assert_eq!(parse_cents("1.5"), None);
}

/// The reference file and its expected-results folder, from the environment; `None` (and a loud
/// line) when either is missing, so a plain `cargo test` reports the check as skipped.
fn reference() -> Option<(PathBuf, PathBuf)> {
    let file = std::env::var_os("WEIR_SHOP_1M").map(PathBuf::from);
    let expected = std::env::var_os("WEIR_SHOP_EXPECTED").map(PathBuf::from);
    match (file, expected) {
        (Some(f), Some(e)) => Some((f, e)),
        _ => {
            eprintln!(
                "SKIPPED oracle_matches_the_official_expected_results: set WEIR_SHOP_1M to the file of \
                 `gen_events.py --events 1000000 --seed 42` and WEIR_SHOP_EXPECTED to \
                 shared/bench/expected/events_1m_seed42"
            );
            None
        }
    }
}

/// Data lines of a canonical CSV (header checked and dropped), split on `,` (the SPEC forbids quoting).
fn csv_rows(path: &Path, header: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(header), "header of {}", path.display());
    lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

#[test]
fn oracle_matches_the_official_expected_results() {
    let Some((file, dir)) = reference() else {
        return;
    };
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let refs: Vec<&str> = text.lines().collect();
    let exp = oracle::compute(&refs);

    let dataset: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("dataset.json")).unwrap()).unwrap();
    let counts = &dataset["counts"];
    assert_eq!(exp.lines as u64, counts["events_in"].as_u64().unwrap());
    assert_eq!(exp.silver_count as u64, counts["silver"].as_u64().unwrap());
    assert_eq!(exp.silver_ids.len(), exp.silver_count);
    let quarantined: usize = exp.quarantine.values().sum();
    assert_eq!(quarantined as u64, counts["quarantined"].as_u64().unwrap());
    let by_type = oracle::silver_counts_by(&refs, "event_type");
    for (t, n) in counts["silver_event_types"].as_object().unwrap() {
        assert_eq!(
            by_type.get(t).copied().unwrap_or(0) as u64,
            n.as_u64().unwrap(),
            "silver {t}"
        );
    }

    // quarantine counts: every row of the file, nothing else
    let want_q: BTreeMap<String, usize> =
        csv_rows(&dir.join("quarantine_counts.csv"), "reason,count")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].parse().unwrap()))
            .collect();
    assert_eq!(exp.quarantine, want_q, "quarantine counts");

    // GOLD1: every row exactly
    let want_g1: BTreeMap<(String, String), (i64, i64, i64, i64)> = csv_rows(
        &dir.join("gold1_category_minute.csv"),
        "window_start,product_category,events,purchases,revenue,customers",
    )
    .into_iter()
    .map(|r| {
        let revenue = parse_cents(&r[4]).unwrap_or_else(|| panic!("revenue `{}`", r[4]));
        (
            (r[0].clone(), r[1].clone()),
            (
                r[2].parse().unwrap(),
                r[3].parse().unwrap(),
                revenue,
                r[5].parse().unwrap(),
            ),
        )
    })
    .collect();
    assert_eq!(
        exp.gold1.len() as u64,
        counts["gold1_rows"].as_u64().unwrap()
    );
    for (key, want) in &want_g1 {
        assert_eq!(exp.gold1.get(key), Some(want), "GOLD1 {key:?}");
    }
    assert_eq!(exp.gold1, want_g1, "GOLD1");

    // GOLD2: the summary and the sample rows
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("gold2_summary.json")).unwrap())
            .unwrap();
    assert_eq!(exp.gold2.len() as u64, summary["rows"].as_u64().unwrap());
    let sum_events: i64 = exp.gold2.values().map(|v| v.0).sum();
    assert_eq!(sum_events, summary["sum_events"].as_i64().unwrap());
    let sum_revenue: i64 = exp.gold2.values().map(|v| v.1).sum();
    assert_eq!(
        format_cents(sum_revenue),
        summary["sum_revenue"].as_str().unwrap()
    );
    let sample = csv_rows(
        &dir.join("gold2_customer_daily_sample.csv"),
        "date,customer_id,events,revenue",
    );
    assert!(!sample.is_empty());
    for r in &sample {
        let got = exp.gold2.get(&(r[0].clone(), r[1].clone()));
        let want = (r[2].parse().unwrap(), parse_cents(&r[3]).unwrap());
        assert_eq!(got, Some(&want), "GOLD2 {r:?}");
    }

    let total_revenue: i64 = exp.gold1.values().map(|v| v.2).sum();
    println!(
        "oracle matches {}: {} lines, quarantine {:?}, silver {}, GOLD1 {} rows (revenue {}), GOLD2 {} rows \
         ({} sample rows checked), sum_revenue {}",
        dir.display(),
        exp.lines,
        exp.quarantine,
        exp.silver_count,
        exp.gold1.len(),
        format_cents(total_revenue),
        exp.gold2.len(),
        sample.len(),
        format_cents(sum_revenue),
    );
}
