//! `weir dag` as users run it on the shop project: a 7-day backfill of gold_customer_daily,
//! SIGKILLed half-way and resumed, builds every day once and equals the same SQL run ad hoc by
//! `weir query`; the daily checks run on each partition.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::harness::*;
use weir_orchestrator::dag::store::{MetaStore, SqliteStore, run_state};

fn weir(args: &[&str], config: &Path) -> Output {
    common::harness::weir_cli(args, config)
}

/// Purchases over Jan 1..=7: day d has d·3 events of customers c0..c(d+1).
fn week_of_events() -> Vec<String> {
    let mut lines = Vec::new();
    for d in 1..=7 {
        for i in 0..d * 3 {
            lines.push(format!(
                r#"{{"event_id":"e{d}-{i}","ts":"2026-01-0{d}T{:02}:15:00Z","customer_id":"c{}","event_type":"{}","product_category":"books","product_id":"p{i}","amount":{}.25,"quantity":1,"location":"Berlin"}}"#,
                i % 24,
                i % (d + 2),
                if i % 4 == 3 { "refund" } else { "purchase" },
                10 + i
            ));
        }
    }
    lines
}

#[test]
// The backfill child is killed and waited for once three runs are done; a failed assertion in
// between ends the test process, child included.
#[allow(clippy::zombie_processes)]
fn backfill_killed_and_resumed_builds_each_day_once_and_equals_ad_hoc_sql() {
    let tmp = tempfile::tempdir().unwrap();
    // A pause after each run's check, so that the kill lands between runs and inside one.
    // A task killed mid-attempt is retried per its policy: short delays here.
    let config = shop_project(&tmp.path().join("shop"), |t| {
        t.replace("retry_delay = \"30s\"", "retry_delay = \"100ms\"")
            + r#"
[[dags.daily_customer.tasks]]
id = "pause"
after = ["check"]
shell = "sleep 0.6"
retries = 1
retry_delay = "100ms"

[[dags.daily_customer.tasks]]
id = "export"
after = ["build"]
export = { table = "gold_customer_daily", path = "exports/gold_{{ ds }}.csv" }
retries = 1
retry_delay = "100ms"
"#
    });
    let lines = week_of_events();
    run_in_process(&config, &lines);

    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "dag",
            "backfill",
            "daily_customer",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-07",
            "-c",
        ])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let meta = config.parent().unwrap().join("data/meta.sqlite");
    let started = Instant::now();
    let done_before = loop {
        std::thread::sleep(Duration::from_millis(50));
        if meta.exists() {
            let store = SqliteStore::open(&meta).unwrap();
            let done: Vec<i64> = store
                .runs(Some("daily_customer"), 100)
                .unwrap()
                .into_iter()
                .filter(|r| r.kind == "backfill" && r.state == run_state::SUCCESS)
                .map(|r| r.id)
                .collect();
            if done.len() >= 3 {
                child.kill().unwrap();
                child.wait().unwrap();
                break done;
            }
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the backfill made no progress");
        }
    };
    let store = SqliteStore::open(&meta).unwrap();
    let finished_early = store
        .runs(Some("daily_customer"), 100)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "backfill" && r.state == run_state::SUCCESS)
        .count();
    assert!(finished_early < 7, "the kill came after the whole backfill");

    // Resumed: the same command finishes the rest.
    let out = ok(&weir(
        &[
            "dag",
            "backfill",
            "daily_customer",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-07",
        ],
        &config,
    ));
    assert_eq!(
        out.lines().filter(|l| l.contains(" success:")).count(),
        7,
        "{out}"
    );

    // (`weir run` above also scheduled its own latest run, for yesterday.)
    let runs: Vec<_> = store
        .runs(Some("daily_customer"), 100)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "backfill")
        .collect();
    assert_eq!(runs.len(), 7);
    for r in &runs {
        assert_eq!(r.state, run_state::SUCCESS, "{r:?}");
        let builds: Vec<_> = store
            .attempts(r.id)
            .unwrap()
            .into_iter()
            .filter(|a| a.task_id == "build")
            .collect();
        assert!(
            builds.iter().filter(|a| a.state == "success").count() == 1,
            "{} built {} times",
            r.logical_date,
            builds.len()
        );
        if done_before.contains(&r.id) {
            assert_eq!(builds.len(), 1, "a completed day was repeated");
        }
        let checks = store.checks(r.id).unwrap();
        assert!(
            checks
                .iter()
                .any(|c| c.check_name == "unique(customer_id)" && c.passed),
            "{checks:?}"
        );
    }

    // The built table equals the same SQL run ad hoc.
    let sql = std::fs::read_to_string(config.parent().unwrap().join("sql/gold_customer_daily.sql"))
        .unwrap();
    let adhoc = ok(&weir(
        &[
            "query",
            &format!("SELECT * FROM ({sql}) t ORDER BY date, customer_id"),
            "--format",
            "csv",
        ],
        &config,
    ));
    let built = ok(&weir(
        &[
            "query",
            "SELECT date, customer_id, events, revenue FROM gold_customer_daily ORDER BY date, customer_id",
            "--format",
            "csv",
        ],
        &config,
    ));
    assert_eq!(built, adhoc);
    assert_eq!(built.lines().count(), 1 + (3..=9).sum::<usize>(), "{built}");
    let days = ok(&weir(
        &[
            "query",
            "SELECT count(DISTINCT date) FROM gold_customer_daily",
            "--format",
            "csv",
        ],
        &config,
    ));
    assert!(days.ends_with("7\n"), "{days}");

    // Rebuilding a day replaces its partition instead of adding to it.
    let o = weir(
        &["dag", "trigger", "daily_customer", "--date", "2026-01-03"],
        &config,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already has a run for 2026-01-03"));
    let id = runs
        .iter()
        .find(|r| r.logical_date == "2026-01-03")
        .unwrap()
        .id;
    ok(&weir(
        &[
            "dag",
            "clear",
            &id.to_string(),
            "--task",
            "build",
            "--run-now",
        ],
        &config,
    ));
    let again = ok(&weir(
        &[
            "query",
            "SELECT date, customer_id, events, revenue FROM gold_customer_daily ORDER BY date, customer_id",
            "--format",
            "csv",
        ],
        &config,
    ));
    assert_eq!(again, built);
    let logs = ok(&weir(&["dag", "logs", &id.to_string()], &config));
    assert!(
        logs.contains("built `gold_customer_daily` partition date=2026-01-03: 5 rows"),
        "{logs}"
    );
    // A day without events, once the table exists: the (empty) partition is replaced too.
    let out = ok(&weir(
        &[
            "dag",
            "backfill",
            "daily_customer",
            "--from",
            "2026-01-08",
            "--to",
            "2026-01-08",
        ],
        &config,
    ));
    assert!(out.contains("2026-01-08 success"), "{out}");
    let csv = std::fs::read_to_string(config.parent().unwrap().join("exports/gold_2026-01-03.csv"))
        .unwrap();
    assert_eq!(csv.lines().next(), Some("date,customer_id,events,revenue"));
    assert_eq!(csv.lines().count(), 1 + 5, "{csv}");
    let listed = ok(&weir(&["dag", "runs", "daily_customer"], &config));
    assert!(
        listed.contains("2026-01-07") && listed.contains("success"),
        "{listed}"
    );
}

