//! The `mqtt` source and sink against the local Mosquitto (`WEIR_TEST_MQTT_URL`): readings
//! published at QoS 1 by an independent client reach a silver table with their topic as a
//! column; messages published while weir is stopped arrive after it starts again (persistent
//! session); a broker that goes away (through a proxy that cuts every connection) shows as an
//! error in `/v1/status` and loses nothing once it is back; a table's rows are published on
//! topics built from each row; and config mistakes are refused naming the key.
//!
//! Every test uses topics and client ids of its own, and clears the broker-side sessions it
//! made, so the tests run in parallel on a shared broker.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::harness::*;
use common::proxy::Proxy;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use weir_orchestrator::{Project, Weir};

fn mqtt_url() -> Option<String> {
    match std::env::var("WEIR_TEST_MQTT_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "SKIPPED: set WEIR_TEST_MQTT_URL (e.g. mqtt://127.0.0.1:1883) to run the mqtt source and sink tests"
            );
            None
        }
    }
}

/// Host and port of the broker URL.
fn broker(url: &str) -> (String, u16) {
    let u = url::Url::parse(url).unwrap();
    (u.host_str().unwrap().to_owned(), u.port().unwrap_or(1883))
}

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// Publishes every (topic, payload) at QoS 1 with a client of its own and returns once the
/// broker has acknowledged each.
async fn publish(url: &str, messages: &[(String, Vec<u8>)]) {
    let (host, port) = broker(url);
    let mut o = MqttOptions::new(unique("weir-test-pub-"), host, port);
    o.set_max_packet_size(1 << 24, 1 << 24);
    let (client, mut events) = AsyncClient::new(o, 64);
    let msgs = messages.to_vec();
    let c = client.clone();
    tokio::spawn(async move {
        for (t, p) in msgs {
            c.publish(t, QoS::AtLeastOnce, false, p).await.unwrap();
        }
    });
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked < messages.len() {
        assert!(
            Instant::now() < deadline,
            "broker acknowledged {acked} of {}",
            messages.len()
        );
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("publishing failed: {e}"),
            Err(_) => panic!("no progress publishing"),
        }
    }
    client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
}

/// Ends the broker-side session of `client_id` (connect with a clean session, disconnect).
async fn forget_session(url: &str, client_id: &str) {
    let (host, port) = broker(url);
    let o = MqttOptions::new(client_id, host, port);
    let (client, mut events) = AsyncClient::new(o, 8);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("cannot clear session {client_id}: {other:?}"),
        }
    }
    client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
}

/// A reading from device `dev` with sequence number `seq`.
fn reading(prefix: &str, dev: u32, seq: u32) -> (String, Vec<u8>) {
    (
        format!("{prefix}/dev{dev}/temperature"),
        format!(
            r#"{{"msg_id": "dev{dev}-{seq}", "value": {}.5, "seq": {seq}}}"#,
            20 + seq % 10
        )
        .into_bytes(),
    )
}

