//! `weir dlq` end to end with the real binary: lines the `events` source refused are listed
//! and shown; after the fix (a larger `max_line_size`) a replay puts them into silver exactly
//! once, a second replay and a dry run change nothing, and lines that are still bad are
//! refused again as new dead letters. Once against a running weir (over its API) and once
//! against a stopped one (the CLI opens the log itself).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::harness::*;
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shop project with a 2 KiB line limit, its API on `port`.
fn project(dir: &Path, port: u16) -> PathBuf {
    shop_project(dir, |t| {
        small_batches(t)
            .replace("max_line_size = \"1MiB\"", "max_line_size = \"2KiB\"")
            .replace(
                "listen = \"127.0.0.1:8080\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            .replace(
                "pg_listen = \"127.0.0.1:5433\"",
                "pg_listen = \"127.0.0.1:0\"",
            )
    })
}

/// The fix: lines up to 64 KiB are fine.
fn raise_line_limit(config: &Path) {
    let t = std::fs::read_to_string(config).unwrap();
    assert!(t.contains("max_line_size = \"2KiB\""));
    std::fs::write(
        config,
        t.replace("max_line_size = \"2KiB\"", "max_line_size = \"64KiB\""),
    )
    .unwrap();
}

fn event(id: &str, location: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","ts":"2026-01-15T00:00:0{}.000Z","customer_id":"c1","event_type":"view","product_category":"toys","product_id":"p1","amount":0.0,"quantity":1,"location":"{location}"}}"#,
        id.len() % 10
    )
}

/// Three good events, two over 2 KiB (big1, big2) and one that is not UTF-8 (bin1).
fn body() -> Vec<u8> {
    let mut b = Vec::new();
    for id in ["ok1", "ok2", "ok3"] {
        b.extend_from_slice(event(id, "Paris").as_bytes());
        b.push(b'\n');
    }
    for id in ["big1", "big2"] {
        b.extend_from_slice(event(id, &"x".repeat(3000)).as_bytes());
        b.push(b'\n');
    }
    // A lone 0xff byte inside the location.
    b.extend(
        event("bin1", "Ly#on")
            .bytes()
            .map(|c| if c == b'#' { 0xff } else { c }),
    );
    b.push(b'\n');
    b
}

/// `weir run` on the project until dropped (SIGTERM, then SIGKILL if it lingers).
struct Running {
    child: Child,
    base: String,
}

