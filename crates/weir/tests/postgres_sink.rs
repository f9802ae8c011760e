//! The `postgres` sink against the local PostgreSQL (`WEIR_TEST_PG_URL`): exactly once under
//! `kill -9` for append and upsert, the target table created and evolved, an upsert target
//! without a unique key refused with a clear error, and an outage retried with the error
//! visible in status and no row lost once the server is back.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::harness::*;
use common::pg::{pg, unique};
use common::proxy::Proxy;
use weir_orchestrator::{Project, Weir};

/// The shop project plus a source of account updates and two postgres sinks.
fn project(dir: &Path, url: &str, events: &str, accounts: &str) -> PathBuf {
    let sql = dir.join("sql");
    std::fs::create_dir_all(&sql).unwrap();
    std::fs::write(
        sql.join("silver_accounts.sql"),
        "SELECT id, balance, seq FROM accounts",
    )
    .unwrap();
    shop_project(dir, |t| {
        small_batches(t)
            .replace("max_batch_records = 7000", "max_batch_records = 1000")
            .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
            .replace(
                "pg_listen = \"127.0.0.1:5433\"",
                "pg_listen = \"127.0.0.1:0\"",
            )
            + &format!(
                r#"
[sources.accounts]
type = "http"

[tables.silver_accounts]
from = "accounts"
sql = "sql/silver_accounts.sql"
schema = "id bigint, balance double, seq bigint"

[sinks.events_pg]
type = "postgres"
from = "silver_events"
url = "{url}"
table = "{events}"

[sinks.accounts_pg]
type = "postgres"
from = "silver_accounts"
url = "{url}"
table = "{accounts}"
mode = "upsert"
key = ["id"]
"#
            )
    })
}

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

fn ingest(config: &Path, source: &str, input: &Path) {
    let st = weir()
        .args(["ingest", "-c"])
        .arg(config)
        .arg(source)
        .arg(input)
        .status()
        .unwrap();
    assert!(st.success(), "weir ingest failed");
}

/// Rows in `table`, 0 while it does not exist.
async fn count(c: &tokio_postgres::Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0)
}

