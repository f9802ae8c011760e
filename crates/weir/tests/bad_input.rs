//! Bad input over HTTP: every kind of broken line ends in the quarantine or the dead-letter
//! topic with a reason, or gets a clear 4xx; nothing panics and nothing accepted is lost.

mod common;

use std::time::Duration;

use common::harness::*;

fn post(url: &str, body: &[u8]) -> (u16, serde_json::Value) {
    match ureq::post(url).send_bytes(body) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => {
            (code, r.into_json().unwrap_or(serde_json::Value::Null))
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_records_are_quarantined_or_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let config = shop_project(dir.path(), |t| {
        small_batches(t)
            .replace("max_line_size = \"1MiB\"", "max_line_size = \"2KiB\"")
            .replace("max_body_size = \"64MiB\"", "max_body_size = \"64KiB\"")
    });
    let (weir, addr, tx) = serve_in_process(&config).await;
    let url = format!("http://{addr}/v1/sources/events/records");

    let good = r#"{"event_id":"e1","ts":"2026-01-15T00:00:00.000Z","customer_id":"c1","event_type":"view","product_category":"toys","product_id":"p1","amount":0.00,"quantity":1,"location":"Paris"}"#;
    let mut body = Vec::new();
    for line in [
        good.to_string(),
        r#"{"event_id":"e2","ts":"2026-01-15T00:00"#.to_string(),                       // truncated
        "[1,2,3]".to_string(),                                                              // not an object
        r#"{"event_id":"e3","ts":"2026-01-15T00:00:01.000Z","event_type":"view","amount":0}"#.to_string(), // missing customer
        r#"{"event_id":"e4","ts":"2026-01-15T00:00:01.000Z","customer_id":"c","event_type":"VIEW","amount":0}"#.to_string(),
        r#"{"event_id":"e5","ts":"15/01/2026 10:30:00","customer_id":"c","event_type":"view","amount":0}"#.to_string(),
        r#"{"event_id":"e6","ts":"2026-01-15T00:00:01.000Z","customer_id":"c","event_type":"view","amount":"lots"}"#.to_string(), // wrong type
        r#"{"event_id":"e7","ts":"2026-01-15T00:00:01.000Z","customer_id":"c","event_type":"refund","amount":-3.5}"#.to_string(),
        r#"{"event_id":"e8","ts":12,"customer_id":{"nested":true},"event_type":"view","amount":0}"#.to_string(),
    ] {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    body.extend_from_slice(b"{\"event_id\":\"e9\",\"bad\":\"\xff\xfe\"}\n"); // not UTF-8
    body.extend_from_slice(format!("{{\"pad\":\"{}\"}}\n", "x".repeat(4000)).as_bytes()); // over 2 KiB
    let (code, v) = post(&url, &body);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["accepted"], 9);
    assert_eq!(v["rejected"], 2);

    let (code, v) = post(&url, b"");
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("empty"), "{v}");
    assert_eq!(v["kind"], "user");

    let (code, v) = post(&url, &vec![b'{'; 70 * 1024]);
    assert_eq!(code, 413, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("max_body_size"),
        "{v}"
    );
    assert_eq!(v["kind"], "user");

    let (code, v) = post(
        &format!("http://{addr}/v1/sources/nope/records"),
        good.as_bytes(),
    );
    assert_eq!(code, 404);
    assert!(v["error"].as_str().unwrap().contains("nope"), "{v}");

    let w = weir.clone();
    tokio::task::spawn_blocking(move || wait_caught_up(&w, Duration::from_secs(60)))
        .await
        .unwrap();
    let st = weir.status_json();
    assert_eq!(st["dead_letters"], 2, "{st}");
    weir.stop();
    let w = weir.clone();
    tokio::task::spawn_blocking(move || w.join()).await.unwrap();
    let _ = tx.send(());

    let q = rows(
        &config,
        "SELECT reason, count(*) FROM silver_events_quarantine GROUP BY reason ORDER BY reason",
    )
    .await;
    let q: Vec<(String, String)> = q
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(
        q,
        vec![
            ("malformed_json".into(), "2".into()),
            ("missing_customer_id".into(), "2".into()),
            ("negative_amount".into(), "2".into()),
            ("unknown_event_type".into(), "1".into()),
            ("unparseable_ts".into(), "1".into()),
        ]
    );
    assert_eq!(count(&config, "silver_events").await, 1);
    assert_eq!(count(&config, "bronze_events").await, 9);
}
