//! The `rest` source against a real HTTP server started by each test on loopback: a
//! randomuser-shaped users API with pages, an auth check and injected failures (503 with
//! Retry-After, 500 twice, a response slower than the timeout).
//!
//! The end-to-end test runs a whole weir project in-process (source → log → silver table
//! flattening the nested JSON with SQL → Delta) and checks every user arrives exactly once,
//! the retries show in `/v1/status`, and the auth header was sent. The others drive the source
//! directly against a temporary log: each pagination kind, restart without re-polling, resuming
//! an interrupted poll, dead letters, and the health messages of broken responses.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::harness::*;
use serde_json::{Value, json};
use weir_connectors::dlq::DLQ_TOPIC;
use weir_connectors::rest::RestConfig;
use weir_connectors::source::{PullSource, SourceContext, SourceHealth};
use weir_log::{Log, LogConfig};

// ---------------------------------------------------------------------------------------
// A small HTTP/1.1 server: one request per connection (`Connection: close`), answers from a
// handler, logs every request.

#[derive(Debug, Clone)]
struct Req {
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    at: Instant,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Wait this long before answering (to trip the client's timeout).
    delay: Duration,
}

impl Reply {
    fn json(v: &Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(v).unwrap(),
            delay: Duration::ZERO,
        }
    }
    fn status(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
        }
    }
}

type Handler = dyn Fn(&Req, &[Req]) -> Reply + Send + Sync;

struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<(Req, u16)>>>,
}

impl Server {
    /// `handler` gets the request and every earlier request (to inject failures by count).
    fn start(handler: impl Fn(&Req, &[Req]) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<(Req, u16)>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let l = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (l, h) = (l.clone(), handler.clone());
                std::thread::spawn(move || serve_one(conn, &l, &*h));
            }
        });
        Server { addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<(Req, u16)> {
        self.log.lock().unwrap().clone()
    }

    fn count(&self, f: impl Fn(&Req) -> bool) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| f(r))
            .count()
    }
}

fn serve_one(conn: TcpStream, log: &Mutex<Vec<(Req, u16)>>, handler: &Handler) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let url = url::Url::parse(&format!("http://x{target}")).unwrap();
    let req = Req {
        path: url.path().to_owned(),
        query: url.query_pairs().into_owned().collect(),
        headers,
        at: Instant::now(),
    };
    let reply = {
        let mut l = log.lock().unwrap();
        let earlier: Vec<Req> = l.iter().map(|(r, _)| r.clone()).collect();
        let reply = handler(&req, &earlier);
        l.push((req, reply.status));
        reply
    };
    std::thread::sleep(reply.delay);
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut conn = conn;
    let _ = conn.write_all(out.as_bytes());
    let _ = conn.write_all(&reply.body);
    let _ = conn.flush();
}

/// A randomuser.me-shaped user; `i` makes it unique.
fn user(i: usize) -> Value {
    let first = ["Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus"][i % 7];
    let country = ["FR", "DE", "BR"][i % 3];
    json!({
        "gender": if i.is_multiple_of(2) { "female" } else { "male" },
        "name": {"title": "Mx", "first": format!("{first}{i}"), "last": format!("Lee{i}")},
        "email": format!("user{i}@example.com"),
        "login": {"uuid": format!("00000000-0000-4000-8000-{i:012}"), "username": format!("user{i}")},
        "dob": {"date": format!("19{:02}-03-0{}T10:00:00.000Z", 50 + i % 50, 1 + i % 9), "age": 20 + i % 60},
        "registered": {"date": format!("2015-01-{:02}T08:00:00.000Z", 1 + i % 28), "age": 11},
        "location": {"city": format!("City{}", i % 5), "country": country,
                     "street": {"number": i, "name": "Main"}},
    })
}