/// `weir run --exit-when-idle`, killed with SIGKILL once PostgreSQL table `kill.1` holds
/// `kill.2` rows; true if it finished first.
async fn run(config: &Path, kill: Option<(&tokio_postgres::Client, &str, i64)>) -> bool {
    // stderr to a file: a pipe read only at exit could fill and block weir.
    let log_path = config.with_file_name("run.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--exit-when-idle", "-c"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let err = std::fs::read_to_string(&log_path).unwrap_or_default();
            assert!(status.success(), "weir run exited with {status}: {err}");
            return true;
        }
        if let Some((c, table, rows)) = kill
            && count(c, table).await >= rows
        {
            child.kill().unwrap();
            child.wait().unwrap();
            return false;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "weir run hung");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_leaves_each_row_once_and_upserts_the_latest_values() {
    let Some(url) = common::pg::pg_url("postgres sink") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (events, accounts) = (unique("weir_ev"), unique("weir_acct"));
    let config = project(tmp.path(), &url, &events, &accounts);

    let lines = generate(40_000, 7);
    let input = tmp.path().join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    ingest(&config, "events", &input);
    // 200 accounts, 30 updates each, interleaved; the last update of each carries seq 29.
    let mut updates = Vec::new();
    for seq in 0..30 {
        for id in 0..200 {
            updates.push(format!(
                r#"{{"id": {id}, "balance": {}.5, "seq": {seq}}}"#,
                id * 1000 + seq
            ));
        }
    }
    let acct_input = tmp.path().join("accounts.jsonl");
    std::fs::write(&acct_input, updates.join("\n") + "\n").unwrap();
    ingest(&config, "accounts", &acct_input);

    // Each run is killed once the events table has grown by a few batches past the last.
    let c = pg(&url).await;
    let mut kills = 0;
    for i in 1..=6 {
        if !run(&config, Some((&c, &events, i * 5_000))).await {
            kills += 1;
        }
    }
    assert!(run(&config, None).await);
    eprintln!("{kills} kills");
    assert!(kills >= 3, "only {kills} runs were killed");

    let silver: Vec<String> = rows(
        &config,
        "SELECT event_id FROM silver_events ORDER BY event_id",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    let in_pg: Vec<String> = c
        .query(
            &format!("SELECT event_id FROM {events} ORDER BY event_id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(in_pg.len(), silver.len(), "rows in PostgreSQL vs silver");
    assert_eq!(in_pg, silver, "PostgreSQL's rows differ from silver's");

    let acct: BTreeMap<i64, (f64, i64)> = c
        .query(&format!("SELECT id, balance, seq FROM {accounts}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    assert_eq!(acct.len(), 200, "each account once");
    for (id, (balance, seq)) in &acct {
        assert_eq!(*seq, 29, "account {id} is not at its last update");
        assert_eq!(*balance, (id * 1000 + 29) as f64 + 0.5, "account {id}");
    }
    let offsets: i64 = c
        .query_one(
            "SELECT batch_id FROM weir_sink_offsets WHERE sink = $1",
            &[&format!(
                "accounts_pg@{}",
                std::fs::read_to_string(tmp.path().join("data/instance"))
                    .unwrap()
                    .trim()
            )],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(-1);
    assert!(offsets >= 0, "weir_sink_offsets has no row for the sink");
    c.batch_execute(&format!("DROP TABLE {events}; DROP TABLE {accounts}"))
        .await
        .unwrap();
}

/// A minimal project: one http source `items` → `silver_items` → a postgres sink.
fn items_project(dir: &Path, url: &str, table: &str, mode: &str, schema: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    let cols: Vec<&str> = schema
        .split(',')
        .map(|c| c.split_whitespace().next().unwrap())
        .collect();
    std::fs::write(
        dir.join("sql/silver_items.sql"),
        format!("SELECT {} FROM items", cols.join(", ")),
    )
    .unwrap();
    let path = dir.join("weir.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[pipeline]
interval = "20ms"

[sources.items]
type = "http"

[tables.silver_items]
from = "items"
sql = "sql/silver_items.sql"
schema = "{schema}"

[sinks.items_pg]
type = "postgres"
from = "silver_items"
url = "{url}"
table = "{table}"
{mode}
"#
        ),
    )
    .unwrap();
    path
}

fn send(weir: &Weir, source: &str, lines: &[String]) {
    let body = lines.join("\n") + "\n";
    weir.ingest(source, body.as_bytes()).unwrap();
}

/// Waits until the pipeline is caught up (it is only after every sink has the batch).
fn drain(weir: &Weir) {
    wait_caught_up(weir, Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_the_table_and_adds_new_columns_instead_of_failing() {
    let Some(url) = common::pg::pg_url("postgres sink") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let table = unique("weir_items");
    let dir1 = tmp.path().join("v1");
    let config = items_project(
        &dir1,
        &url,
        &table,
        "mode = \"upsert\"\nkey = [\"id\"]",
        "id bigint, name string, ts timestamp",
    );
    let weir = Weir::open(Project::load(&config).unwrap()).unwrap();
    weir.start(Vec::new()).unwrap();
    send(
        &weir,
        "items",
        &[
            r#"{"id": 1, "name": "tab\there", "ts": "2026-01-15T10:00:00Z"}"#.into(),
            r#"{"id": 2, "name": "back\\slash\nnewline", "ts": "2026-01-15T10:00:01.5Z"}"#.into(),
            r#"{"id": 3, "name": null, "ts": null}"#.into(),
        ],
    );
    drain(&weir);
    weir.stop();
    weir.join();

    let c = pg(&url).await;
    let types: BTreeMap<String, String> = c
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = $1",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(types["id"], "bigint");
    assert_eq!(types["name"], "text");
    assert_eq!(types["ts"], "timestamp with time zone");
    let got: Vec<(i64, Option<String>, Option<String>)> = c
        .query(
            &format!("SELECT id, name, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM {table} ORDER BY id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                Some("tab\there".into()),
                Some("2026-01-15 10:00:00.000".into())
            ),
            (
                2,
                Some("back\\slash\nnewline".into()),
                Some("2026-01-15 10:00:01.500".into())
            ),
            (3, None, None),
        ]
    );

    // The same sink, now with a `price` column: added to the table, old rows keep NULL.
    let dir2 = tmp.path().join("v2");
    let config = items_project(
        &dir2,
        &url,
        &table,
        "mode = \"upsert\"\nkey = [\"id\"]",
        "id bigint, name string, ts timestamp, price double",
    );
    // A new project directory starts its batch ids at 0 again: a new sink name keeps the
    // first project's delivered ids from skipping them.
    let toml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("items_pg", "items_pg_v2");
    std::fs::write(&config, toml).unwrap();
    let weir = Weir::open(Project::load(&config).unwrap()).unwrap();
    weir.start(Vec::new()).unwrap();
    send(
        &weir,
        "items",
        &[r#"{"id": 2, "name": "two", "ts": "2026-01-15T11:00:00Z", "price": 9.5}"#.into()],
    );
    drain(&weir);
    weir.stop();
    weir.join();
    let got: Vec<(i64, Option<String>, Option<f64>)> = c
        .query(
            &format!("SELECT id, name, price FROM {table} ORDER BY id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Some("tab\there".into()), None),
            (2, Some("two".into()), Some(9.5)),
            (3, None, None),
        ]
    );
    c.batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_target_without_a_unique_key_is_a_clear_error() {
    let Some(url) = common::pg::pg_url("postgres sink") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let table = unique("weir_nokey");
    let c = pg(&url).await;
    c.batch_execute(&format!("CREATE TABLE {table} (id bigint, name text)"))
        .await
        .unwrap();
    let config = items_project(
        tmp.path(),
        &url,
        &table,
        "mode = \"upsert\"\nkey = [\"id\"]",
        "id bigint, name string",
    );
    let weir = Weir::open(Project::load(&config).unwrap()).unwrap();
    weir.start(Vec::new()).unwrap();
    send(&weir, "items", &[r#"{"id": 1, "name": "a"}"#.into()]);
    let start = Instant::now();
    let err = loop {
        let st = weir.status_json();
        if let Some(e) = st["pipeline"]["error"].as_str() {
            break e.to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no error: {st}");
        std::thread::sleep(Duration::from_millis(50));
    };
    weir.stop();
    weir.join();
    assert!(
        err.contains("unique index on (id)") && err.contains(&table),
        "unclear error: {err}"
    );
    c.batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_retried_visibly_and_loses_nothing() {
    let Some(url) = common::pg::pg_url("postgres sink") else {
        return;
    };
    let target: std::net::SocketAddr = {
        let u = url::Url::parse(&url).unwrap();
        format!(
            "{}:{}",
            u.host_str().unwrap().replace("localhost", "127.0.0.1"),
            u.port().unwrap_or(5432)
        )
        .parse()
        .unwrap()
    };
    let proxy = Proxy::start(target);
    let mut via = url::Url::parse(&url).unwrap();
    via.set_port(Some(proxy.addr.port())).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let table = unique("weir_outage");
    let config = items_project(
        tmp.path(),
        via.as_str(),
        &table,
        "",
        "id bigint, name string",
    );
    let weir = Weir::open(Project::load(&config).unwrap()).unwrap();
    weir.start(Vec::new()).unwrap();
    let batch = |from: i64| -> Vec<String> {
        (from..from + 100)
            .map(|i| format!(r#"{{"id": {i}, "name": "n{i}"}}"#))
            .collect()
    };
    send(&weir, "items", &batch(0));
    drain(&weir);

    proxy.down();
    send(&weir, "items", &batch(100));
    let start = Instant::now();
    let status = loop {
        let st = weir.status_json();
        let s = &st["sinks"]["items_pg"];
        if s["errors"].as_u64().unwrap_or(0) > 0 && s["retrying"] == true {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no visible error: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status["sinks"]["items_pg"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("items_pg")),
        "{status}"
    );
    assert!(status["lag"].as_u64().unwrap() > 0, "{status}");
    std::thread::sleep(Duration::from_secs(2));
    send(&weir, "items", &batch(200));
    proxy.up();
    drain(&weir);
    let st = weir.status_json();
    assert!(st["sinks"]["items_pg"]["last_error"].is_null(), "{st}");
    weir.stop();
    weir.join();

    let c = pg(&url).await;
    let (n, distinct): (i64, i64) = c
        .query_one(
            &format!("SELECT count(*), count(DISTINCT id) FROM {table}"),
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((n, distinct), (300, 300));
    c.batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}
