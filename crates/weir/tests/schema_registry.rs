//! The schema registry on a running weir: Confluent-shaped REST calls at the server root
//! (register, versions, ids, lookups, compatibility, config, deletes, error codes), an
//! incompatible schema refused with a message naming the field, a compatible evolution
//! accepted with the records written under the old version still in silver and still valid,
//! records failing their source's schema dead-lettered with path and reason (http and file
//! sources), the registry surviving a restart, and roles under `[server.auth]`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::harness::*;
use serde_json::{Value, json};
use weir_connectors::dlq::DeadLetter;
use weir_orchestrator::{Project, Weir};

const MEDIA: &str = "application/vnd.schemaregistry.v1+json";

/// An `http` source `users` declaring `schema = "users-value"`, read by `silver_users`.
fn project(dir: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    std::fs::write(
        dir.join("sql/silver_users.sql"),
        "SELECT id, name, age FROM users\n",
    )
    .unwrap();
    let toml = format!(
        r#"{extra}
[project]
name = "registry"
data_dir = "data"

[pipeline]
interval = "20ms"

[sources.users]
type = "http"
schema = "users-value"

[tables.silver_users]
from = "users"
sql = "sql/silver_users.sql"
schema = "id bigint, name string, age bigint"
"#
    );
    let path = dir.join("weir.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// `(status, content type, JSON body)` of a request; a body that is not JSON is a string.
fn call(
    method: &str,
    url: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, String, Value) {
    let mut req = ureq::request(method, url).set("Accept", MEDIA);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let r = match body {
        Some(b) => req.set("Content-Type", MEDIA).send_string(&b.to_string()),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let code = resp.status();
    let ct = resp.content_type().to_owned();
    let text = resp.into_string().unwrap();
    (
        code,
        ct,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn avro_user(extra_fields: Value) -> String {
    let mut fields = vec![
        json!({"name": "id", "type": "long"}),
        json!({"name": "name", "type": "string"}),
    ];
    fields.extend(extra_fields.as_array().unwrap().iter().cloned());
    json!({"type": "record", "name": "User", "namespace": "shop", "fields": fields}).to_string()
}

fn register_body(schema: &str) -> Value {
    json!({"schema": schema})
}

/// Checks that `v` has exactly the properties of `#/components/schemas/<name>` (the required
/// ones always), each of its documented JSON type.
fn matches_doc(doc: &Value, name: &str, v: &Value) {
    let s = &doc["components"]["schemas"][name];
    let props = s["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{name} is not documented"));
    for r in s["required"].as_array().into_iter().flatten() {
        assert!(
            v.get(r.as_str().unwrap()).is_some(),
            "{name}: `{r}` missing in {v}"
        );
    }
    for (k, x) in v.as_object().unwrap() {
        let p = props
            .get(k)
            .unwrap_or_else(|| panic!("{name}: undocumented `{k}` in {v}"));
        let ok = match p["type"].as_str() {
            Some("string") => x.is_string(),
            Some("integer") => x.is_u64() || x.is_i64(),
            Some("boolean") => x.is_boolean(),
            Some("array") => x.is_array(),
            other => panic!("{name}.{k}: unexpected type {other:?}"),
        };
        assert!(ok, "{name}.{k}: {x} is not a {}", p["type"]);
        if let Some(e) = p["enum"].as_array() {
            assert!(e.contains(x), "{name}.{k}: {x} not in {e:?}");
        }
    }
}

/// The dead letters of the project so far.
fn dead_letters(weir: &Weir) -> Vec<DeadLetter> {
    let t = weir.log().topic("_dlq").unwrap();
    let p = t.partition(0).unwrap();
    p.read(p.start_offset(), 100_000, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| DeadLetter::decode(&r.value).unwrap())
        .collect()
}

/// Every record value in source topic `name`.
fn topic_values(weir: &Weir, name: &str) -> Vec<Value> {
    let t = weir.log().topic(name).unwrap();
    let mut out = Vec::new();
    for p in t.partitions() {
        for r in p.read(p.start_offset(), 100_000, usize::MAX).unwrap() {
            out.push(serde_json::from_slice(&r.value).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_rest_calls_register_evolve_and_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let config = project(dir.path(), "");
    let (weir, addr, stop) = serve_in_process(&config).await;
    let base = format!("http://{addr}");
    let doc = {
        let (code, _, d) = tokio::task::spawn_blocking({
            let base = base.clone();
            move || call("GET", &format!("{base}/v1/openapi.json"), None, None)
        })
        .await
        .unwrap();
        assert_eq!(code, 200);
        d
    };
    tokio::task::spawn_blocking(move || {
        let url = |p: &str| format!("{base}{p}");
        let v1 = avro_user(json!([]));
        let (code, ct, body) = call("GET", &url("/subjects"), None, None);
        assert_eq!((code, ct.as_str(), body), (200, MEDIA, json!([])));

        // Register; the same schema under another subject (other whitespace) gets the same id.
        let (code, ct, body) = call("POST", &url("/subjects/users-value/versions"), Some(&register_body(&v1)), None);
        assert_eq!((code, ct.as_str()), (200, MEDIA), "{body}");
        matches_doc(&doc, "RegistryId", &body);
        let id1 = body["id"].as_u64().unwrap();
        let spaced = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&v1).unwrap()).unwrap();
        let (code, _, body) = call("POST", &url("/subjects/mirror-value/versions"), Some(&json!({"schema": spaced, "schemaType": "AVRO"})), None);
        assert_eq!((code, body["id"].as_u64()), (200, Some(id1)));
        // Registering it again makes no new version.
        let (_, _, body) = call("POST", &url("/subjects/users-value/versions"), Some(&register_body(&v1)), None);
        assert_eq!(body["id"].as_u64(), Some(id1));

        let (_, _, body) = call("GET", &url("/subjects"), None, None);
        assert_eq!(body, json!(["mirror-value", "users-value"]));
        let (_, _, body) = call("GET", &url("/subjects/users-value/versions"), None, None);
        assert_eq!(body, json!([1]));
        let (code, _, body) = call("GET", &url("/subjects/users-value/versions/latest"), None, None);
        assert_eq!(code, 200);
        matches_doc(&doc, "RegistrySubjectVersion", &body);
        assert_eq!(
            (body["subject"].as_str(), body["version"].as_u64(), body["id"].as_u64(), body["schemaType"].as_str()),
            (Some("users-value"), Some(1), Some(id1), Some("AVRO"))
        );
        let (code, ct, body) = call("GET", &url("/subjects/users-value/versions/1/schema"), None, None);
        assert_eq!((code, ct.as_str()), (200, MEDIA));
        assert_eq!(body, serde_json::from_str::<Value>(&v1).unwrap());
        let (code, _, body) = call("GET", &url(&format!("/schemas/ids/{id1}")), None, None);
        assert_eq!(code, 200);
        matches_doc(&doc, "RegistrySchema", &body);
        assert_eq!(serde_json::from_str::<Value>(body["schema"].as_str().unwrap()).unwrap(), serde_json::from_str::<Value>(&v1).unwrap());
        let (_, _, body) = call("GET", &url(&format!("/schemas/ids/{id1}/versions")), None, None);
        assert_eq!(body, json!([{"subject": "mirror-value", "version": 1}, {"subject": "users-value", "version": 1}]));
        let (_, _, body) = call("GET", &url("/schemas/types"), None, None);
        assert_eq!(body, json!(["AVRO", "JSON"]));
        // Lookup (a read) of a registered schema.
        let (code, _, body) = call("POST", &url("/subjects/users-value"), Some(&register_body(&v1)), None);
        assert_eq!((code, body["version"].as_u64(), body["id"].as_u64()), (200, Some(1), Some(id1)), "{body}");

        // An incompatible evolution: `age` added without a default.
        let bad = avro_user(json!([{"name": "age", "type": "int"}]));
        let (code, _, body) = call("POST", &url("/compatibility/subjects/users-value/versions/latest"), Some(&register_body(&bad)), None);
        assert_eq!(code, 200);
        matches_doc(&doc, "RegistryCompatibility", &body);
        assert_eq!(body["is_compatible"], false);
        assert_eq!(body["messages"], json!(["field `age`: added as required without a default (BACKWARD)"]));
        let (code, ct, body) = call("POST", &url("/subjects/users-value/versions"), Some(&register_body(&bad)), None);
        assert_eq!((code, ct.as_str()), (409, MEDIA));
        matches_doc(&doc, "RegistryErrorBody", &body);
        assert_eq!(
            body,
            json!({"error_code": 409, "message": "Schema being registered is incompatible with an earlier schema for subject \"users-value\": field `age`: added as required without a default (BACKWARD)"})
        );
        let (_, _, body) = call("GET", &url("/subjects/users-value/versions"), None, None);
        assert_eq!(body, json!([1]), "the refused schema made no version");

        // A compatible one: `age` with a default.
        let good = avro_user(json!([{"name": "age", "type": ["null", "long"], "default": null}]));
        let (_, _, body) = call("POST", &url("/compatibility/subjects/users-value/versions/1"), Some(&register_body(&good)), None);
        assert_eq!(body, json!({"is_compatible": true, "messages": []}));
        let (code, _, body) = call("POST", &url("/subjects/users-value/versions"), Some(&register_body(&good)), None);
        assert_eq!(code, 200, "{body}");
        let id2 = body["id"].as_u64().unwrap();
        assert_ne!(id1, id2);
        let (_, _, body) = call("GET", &url("/subjects/users-value/versions/latest"), None, None);
        assert_eq!((body["version"].as_u64(), body["id"].as_u64()), (Some(2), Some(id2)));

        // Config: global default BACKWARD, per subject FULL, invalid levels refused.
        let (_, _, body) = call("GET", &url("/config"), None, None);
        matches_doc(&doc, "RegistryConfig", &body);
        assert_eq!(body["compatibilityLevel"], "BACKWARD");
        let (code, _, body) = call("GET", &url("/config/users-value"), None, None);
        assert_eq!((code, body["error_code"].as_u64()), (404, Some(40408)));
        let (_, _, body) = call("GET", &url("/config/users-value?defaultToGlobal=true"), None, None);
        assert_eq!(body["compatibilityLevel"], "BACKWARD");
        let (code, _, body) = call("PUT", &url("/config/users-value"), Some(&json!({"compatibility": "FULL"})), None);
        assert_eq!((code, body), (200, json!({"compatibility": "FULL"})));
        let (_, _, body) = call("GET", &url("/config/users-value"), None, None);
        assert_eq!(body["compatibility"], "FULL");
        // Under FULL, a new required field with a default is fine both ways, a removed field
        // without a default is not (the v2 reader needs `name`).
        let without_name = json!({"type": "record", "name": "User", "namespace": "shop", "fields": [
            {"name": "id", "type": "long"},
            {"name": "age", "type": ["null", "long"], "default": null}]}).to_string();
        let (code, _, body) = call("POST", &url("/subjects/users-value/versions"), Some(&register_body(&without_name)), None);
        assert_eq!(code, 409, "{body}");
        assert!(body["message"].as_str().unwrap().ends_with("field `name`: removed, but the old schema has no default for it (FORWARD)"), "{body}");
        let (code, _, body) = call("PUT", &url("/config"), Some(&json!({"compatibility": "SIDEWAYS"})), None);
        assert_eq!((code, body["error_code"].as_u64()), (422, Some(42203)));
        assert!(body["message"].as_str().unwrap().contains("SIDEWAYS"), "{body}");

        // Error codes.
        for (method, path, payload, status, error_code) in [
            ("GET", "/subjects/nobody/versions", None, 404, 40401),
            ("GET", "/subjects/users-value/versions/9", None, 404, 40402),
            ("GET", "/subjects/users-value/versions/zero", None, 422, 42202),
            ("GET", "/schemas/ids/9999", None, 404, 40403),
            ("POST", "/subjects/users-value", Some(register_body(&bad)), 404, 40403),
            ("POST", "/subjects/users-value/versions", Some(register_body("{\"type\": \"recurd\"}")), 422, 42201),
            ("POST", "/subjects/j-value/versions", Some(json!({"schema": "{\"type\": \"string\", \"pattern\": \"^a\"}", "schemaType": "JSON"})), 422, 42201),
            ("POST", "/subjects/p-value/versions", Some(json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"})), 422, 42201),
            ("POST", "/subjects/users-value/versions", Some(json!({"nope": 1})), 400, 400),
        ] {
            let (code, ct, body) = call(method, &url(path), payload.as_ref(), None);
            assert_eq!((code, ct.as_str(), body["error_code"].as_u64()), (status, MEDIA, Some(error_code)), "{method} {path}: {body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
        let (_, _, body) = call("POST", &url("/subjects/j-value/versions"), Some(&json!({"schema": "{\"type\": \"string\", \"pattern\": \"^a\"}", "schemaType": "JSON"})), None);
        assert!(body["message"].as_str().unwrap().contains("keyword `pattern` at `#` is not supported"), "{body}");

        // Deletes: soft (ids still resolve), then permanent.
        let (code, _, body) = call("DELETE", &url("/subjects/mirror-value"), None, None);
        assert_eq!((code, body), (200, json!([1])));
        let (_, _, body) = call("GET", &url("/subjects"), None, None);
        assert_eq!(body, json!(["users-value"]));
        let (_, _, body) = call("GET", &url("/subjects?deleted=true"), None, None);
        assert_eq!(body, json!(["mirror-value", "users-value"]));
        let (code, _, _) = call("GET", &url(&format!("/schemas/ids/{id1}")), None, None);
        assert_eq!(code, 200);
        let (code, _, body) = call("DELETE", &url("/subjects/mirror-value?permanent=true"), None, None);
        assert_eq!((code, body), (200, json!([1])));
        let (code, _, body) = call("DELETE", &url("/subjects/users-value/versions/2?permanent=true"), None, None);
        assert_eq!((code, body["error_code"].as_u64()), (404, Some(40407)), "{body}");
    })
    .await
    .unwrap();
    let _ = stop.send(());
    weir.stop();
    weir.join();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_records_are_dead_lettered_and_old_records_still_read_after_evolution() {
    let dir = tempfile::tempdir().unwrap();
    let config = project(dir.path(), "");
    let (weir, addr, stop) = serve_in_process(&config).await;
    let base = format!("http://{addr}");

    // Before the subject has a schema: the record is dead-lettered, status says why.
    let early = r#"{"id": 0, "name": "early"}"#;
    let r = weir
        .ingest("users", format!("{early}\n").as_bytes())
        .unwrap();
    assert_eq!((r.accepted, r.rejected), (0, 1));
    let st = weir.status_json();
    assert!(
        st["sources"]["users"]["health"]["last_error"]
            .as_str()
            .is_some_and(
                |e| e.contains("sources.users.schema: subject `users-value` has no schema")
            ),
        "{st}"
    );

    let v1_lines = [
        r#"{"id": 1, "name": "ann"}"#,
        r#"{"id": 2, "name": "bob"}"#,
        r#"{"id": "x", "name": "bad"}"#,
        r#"{"id": 3, "name": "cat", "note": "fields v1 does not name are ignored"}"#,
    ];
    let v2_lines = [
        r#"{"id": 4, "name": "dan", "age": 41}"#,
        r#"{"id": 5, "name": "eve", "age": "old"}"#,
        r#"{"id": 6, "name": "fay", "age": null}"#,
        r#"{"id": 7, "name": "gus"}"#,
    ];
    let b = base.clone();
    tokio::task::spawn_blocking(move || {
        let url = |p: &str| format!("{b}{p}");
        let v1 = avro_user(json!([]));
        let (code, _, body) = call(
            "POST",
            &url("/subjects/users-value/versions"),
            Some(&register_body(&v1)),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let r = ureq::post(&url("/v1/sources/users/records"))
            .send_string(&v1_lines.join("\n"))
            .unwrap()
            .into_json::<Value>()
            .unwrap();
        assert_eq!(r, json!({"accepted": 3, "rejected": 1}));

        // Incompatible: refused, naming the field. Compatible: accepted.
        let bad = avro_user(json!([{"name": "age", "type": "long"}]));
        let (code, _, body) = call(
            "POST",
            &url("/subjects/users-value/versions"),
            Some(&register_body(&bad)),
            None,
        );
        assert_eq!(code, 409);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("field `age`: added as required without a default"),
            "{body}"
        );
        let good = avro_user(json!([{"name": "age", "type": ["null", "long"], "default": null}]));
        let (code, _, body) = call(
            "POST",
            &url("/subjects/users-value/versions"),
            Some(&register_body(&good)),
            None,
        );
        assert_eq!(code, 200, "{body}");

        let r = ureq::post(&url("/v1/sources/users/records"))
            .send_string(&v2_lines.join("\n"))
            .unwrap()
            .into_json::<Value>()
            .unwrap();
        assert_eq!(r, json!({"accepted": 3, "rejected": 1}));
    })
    .await
    .unwrap();

    // The source's error cleared once the subject had a schema.
    let st = weir.status_json();
    assert!(
        st["sources"]["users"]["health"]["last_error"].is_null(),
        "{st}"
    );

    // Dead letters: the early record, then one per batch, each with path and reason.
    let dl = dead_letters(&weir);
    assert_eq!(dl.len(), 3, "{dl:?}");
    assert!(
        dl.iter()
            .all(|d| d.source == "users" && d.reason == "schema_mismatch"),
        "{dl:?}"
    );
    assert_eq!(dl[0].raw, early);
    assert!(
        dl[0].detail.contains("has no schema in the registry"),
        "{}",
        dl[0].detail
    );
    assert_eq!(dl[1].raw, v1_lines[2]);
    assert_eq!(
        dl[1].detail,
        r#"line 3: $.id: expected long, got "x" (subject `users-value` version 1)"#
    );
    assert_eq!(dl[2].raw, v2_lines[1]);
    assert_eq!(
        dl[2].detail,
        r#"line 2: $.age: expected long, got "old" (subject `users-value` version 2)"#
    );

    // Silver holds every accepted record, those written under v1 included; nothing failing
    // its schema reached it.
    wait_caught_up(&weir, Duration::from_secs(60));
    let got = rows(
        &config,
        "SELECT id, name, age FROM silver_users ORDER BY id",
    )
    .await;
    let want: Vec<Vec<String>> = [
        ("1", "ann", "NULL"),
        ("2", "bob", "NULL"),
        ("3", "cat", "NULL"),
        ("4", "dan", "41"),
        ("6", "fay", "NULL"),
        ("7", "gus", "NULL"),
    ]
    .iter()
    .map(|(a, b, c)| vec![a.to_string(), b.to_string(), c.to_string()])
    .collect();
    assert_eq!(got, want);

    // Every record in the log, those written under v1 included, still reads with v2.
    let (version, _, latest) = weir.schemas().latest("users-value").unwrap();
    assert_eq!(version, 2);
    let values = topic_values(&weir, "users");
    assert_eq!(values.len(), 6);
    for v in &values {
        latest.validate(v).unwrap_or_else(|e| panic!("{v}: {e}"));
    }

    let _ = stop.send(());
    weir.stop();
    weir.join();
    // The registry is durable: reopened from the data dir, it has both versions.
    let data = Project::load(&config).unwrap().data_dir();
    let again = weir_connectors::schema::SchemaRegistry::open(&data.join("registry")).unwrap();
    assert_eq!(again.versions("users-value", false).unwrap(), vec![1, 2]);
    assert_eq!(again.latest("users-value").unwrap().0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_records_are_checked_against_a_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::create_dir_all(dir.path().join("inbox")).unwrap();
    std::fs::write(
        dir.path().join("sql/silver_readings.sql"),
        "SELECT sensor, value FROM readings\n",
    )
    .unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        r#"
[project]
name = "readings"

[pipeline]
interval = "20ms"

[sources.readings]
type = "file"
path = "inbox"
poll = "50ms"
schema = "readings-value"

[tables.silver_readings]
from = "readings"
sql = "sql/silver_readings.sql"
schema = "sensor string, value double"
"#,
    )
    .unwrap();
    let weir = Weir::open(Project::load(&config).unwrap()).unwrap();
    weir.schemas()
        .register(
            "readings-value",
            weir_connectors::schema::SchemaType::Json,
            r#"{"type": "object", "required": ["sensor", "value"], "additionalProperties": false,
                "properties": {"sensor": {"type": "string", "minLength": 1},
                               "value": {"type": "number", "minimum": -50, "maximum": 150}}}"#,
        )
        .unwrap();
    weir.start(Vec::new()).unwrap();
    std::fs::write(
        dir.path().join("inbox/a.jsonl"),
        "{\"sensor\": \"t1\", \"value\": 21.5}\n{\"sensor\": \"t2\", \"value\": 500}\n{\"value\": 1}\n{\"sensor\": \"t3\", \"value\": -3}\n",
    )
    .unwrap();
    let start = Instant::now();
    while dead_letters(&weir).len() < 2 || topic_values(&weir, "readings").len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            weir.status_json()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dl = dead_letters(&weir);
    let got: Vec<(&str, &str, Option<&str>)> = dl
        .iter()
        .map(|d| (d.reason.as_str(), d.detail.as_str(), d.offset.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "schema_mismatch",
                "a.jsonl#2: $.value: 500 is above the upper bound (<= 150) (subject `readings-value` version 1)",
                Some("a.jsonl#2")
            ),
            (
                "schema_mismatch",
                "a.jsonl#3: $.sensor: required property is missing (subject `readings-value` version 1)",
                Some("a.jsonl#3")
            ),
        ]
    );
    wait_caught_up(&weir, Duration::from_secs(60));
    assert_eq!(
        rows(
            &config,
            "SELECT sensor FROM silver_readings ORDER BY sensor"
        )
        .await,
        vec![vec!["t1".to_string()], vec!["t3".to_string()]]
    );
    weir.stop();
    weir.join();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_reads_need_a_reader_token_and_changes_an_operator_token() {
    const READER: &str = "reader-token-0123456789abcdef";
    const OPERATOR: &str = "operator-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let config = project(
        dir.path(),
        &format!(
            "[server.auth]\ntokens = [\n  {{ name = \"grafana\", token = \"{READER}\", role = \"reader\" }},\n  {{ name = \"ops\", token = \"{OPERATOR}\", role = \"operator\" }},\n]\n"
        ),
    );
    let weir = Weir::open(Project::load(&config).unwrap()).unwrap();
    weir.start(Vec::new()).unwrap();
    let listen = weir_server::listen::Listen {
        http: "127.0.0.1:0".into(),
        pg: None,
        insecure: false,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = weir_server::listen::start(weir.clone(), &listen, async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    let base = format!("http://{}", served.http);
    tokio::task::spawn_blocking(move || {
        let url = |p: &str| format!("{base}{p}");
        let schema = register_body(&avro_user(json!([])));
        assert_eq!(call("GET", &url("/subjects"), None, None).0, 401);
        assert_eq!(call("GET", &url("/subjects"), None, Some(READER)).0, 200);
        let (code, _, body) = call(
            "POST",
            &url("/subjects/users-value/versions"),
            Some(&schema),
            Some(READER),
        );
        assert_eq!(code, 403, "{body}");
        assert_eq!(
            call(
                "POST",
                &url("/subjects/users-value/versions"),
                Some(&schema),
                Some(OPERATOR)
            )
            .0,
            200
        );
        // Lookups and compatibility checks only read.
        assert_eq!(
            call(
                "POST",
                &url("/subjects/users-value"),
                Some(&schema),
                Some(READER)
            )
            .0,
            200
        );
        assert_eq!(
            call(
                "POST",
                &url("/compatibility/subjects/users-value/versions/latest"),
                Some(&schema),
                Some(READER)
            )
            .0,
            200
        );
        assert_eq!(
            call("GET", &url("/schemas/ids/1"), None, Some(READER)).0,
            200
        );
        for (method, path, body) in [
            ("PUT", "/config", Some(json!({"compatibility": "NONE"}))),
            (
                "PUT",
                "/config/users-value",
                Some(json!({"compatibility": "NONE"})),
            ),
            ("DELETE", "/subjects/users-value", None),
            ("DELETE", "/subjects/users-value/versions/1", None),
        ] {
            assert_eq!(
                call(method, &url(path), body.as_ref(), Some(READER)).0,
                403,
                "{method} {path}"
            );
        }
        assert_eq!(
            call(
                "DELETE",
                &url("/subjects/users-value"),
                None,
                Some(OPERATOR)
            )
            .0,
            200
        );
    })
    .await
    .unwrap();
    let _ = tx.send(());
    weir.stop();
    weir.join();
}

/// A `rest` source with `schema = "..."`: every polled record is checked, the failing ones go
/// to the dead-letter queue with the path and the reason, the others to silver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_source_records_are_checked_against_their_subject() {
    // A JSON API on loopback: one page of three users, one with an age that is not a number.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = json!({"results": [
                {"id": 1, "name": "ada", "age": 36},
                {"id": 2, "name": "bob", "age": "old"},
                {"id": 3, "name": "cy", "age": 41},
            ]})
            .to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(
        dir.path().join("sql/silver_users.sql"),
        "SELECT id, name, age FROM users\n",
    )
    .unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"[project]
name = "rest_schema"
data_dir = "data"

[pipeline]
interval = "20ms"

[sources.users]
type = "rest"
url = "http://{addr}/api"
every = "1h"
records = "$.results"
schema = "users-value"

[tables.silver_users]
from = "users"
sql = "sql/silver_users.sql"
schema = "id bigint, name string, age bigint"
"#
        ),
    )
    .unwrap();
    let weir = Weir::open(Project::load(&config).unwrap()).unwrap();
    weir.schemas()
        .register(
            "users-value",
            weir_connectors::schema::SchemaType::Json,
            r#"{"type": "object", "required": ["id", "name", "age"],
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                               "age": {"type": "integer"}}}"#,
        )
        .unwrap();
    weir.start(Vec::new()).unwrap();
    let start = Instant::now();
    while dead_letters(&weir).is_empty() || topic_values(&weir, "users").len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            weir.status_json()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dl = dead_letters(&weir);
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(dl[0].source, "users");
    assert_eq!(dl[0].reason, "schema_mismatch");
    assert!(
        dl[0].detail.contains("$.age") && dl[0].detail.contains("users-value"),
        "{}",
        dl[0].detail
    );
    assert!(dl[0].raw.contains("\"old\""), "{}", dl[0].raw);
    wait_caught_up(&weir, Duration::from_secs(60));
    assert_eq!(
        rows(&config, "SELECT name FROM silver_users ORDER BY id").await,
        vec![vec!["ada".to_string()], vec!["cy".to_string()]]
    );
    weir.stop();
    weir.join();
}