/// Rows of `sql` over the lake's streaming tables, or none while a table it reads has no
/// commit yet. (Reads `<project>/data/lake` directly: loading weir.toml here would need the
/// token variable in the test's own environment.)
async fn try_rows(config: &std::path::Path, sql: &str) -> Vec<Vec<String>> {
    let dir = config.parent().unwrap().join("data").join("lake");
    if !dir.is_dir() {
        return Vec::new();
    }
    let Ok(lake) = weir_lake::Lake::try_new(dir) else {
        return Vec::new();
    };
    let Ok((s, _)) = weir_sql::query::QuerySession::try_new(lake, &[]).await else {
        return Vec::new();
    };
    let Ok(batches) = s.run(sql).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, r).unwrap())
                    .collect(),
            );
        }
    }
    out
}

fn query_num(r: &Req, k: &str) -> Option<usize> {
    r.query.get(k).and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------
// Driving a source directly against a temporary log.

struct Running {
    stop: Arc<AtomicBool>,
    health: Arc<SourceHealth>,
    /// Records appended so far.
    produced: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<weir_connectors::Result<()>>,
}

fn start_source(dir: &std::path::Path, cfg: Value) -> Running {
    let cfg: RestConfig = serde_json::from_value(cfg).unwrap();
    cfg.validate("users").unwrap();
    let mut src = cfg.build("users").unwrap();
    let log = Log::open(LogConfig::new(dir.join("log"))).unwrap();
    let ctx = SourceContext {
        name: "users".into(),
        topic: log.create_topic("users", cfg.partitions).unwrap(),
        dlq: log.create_topic(DLQ_TOPIC, 1).unwrap(),
        stop: Arc::new(AtomicBool::new(false)),
        produced: Arc::new(AtomicU64::new(0)),
        state_dir: dir.join("state"),
        health: Arc::default(),
        validator: None,
    };
    let (stop, health, produced) = (ctx.stop.clone(), ctx.health.clone(), ctx.produced.clone());
    let thread = std::thread::spawn(move || src.run(&ctx));
    Running {
        stop,
        health,
        produced,
        thread,
    }
}

impl Running {
    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let t0 = Instant::now();
        self.thread.join().unwrap().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "stop took {:?}",
            t0.elapsed()
        );
    }
}

/// Every record of a topic, in partition then offset order.
fn topic_records(dir: &std::path::Path, topic: &str) -> Vec<(Option<String>, Value)> {
    let log = Log::open(LogConfig::new(dir.join("log"))).unwrap();
    let Some(t) = log.topic(topic) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in t.partitions() {
        for r in p.read(0, usize::MAX, usize::MAX).unwrap() {
            out.push((
                r.key.map(|k| String::from_utf8(k).unwrap()),
                serde_json::from_slice(&r.value).unwrap(),
            ));
        }
    }
    out
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn uuids(records: &[(Option<String>, Value)]) -> Vec<String> {
    records
        .iter()
        .map(|(_, v)| v["login"]["uuid"].as_str().unwrap().to_owned())
        .collect()
}

fn expected_uuids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| user(i)["login"]["uuid"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------

const TOKEN_VAR: &str = "WEIR_TEST_REST_TOKEN";
const TOKEN: &str = "t0ken-for-weir-rest-tests";

fn authorized(r: &Req) -> bool {
    r.headers.get("authorization").map(String::as_str) == Some(&format!("Bearer {TOKEN}"))
        && r.query.get("api_key").map(String::as_str) == Some(TOKEN)
}

/// `weir run` of `config` with the token in its environment; the address of its HTTP API,
/// and its stderr lines (collected as they come, so the pipe never fills).
fn weir_run(
    config: &std::path::Path,
) -> (std::process::Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--listen", "127.0.0.1:0", "--pg-listen", "", "-c"])
        .arg(config)
        .env(TOKEN_VAR, TOKEN)
        .env("WEIR_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let api = line.trim().strip_prefix("API").map(str::trim_start);
            if let Some(a) = api.and_then(|a| a.strip_prefix("http://")) {
                let _ = tx.send(
                    a.trim_end_matches("/v1/status")
                        .parse::<SocketAddr>()
                        .unwrap(),
                );
            }
            l.lock().unwrap().push(line);
        }
    });
    let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!("weir run did not start: {:?}", lines.lock().unwrap());
    };
    (child, addr, lines)
}

