//! The dashboard's REST API on the shop pipeline, served in-process: the pipeline graph,
//! sources, tables (detail, history, preview), quality, quarantine, dead letters, logs, the
//! masked config, the live SSE stream, backfill, error answers, and the OpenAPI document
//! (every route documented, every answer of the walk matching its documented schema). Also
//! checks that the Grafana dashboard in examples/grafana only queries metrics /metrics has.

mod common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::time::{Duration, Instant};

use common::harness::*;
use serde_json::Value;

/// The log layer as `weir` installs it (once per test process).
fn init_logs() {
    use tracing_subscriber::prelude::*;
    let _ = tracing_subscriber::registry()
        .with(weir_server::logs::layer())
        .try_init();
}

/// `(status, JSON body)` of a request; a body that is not JSON is returned as a string.
fn call(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let req = ureq::request(method, url);
    let r = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let (code, resp) = match r {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(code, r)) => (code, r),
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let text = resp.into_string().unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(url: String) -> (u16, Value) {
    tokio::task::spawn_blocking(move || call("GET", &url, None))
        .await
        .unwrap()
}

async fn post(url: String, body: &'static str) -> (u16, Value) {
    tokio::task::spawn_blocking(move || call("POST", &url, Some(body)))
        .await
        .unwrap()
}

/// Checks `v` against `schema` of the OpenAPI document `doc` (the subset weir's document
/// uses: `$ref`, `allOf`, `type`, `nullable`, `properties`, `required`, `items`,
/// `additionalProperties`, `enum`).
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        return conforms(doc, &doc["components"]["schemas"][name], v, at);
    }
    if v.is_null() {
        return if schema["nullable"] == true || schema.as_object().is_some_and(|o| o.is_empty()) {
            Ok(())
        } else {
            Err(format!("{at}: null, but not nullable"))
        };
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            conforms(doc, s, v, at)?;
        }
    }
    let ok = match schema["type"].as_str() {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some(other) => return Err(format!("{at}: unknown schema type {other}")),
    };
    if !ok {
        return Err(format!("{at}: expected {}, got {v}", schema["type"]));
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {schema}"));
    }
    if let Some(req) = schema["required"].as_array() {
        for k in req {
            let k = k.as_str().unwrap();
            if v.get(k).is_none() {
                return Err(format!("{at}: missing required `{k}` in {v}"));
            }
        }
    }
    if let Some(o) = v.as_object() {
        let props = schema["properties"].as_object();
        for (k, x) in o {
            match props.and_then(|p| p.get(k)) {
                Some(s) => conforms(doc, s, x, &format!("{at}.{k}"))?,
                None => match schema.get("additionalProperties") {
                    Some(s) => conforms(doc, s, x, &format!("{at}.{k}"))?,
                    None if props.is_some() => {
                        return Err(format!("{at}: undocumented field `{k}`"));
                    }
                    None => {}
                },
            }
        }
    }
    if let (Some(items), Some(a)) = (schema.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            conforms(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The documented schema of `method path`'s JSON answer with `status`.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    &op["responses"][status.to_string()]["content"]["application/json"]["schema"]
}

fn assert_conforms(doc: &Value, method: &str, path: &str, status: u16, v: &Value) {
    let schema = response_schema(doc, method, path, status);
    assert!(
        schema.is_object(),
        "{method} {path}: no documented {status} JSON answer"
    );
    if let Err(e) = conforms(doc, schema, v, "$") {
        panic!("{method} {path} → {status} does not match its documented schema: {e}");
    }
}

/// Event names and data of an SSE stream, read until `done` says so or `limit` passes.
fn read_sse(
    url: &str,
    limit: Duration,
    done: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let agent = ureq::AgentBuilder::new()
        .timeout_read(Duration::from_secs(5))
        .build();
    let r = agent.get(url).call().unwrap();
    assert!(
        r.content_type().starts_with("text/event-stream"),
        "{}",
        r.content_type()
    );
    let reader = std::io::BufReader::new(r.into_reader());
    let start = Instant::now();
    let mut events = Vec::new();
    let (mut name, mut data) = (String::new(), String::new());
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_owned();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            events.push((
                std::mem::take(&mut name),
                serde_json::from_str(&std::mem::take(&mut data)).unwrap(),
            ));
            if done(&events) {
                break;
            }
        }
        if start.elapsed() > limit {
            break;
        }
    }
    events
}