/// A project with an mqtt source `readings` (extra keys in `source`) and a silver table that
/// parses the device from the topic and the value from the payload.
fn project(dir: &Path, source: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    // The record of a reading `{"value": 21.5, ...}` on `<prefix>/dev1/temperature` is the
    // payload's fields plus `topic` and `received_at` (see the mqtt source's docs).
    std::fs::write(
        dir.join("sql/silver_readings.sql"),
        "SELECT split_part(topic, '/', 2) AS device, topic, msg_id, seq, value, received_at FROM readings",
    )
    .unwrap();
    let toml = format!(
        r#"
[project]
name = "mqtt_test"

[server]
listen = "127.0.0.1:0"

[pipeline]
interval = "20ms"

[sources.readings]
type = "mqtt"
{source}

[tables.silver_readings]
from = "readings"
sql = "sql/silver_readings.sql"
schema = "topic string, msg_id string, seq bigint, value double, received_at timestamp"
"#
    );
    let path = dir.join("weir.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn start(config: &Path) -> Arc<Weir> {
    let weir = Weir::open(Project::load(config).unwrap()).unwrap();
    weir.start(Vec::new()).unwrap();
    weir
}

/// Waits until the source's health satisfies `ok` (or fails after `limit`).
fn wait_health(weir: &Weir, limit: Duration, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let h = weir.status_json()["sources"]["readings"]["health"].clone();
        if ok(&h) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "waited {limit:?} for {what}; health: {h}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `silver_readings` holds `n` rows.
async fn wait_rows(config: &Path, weir: &Weir, n: i64, limit: Duration) {
    let start = Instant::now();
    loop {
        if let Some(e) = weir.status_json()["pipeline"]["error"].as_str() {
            panic!("pipeline failed: {e}");
        }
        let got = if weir.status_json()["tables"]["silver_readings"].is_null() {
            0
        } else {
            count(config, "silver_readings").await
        };
        if got >= n {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "silver_readings has {got} rows of {n} after {limit:?}; status: {}",
            weir.status_json()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The client id the source chose (kept in its state folder).
fn stored_client_id(dir: &Path) -> String {
    let s = std::fs::read_to_string(dir.join("data/sources/readings/mqtt.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    v["client_id"].as_str().unwrap().to_owned()
}

/// Waits until the broker has confirmed the source's subscriptions (it writes them down).
fn wait_subscribed(dir: &Path, limit: Duration) {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(dir.join("data/sources/readings/mqtt.json")) {
            let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
            if v["subscribed"].as_object().is_some_and(|m| !m.is_empty()) {
                return;
            }
        }
        assert!(
            start.elapsed() < limit,
            "the source did not subscribe within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_reach_silver_with_their_topic() {
    let Some(url) = mqtt_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("weirtest-read");
    let config = project(
        dir.path(),
        &format!(
            "url = \"{url}\"\ntopics = [\"{prefix}/+/temperature\", \"{prefix}/raw/#\"]\npartitions = 2"
        ),
    );
    let weir = start(&config);
    wait_subscribed(dir.path(), Duration::from_secs(20));

    let n = 400u32;
    let mut msgs: Vec<(String, Vec<u8>)> = (0..n).map(|i| reading(&prefix, i % 4, i)).collect();
    // Not part of silver's filter on `temperature`: a payload that is plain text, one that is
    // not UTF-8 (a dead letter) and one that does not match any filter.
    msgs.push((format!("{prefix}/raw/a"), b"not json".to_vec()));
    msgs.push((format!("{prefix}/raw/b"), vec![0xff, 0xfe, b'x']));
    msgs.push((
        format!("{prefix}/dev1/humidity"),
        b"{\"value\": 1}".to_vec(),
    ));
    publish(&url, &msgs).await;

    wait_rows(&config, &weir, i64::from(n) + 1, Duration::from_secs(60)).await;
    let start = Instant::now();
    while weir.dead_letters() < 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "no dead letter");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = weir.status_json();
    assert_eq!(st["dead_letters"], 1, "{st}");
    assert_eq!(
        st["sources"]["readings"]["health"]["connected"], true,
        "{st}"
    );
    assert_eq!(st["sources"]["readings"]["kind"], "mqtt", "{st}");
    weir.stop();
    weir.join();

    let by_device = rows(
        &config,
        "SELECT device, count(*), count(DISTINCT msg_id), min(seq), max(seq) FROM silver_readings \
         WHERE topic LIKE '%/temperature' GROUP BY device ORDER BY device",
    )
    .await;
    let want: Vec<Vec<String>> = (0..4)
        .map(|d| {
            vec![
                format!("dev{d}"),
                "100".into(),
                "100".into(),
                d.to_string(),
                (396 + d).to_string(),
            ]
        })
        .collect();
    assert_eq!(by_device, want);
    // The topic column is the MQTT topic, the value the payload's.
    let one = rows(
        &config,
        "SELECT topic, value FROM silver_readings WHERE msg_id = 'dev3-7'",
    )
    .await;
    assert_eq!(
        one,
        vec![vec![format!("{prefix}/dev3/temperature"), "27.5".into()]]
    );
    // Plain text is kept as `payload`, with its topic; the device is the topic's 2nd level.
    let raw = rows(
        &config,
        "SELECT topic, device, msg_id FROM silver_readings WHERE topic NOT LIKE '%/temperature'",
    )
    .await;
    assert_eq!(
        raw,
        vec![vec![format!("{prefix}/raw/a"), "raw".into(), "NULL".into()]]
    );
    forget_session(&url, &stored_client_id(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_weir_is_down_arrive_after_restart() {
    let Some(url) = mqtt_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("weirtest-down");
    let config = project(
        dir.path(),
        &format!("url = \"{url}\"\ntopics = [\"{prefix}/+/temperature\"]\nqos = 1"),
    );
    let weir = start(&config);
    wait_subscribed(dir.path(), Duration::from_secs(20));
    let id = stored_client_id(dir.path());
    publish(&url, &[reading(&prefix, 0, 0)]).await;
    wait_rows(&config, &weir, 1, Duration::from_secs(30)).await;
    weir.stop();
    weir.join();
    drop(weir);

    // Mosquitto queues up to 1000 messages per persistent session by default.
    let m = 600u32;
    let msgs: Vec<_> = (1..=m).map(|i| reading(&prefix, i % 3, i)).collect();
    publish(&url, &msgs).await;

    let weir = start(&config);
    assert_eq!(
        stored_client_id(dir.path()),
        id,
        "the client id must survive a restart"
    );
    wait_rows(&config, &weir, i64::from(m) + 1, Duration::from_secs(60)).await;
    // Nothing more arrives (a clean stop acknowledges what it stored: no duplicates).
    std::thread::sleep(Duration::from_millis(500));
    weir.stop();
    weir.join();
    let r = rows(
        &config,
        "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM silver_readings",
    )
    .await;
    let total = (m + 1).to_string();
    assert_eq!(
        r,
        vec![vec![total.clone(), total, "0".into(), m.to_string()]]
    );
    forget_session(&url, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_is_retried_visible_and_loses_nothing() {
    let Some(url) = mqtt_url() else { return };
    let (host, port) = broker(&url);
    let target = (host.as_str(), port)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target);
    proxy.down();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("weirtest-outage");
    let id = unique("weir-test-outage-");
    let config = project(
        dir.path(),
        &format!(
            "url = \"mqtt://{}\"\ntopics = [\"{prefix}/+/temperature\"]\nclient_id = \"{id}\"\nkeep_alive = \"5s\"",
            proxy.addr
        ),
    );
    let weir = start(&config);

    // The broker is unreachable: retries, and the error shows in /v1/status.
    wait_health(&weir, Duration::from_secs(20), "failed attempts", |h| {
        h["errors"].as_u64().unwrap_or(0) >= 2
            && h["connected"] == false
            && h["last_error"].is_string()
    });
    proxy.up();
    wait_health(&weir, Duration::from_secs(20), "a connection", |h| {
        h["connected"] == true && h["last_error"].is_null()
    });
    wait_subscribed(dir.path(), Duration::from_secs(20));
    let first: Vec<_> = (0..100).map(|i| reading(&prefix, i % 2, i)).collect();
    publish(&url, &first).await;
    wait_rows(&config, &weir, 100, Duration::from_secs(30)).await;

    // The broker "restarts": every connection cut, new ones refused for a while. Devices keep
    // publishing meanwhile; the broker queues for weir's session.
    let errors_before = weir.source_health("readings").errors;
    proxy.down();
    wait_health(&weir, Duration::from_secs(20), "the outage to show", |h| {
        h["connected"] == false && h["errors"].as_u64().unwrap_or(0) > errors_before
    });
    let during: Vec<_> = (100..400).map(|i| reading(&prefix, i % 2, i)).collect();
    publish(&url, &during).await;
    std::thread::sleep(Duration::from_secs(1));
    let status = weir.status_json();
    let health = &status["sources"]["readings"]["health"];
    assert!(
        health["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    proxy.up();
    wait_rows(&config, &weir, 400, Duration::from_secs(60)).await;
    wait_health(&weir, Duration::from_secs(20), "recovery", |h| {
        h["connected"] == true
    });
    weir.stop();
    weir.join();
    let r = rows(
        &config,
        "SELECT count(DISTINCT seq), min(seq), max(seq) FROM silver_readings",
    )
    .await;
    assert_eq!(r, vec![vec!["400".to_string(), "0".into(), "399".into()]]);
    forget_session(&url, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_publishes_every_row_on_its_templated_topic() {
    let Some(url) = mqtt_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("weirtest-sink");
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(
        dir.path().join("sql/hot.sql"),
        "SELECT device_id, value, seq FROM readings WHERE value > 25",
    )
    .unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"

[pipeline]
interval = "20ms"

[sources.readings]
type = "http"

[tables.hot]
from = "readings"
sql = "sql/hot.sql"
schema = "device_id string, value double, seq bigint"

[sinks.alerts]
type = "mqtt"
from = "hot"
url = "{url}"
topic = "{prefix}/alerts/{{device_id}}"
qos = 1
"#
        ),
    )
    .unwrap();

    // The subscriber listens before any row is made.
    let (host, port) = broker(&url);
    let mut o = MqttOptions::new(unique("weir-test-sub-"), host, port);
    o.set_max_packet_size(1 << 24, 1 << 24);
    let (client, mut events) = AsyncClient::new(o, 64);
    client
        .subscribe(format!("{prefix}/alerts/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let listener = tokio::spawn(async move {
        let mut subscribed = Some(subscribed_tx);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("subscriber failed: {e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
        .await
        .unwrap()
        .unwrap();

    let weir = start(&config);
    let n = 500u32;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"device_id": "dev{}", "value": {}, "seq": {i}}}"#,
                i % 5,
                20 + i % 10
            )
        })
        .collect();
    for c in lines.chunks(100) {
        let body = c.join("\n") + "\n";
        weir.ingest("readings", body.as_bytes()).unwrap();
    }
    // value > 25 keeps seq % 10 in 6..=9: 4 of every 10 rows.
    let want = u64::from(n) * 4 / 10;
    let mut got: BTreeMap<u64, (String, serde_json::Value)> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = 0u64;
    while (got.len() as u64) < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((topic, payload))) = tokio::time::timeout(left, rx.recv()).await else {
            panic!(
                "received {} of {want} rows; status: {}",
                got.len(),
                weir.status_json()
            );
        };
        received += 1;
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        got.insert(v["seq"].as_u64().unwrap(), (topic, v));
    }
    // The broker forwards a message to subscribers before its PUBACK reaches weir, so the
    // sink's figures may trail the subscriber by a moment.
    let start = Instant::now();
    while weir.status_json()["sinks"]["alerts"]["rows"] != want {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sink rows: {}",
            weir.status_json()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = weir.status_json();
    assert_eq!(st["sinks"]["alerts"]["kind"], "mqtt", "{st}");
    assert_eq!(st["sinks"]["alerts"]["errors"], 0, "{st}");
    weir.stop();
    weir.join();
    listener.abort();
    assert_eq!(
        received, want,
        "a row was published twice without a failure"
    );
    for (seq, (topic, v)) in &got {
        let dev = format!("dev{}", seq % 5);
        assert_eq!(topic, &format!("{prefix}/alerts/{dev}"));
        assert_eq!(v["device_id"], dev.as_str());
        assert_eq!(v["value"].as_f64(), Some(20.0 + (seq % 10) as f64));
        assert!(seq % 10 >= 6, "{v}");
    }
    let seqs: BTreeSet<u64> = got.keys().copied().collect();
    let want_seqs: BTreeSet<u64> = (0..u64::from(n)).filter(|s| s % 10 >= 6).collect();
    assert_eq!(seqs, want_seqs);
}

#[test]
fn config_mistakes_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let check = |source: &str, sink: &str, key: &str| {
        let config = project(dir.path(), source);
        let mut toml = std::fs::read_to_string(&config).unwrap();
        if !sink.is_empty() {
            toml.push_str(&format!(
                "\n[sinks.alerts]\ntype = \"mqtt\"\nfrom = \"silver_readings\"\nurl = \"mqtt://127.0.0.1:1883\"\n{sink}\n"
            ));
        }
        std::fs::write(&config, toml).unwrap();
        let e = Project::load(&config).unwrap_err().to_string();
        assert!(e.contains(key), "expected `{key}` in: {e}");
        e
    };
    let url = "url = \"mqtt://127.0.0.1:1883\"";
    let e = check(
        &format!("{url}\ntopics = [\"a/#/b\"]"),
        "",
        "sources.readings.topics",
    );
    assert!(e.contains("`#`"), "{e}");
    let e = check(
        &format!("{url}\ntopics = [\"a/b+\"]"),
        "",
        "sources.readings.topics",
    );
    assert!(e.contains("`+`"), "{e}");
    let e = check(
        &format!("{url}\ntopics = [\"a\"]\nqos = 2"),
        "",
        "sources.readings.qos",
    );
    assert!(e.contains("got 2"), "{e}");
    check(url, "", "sources.readings.topics");
    check(
        "url = \"mqtts://h\"\ntopics = [\"a\"]",
        "",
        "sources.readings.url",
    );
    let ok = format!("{url}\ntopics = [\"a/+\"]");
    check(&ok, "topic = \"alerts/+\"", "sinks.alerts.topic");
    check(&ok, "topic = \"alerts/{x\"", "sinks.alerts.topic");
    check(&ok, "topic = \"a/{device}\"\nqos = 2", "sinks.alerts.qos");
    // A well-formed project loads.
    let config = project(dir.path(), &ok);
    Project::load(&config).unwrap();
}