fn silver_count(config: &std::path::Path) -> Option<(i64, i64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(try_rows(
        config,
        "SELECT count(*), count(DISTINCT uuid) FROM silver_users",
    ));
    r.first()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
}

#[test]
fn users_api_to_silver_exactly_once_through_failures_and_a_kill() {
    let users: Arc<Mutex<usize>> = Arc::new(Mutex::new(45));
    let n = users.clone();
    let server = Server::start(move |r, earlier| {
        if !authorized(r) {
            return Reply::status(401, r#"{"error":"missing or wrong token"}"#);
        }
        let page = query_num(r, "page").unwrap_or(1);
        let size = query_num(r, "results").unwrap_or(10);
        let same_page = earlier
            .iter()
            .filter(|e| query_num(e, "page") == Some(page))
            .count();
        // Failures of the first poll: page 2 asks to wait, page 3 fails twice, page 4 is slow.
        match (page, same_page) {
            (2, 0) => {
                let mut r = Reply::status(503, "maintenance");
                r.headers.push(("Retry-After".into(), "1".into()));
                return r;
            }
            (3, 0 | 1) => return Reply::status(500, "<html>internal error</html>"),
            (4, 0) => {
                return Reply {
                    delay: Duration::from_millis(1500),
                    ..Reply::json(&json!({"results": []}))
                };
            }
            _ => {}
        }
        let total = *n.lock().unwrap();
        let from = ((page - 1) * size).min(total);
        let to = (page * size).min(total);
        Reply::json(&json!({
            "results": (from..to).map(user).collect::<Vec<_>>(),
            "info": {"seed": "weir", "results": to - from, "page": page, "version": "1.4"},
        }))
    });
    // The check is real: without the token the server refuses.
    match ureq::get(&server.url("/api/?page=1")).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("expected 401 without the token, got {other:?}"),
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(
        dir.path().join("sql/silver_users.sql"),
        r#"-- Nested JSON flattened: dotted schema fields, renamed here.
SELECT
  "login.uuid" AS uuid,
  "name.first" AS first_name,
  "name.last" AS last_name,
  email,
  gender,
  "dob.date" AS birth_date,
  "dob.age" AS age,
  "location.city" AS city,
  "location.country" AS country,
  "registered.date" AS registered_at
FROM users
"#,
    )
    .unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"[project]
name = "users"
data_dir = "data"

[pipeline]
interval = "50ms"

[sources.users]
type = "rest"
url = "{url}"
every = "1s"
records = "$.results"
headers = {{ Authorization = "Bearer ${{{TOKEN_VAR}}}" }}
timeout = "500ms"
retries = 4
partitions = 2
key = "login.uuid"
pagination = {{ type = "page", param = "page", start = 1, size_param = "results", size = 10 }}

[tables.silver_users]
from = "users"
sql = "sql/silver_users.sql"
schema = "login.uuid string, name.first string, name.last string, email string, gender string, dob.date timestamp, dob.age bigint, location.city string, location.country string, registered.date timestamp"
event_time = "registered.date"
# Every poll re-reads the whole users list: the key makes each user land once. Keys are
# aged by registration time, so the horizon must span all of them.
dedup = {{ key = "login.uuid", within = "36500d" }}
"#,
            url = server.url(&format!("/api/?seed=weir&api_key=${{{TOKEN_VAR}}}"))
        ),
    )
    .unwrap();
    // weir.toml's `${NAME}`s are substituted when it is loaded: validate needs the token too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "-c"])
        .arg(&config)
        .env(TOKEN_VAR, TOKEN)
        .output()
        .unwrap();
    ok(&out);

    // Run 1: the first poll goes through every injected failure.
    let (mut child, addr, log1) = weir_run(&config);
    wait_for(
        "the first poll and its 45 users in silver",
        Duration::from_secs(30),
        || {
            server.count(|r| query_num(r, "page") == Some(5)) >= 1
                && silver_count(&config) == Some((45, 45))
        },
    );
    let status: Value = ureq::get(&format!("http://{addr}/v1/status"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let health = &status["sources"]["users"]["health"];
    assert_eq!(status["sources"]["users"]["kind"], "rest", "{status}");
    assert!(
        health["errors"].as_u64().unwrap() >= 4,
        "503, 500 twice, a timeout: {health}"
    );
    assert_eq!(health["connected"], true, "{health}");
    // SIGKILL, whatever it was doing.
    child.kill().unwrap();
    child.wait().unwrap();

    // New users appear; run 2 polls them along with the 45 already in silver.
    *users.lock().unwrap() = 57;
    let polls_with_57 = || {
        server
            .requests()
            .iter()
            .filter(|(r, st)| *st == 200 && query_num(r, "page") == Some(6))
            .count()
    };
    let (child, _, log2) = weir_run(&config);
    wait_for(
        "57 users in silver after two polls",
        Duration::from_secs(30),
        || polls_with_57() >= 2 && silver_count(&config).is_some_and(|(n, _)| n >= 57),
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut child = child;
    assert!(child.wait().unwrap().success());

    // Exactly once: 57 rows, 57 distinct users, the ones the API served, nested fields
    // flattened.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(try_rows(
        &config,
        "SELECT uuid, first_name, last_name, email, age, city, country, \
         to_char(birth_date, '%Y-%m-%d') FROM silver_users ORDER BY uuid",
    ));
    assert_eq!(got.len(), 57, "{got:?}");
    for (i, r) in got.iter().enumerate() {
        let u = user(i);
        assert_eq!(r[0], u["login"]["uuid"].as_str().unwrap());
        assert_eq!(r[1], u["name"]["first"].as_str().unwrap());
        assert_eq!(r[2], u["name"]["last"].as_str().unwrap());
        assert_eq!(r[3], u["email"].as_str().unwrap());
        assert_eq!(r[4], u["dob"]["age"].to_string());
        assert_eq!(r[5], u["location"]["city"].as_str().unwrap());
        assert_eq!(r[6], u["location"]["country"].as_str().unwrap());
        assert_eq!(r[7], u["dob"]["date"].as_str().unwrap()[..10]);
    }
    // Bronze kept every poll's copy: the dedup did the work.
    let bronze: i64 = rt.block_on(try_rows(&config, "SELECT count(*) FROM bronze_users"))[0][0]
        .parse()
        .unwrap();
    assert!(bronze >= 45 + 57, "bronze has {bronze} records");

    let reqs = server.requests();
    let statuses: Vec<u16> = reqs.iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 2);
    // Every request of weir carried the token from the environment, in the header and the
    // URL: the one 401 is the test's own request without it.
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        1,
        "a request lacked the token"
    );
    // Retry-After: 1 was honoured.
    let p2: Vec<Instant> = reqs
        .iter()
        .filter(|(r, _)| query_num(r, "page") == Some(2))
        .map(|(r, _)| r.at)
        .collect();
    assert!(
        p2[1] - p2[0] >= Duration::from_millis(950),
        "retried after {:?}",
        p2[1] - p2[0]
    );
    // The slow page 4 was asked again after the timeout.
    assert!(
        reqs.iter()
            .filter(|(r, _)| query_num(r, "page") == Some(4))
            .count()
            >= 2
    );
    // The retries were logged with the URL, the token masked.
    let logs = log1.lock().unwrap().join("\n") + &log2.lock().unwrap().join("\n");
    assert!(
        logs.contains("HTTP 503 Service Unavailable: maintenance"),
        "{logs}"
    );
    assert!(logs.contains("api_key=********"), "{logs}");
    assert!(!logs.contains(TOKEN), "the token leaked into the logs");
}

