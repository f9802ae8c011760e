//! The `postgres` source against the local PostgreSQL (`WEIR_TEST_PG_URL`): polling reads
//! each row once across restarts (rows sharing a cursor value split across batches
//! included); CDC keeps a silver copy equal to the source table through 10 000 inserts,
//! updates and deletes while `weir run` is killed with SIGKILL twice; an outage is retried
//! visibly and loses nothing; a slot of another plugin and missing tables are clear errors.
//!
//! CDC throughput is measured by `weir bench cdc` (BENCHMARKS.md).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::harness::*;
use common::pg::{pg, unique};
use common::proxy::Proxy;
use rand::{Rng, SeedableRng};
use weir_orchestrator::{Project, Weir};

/// Drops what a test created on the server (slots keep WAL) even when the test fails.
struct Cleanup {
    url: String,
    statements: Vec<String>,
}

impl Cleanup {
    fn new(url: &str) -> Self {
        Cleanup {
            url: url.to_owned(),
            statements: Vec::new(),
        }
    }

    fn slot(&mut self, slot: &str) {
        // A slot stays active for a moment after its weir was killed: wait for it.
        self.statements.push(format!(
            "DO $$ BEGIN FOR i IN 1..100 LOOP \
               IF NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}' AND active) THEN EXIT; END IF; \
               PERFORM pg_sleep(0.1); END LOOP; END $$; \
             SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ));
    }

    fn sql(&mut self, s: String) {
        self.statements.push(s);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let url = self.url.clone();
        let statements = std::mem::take(&mut self.statements);
        // A runtime of its own: Drop may run inside the test's runtime, where blocking on
        // another future is not allowed.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let c = pg(&url).await;
                for s in statements {
                    if let Err(e) = c.batch_execute(&s).await {
                        eprintln!("cleanup `{s}` failed: {e}");
                    }
                }
            });
        })
        .join();
    }
}