impl Running {
    fn start(config: &Path, port: u16, log: &Path) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while ureq::get(&format!("{base}/ready")).call().is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "weir did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Running { child, base }
    }

    fn get(&self, path: &str) -> Value {
        ureq::get(&format!("{}{path}", self.base))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    }

    fn scalar(&self, sql: &str) -> i64 {
        let rows: Value = ureq::post(&format!("{}/v1/query", self.base))
            .send_json(serde_json::json!({ "sql": sql }))
            .unwrap()
            .into_json()
            .unwrap();
        rows[0]["n"].as_i64().unwrap_or(0)
    }

    /// Waits until the pipeline has read the whole log.
    fn settle(&self) {
        let start = Instant::now();
        loop {
            let st = self.get("/v1/status");
            if st["lag"].as_u64() == Some(0) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{st}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn records_in(&self) -> u64 {
        self.get("/v1/status")["sources"]["events"]["records_in"]
            .as_u64()
            .unwrap()
    }

    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

/// How often `id` is in `table` (bronze counts raw lines, so a duplicate cannot hide behind
/// silver's dedup).
fn times_in(weir: &Running, table: &str, id: &str) -> i64 {
    if table.starts_with("bronze") {
        weir.scalar(&format!(
            "SELECT count(*) AS n FROM {table} WHERE value LIKE '%\"event_id\":\"{id}\"%'"
        ))
    } else {
        weir.scalar(&format!(
            "SELECT count(*) AS n FROM {table} WHERE event_id = '{id}'"
        ))
    }
}

fn cli(args: &[&str], config: &Path) -> String {
    ok(&weir_cli(args, config))
}

fn cli_err(args: &[&str], config: &Path) -> String {
    let o = weir_cli(args, config);
    assert!(
        !o.status.success(),
        "`weir {}` should have failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn list_json(args: &[&str], config: &Path) -> Value {
    let mut a = vec!["dlq", "list", "--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&cli(&a, config)).unwrap()
}

/// (id, reason, replayed?) of the listed entries.
fn ids(list: &Value) -> Vec<(u64, String, bool)> {
    list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap(),
                e["reason"].as_str().unwrap().to_owned(),
                !e["replayed"].is_null(),
            )
        })
        .collect()
}

#[test]
fn dead_letters_are_listed_shown_and_replayed_once_through_a_running_weir() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = project(dir.path(), port);
    let log = dir.path().join("weir.log");
    let weir = Running::start(&config, port, &log);

    let r: Value = ureq::post(&format!("{}/v1/sources/events/records", weir.base))
        .send_bytes(&body())
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(3), Some(3)),
        "{r}"
    );
    weir.settle();
    assert_eq!(weir.scalar("SELECT count(*) AS n FROM silver_events"), 3);

    // List: the three refused lines with their reasons, and counts.
    let text = cli(&["dlq", "list", "--source", "events"], &config);
    assert_eq!(text.matches("line_too_large").count(), 3, "{text}"); // 2 rows + 1 count
    assert!(text.contains("not_utf8"), "{text}");
    assert!(text.contains("3 of 3 dead letters match"), "{text}");
    assert!(
        text.lines().any(|l| l.contains("events")
            && l.contains("line_too_large")
            && l.contains("(2 not replayed)")),
        "{text}"
    );
    let all = list_json(&["--source", "events"], &config);
    let entries = ids(&all);
    assert_eq!(
        entries,
        [
            (0, "line_too_large".into(), false),
            (1, "line_too_large".into(), false),
            (2, "not_utf8".into(), false)
        ]
    );
    let only = ids(&list_json(&["--reason", "not_utf8"], &config));
    assert_eq!(only, [(2, "not_utf8".into(), false)]);

    // Show: the whole payload, as text or as hex.
    let big = cli(&["dlq", "show", "0"], &config);
    assert!(big.contains("payload (text):"), "{big}");
    assert!(big.contains(&event("big1", &"x".repeat(3000))), "{big}");
    assert!(big.contains("the limit is 2048"), "{big}");
    let bin = cli(&["dlq", "show", "2"], &config);
    assert!(bin.contains("payload (hex, not UTF-8):"), "{bin}");
    assert!(bin.contains(" ff "), "{bin}");
    assert!(bin.contains("|{\"event_id\":\"bin|"), "{bin}");
    let shown: Value =
        serde_json::from_str(&cli(&["dlq", "show", "2", "--json"], &config)).unwrap();
    assert_eq!(shown["raw_encoding"], "hex");
    assert_eq!(shown["raw_truncated"], false);

    // Clear errors.
    let e = cli_err(&["dlq", "show", "99"], &config);
    assert!(
        e.contains("no dead letter with id 99 (ids go from 0 to 2)"),
        "{e}"
    );
    let e = cli_err(&["dlq", "list", "--source", "nope"], &config);
    assert!(
        e.contains("no source named `nope`") && e.contains("events"),
        "{e}"
    );
    let e = cli_err(&["dlq", "replay", "--reason", "schema_mismatch"], &config);
    assert!(
        e.contains("no dead letter matches reason `schema_mismatch`"),
        "{e}"
    );

    // Before the fix, a dry run says they would be refused again.
    let dry = cli(
        &["dlq", "replay", "--reason", "line_too_large", "--dry-run"],
        &config,
    );
    assert!(
        dry.contains("2 refused again") && dry.contains("nothing written"),
        "{dry}"
    );

    // The fix, and a restart so that the server uses it.
    weir.stop();
    raise_line_limit(&config);
    let weir = Running::start(&config, port, &log);
    let before = weir.records_in();

    let dry = cli(
        &["dlq", "replay", "--reason", "line_too_large", "--dry-run"],
        &config,
    );
    assert!(dry.contains("2 would be accepted"), "{dry}");
    assert_eq!(weir.records_in(), before, "a dry run wrote");
    assert!(!dir.path().join("data/dlq/replayed.json").exists());

    let out = cli(&["dlq", "replay", "--reason", "line_too_large"], &config);
    assert!(out.contains("2 accepted, 0 refused again"), "{out}");
    assert!(
        out.contains("#0 events line_too_large: accepted into `events`"),
        "{out}"
    );
    weir.settle();
    for id in ["big1", "big2"] {
        assert_eq!(times_in(&weir, "silver_events", id), 1, "{id} in silver");
        assert_eq!(times_in(&weir, "bronze_events", id), 1, "{id} in bronze");
    }
    assert_eq!(weir.scalar("SELECT count(*) AS n FROM silver_events"), 5);
    assert_eq!(weir.records_in(), before + 2);

    // Again: nothing left to replay, nothing written.
    let again = cli(&["dlq", "replay", "--reason", "line_too_large"], &config);
    assert!(again.contains("replayed 0 of 2"), "{again}");
    assert!(again.contains("2 replayed before, left alone"), "{again}");
    assert_eq!(weir.records_in(), before + 2);
    let listed = ids(&list_json(&["--reason", "line_too_large"], &config));
    assert!(listed.iter().all(|e| e.2), "{listed:?}");

    // Still not UTF-8: refused again as a new dead letter, not forced in.
    let out = cli(&["dlq", "replay", "--ids", "2"], &config);
    assert!(
        out.contains("refused again (not_utf8) as dead letter 3"),
        "{out}"
    );
    let nu = list_json(&["--reason", "not_utf8"], &config);
    assert_eq!(
        ids(&nu),
        [(2, "not_utf8".into(), true), (3, "not_utf8".into(), false)]
    );
    assert_eq!(nu["entries"][1]["replay_of"], 2);
    weir.settle();
    assert_eq!(times_in(&weir, "bronze_events", "bin1"), 0);
    assert_eq!(weir.scalar("SELECT count(*) AS n FROM silver_events"), 5);
    assert_eq!(weir.records_in(), before + 2);

    // The API the CLI used is documented.
    let doc = weir.get("/v1/openapi.json");
    assert!(doc["paths"]["/v1/dlq"]["get"].is_object());
    assert!(doc["paths"]["/v1/dlq/replay"]["post"].is_object());
    weir.stop();

    // With weir stopped, the CLI reads the ledger from disk and agrees.
    let listed = ids(&list_json(&[], &config));
    assert_eq!(
        listed,
        [
            (0, "line_too_large".into(), true),
            (1, "line_too_large".into(), true),
            (2, "not_utf8".into(), true),
            (3, "not_utf8".into(), false)
        ]
    );
}