/// 45 users behind every pagination kind; each test reads them all, once, in order.
const N: usize = 45;

fn all_users_once(dir: &std::path::Path) {
    let recs = topic_records(dir, "users");
    assert_eq!(uuids(&recs), expected_uuids(N));
    // Nesting is kept as the API sent it.
    assert_eq!(recs[3].1, user(3));
}

#[test]
fn page_pagination_stops_at_a_short_page() {
    let server = Server::start(|r, _| {
        let (page, size) = (
            query_num(r, "page").unwrap(),
            query_num(r, "per_page").unwrap(),
        );
        let (from, to) = (((page - 1) * size).min(N), (page * size).min(N));
        Reply::json(
            &json!({"results": (from..to).map(user).collect::<Vec<_>>(), "info": {"page": page}}),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let src = start_source(
        dir.path(),
        json!({"url": server.url("/api"), "every": "1h", "records": "$.results", "key": "login.uuid",
               "pagination": {"type": "page", "param": "page", "start": 1, "size_param": "per_page", "size": 10}}),
    );
    wait_for("5 pages", Duration::from_secs(10), || {
        server.requests().len() >= 5
    });
    std::thread::sleep(Duration::from_millis(300));
    src.stop();
    let pages: Vec<usize> = server
        .requests()
        .iter()
        .map(|(r, _)| query_num(r, "page").unwrap())
        .collect();
    assert_eq!(
        pages,
        vec![1, 2, 3, 4, 5],
        "45 users in pages of 10: the 5th is short"
    );
    let recs = topic_records(dir.path(), "users");
    assert_eq!(
        recs.iter().filter(|(k, _)| k.is_none()).count(),
        0,
        "every record is keyed"
    );
    assert_eq!(recs[0].0.as_deref(), recs[0].1["login"]["uuid"].as_str());
    let mut sorted = uuids(&recs);
    sorted.sort();
    assert_eq!(sorted, expected_uuids(N));
}

#[test]
fn page_pagination_without_size_stops_at_an_empty_page_or_max_pages() {
    let server = Server::start(|r, _| {
        let page = query_num(r, "p").unwrap();
        let (from, to) = (((page - 1) * 20).min(N), (page * 20).min(N));
        Reply::json(&json!((from..to).map(user).collect::<Vec<_>>()))
    });
    let dir = tempfile::tempdir().unwrap();
    let src = start_source(
        dir.path(),
        json!({"url": server.url("/top-level-array"), "every": "1h",
               "pagination": {"type": "page", "param": "p"}}),
    );
    wait_for("4 pages", Duration::from_secs(10), || {
        server.requests().len() >= 4
    });
    std::thread::sleep(Duration::from_millis(300));
    src.stop();
    assert_eq!(
        server.requests().len(),
        4,
        "pages of 20, 20, 5, then an empty one"
    );
    all_users_once(dir.path());

    let dir = tempfile::tempdir().unwrap();
    let before = server.requests().len();
    let src = start_source(
        dir.path(),
        json!({"url": server.url("/top-level-array"), "every": "1h",
               "pagination": {"type": "page", "param": "p", "max_pages": 2}}),
    );
    wait_for("2 pages", Duration::from_secs(10), || {
        server.requests().len() >= before + 2
    });
    std::thread::sleep(Duration::from_millis(300));
    src.stop();
    assert_eq!(server.requests().len(), before + 2);
    assert_eq!(topic_records(dir.path(), "users").len(), 40);
}

#[test]
fn offset_pagination_reads_nested_records() {
    let server = Server::start(|r, _| {
        let (off, lim) = (query_num(r, "skip").unwrap(), query_num(r, "take").unwrap());
        let items: Vec<Value> = (off.min(N)..(off + lim).min(N)).map(user).collect();
        Reply::json(&json!({"data": {"items": items, "total": N}}))
    });
    let dir = tempfile::tempdir().unwrap();
    let src = start_source(
        dir.path(),
        json!({"url": server.url("/v2/users?active=true"), "every": "1h", "records": "$.data.items",
               "pagination": {"type": "offset", "param": "skip", "limit_param": "take", "limit": 15}}),
    );
    // 0, 15, 30 are full; 45 is empty.
    wait_for("4 pages", Duration::from_secs(10), || {
        server.requests().len() >= 4
    });
    std::thread::sleep(Duration::from_millis(300));
    src.stop();
    let reqs = server.requests();
    let offsets: Vec<usize> = reqs
        .iter()
        .map(|(r, _)| query_num(r, "skip").unwrap())
        .collect();
    assert_eq!(offsets, vec![0, 15, 30, 45]);
    assert!(
        reqs.iter()
            .all(|(r, _)| r.query.get("active").map(String::as_str) == Some("true"))
    );
    all_users_once(dir.path());
}

#[test]
fn cursor_pagination_follows_the_next_cursor() {
    let server = Server::start(|r, _| {
        let from: usize = r
            .query
            .get("after")
            .map(|c| c.trim_start_matches("cur-").parse().unwrap())
            .unwrap_or(0);
        let to = (from + 7).min(N);
        let next = if to < N {
            json!(format!("cur-{to}"))
        } else {
            Value::Null
        };
        Reply::json(&json!({"results": (from..to).map(user).collect::<Vec<_>>(),
                            "info": {"next_cursor": next}}))
    });
    let dir = tempfile::tempdir().unwrap();
    let src = start_source(
        dir.path(),
        json!({"url": server.url("/feed"), "every": "1h", "records": "$.results",
               "pagination": {"type": "cursor", "param": "after", "next": "$.info.next_cursor"}}),
    );
    wait_for("7 pages", Duration::from_secs(10), || {
        server.requests().len() >= 7
    });
    std::thread::sleep(Duration::from_millis(300));
    src.stop();
    let cursors: Vec<Option<String>> = server
        .requests()
        .iter()
        .map(|(r, _)| r.query.get("after").cloned())
        .collect();
    assert_eq!(cursors.len(), 7, "{cursors:?}");
    assert_eq!(cursors[0], None);
    assert_eq!(cursors[6].as_deref(), Some("cur-42"));
    all_users_once(dir.path());
}

#[test]
fn link_pagination_follows_rel_next_relative_and_absolute() {
    let base: Arc<Mutex<String>> = Arc::default();
    let b = base.clone();
    let server = Server::start(move |r, _| {
        let page = query_num(r, "p").unwrap_or(0);
        let to = ((page + 1) * 10).min(N);
        let mut reply = Reply::json(&json!((page * 10..to).map(user).collect::<Vec<_>>()));
        if to < N {
            // Relative and absolute targets, among other rels, as GitHub-style APIs send.
            let next = if page.is_multiple_of(2) {
                format!("/users?p={}", page + 1)
            } else {
                format!("{}/users?p={}", b.lock().unwrap(), page + 1)
            };
            reply.headers.push((
                "Link".into(),
                format!(
                    "<{}/users?p=0>; rel=\"first\", <{next}>; rel=\"next\"",
                    b.lock().unwrap()
                ),
            ));
        }
        reply
    });
    *base.lock().unwrap() = server.url("");
    let dir = tempfile::tempdir().unwrap();
    let src = start_source(
        dir.path(),
        json!({"url": server.url("/users"), "every": "1h", "pagination": {"type": "link"}}),
    );
    wait_for("5 pages", Duration::from_secs(10), || {
        server.requests().len() >= 5
    });
    std::thread::sleep(Duration::from_millis(300));
    src.stop();
    assert_eq!(server.requests().len(), 5);
    all_users_once(dir.path());
}

#[test]
fn a_restart_does_not_poll_before_every_has_passed() {
    let server = Server::start(|_, _| Reply::json(&json!({"results": [user(1), user(2)]})));
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({"url": server.url("/api"), "every": "3s", "records": "$.results"});
    let src = start_source(dir.path(), cfg.clone());
    wait_for("the first poll", Duration::from_secs(5), || {
        server.requests().len() == 1
    });
    std::thread::sleep(Duration::from_millis(100));
    src.stop();
    let src = start_source(dir.path(), cfg);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        server.requests().len(),
        1,
        "restarted source polled before `every`"
    );
    // It keeps the rhythm: the next poll comes about 3 s after the first one started.
    wait_for("the second poll", Duration::from_secs(5), || {
        server.requests().len() == 2
    });
    src.stop();
    let r = server.requests();
    let gap = r[1].0.at - r[0].0.at;
    assert!(
        gap >= Duration::from_millis(2900) && gap < Duration::from_millis(4000),
        "{gap:?}"
    );
    assert_eq!(topic_records(dir.path(), "users").len(), 4);
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/poll.json")).unwrap())
            .unwrap();
    assert!(state["started_ms"].as_i64().unwrap() > 0, "{state}");
    assert!(state.get("resume").is_none(), "{state}");
}

#[test]
fn an_interrupted_poll_resumes_at_its_next_page() {
    // Page 3 hangs the first time it is asked (weir stops meanwhile).
    let server = Server::start(|r, earlier| {
        let page = query_num(r, "page").unwrap();
        let hang = page == 3 && !earlier.iter().any(|e| query_num(e, "page") == Some(3));
        let (from, to) = (((page - 1) * 10).min(N), (page * 10).min(N));
        Reply {
            delay: if hang {
                Duration::from_secs(3)
            } else {
                Duration::ZERO
            },
            ..Reply::json(&json!({"results": (from..to).map(user).collect::<Vec<_>>()}))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({"url": server.url("/api"), "every": "1h", "records": "$.results", "timeout": "10s",
                     "pagination": {"type": "page", "size": 10}});
    let src = start_source(dir.path(), cfg.clone());
    wait_for("page 3", Duration::from_secs(5), || {
        server.requests().len() == 3
    });
    src.stop(); // interrupts the request to page 3 within 2 s (checked by stop()).
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/poll.json")).unwrap())
            .unwrap();
    assert_eq!(
        state["resume"]["next"],
        json!({"kind": "page", "page": 3}),
        "{state}"
    );
    assert_eq!(topic_records(dir.path(), "users").len(), 20);

    let src = start_source(dir.path(), cfg);
    wait_for("pages 3 to 5", Duration::from_secs(5), || {
        server.requests().len() == 6
    });
    std::thread::sleep(Duration::from_millis(200));
    src.stop();
    let pages: Vec<usize> = server
        .requests()
        .iter()
        .map(|(r, _)| query_num(r, "page").unwrap())
        .collect();
    assert_eq!(pages, vec![1, 2, 3, 3, 4, 5]);
    all_users_once(dir.path());
}

#[test]
fn broken_responses_show_in_health_and_non_objects_are_dead_lettered() {
    let server = Server::start(|r, _| match r.path.as_str() {
        "/html" => Reply::status(200, "<html><body>Service moved</body></html>"),
        "/other" => Reply::json(&json!({"data": [user(1)], "info": {"page": 1}})),
        "/mixed" => Reply::json(&json!({"results": [user(1), 42, "text", [1], user(2), null]})),
        "/denied" => Reply::status(401, r#"{"error":"bad token"}"#),
        _ => Reply::status(404, ""),
    });
    let check = |path: &str, records: &str, want: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let src = start_source(
            dir.path(),
            json!({"url": server.url(path), "every": "1h", "records": records}),
        );
        wait_for("a health error", Duration::from_secs(5), || {
            src.health.snapshot().errors > 0
        });
        let h = src.health.snapshot();
        src.stop();
        let msg = h.last_error.unwrap();
        for w in want {
            assert!(msg.contains(w), "`{w}` not in: {msg}");
        }
        assert!(topic_records(dir.path(), "users").is_empty());
    };
    let url = |p: &str| format!("GET {}", server.url(p));
    check(
        "/html",
        "$.results",
        &[&url("/html"), "not JSON", "<html><body>Service moved"],
    );
    check(
        "/other",
        "$.results",
        &[
            &url("/other"),
            "nothing at `records = \"$.results\"`",
            "`$` has the keys data, info",
        ],
    );
    check(
        "/denied",
        "$",
        &[&url("/denied"), "HTTP 401 Unauthorized", "bad token"],
    );
    let denied = server.count(|r| r.path == "/denied");
    assert_eq!(denied, 1, "a 401 is not retried");

    let dir = tempfile::tempdir().unwrap();
    let src = start_source(
        dir.path(),
        json!({"url": server.url("/mixed"), "every": "1h", "records": "$.results"}),
    );
    wait_for("records", Duration::from_secs(5), || {
        src.produced.load(std::sync::atomic::Ordering::Relaxed) == 2
    });
    std::thread::sleep(Duration::from_millis(100));
    let h = src.health.snapshot();
    src.stop();
    assert_eq!(h.errors, 0, "{h:?}");
    assert!(h.connected);
    assert_eq!(topic_records(dir.path(), "users").len(), 2);
    let dead = topic_records(dir.path(), DLQ_TOPIC);
    assert_eq!(dead.len(), 4);
    let reasons: BTreeSet<&str> = dead
        .iter()
        .map(|(_, d)| d["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, BTreeSet::from(["not_an_object"]));
    let raws: Vec<&str> = dead
        .iter()
        .map(|(_, d)| d["raw"].as_str().unwrap())
        .collect();
    assert_eq!(raws, vec!["42", "\"text\"", "[1]", "null"]);
    let detail = dead[0].1["detail"].as_str().unwrap();
    assert!(
        detail.contains("element 1 at `$.results`") && detail.contains("is a number"),
        "{detail}"
    );
    assert!(detail.contains(&server.url("/mixed")), "{detail}");
}

#[test]
fn connection_errors_are_retried_then_the_poll_gives_up() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let src = start_source(
        dir.path(),
        json!({"url": format!("http://127.0.0.1:{port}/api"), "every": "1h", "retries": 2}),
    );
    wait_for("3 attempts", Duration::from_secs(5), || {
        src.health.snapshot().errors >= 3
    });
    std::thread::sleep(Duration::from_millis(1000));
    let h = src.health.snapshot();
    src.stop();
    assert_eq!(
        h.errors, 3,
        "1 attempt + 2 retries, then wait for the next poll: {h:?}"
    );
    assert!(!h.connected);
    let msg = h.last_error.unwrap();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}/api")) && msg.contains("cannot connect"),
        "{msg}"
    );
}

#[test]
fn rate_limit_spaces_requests() {
    let server = Server::start(|r, _| {
        let page = query_num(r, "page").unwrap();
        Reply::json(&json!({"results": if page <= 4 { vec![user(page)] } else { vec![] }}))
    });
    let dir = tempfile::tempdir().unwrap();
    let src = start_source(
        dir.path(),
        json!({"url": server.url("/api"), "every": "1h", "records": "$.results", "rate_limit": 4,
               "pagination": {"type": "page"}}),
    );
    wait_for("5 pages", Duration::from_secs(5), || {
        server.requests().len() >= 5
    });
    src.stop();
    let at: Vec<Instant> = server.requests().iter().map(|(r, _)| r.at).collect();
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(240),
            "{:?}",
            w[1] - w[0]
        );
    }
}

#[test]
fn a_bad_records_path_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weir.toml");
    for (records, want) in [
        (
            "results",
            "`results` is not a JSON path: it must start with `$`",
        ),
        (
            "$.results[*]",
            "`[*]` is neither an array index nor a quoted name",
        ),
        ("$..users", "recursive descent `..` is not supported"),
    ] {
        std::fs::write(
            &config,
            format!(
                "[sources.users]\ntype = \"rest\"\nurl = \"http://127.0.0.1:9/api\"\nrecords = \"{records}\"\n"
            ),
        )
        .unwrap();
        let out = weir_cli(&["validate"], &config);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("sources.users.records"), "{err}");
        assert!(err.contains(want), "{err}");
        assert!(err.contains("supported: `$`, `$.a.b`, `$.a[0].b`"), "{err}");
    }
}