/// The shop with small batches and a DAG whose HTTP task carries secrets (never run).
fn project(dir: &std::path::Path) -> std::path::PathBuf {
    shop_project(dir, |t| {
        small_batches(t)
            + r#"
[dags.notify]
[[dags.notify.tasks]]
id = "ping"
http = { url = "https://ops:hunter2-pw@hooks.example.com/weir", headers = { Authorization = "Bearer topsecret-token" } }
"#
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_api_answers_on_a_running_pipeline() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let config = project(dir.path());
    let (weir, addr, tx) = serve_in_process(&config).await;
    let base = format!("http://{addr}");

    // A browser attached before the traffic: the history, then samples as events flow.
    let sse_url = format!("{base}/v1/stream");
    let sse = std::thread::spawn(move || {
        read_sse(&sse_url, Duration::from_secs(90), |ev| {
            ev.iter().any(|(n, d)| {
                n == "sample" && d["events_in_per_s"].as_f64().is_some_and(|r| r > 0.0)
            })
        })
    });
    // Traffic over a few seconds, so that samples see it.
    let lines = generate(20_000, 11);
    let w = weir.clone();
    tokio::task::spawn_blocking(move || {
        for c in lines.chunks(1000) {
            ingest_lines(&w, c, 1000);
            std::thread::sleep(Duration::from_millis(150));
        }
        // Records the expectations quarantine, in a micro-batch of their own, so that they
        // are the newest quarantined rows in a known order.
        wait_caught_up(&w, Duration::from_secs(120));
        let bad = "not json at all\n{\"event_id\":\"bad-1\",\"ts\":\"2026-01-15T00:00:00Z\",\"customer_id\":null,\"event_type\":\"view\",\"product_category\":\"books\",\"product_id\":\"p1\",\"amount\":1.0,\"quantity\":1,\"location\":\"Berlin\"}\n";
        let r = w.ingest("events", bad.as_bytes()).unwrap();
        assert_eq!((r.accepted, r.rejected), (2, 0));
        // A line that is not UTF-8: a dead letter.
        let r = w.ingest("events", b"\xff\xfe not utf-8\n").unwrap();
        assert_eq!((r.accepted, r.rejected), (0, 1));
        wait_caught_up(&w, Duration::from_secs(120));
    })
    .await
    .unwrap();
    let events = tokio::task::spawn_blocking(move || sse.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        events.first().map(|e| e.0.as_str()),
        Some("history"),
        "{events:?}"
    );
    assert!(events[0].1.is_array());
    let sample = events
        .iter()
        .find(|(n, d)| n == "sample" && d["events_in_per_s"].as_f64().unwrap_or(0.0) > 0.0)
        .unwrap_or_else(|| panic!("no sample saw traffic: {events:?}"));
    assert!(
        sample.1["tables"]["silver_events"]["rows_per_s"].is_number(),
        "{sample:?}"
    );
    assert!(
        sample.1["lag"].is_u64() && sample.1["batches"].is_u64(),
        "{sample:?}"
    );

    let (code, doc) = get(format!("{base}/v1/openapi.json")).await;
    assert_eq!(code, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    // A late SSE client gets the kept history first.
    let sse_url = format!("{base}/v1/stream");
    let late = tokio::task::spawn_blocking(move || {
        read_sse(&sse_url, Duration::from_secs(10), |ev| !ev.is_empty())
    })
    .await
    .unwrap();
    assert_eq!(late[0].0, "history");
    let history = late[0].1.as_array().unwrap();
    // At least the samples taken while the traffic flowed (over 3 s, one per second).
    assert!(history.len() >= 2, "{}", late[0].1);
    let schema = &doc["paths"]["/v1/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"];
    for s in history {
        conforms(&doc, schema, s, "sample").unwrap();
    }

    // The pipeline graph: source → bronze → silver → gold, and the sinks.
    let (code, g) = get(format!("{base}/v1/pipeline")).await;
    assert_eq!(code, 200, "{g}");
    assert_conforms(&doc, "get", "/v1/pipeline", 200, &g);
    let node = |id: &str| {
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("no node {id}: {g}"))
            .clone()
    };
    assert_eq!(node("events")["kind"], "source");
    assert_eq!(node("events")["stats"]["records_in"], 20_002);
    assert_eq!(node("bronze_events")["layer"], "bronze");
    assert_eq!(node("silver_events")["layer"], "silver");
    assert_eq!(node("gold_category_minute")["layer"], "gold");
    assert_eq!(node("gold_customer_daily")["mode"], "batch");
    assert_eq!(node("silver_events_quarantine")["kind"], "sink");
    assert_eq!(node("dead_letters")["stats"]["records_in"], 1);
    assert!(
        node("silver_events")["stats"]["quarantined"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(node("silver_events")["stats"]["rows"].as_u64().unwrap() > 19_000);
    let edges: BTreeSet<(String, String)> = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_owned(),
                e["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (a, b) in [
        ("events", "bronze_events"),
        ("bronze_events", "silver_events"),
        ("silver_events", "gold_category_minute"),
        ("silver_events", "gold_customer_daily"),
        ("silver_events", "silver_events_quarantine"),
        ("gold_category_minute", "gold_category_minute_late"),
        ("events", "dead_letters"),
    ] {
        assert!(
            edges.contains(&(a.into(), b.into())),
            "no edge {a} → {b}: {edges:?}"
        );
    }
    // Gold reads silver only: `count(*) AS events` in its SQL is a column, not the source.
    for gold in ["gold_category_minute", "gold_customer_daily"] {
        let into: Vec<&(String, String)> = edges.iter().filter(|(_, b)| b == gold).collect();
        assert_eq!(into.len(), 1, "edges into {gold}: {into:?}");
    }
    assert_eq!(
        g["edges"].as_array().unwrap().len(),
        edges.len(),
        "an edge is listed twice"
    );

    let (code, s) = get(format!("{base}/v1/sources")).await;
    assert_eq!(code, 200);
    assert_conforms(&doc, "get", "/v1/sources", 200, &s);
    assert_eq!(s["sources"][0]["name"], "events");
    assert_eq!(s["sources"][0]["kind"], "http");
    assert_eq!(s["sources"][0]["records_in"], 20_002);
    assert_eq!(s["sources"][0]["lag"], 0);
    assert_eq!(s["sources"][0]["partitions"][0]["committed_offset"], 20_002);

    // Tables: versions, rows and schema.
    let (code, t) = get(format!("{base}/v1/tables")).await;
    assert_eq!(code, 200);
    assert_conforms(&doc, "get", "/v1/tables", 200, &t);
    let table = |name: &str| {
        t["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("no table {name}: {t}"))
            .clone()
    };
    let bronze = table("bronze_events");
    assert!(bronze["version"].as_i64().unwrap() > 0, "{bronze}");
    assert_eq!(bronze["rows"], 20_002);
    assert_eq!(bronze["kind"], "stream");
    let silver = table("silver_events");
    assert!(silver["version"].as_i64().unwrap() > 0);
    assert_eq!(silver["partition_by"], serde_json::json!(["date"]));
    assert!(silver["size_bytes"].as_u64().unwrap() > 0 && silver["files"].as_u64().unwrap() > 0);
    assert!(silver["last_commit"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(table("gold_customer_daily")["kind"], "batch");
    assert_eq!(table("silver_events_quarantine")["role"], "quarantine");

    let (code, d) = get(format!("{base}/v1/tables/silver_events")).await;
    assert_eq!(code, 200, "{d}");
    assert_conforms(&doc, "get", "/v1/tables/{name}", 200, &d);
    let cols: Vec<(&str, &str)> = d["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert!(cols.contains(&("event_id", "string")), "{cols:?}");
    assert!(cols.contains(&("amount", "double")), "{cols:?}");
    assert!(d["sql"].as_str().unwrap().to_uppercase().contains("SELECT"));
    let parts = d["partitions"].as_array().unwrap();
    assert!(!parts.is_empty());
    assert!(
        parts[0]["values"]["date"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{d}"
    );
    assert_eq!(
        parts
            .iter()
            .map(|p| p["rows"].as_u64().unwrap())
            .sum::<u64>(),
        d["rows"].as_u64().unwrap()
    );

    // History: newest first, from the latest version down.
    let (code, h) = get(format!("{base}/v1/tables/silver_events/history?limit=5")).await;
    assert_eq!(code, 200);
    assert_conforms(&doc, "get", "/v1/tables/{name}/history", 200, &h);
    let versions: Vec<i64> = h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions.len(), 5, "{h}");
    assert_eq!(versions[0], d["version"].as_i64().unwrap());
    assert!(
        versions.windows(2).all(|w| w[0] == w[1] + 1),
        "{versions:?}"
    );
    assert_eq!(h["history"][0]["operation"], "WRITE", "{h}");
    assert!(h["history"][0]["metrics"]["rows_added"].as_u64().unwrap() > 0);

    // Preview: the newest rows, newest first (bronze keeps the log offset).
    let (code, p) = get(format!("{base}/v1/tables/bronze_events/preview?limit=7")).await;
    assert_eq!(code, 200, "{p}");
    assert_conforms(&doc, "get", "/v1/tables/{name}/preview", 200, &p);
    let columns: Vec<&str> = p["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let offset = columns.iter().position(|c| *c == "offset").unwrap();
    let rows = p["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    let offsets: Vec<i64> = rows.iter().map(|r| r[offset].as_i64().unwrap()).collect();
    assert_eq!(offsets, (19_995..=20_001).rev().collect::<Vec<i64>>());
    assert!(
        rows.iter()
            .all(|r| r.as_array().unwrap().len() == columns.len())
    );

    // Quarantine: the newest rows with their reasons.
    let (code, q) = get(format!(
        "{base}/v1/tables/silver_events/quarantine?limit=10"
    ))
    .await;
    assert_eq!(code, 200, "{q}");
    assert_conforms(&doc, "get", "/v1/tables/{name}/quarantine", 200, &q);
    assert_eq!(q["table"], "silver_events_quarantine");
    let qrows = q["rows"].as_array().unwrap();
    assert_eq!(qrows.len(), 10);
    assert_eq!(qrows[0]["reason"], "missing_customer_id", "{q}");
    assert_eq!(qrows[1]["reason"], "malformed_json", "{q}");
    assert_eq!(qrows[1]["raw"], "not json at all");
    assert!(
        q["by_reason"]["malformed_json"].as_u64().unwrap() >= 1,
        "{q}"
    );

    // Dead letters.
    let (code, dl) = get(format!("{base}/v1/dead-letters")).await;
    assert_eq!(code, 200);
    assert_conforms(&doc, "get", "/v1/dead-letters", 200, &dl);
    assert_eq!(dl["total"], 1);
    let letter = &dl["dead_letters"][0];
    assert_eq!(
        (
            letter["source"].as_str(),
            letter["reason"].as_str(),
            letter["raw_encoding"].as_str()
        ),
        (Some("events"), Some("not_utf8"), Some("hex")),
        "{dl}"
    );
    assert!(letter["raw"].as_str().unwrap().starts_with("fffe"));

    // Quality: counts since start and the series.
    let (code, ql) = get(format!("{base}/v1/quality")).await;
    assert_eq!(code, 200);
    assert_conforms(&doc, "get", "/v1/quality", 200, &ql);
    let sq = ql["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "silver_events")
        .unwrap()
        .clone();
    assert_eq!(sq["rows_in"], 20_002);
    assert!(sq["failed"].as_u64().unwrap() > 0);
    assert_eq!(sq["failed"], sq["quarantined"]);
    assert_eq!(
        sq["passed"].as_u64().unwrap() + sq["failed"].as_u64().unwrap(),
        20_002
    );
    let names: Vec<&str> = sq["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "missing_customer_id",
            "unknown_event_type",
            "unparseable_ts",
            "negative_amount"
        ]
    );
    let series = sq["series"].as_array().unwrap();
    assert!(
        series
            .iter()
            .map(|p| p["passed"].as_u64().unwrap())
            .sum::<u64>()
            > 0,
        "{sq}"
    );

    // Logs: a known line, and the filters.
    let (code, l) = get(format!("{base}/v1/logs?component=weir_log&limit=50")).await;
    assert_eq!(code, 200);
    assert_conforms(&doc, "get", "/v1/logs", 200, &l);
    let line = l["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["message"] == "created topic" && x["fields"]["topic"] == "events")
        .unwrap_or_else(|| panic!("no `created topic` line: {l}"));
    assert_eq!(line["level"], "info");
    assert!(line["target"].as_str().unwrap().starts_with("weir_log"));
    // Other crates' info lines (the Delta kernel logs every scan) are not kept.
    let (_, all) = get(format!("{base}/v1/logs?limit=2000")).await;
    let all = all["lines"].as_array().unwrap();
    assert!(all.iter().any(|x| x["level"] == "info"));
    assert!(
        all.iter()
            .all(|x| x["target"].as_str().unwrap().starts_with("weir") || x["level"] != "info"),
        "{all:?}"
    );
    let (_, l) = get(format!("{base}/v1/logs?level=error&component=weir_log")).await;
    assert!(l["lines"].as_array().unwrap().is_empty(), "{l}");
    let (_, l) = get(format!("{base}/v1/logs?component=weir_server")).await;
    assert!(
        l["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["message"] == "serving HTTP"),
        "{l}"
    );

    // Config: as written, secrets masked.
    let (code, c) = get(format!("{base}/v1/config")).await;
    assert_eq!(code, 200);
    assert_conforms(&doc, "get", "/v1/config", 200, &c);
    let text = c["toml"].as_str().unwrap();
    assert!(
        !text.contains("hunter2-pw") && !text.contains("topsecret-token"),
        "{text}"
    );
    assert!(
        text.contains("https://ops:********@hooks.example.com/weir"),
        "{text}"
    );
    assert!(text.contains("Authorization = \"********\""), "{text}");
    assert!(
        text.contains("# The shop pipeline"),
        "comments are kept: {text}"
    );
    assert!(text.contains("dedup = { key = \"event_id\""), "{text}");
    assert!(
        c["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "silver_events" && t["sql"].as_str().unwrap().contains("FROM"))
    );

    // Backfill: creates the runs once; the scheduler runs them.
    let url = format!("{base}/v1/dags/daily_customer/backfill");
    let (code, b) = post(
        url.clone(),
        r#"{"start": "2026-01-10", "end": "2026-01-12"}"#,
    )
    .await;
    assert_eq!(code, 201, "{b}");
    assert_conforms(&doc, "post", "/v1/dags/{name}/backfill", 201, &b);
    assert_eq!(b["run_ids"].as_array().unwrap().len(), 3);
    assert_eq!(b["created"], 3);
    let (code, again) = post(
        url.clone(),
        r#"{"start": "2026-01-10", "end": "2026-01-12"}"#,
    )
    .await;
    assert_eq!((code, &again["created"]), (201, &serde_json::json!(0)));
    assert_eq!(again["run_ids"], b["run_ids"]);
    let (_, runs) = get(format!("{base}/v1/dags/daily_customer/runs?limit=100")).await;
    assert_conforms(&doc, "get", "/v1/dags/{name}/runs", 200, &runs);
    let backfilled: BTreeSet<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["run"]["kind"] == "backfill")
        .map(|r| r["run"]["logical_date"].as_str().unwrap())
        .collect();
    assert_eq!(
        backfilled,
        BTreeSet::from(["2026-01-10", "2026-01-11", "2026-01-12"])
    );
    for (body, needle) in [
        (r#"{"start": "2026-01-12", "end": "2026-01-10"}"#, "after"),
        (r#"{"start": "12/01/2026", "end": "2026-01-10"}"#, "start"),
        (r#"{"start": "2026-01-12"}"#, "end"),
        (r#"{"start": "1990-01-01", "end": "2026-01-10"}"#, "days"),
    ] {
        let (code, e) = post(url.clone(), body).await;
        assert_eq!(
            (code, e["kind"].as_str()),
            (400, Some("user")),
            "{body}: {e}"
        );
        assert!(e["error"].as_str().unwrap().contains(needle), "{body}: {e}");
    }
    let (code, _) = post(
        format!("{base}/v1/dags/nope/backfill"),
        r#"{"start":"2026-01-01","end":"2026-01-01"}"#,
    )
    .await;
    assert_eq!(code, 404);

    // Errors: unknown names are 404, bad limits 400 naming the parameter; limits clamp.
    let (code, e) = get(format!("{base}/v1/tables/nope")).await;
    assert_eq!((code, e["kind"].as_str()), (404, Some("user")), "{e}");
    assert!(e["error"].as_str().unwrap().contains("nope"));
    assert_conforms(&doc, "get", "/v1/tables/{name}", 404, &e);
    for path in ["history", "preview", "quarantine"] {
        let (code, e) = get(format!("{base}/v1/tables/nope/{path}")).await;
        assert_eq!(code, 404, "{path}: {e}");
        let (code, e) = get(format!("{base}/v1/tables/silver_events/{path}?limit=lots")).await;
        assert_eq!(
            (code, e["kind"].as_str()),
            (400, Some("user")),
            "{path}: {e}"
        );
        assert!(e["error"].as_str().unwrap().contains("`limit`"), "{e}");
    }
    let (code, e) = get(format!("{base}/v1/tables/bronze_events/quarantine")).await;
    assert_eq!(code, 404, "{e}");
    for (q, n) in [("0", 1), ("-3", 1), ("100000", 1000)] {
        let (code, p) = get(format!("{base}/v1/tables/silver_events/history?limit={q}")).await;
        assert_eq!(code, 200, "{p}");
        assert_eq!(
            p["history"].as_array().unwrap().len(),
            n.min(d["version"].as_u64().unwrap() as usize + 1),
            "limit={q}"
        );
    }
    for bad in [
        "/v1/dead-letters?limit=x",
        "/v1/logs?limit=1.5",
        "/v1/logs?level=loud",
        "/v1/dags/daily_customer/runs?limit=no",
        "/v1/runs/abc",
    ] {
        let (code, e) = get(format!("{base}{bad}")).await;
        assert_eq!(
            (code, e["kind"].as_str()),
            (400, Some("user")),
            "{bad}: {e}"
        );
    }
    let (code, e) = get(format!("{base}/v1/nothing-here")).await;
    assert_eq!(code, 404);
    assert!(
        e["error"].as_str().unwrap().contains("/v1/openapi.json"),
        "{e}"
    );

    check_openapi(&doc, &base, b["run_ids"][0].as_i64().unwrap()).await;
    check_grafana(&base).await;

    let _ = tx.send(());
    weir.stop();
    tokio::task::spawn_blocking(move || weir.join())
        .await
        .unwrap();
}

/// Every route is in the document with the error schema; every documented GET answers (not
/// the router's fallback) with JSON that matches its documented schema.
async fn check_openapi(doc: &Value, base: &str, run_id: i64) {
    external_validator(doc);
    let routes = weir_server::routes::route_list();
    assert!(routes.len() >= 25, "{routes:?}");
    for (method, path) in &routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is routed but not documented"
        );
    }
    // The contract's endpoints are all routed.
    for (method, path) in [
        ("get", "/health"),
        ("get", "/ready"),
        ("get", "/metrics"),
        ("get", "/v1/pipeline"),
        ("get", "/v1/sources"),
        ("get", "/v1/tables"),
        ("get", "/v1/tables/{name}"),
        ("get", "/v1/tables/{name}/history"),
        ("get", "/v1/tables/{name}/preview"),
        ("post", "/v1/query"),
        ("get", "/v1/quality"),
        ("get", "/v1/tables/{name}/quarantine"),
        ("get", "/v1/dead-letters"),
        ("get", "/v1/logs"),
        ("get", "/v1/config"),
        ("get", "/v1/stream"),
        ("get", "/v1/dags"),
        ("get", "/v1/dags/{name}"),
        ("get", "/v1/dags/{name}/runs"),
        ("post", "/v1/dags/{name}/runs"),
        ("post", "/v1/dags/{name}/backfill"),
        ("get", "/v1/runs/{id}"),
        ("get", "/v1/openapi.json"),
    ] {
        assert!(
            routes.contains(&(method, path)),
            "{method} {path} is not routed"
        );
    }
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        routes.len(),
        "documented operations that are not routed"
    );
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error", "kind"]));
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                op["summary"].is_string() && op["operationId"].is_string(),
                "{method} {path}"
            );
            // The schema registry answers in Confluent's media type and error shape (its
            // routes are walked in tests/schema_registry.rs).
            let registry =
                op["responses"]["200"]["content"][weir_server::registry::MEDIA].is_object();
            for (status, r) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let (media, body) = if registry {
                        (weir_server::registry::MEDIA, "RegistryErrorBody")
                    } else {
                        ("application/json", "ErrorBody")
                    };
                    assert_eq!(
                        r["content"][media]["schema"]["$ref"],
                        format!("#/components/schemas/{body}"),
                        "{method} {path} {status}"
                    );
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().unwrap();
                    assert!(path.contains(&format!("{{{name}}}")), "{path}: {name}");
                }
            }
            if method != "get" || path == "/v1/stream" || registry {
                continue;
            }
            let url = format!(
                "{base}{}",
                path.replace(
                    "{name}",
                    if path.starts_with("/v1/dags") {
                        "daily_customer"
                    } else {
                        "silver_events"
                    }
                )
                .replace("{id}", &run_id.to_string())
            );
            let (code, body) = get(url.clone()).await;
            assert_eq!(code, 200, "{url}: {body}");
            if op["responses"]["200"]["content"]["application/json"].is_object() {
                assert_conforms(doc, "get", path, 200, &body);
            } else {
                assert!(body.is_string(), "{url}");
            }
        }
    }
}

/// Runs the validator named by `WEIR_TEST_OPENAPI_VALIDATOR` (e.g. `openapi-spec-validator`
/// from PyPI) on the document, when set.
fn external_validator(doc: &Value) {
    let Ok(bin) = std::env::var("WEIR_TEST_OPENAPI_VALIDATOR") else {
        eprintln!(
            "SKIPPED: external OpenAPI validation (set WEIR_TEST_OPENAPI_VALIDATOR, e.g. to openapi-spec-validator)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let out = std::process::Command::new(bin).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "the OpenAPI document is invalid:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The metric names the Grafana dashboard queries all appear on /metrics.
async fn check_grafana(base: &str) {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/grafana/weir.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(dash["__inputs"][0]["name"], "DS_PROMETHEUS");
    let mut queries = Vec::new();
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match (k.as_str(), x) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        _ => collect(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    collect(&dash, &mut queries);
    assert!(queries.len() >= 15, "{queries:?}");
    let (code, text) = get(format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    let text = text.as_str().unwrap().to_owned();
    let mut exposed = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            exposed.insert(name.to_owned());
            if kind == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    exposed.insert(format!("{name}{s}"));
                }
            }
        }
    }
    let mut used = BTreeSet::new();
    for q in &queries {
        for w in q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if w.starts_with("weir_") {
                used.insert(w.to_owned());
            }
        }
    }
    assert!(used.len() >= 12, "{used:?}");
    for m in &used {
        assert!(
            exposed.contains(m),
            "the dashboard queries `{m}`, which /metrics does not expose"
        );
    }
    for needed in [
        "weir_source_records_total",
        "weir_consumer_lag_records",
        "weir_end_to_end_latency_seconds_bucket",
        "weir_table_quarantined_rows_total",
        "weir_table_late_rows_total",
        "weir_dead_letters_total",
        "weir_delta_table_version",
        "weir_dag_runs",
        "weir_process_resident_memory_bytes",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard has no panel on {needed}"
        );
    }
    assert!(
        queries
            .iter()
            .any(|q| q.contains("histogram_quantile(0.99"))
    );
}