#[test]
fn a_stopped_weir_replays_from_its_log_and_never_twice() {
    let dir = tempfile::tempdir().unwrap();
    let config = project(dir.path(), free_port());
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, body()).unwrap();
    // No server runs: `weir ingest` appends to the log itself.
    let r = cli(&["ingest", "events", input.to_str().unwrap()], &config);
    assert!(r.contains("\"rejected\":3"), "{r}");
    let text = cli(&["dlq", "list"], &config);
    assert!(text.contains("3 of 3 dead letters match"), "{text}");

    raise_line_limit(&config);
    let out = cli(&["dlq", "replay", "--source", "events"], &config);
    assert!(out.contains("2 accepted, 1 refused again"), "{out}");
    let again = cli(
        &[
            "dlq",
            "replay",
            "--source",
            "events",
            "--reason",
            "line_too_large",
        ],
        &config,
    );
    assert!(again.contains("replayed 0 of 2"), "{again}");

    // Run the pipeline over the log once.
    let st = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--exit-when-idle", "--pg-listen", "", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let silver = rt.block_on(rows(
        &config,
        "SELECT event_id FROM silver_events ORDER BY event_id",
    ));
    let silver: Vec<&str> = silver.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(silver, ["big1", "big2", "ok1", "ok2", "ok3"]);
    let bronze = rt.block_on(rows(&config, "SELECT count(*) FROM bronze_events"));
    assert_eq!(bronze[0][0], "5");
}