fn call(method: &str, url: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let req = ureq::request(method, url);
    let r = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    match r {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_lists_triggers_and_shows_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let config = shop_project(tmp.path(), |t| {
        t.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
    });
    let (weir, addr, tx) = serve_in_process(&config).await;
    let base = format!("http://{addr}/v1");

    let (code, list) = tokio::task::spawn_blocking({
        let u = format!("{base}/dags");
        move || call("GET", &u, None)
    })
    .await
    .unwrap();
    assert_eq!(code, 200);
    let names: Vec<&str> = list["dags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"daily_customer"), "{list}");

    let b = base.clone();
    let (created, again, bad, missing) = tokio::task::spawn_blocking(move || {
        let u = format!("{b}/dags/daily_customer/runs");
        (
            call("POST", &u, Some(r#"{"date": "2026-01-02"}"#)),
            call("POST", &u, Some(r#"{"date": "2026-01-02"}"#)),
            call("POST", &u, Some(r#"{"date": "02/01/2026"}"#)),
            call("GET", &format!("{b}/dags/nope/runs"), None),
        )
    })
    .await
    .unwrap();
    assert_eq!(created.0, 201, "{}", created.1);
    assert_eq!(again.0, 409, "{}", again.1);
    assert!(
        again.1["error"]
            .as_str()
            .unwrap()
            .contains("already has a run")
    );
    assert_eq!(
        (bad.0, bad.1["kind"].as_str()),
        (400, Some("user")),
        "{}",
        bad.1
    );
    assert_eq!(missing.0, 404);

    // The running scheduler picks the queued run up.
    let id = created.1["run_id"].as_i64().unwrap();
    let u = format!("{base}/runs/{id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let u = u.clone();
        let (code, run) = tokio::task::spawn_blocking(move || call("GET", &u, None))
            .await
            .unwrap();
        assert_eq!(code, 200);
        let state = run["run"]["state"].as_str().unwrap().to_owned();
        if state == "success" || state == "failed" {
            break run;
        }
        assert!(Instant::now() < deadline, "the run never finished: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["run"]["state"], "success", "{run}");
    assert_eq!(run["tasks"].as_array().unwrap().len(), 2);
    assert!(!run["checks"].as_array().unwrap().is_empty(), "{run}");
    let _ = tx.send(());
    weir.stop();
    tokio::task::spawn_blocking(move || weir.join())
        .await
        .unwrap();
}

#[test]
fn maintain_expires_old_partitions_and_compacts() {
    let tmp = tempfile::tempdir().unwrap();
    let config = shop_project(&tmp.path().join("shop"), |t| {
        t.replace(
            "dedup = { key = \"event_id\", within = \"10m\" }",
            "dedup = { key = \"event_id\", within = \"10m\" }\nretention = \"3d\"",
        ) + r#"
[dags.housekeeping]
[[dags.housekeeping.tasks]]
id = "tidy"
maintain = { table = "silver_events", expire = true, compact = true, vacuum = "0s" }
"#
    });
    // Two ingests, so that each day's partition has two files to compact.
    let lines = week_of_events();
    let (a, b) = lines.split_at(lines.len() / 2);
    run_in_process(&config, a);
    run_in_process(&config, b);
    let count = |sql: &str| {
        let out = ok(&weir(&["query", sql, "--format", "csv"], &config));
        out.lines().nth(1).unwrap().to_owned()
    };
    assert_eq!(count("SELECT count(*) FROM silver_events"), "84");
    let out = ok(&weir(
        &["dag", "trigger", "housekeeping", "--date", "2026-01-07"],
        &config,
    ));
    assert!(out.contains("success"), "{out}");
    // Retention 3 days before Jan 7: Jan 1–3 (3 + 6 + 9 rows) expire.
    assert_eq!(count("SELECT count(*) FROM silver_events"), "66");
    assert_eq!(
        count("SELECT CAST(min(date) AS VARCHAR) FROM silver_events"),
        "2026-01-04"
    );
    let store = SqliteStore::open(&config.parent().unwrap().join("data/meta.sqlite")).unwrap();
    let run = store.runs(Some("housekeeping"), 1).unwrap().remove(0);
    let log = store.attempts(run.id).unwrap().remove(0).log;
    assert!(log.contains("18 rows deleted"), "{log}");
    assert!(log.contains("compacted `silver_events`"), "{log}");
    assert!(log.contains("vacuumed `silver_events`"), "{log}");
}
