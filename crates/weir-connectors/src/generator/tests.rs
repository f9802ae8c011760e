//! Checks the generator against the SPEC from the outside: lines are classified with serde_json and
//! chrono only, the way a consumer would see them.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::*;

fn take(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut g = ShopEvents::new(seed, SPEC_START_MS);
    (0..n)
        .map(|k| {
            let mut out = Vec::new();
            assert_eq!(g.next_line(&mut out), k as u64);
            out
        })
        .collect()
}

#[test]
fn same_seed_same_lines_and_different_seed_different_lines() {
    let a = take(42, 20_000);
    assert_eq!(a, take(42, 20_000));
    let b = take(43, 20_000);
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert_eq!(same, 0);
}

#[test]
fn appends_to_the_buffer_and_counts_lines() {
    let mut g = ShopEvents::new(1, SPEC_START_MS);
    let mut out = b"prefix".to_vec();
    assert_eq!(g.lines(), 0);
    assert_eq!(g.next_line(&mut out), 0);
    assert_eq!(g.next_line(&mut out), 1);
    assert_eq!(g.lines(), 2);
    assert!(out.starts_with(br#"prefix{"event_id":"e"#));
    assert!(!out.contains(&b'\n'));
}

#[test]
fn skip_continues_the_same_sequence() {
    let all = take(5, 70_000);
    for at in [0, 1, 12_345, 65_536, 69_000] {
        let mut g = ShopEvents::new(5, SPEC_START_MS);
        g.skip(at as u64);
        assert_eq!(g.lines(), at as u64);
        for want in &all[at..(at + 1000).min(all.len())] {
            let mut out = Vec::new();
            g.next_line(&mut out);
            assert_eq!(&out, want, "after skip({at})");
        }
    }
}

#[test]
fn first_line_is_clean_and_starts_at_start_ms() {
    for seed in 0..50 {
        let mut g = ShopEvents::new(seed, 0);
        let mut out = Vec::new();
        g.next_line(&mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000Z");
        assert!(v["customer_id"].is_string());
        assert!(EVENT_TYPES.contains(&v["event_type"].as_str().unwrap()));
        assert!(v["amount"].as_f64().unwrap() >= 0.0);
    }
}

#[test]
fn event_number_is_a_bijection_on_small_domains() {
    // Distinct on a contiguous range, and the top bits get used.
    let keys = [0x1234_5678_9abc, 0x0fed_cba9_8765, 0x5555_aaaa_5555];
    let mut seen = HashSet::new();
    let mut high = 0;
    for i in 0..300_000 {
        let x = event_number(i, &keys);
        assert!(x <= MASK48);
        assert!(seen.insert(x), "collision at {i}");
        high += usize::from(x >> 47 == 1);
    }
    assert!((140_000..160_000).contains(&high), "{high}");
}

/// What a reader can tell about one line.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    Malformed,
    MissingAbsent,
    MissingNull,
    UnknownEventType,
    UnparseableTs,
    NegativeAmount,
    Duplicate,
    Clean,
}

fn parse_ts(s: &str) -> Option<i64> {
    // The SPEC's exact form, checked strictly, then by a full RFC 3339 parser.
    let b = s.as_bytes();
    let shape = b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z';
    if !shape {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Rebuilds a clean line from its parsed values in the SPEC's key order and format.
fn canonical(v: &Value) -> String {
    format!(
        r#"{{"event_id":"{}","ts":"{}","customer_id":"{}","event_type":"{}","product_category":"{}","product_id":"{}","amount":{:.2},"quantity":{},"location":"{}"}}"#,
        v["event_id"].as_str().unwrap(),
        v["ts"].as_str().unwrap(),
        v["customer_id"].as_str().unwrap(),
        v["event_type"].as_str().unwrap(),
        v["product_category"].as_str().unwrap(),
        v["product_id"].as_str().unwrap(),
        v["amount"].as_f64().unwrap(),
        v["quantity"].as_u64().unwrap(),
        v["location"].as_str().unwrap(),
    )
}

fn within(name: &str, observed: usize, expected: f64) {
    let tolerance = 5.0 * expected.sqrt() + 5.0;
    assert!(
        (observed as f64 - expected).abs() <= tolerance,
        "{name}: observed {observed}, expected {expected:.1} ± {tolerance:.1}"
    );
}

#[test]
fn defect_mix_and_distributions_follow_the_spec() {
    const N: usize = 200_000;
    let lines = take(42, N);

    let mut kinds: HashMap<Kind, usize> = HashMap::new();
    // event_id -> line index of every non-duplicate line (valid or not)
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut out_of_order = 0;
    let mut late = 0;
    let mut shiftable = 0; // non-duplicate lines past 30 s, where a shift cannot be clipped away
    let mut event_types: HashMap<String, usize> = HashMap::new();
    let mut quantities = [0usize; 6];
    let mut locations: HashMap<String, usize> = HashMap::new();
    let mut customers: HashMap<String, usize> = HashMap::new();
    // product -> (category, unit price in cents)
    let mut products: HashMap<String, (String, i64)> = HashMap::new();
    let mut clean = 0;

    for (i, raw) in lines.iter().enumerate() {
        let text = std::str::from_utf8(raw).expect("every line is UTF-8");
        assert!(!text.is_empty() && !text.contains('\n'));
        assert!(!text.contains("\\u"), "raw UTF-8, no escapes: {text}");
        let kind = match serde_json::from_str::<Value>(text) {
            Err(_) => {
                assert!(text.starts_with('{'));
                assert!(
                    !text.contains(r#""location""#),
                    "cut before quantity: {text}"
                );
                Kind::Malformed
            }
            Ok(v) => {
                let obj = v.as_object().expect("a parsed line is an object");
                let id = obj["event_id"].as_str().unwrap().to_owned();
                assert!(id.len() == 13 && id.starts_with('e'));
                assert!(
                    id[1..]
                        .bytes()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                );
                let mut defects = Vec::new();
                match obj.get("customer_id") {
                    None => defects.push(Kind::MissingAbsent),
                    Some(Value::Null) => defects.push(Kind::MissingNull),
                    Some(_) => {}
                }
                let et = obj["event_type"].as_str().unwrap();
                if !EVENT_TYPES.contains(&et) {
                    assert!(BAD_EVENT_TYPES.contains(&et), "{et}");
                    defects.push(Kind::UnknownEventType);
                }
                let ts = parse_ts(obj["ts"].as_str().unwrap());
                if ts.is_none() {
                    let bad = obj["ts"].as_str().unwrap();
                    assert!(BAD_TS.contains(&bad), "{bad}");
                    assert!(chrono::DateTime::parse_from_rfc3339(bad).is_err());
                    defects.push(Kind::UnparseableTs);
                }
                let amount = obj["amount"].as_f64().unwrap();
                if amount < 0.0 {
                    defects.push(Kind::NegativeAmount);
                }
                assert!(defects.len() <= 1, "one defect per line: {text}");
                match defects.first() {
                    Some(&k) => {
                        assert!(ids.insert(id, i).is_none(), "ids unique: {text}");
                        k
                    }
                    None => {
                        assert_eq!(canonical(&v), text, "exact format");
                        if let Some(&first) = ids.get(&id) {
                            assert!(
                                (1..=60_000).contains(&(i - first)),
                                "line {i} copies {first}"
                            );
                            assert_eq!(raw, &lines[first], "duplicate is a byte copy");
                            Kind::Duplicate
                        } else {
                            ids.insert(id, i);
                            let ts = ts.unwrap();
                            let nominal = SPEC_START_MS + i as i64;
                            assert!(ts <= nominal && ts >= SPEC_START_MS, "line {i}: {text}");
                            let shift = nominal - ts;
                            if i > 30_000 {
                                shiftable += 1;
                                if shift > 30_000 {
                                    late += 1;
                                    assert!(shift >= 120_000.min(i as i64), "{text}");
                                    assert!(shift <= 600_000, "{text}");
                                } else if shift > 0 {
                                    out_of_order += 1;
                                }
                            }
                            clean += 1;
                            *event_types.entry(et.to_owned()).or_default() += 1;
                            let q = obj["quantity"].as_u64().unwrap() as usize;
                            quantities[q] += 1;
                            let loc = obj["location"].as_str().unwrap();
                            *locations.entry(loc.to_owned()).or_default() += 1;
                            let cust = obj["customer_id"].as_str().unwrap();
                            assert!(cust.len() == 11 && cust.starts_with("cust_"));
                            assert!(cust[5..] < *"100000");
                            *customers.entry(cust.to_owned()).or_default() += 1;
                            let prod = obj["product_id"].as_str().unwrap();
                            assert!(prod.len() == 10 && prod.starts_with("prod_"));
                            assert!(prod[5..] < *"20000");
                            let cents = (amount * 100.0).round() as i64;
                            if et == "purchase" || et == "refund" {
                                assert!(cents > 0 && cents % q as i64 == 0);
                                let cat = obj["product_category"].as_str().unwrap().to_owned();
                                let unit = (cat, cents / q as i64);
                                let known = products.entry(prod.to_owned()).or_insert(unit.clone());
                                assert_eq!(*known, unit, "fixed category and price of {prod}");
                                assert!((99..=250_000).contains(&unit.1));
                            } else {
                                assert_eq!(cents, 0);
                            }
                            Kind::Clean
                        }
                    }
                }
            }
        };
        assert!(i > 0 || kind == Kind::Clean, "line 0 is clean");
        *kinds.entry(kind).or_default() += 1;
    }

    let n = N as f64;
    let count = |k| kinds.get(&k).copied().unwrap_or(0);
    within("malformed_json", count(Kind::Malformed), n * 0.002);
    within(
        "missing_customer_id",
        count(Kind::MissingAbsent) + count(Kind::MissingNull),
        n * 0.002,
    );
    within("missing (absent)", count(Kind::MissingAbsent), n * 0.001);
    within("missing (null)", count(Kind::MissingNull), n * 0.001);
    within(
        "unknown_event_type",
        count(Kind::UnknownEventType),
        n * 0.002,
    );
    within("unparseable_ts", count(Kind::UnparseableTs), n * 0.002);
    within("negative_amount", count(Kind::NegativeAmount), n * 0.002);
    within("duplicates", count(Kind::Duplicate), n * 0.005);
    let shiftable = shiftable as f64;
    within("out of order", out_of_order, shiftable * 0.05 / 0.995);
    within("late", late, shiftable * 0.001 / 0.995);

    let clean = clean as f64;
    for (et, p) in EVENT_TYPES.iter().zip([0.70, 0.18, 0.10, 0.02]) {
        within(et, event_types.get(*et).copied().unwrap_or(0), clean * p);
    }
    for (q, p) in [0.55, 0.20, 0.12, 0.08, 0.05].into_iter().enumerate() {
        within(&format!("quantity {}", q + 1), quantities[q + 1], clean * p);
    }
    assert_eq!(locations.len(), 20);
    for loc in LOCATIONS {
        within(loc, locations[loc], clean / 20.0);
    }
    // Zipf s = 1 over 100 000: the top customer has 1/H(100 000) ≈ 8.27 % of the events.
    let top = customers.values().copied().max().unwrap() as f64 / clean;
    assert!((0.078..0.088).contains(&top), "top customer share {top}");
    // Products: the cheap check that the skew is there and the categories are all used.
    let categories: HashSet<&String> = products.values().map(|(c, _)| c).collect();
    assert_eq!(categories.len(), 12);
}

#[test]
fn malformed_lines_never_parse_and_keep_whole_characters() {
    let mut g = ShopEvents::new(9, SPEC_START_MS);
    let mut out = Vec::new();
    let mut malformed = 0;
    for _ in 0..100_000 {
        out.clear();
        g.next_line(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        if !text.ends_with('}') {
            malformed += 1;
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
        }
    }
    within("malformed", malformed, 200.0);
}

/// Throughput in release: `cargo test -p weir-connectors --release -- --ignored --nocapture generator_throughput`
#[test]
#[ignore = "timing; run in release"]
fn generator_throughput() {
    let mut g = ShopEvents::new(42, SPEC_START_MS);
    let mut out = Vec::with_capacity(1 << 20);
    let n = 5_000_000;
    let mut bytes = 0;
    let t = std::time::Instant::now();
    for _ in 0..n {
        g.next_line(&mut out);
        out.push(b'\n');
        if out.len() > (1 << 20) - 512 {
            bytes += out.len();
            out.clear();
        }
    }
    bytes += out.len();
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} lines, {bytes} bytes in {s:.3} s: {:.0} lines/s, {:.0} MB/s",
        n as f64 / s,
        bytes as f64 / s / 1e6
    );
    let t = std::time::Instant::now();
    g.skip(n);
    let s = t.elapsed().as_secs_f64();
    println!("skip({n}) in {s:.3} s: {:.0} lines/s", n as f64 / s);
}