/// A project with one source and one table reading it.
fn project(dir: &Path, source: &str, table: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    let (name, sql, schema) = match table {
        "" => (None, String::new(), String::new()),
        t => {
            let (sql, schema) = t.split_once('|').unwrap();
            (Some("silver"), sql.to_owned(), schema.to_owned())
        }
    };
    let mut toml = format!(
        r#"[project]
name = "pgsource"
data_dir = "data"

[server]
listen = "127.0.0.1:0"
pg_listen = ""

[pipeline]
interval = "50ms"
max_batch_records = 3000

[sources.src]
type = "postgres"
{source}
"#
    );
    if let Some(n) = name {
        std::fs::write(dir.join("sql").join(format!("{n}.sql")), sql).unwrap();
        toml.push_str(&format!(
            "\n[tables.{n}]\nfrom = \"src\"\nsql = \"sql/{n}.sql\"\nschema = \"{schema}\"\n"
        ));
    }
    let path = dir.join("weir.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn start(config: &Path) -> Arc<Weir> {
    let weir = Weir::open(Project::load(config).unwrap()).unwrap();
    weir.start(Vec::new()).unwrap();
    weir
}

/// Waits until `cond` holds (checked every 100 ms), failing with `what` after `limit`.
async fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the slot exists.
async fn wait_for_slot(c: &tokio_postgres::Client, slot: &str) {
    let start = Instant::now();
    while !slot_exists(c, slot).await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no slot `{slot}`"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Records in the source's topic.
fn records_in(weir: &Weir) -> u64 {
    weir.status_json()["sources"]["src"]["records_in"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until the pipeline has read the whole log.
async fn drained(weir: &Weir) {
    wait_for(Duration::from_secs(120), "the pipeline to catch up", || {
        let st = weir.status_json();
        assert!(st["pipeline"]["error"].is_null(), "pipeline failed: {st}");
        st["lag"].as_u64() == Some(0)
    })
    .await;
}

const POLL_SILVER: &str = "SELECT id, name, amount, updated_at FROM src|id bigint, name string, amount double, updated_at timestamp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_reads_each_row_once_across_restarts() {
    let Some(url) = common::pg::pg_url("postgres source") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let table = unique("weir_poll");
    let c = pg(&url).await;
    let mut cleanup = Cleanup::new(&url);
    cleanup.sql(format!("DROP TABLE IF EXISTS {table}"));
    c.batch_execute(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, name text, amount numeric(10,2), updated_at timestamptz NOT NULL)"
    ))
    .await
    .unwrap();
    // Groups of 10 rows share an updated_at, and batches of 7 split every group.
    let insert = |from: i64, to: i64, base_s: i64| {
        format!(
            "INSERT INTO {table} SELECT i, 'n' || i || ' \"q\" é', i * 1.25, \
             timestamptz '2026-01-15 10:00:00+00' + make_interval(secs => {base_s} + i / 10) \
             FROM generate_series({from}, {to}) i"
        )
    };
    c.batch_execute(&insert(0, 49, 0)).await.unwrap();
    let config = project(
        tmp.path(),
        &format!(
            "url = \"{url}\"\ntable = \"public.{table}\"\ncursor = \"updated_at\"\nevery = \"100ms\"\nbatch_size = 7\npartitions = 2"
        ),
        POLL_SILVER,
    );

    let weir = start(&config);
    wait_for(Duration::from_secs(60), "50 polled rows", || {
        records_in(&weir) >= 50
    })
    .await;
    drained(&weir).await;
    // Nothing new: a few more polls add nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(records_in(&weir), 50);
    assert!(weir.status_json()["sources"]["src"]["health"]["connected"] == true);
    weir.stop();
    weir.join();
    drop(weir);

    let ids = |rows: Vec<Vec<String>>| -> BTreeMap<i64, usize> {
        let mut m = BTreeMap::new();
        for r in rows {
            *m.entry(r[0].parse::<i64>().unwrap()).or_default() += 1;
        }
        m
    };
    let got = ids(rows(&config, "SELECT id FROM silver").await);
    assert_eq!(got, (0..50).map(|i| (i, 1)).collect());
    let r = rows(
        &config,
        "SELECT name, amount, CAST(updated_at AS BIGINT) FROM silver WHERE id = 42",
    )
    .await;
    assert_eq!(
        r,
        vec![vec![
            "n42 \"q\" é".to_string(),
            "52.5".into(),
            // 2026-01-15T10:00:04Z in microseconds.
            "1768471204000000".into()
        ]]
    );

    // New rows, one sharing the last cursor value read (the 4 s group) with a larger key,
    // and an update that raises a row's cursor: read after a restart, and only those.
    c.batch_execute(&format!(
        "{}; INSERT INTO {table} VALUES (1000, 'tie', 1, timestamptz '2026-01-15 10:00:04+00'); \
         UPDATE {table} SET name = 'updated', updated_at = timestamptz '2026-01-15 11:00:00+00' WHERE id = 3",
        insert(50, 79, 100)
    ))
    .await
    .unwrap();
    let weir = start(&config);
    wait_for(Duration::from_secs(60), "the new rows", || {
        records_in(&weir) >= 50 + 32
    })
    .await;
    drained(&weir).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(records_in(&weir), 82);
    weir.stop();
    weir.join();
    drop(weir);
    let got = ids(rows(&config, "SELECT id FROM silver").await);
    let mut want: BTreeMap<i64, usize> = (0..80).map(|i| (i, 1)).collect();
    want.insert(1000, 1);
    want.insert(3, 2);
    assert_eq!(got, want);
    let r = rows(
        &config,
        "SELECT name FROM silver WHERE id = 3 ORDER BY updated_at",
    )
    .await;
    assert_eq!(
        r,
        vec![vec!["n3 \"q\" é".to_string()], vec!["updated".into()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_a_query_without_a_key_keeps_cursor_ties_together() {
    let Some(url) = common::pg::pg_url("postgres source") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let table = unique("weir_pollq");
    let c = pg(&url).await;
    let mut cleanup = Cleanup::new(&url);
    cleanup.sql(format!("DROP TABLE IF EXISTS {table}"));
    c.batch_execute(&format!(
        "CREATE TABLE {table} (seq int NOT NULL, name text); \
         INSERT INTO {table} SELECT i / 5, 'r' || i FROM generate_series(0, 39) i"
    ))
    .await
    .unwrap();
    let config = project(
        tmp.path(),
        &format!(
            "url = \"{url}\"\nquery = \"SELECT seq, name, length(name) AS len FROM {table};\"\ncursor = \"seq\"\nevery = \"100ms\"\nbatch_size = 3"
        ),
        "SELECT seq, name, len FROM src|seq bigint, name string, len bigint",
    );
    let weir = start(&config);
    wait_for(Duration::from_secs(60), "40 rows", || {
        records_in(&weir) >= 40
    })
    .await;
    drained(&weir).await;
    weir.stop();
    weir.join();
    drop(weir);
    c.batch_execute(&format!(
        "INSERT INTO {table} SELECT 8 + i / 5, 'r' || (40 + i) FROM generate_series(0, 9) i"
    ))
    .await
    .unwrap();
    let weir = start(&config);
    wait_for(Duration::from_secs(60), "50 rows", || {
        records_in(&weir) >= 50
    })
    .await;
    drained(&weir).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(records_in(&weir), 50);
    weir.stop();
    weir.join();
    drop(weir);
    let names: BTreeSet<String> = rows(&config, "SELECT name FROM silver")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names, (0..50).map(|i| format!("r{i}")).collect());
    assert_eq!(count(&config, "silver").await, 50);
}

/// `weir run` on `config`, its stderr kept in `log`; killed with SIGKILL when dropped.
struct Running(Child);

impl Running {
    fn spawn(config: &Path, log: &Path) -> Running {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        Running(
            Command::new(env!("CARGO_BIN_EXE_weir"))
                .args(["run", "-c"])
                .arg(config)
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .unwrap(),
        )
    }

    fn kill_9(mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CDC_SILVER: &str = "SELECT op, commit_lsn_num, seq, coalesce(\"after.id\", \"before.id\") AS id, \
    \"after.name\" AS name, \"after.balance\" AS balance, \"after.updated_at\" AS updated_at, \
    \"after.active\" AS active FROM src\
    |op string, commit_lsn_num bigint, seq bigint, after.id bigint, before.id bigint, \
    after.name string, after.balance double, after.updated_at timestamp, after.active boolean";

/// Latest image per id by (commit LSN, seq), deletes removed: the silver copy of the table.
const LATEST: &str = "SELECT id, name, CAST(balance AS VARCHAR), CAST(updated_at AS BIGINT), active FROM ( \
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY commit_lsn_num DESC, seq DESC) AS rn FROM silver) t \
    WHERE rn = 1 AND op <> 'delete' ORDER BY id";

/// The table as the same strings `LATEST` gives.
async fn table_rows(c: &tokio_postgres::Client, table: &str) -> Vec<Vec<String>> {
    c.query(
        &format!(
            "SELECT id, name, balance::float8, (extract(epoch FROM updated_at) * 1000000)::bigint, active \
             FROM {table} ORDER BY id"
        ),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let bal: Option<f64> = r.get(2);
        let ts: Option<i64> = r.get(3);
        let active: Option<bool> = r.get(4);
        let null = || "NULL".to_string();
        vec![
            r.get::<_, i32>(0).to_string(),
            r.get::<_, Option<String>>(1).unwrap_or_else(null),
            bal.map_or_else(null, |b| b.to_string()),
            ts.map_or_else(null, |t| t.to_string()),
            active.map_or_else(null, |a| a.to_string()),
        ]
    })
    .collect()
}

/// Silver's balance text (`12.5`) as PostgreSQL's float8 prints it in `table_rows`.
fn normalize(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    for r in &mut rows {
        if let Ok(b) = r[2].parse::<f64>() {
            r[2] = b.to_string();
        }
    }
    rows
}

async fn slot_exists(c: &tokio_postgres::Client, slot: &str) -> bool {
    c.query_opt(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .is_some()
}

/// The slot's confirmed LSN, as a number.
async fn confirmed(c: &tokio_postgres::Client, slot: &str) -> i64 {
    c.query_one(
        "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .get(0)
}

/// Applies `ops` random inserts, updates and deletes in transactions of 1-20 statements;
/// returns the number of row changes made (each statement changes exactly one row).
async fn write_changes(url: &str, table: &str, ops: u64, done: Arc<AtomicU64>) -> u64 {
    let c = pg(url).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut live: Vec<i32> = Vec::new();
    let mut next_id = 1;
    let mut changes = 0;
    while changes < ops {
        let n = rng.gen_range(1..=20).min(ops - changes);
        let mut sql = String::from("BEGIN;");
        for _ in 0..n {
            let roll: f64 = rng.r#gen();
            let name = format!("n{}'{}", rng.gen_range(0..1000), changes);
            let bal = format!("{}.{:02}", rng.gen_range(-500..5000), rng.gen_range(0..100));
            if live.is_empty() || roll < 0.45 {
                sql.push_str(&format!(
                    "INSERT INTO {table} VALUES ({next_id}, '{}', {bal}, clock_timestamp(), {});",
                    name.replace('\'', "''"),
                    rng.gen_bool(0.5)
                ));
                live.push(next_id);
                next_id += 1;
            } else if roll < 0.8 {
                let id = live[rng.gen_range(0..live.len())];
                sql.push_str(&format!(
                    "UPDATE {table} SET name = '{}', balance = {}, updated_at = clock_timestamp(), active = NOT active WHERE id = {id};",
                    name.replace('\'', "''"),
                    if rng.gen_bool(0.1) { "NULL".to_string() } else { bal }
                ));
            } else {
                let i = rng.gen_range(0..live.len());
                let id = live.swap_remove(i);
                sql.push_str(&format!("DELETE FROM {table} WHERE id = {id};"));
            }
            changes += 1;
        }
        sql.push_str("COMMIT;");
        c.batch_execute(&sql).await.unwrap();
        done.store(changes, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_silver_copy_equals_the_table_through_two_kill_9s() {
    let Some(url) = common::pg::pg_url("postgres source") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let table = unique("weir_cdc");
    let c = pg(&url).await;
    let mut cleanup = Cleanup::new(&url);
    cleanup.slot(&table);
    cleanup.sql(format!("DROP PUBLICATION IF EXISTS {table}"));
    cleanup.sql(format!("DROP TABLE IF EXISTS {table}"));
    c.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL, balance numeric(12,2), updated_at timestamptz, active boolean)"
    ))
    .await
    .unwrap();
    let config = project(
        tmp.path(),
        &format!(
            "url = \"{url}\"\nmode = \"cdc\"\ntables = [\"{table}\"]\nslot = \"{table}\"\npublication = \"{table}\"\nevery = \"100ms\"\nbatch_size = 500\npartitions = 3"
        ),
        CDC_SILVER,
    );
    let log = tmp.path().join("weir.log");

    let first = Running::spawn(&config, &log);
    wait_for_slot(&c, &table).await;
    let done = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let (url, table, done) = (url.clone(), table.clone(), done.clone());
        async move { write_changes(&url, &table, 10_000, done).await }
    });
    let mut phase = Instant::now();
    wait_for(Duration::from_secs(120), "3000 changes", || {
        done.load(Ordering::SeqCst) >= 3000 && phase.elapsed() > Duration::from_millis(1500)
    })
    .await;
    first.kill_9();
    let second = Running::spawn(&config, &log);
    phase = Instant::now();
    wait_for(Duration::from_secs(120), "6500 changes", || {
        done.load(Ordering::SeqCst) >= 6500 && phase.elapsed() > Duration::from_millis(1500)
    })
    .await;
    second.kill_9();
    let weir = start(&config);
    let changes = writer.await.unwrap();
    assert_eq!(changes, 10_000);
    c.batch_execute(&format!(
        "INSERT INTO {table} VALUES (0, 'last', 0, clock_timestamp(), true)"
    ))
    .await
    .unwrap();
    let end: i64 = c
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
        .await
        .unwrap()
        .get(0);
    // The slot moves past a change only once its record is durable.
    let start = Instant::now();
    while confirmed(&c, &table).await < end {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the source did not pass the last change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drained(&weir).await;
    let health = weir.status_json()["sources"]["src"]["health"].clone();
    weir.stop();
    weir.join();
    drop(weir);
    assert!(health["last_error"].is_null(), "{health}");

    let silver = normalize(rows(&config, LATEST).await);
    let source = table_rows(&c, &table).await;
    assert!(
        source.len() > 100,
        "the writer left only {} rows",
        source.len()
    );
    assert_eq!(silver.len(), source.len());
    for (s, t) in silver.iter().zip(&source) {
        assert_eq!(s, t);
    }
    // Every change once: as many records as changes, no position twice.
    let positions = rows(&config, "SELECT commit_lsn_num, seq FROM silver").await;
    let distinct: BTreeSet<&Vec<String>> = positions.iter().collect();
    assert_eq!(
        positions.len() as u64,
        changes + 1,
        "records vs changes made"
    );
    assert_eq!(
        distinct.len(),
        positions.len(),
        "a change was recorded twice"
    );
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdc_outage_is_retried_visibly_and_loses_nothing() {
    let Some(url) = common::pg::pg_url("postgres source") else {
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
    let table = unique("weir_cdcout");
    let c = pg(&url).await;
    let mut cleanup = Cleanup::new(&url);
    cleanup.slot(&table);
    cleanup.sql(format!("DROP PUBLICATION IF EXISTS {table}"));
    cleanup.sql(format!("DROP TABLE IF EXISTS {table}"));
    c.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, name text)"
    ))
    .await
    .unwrap();
    let config = project(
        tmp.path(),
        &format!(
            "url = \"{via}\"\nmode = \"cdc\"\ntables = [\"public.{table}\"]\nslot = \"{table}\"\npublication = \"{table}\"\nevery = \"100ms\"\nreplica_identity_full = true"
        ),
        "SELECT op, \"after.id\" AS id, \"before.name\" AS before_name, \"after.name\" AS after_name FROM src\
         |op string, after.id bigint, before.name string, after.name string",
    );
    let weir = start(&config);
    wait_for_slot(&c, &table).await;
    let insert = |from: i32| {
        format!(
            "INSERT INTO {table} SELECT i, 'n' || i FROM generate_series({from}, {}) i",
            from + 99
        )
    };
    c.batch_execute(&insert(0)).await.unwrap();
    wait_for(Duration::from_secs(60), "100 changes", || {
        records_in(&weir) >= 100
    })
    .await;

    proxy.down();
    c.batch_execute(&insert(100)).await.unwrap();
    c.batch_execute(&format!("UPDATE {table} SET name = 'x' WHERE id < 50"))
        .await
        .unwrap();
    wait_for(Duration::from_secs(60), "a visible error", || {
        let h = &weir.status_json()["sources"]["src"]["health"];
        h["errors"].as_u64().unwrap_or(0) > 0
            && h["connected"] == false
            && h["last_error"].is_string()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(records_in(&weir), 100);
    proxy.up();
    wait_for(Duration::from_secs(90), "250 changes", || {
        records_in(&weir) >= 250
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = weir.status_json();
    weir.stop();
    weir.join();
    drop(weir);
    assert_eq!(st["sources"]["src"]["records_in"], 250, "{st}");
    assert!(
        st["sources"]["src"]["health"]["last_error"].is_null(),
        "{st}"
    );
    assert!(st["sources"]["src"]["health"]["connected"] == true, "{st}");

    // The updates carry the whole old row (replica identity full).
    drained_after_restart(&config).await;
    let r = rows(
        &config,
        "SELECT before_name, after_name FROM silver WHERE op = 'update' AND id = 7",
    )
    .await;
    assert_eq!(r, vec![vec!["n7".to_string(), "x".into()]]);
}

/// Runs the project in-process until its pipeline has read the whole log.
async fn drained_after_restart(config: &Path) {
    let weir = start(config);
    drained(&weir).await;
    weir.stop();
    weir.join();
    drop(weir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_slots_and_missing_tables_are_clear_errors() {
    let Some(url) = common::pg::pg_url("postgres source") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (table, slot, missing) = (unique("weir_errs"), unique("weir_td"), unique("weir_nope"));
    let c = pg(&url).await;
    let mut cleanup = Cleanup::new(&url);
    cleanup.slot(&slot);
    cleanup.sql(format!("DROP PUBLICATION IF EXISTS {table}"));
    cleanup.sql(format!("DROP TABLE IF EXISTS {table}"));
    c.batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY)"))
        .await
        .unwrap();
    c.query(
        "SELECT pg_create_logical_replication_slot($1, 'test_decoding')",
        &[&slot],
    )
    .await
    .unwrap();
    let cases = [
        (
            format!(
                "mode = \"cdc\"\ntables = [\"{table}\"]\nslot = \"{slot}\"\npublication = \"{table}\""
            ),
            vec![
                "test_decoding".to_string(),
                "pgoutput".into(),
                "pg_drop_replication_slot".into(),
            ],
        ),
        (
            format!("mode = \"cdc\"\ntables = [\"public.{missing}\"]\nslot = \"{missing}\""),
            vec![format!("`public.{missing}` does not exist")],
        ),
        (
            format!("table = \"{missing}\"\ncursor = \"id\""),
            vec![format!("\"{missing}\" does not exist")],
        ),
        (
            format!("table = \"{table}\"\ncursor = \"nope\""),
            vec![
                "cursor column `nope` is not a column of table".to_string(),
                "(columns: id)".into(),
            ],
        ),
    ];
    for (i, (source, want)) in cases.iter().enumerate() {
        let dir = tmp.path().join(i.to_string());
        let config = project(&dir, &format!("url = \"{url}\"\n{source}"), "");
        let weir = start(&config);
        let mut err = String::new();
        wait_for(Duration::from_secs(30), "the source's error", || {
            err = weir.status_json()["sources"]["src"]["health"]["last_error"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            !err.is_empty()
        })
        .await;
        weir.stop();
        weir.join();
        drop(weir);
        for w in want {
            assert!(err.contains(w), "case {i}: `{err}` lacks `{w}`");
        }
    }
    // The missing table's slot was never created.
    assert!(!slot_exists(&c, &missing).await);
}
