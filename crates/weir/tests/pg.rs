//! The PostgreSQL wire endpoint with real clients: `psql` (`\dt`, `\d silver_events`, a
//! `GROUP BY`, errors) and Python's psycopg (parameterised queries through the extended
//! protocol, text and binary results) and pgjdbc (the JDBC driver of DBeaver and Metabase:
//! schemas, tables, columns, a prepared statement). The clients come from the environment:
//! `WEIR_TEST_PSQL` (the psql binary, apt postgresql-client) and `WEIR_TEST_PYTHON` (a Python
//! with psycopg installed) and `WEIR_TEST_PGJDBC` (the pgjdbc jar); `.ci/run` sets them.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::harness::*;
use weir_orchestrator::config::{AuthConfig, Role, TokenConfig};
use weir_orchestrator::{Project, Weir};

/// A shop project with 20 000 events through the pipeline, served over pg on a free port.
async fn served(
    dir: &Path,
    auth: Option<AuthConfig>,
) -> (
    std::path::PathBuf,
    Arc<Weir>,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
) {
    let config = shop_project(dir, small_batches);
    run_in_process(&config, &generate(20_000, 11));
    let weir = Weir::open(Project::load(&config).unwrap()).unwrap();
    let auth = auth.map(|a| Arc::new(weir_server::auth::Auth::from_config(&a).unwrap()));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let addr = weir_server::pg::serve(weir.clone(), auth, "127.0.0.1:0", async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    (config, weir, addr, tx)
}

fn tool(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!("{var} is not set: skipping (set by .ci/run)");
            None
        }
    }
}

/// Runs psql's `-c` commands in one session; returns (success, stdout, stderr).
fn psql(bin: &str, addr: std::net::SocketAddr, commands: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(bin);
    cmd.args(["-X", "-A", "-F", "|", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-U", "analyst", "-d", "shop"]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    let out = cmd.env_remove("PGPASSWORD").output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_describes_and_aggregates() {
    let Some(bin) = tool("WEIR_TEST_PSQL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (config, _weir, addr, _stop) = served(dir.path(), None).await;

    let (ok, out, err) = psql(&bin, addr, &["\\dt"]);
    assert!(ok, "\\dt failed: {err}\n{out}");
    for t in ["bronze_events", "silver_events", "gold_category_minute"] {
        assert!(
            out.lines().any(|l| l == format!("public|{t}|table|weir")),
            "\\dt does not list {t}:\n{out}"
        );
    }

    let (ok, out, err) = psql(&bin, addr, &["\\d silver_events"]);
    assert!(ok, "\\d failed: {err}\n{out}");
    assert!(
        out.contains("Table \"public.silver_events\""),
        "no title in:\n{out}"
    );
    for (col, ty) in [
        ("event_id", "text"),
        ("ts", "timestamp"),
        ("amount", "double precision"),
        ("quantity", "bigint"),
        ("date", "date"),
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{col}|{ty}"))),
            "\\d silver_events lacks `{col}` as {ty}:\n{out}"
        );
    }

    let sql = "SELECT product_category, count(*) AS n, round(sum(amount), 2) AS revenue \
               FROM silver_events WHERE event_type = 'purchase' \
               GROUP BY product_category ORDER BY product_category";
    let (ok, out, err) = psql(&bin, addr, &[sql]);
    assert!(ok, "GROUP BY failed: {err}");
    let expected = rows(&config, sql).await;
    assert!(!expected.is_empty());
    let got: Vec<Vec<String>> = out
        .lines()
        .skip(1) // header
        .filter(|l| !l.starts_with('('))
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect();
    assert_eq!(got, expected, "psql rows differ from weir query's");

    let (ok, _, err) = psql(&bin, addr, &["SELECT * FROM no_such_table"]);
    assert!(!ok);
    assert!(err.contains("no_such_table"), "unhelpful error: {err}");
    let (ok, _, err) = psql(&bin, addr, &["DELETE FROM silver_events"]);
    assert!(!ok);
    assert!(err.contains("read-only"), "unhelpful error: {err}");
    let (ok, out, err) = psql(&bin, addr, &["\\l", "\\dn"]);
    assert!(ok, "\\l failed: {err}");
    assert!(
        out.lines().any(|l| l.starts_with("shop|weir|UTF8")),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "public|weir"), "{out}");
    // Result columns are named as PostgreSQL names them.
    let (ok, out, _) = psql(
        &bin,
        addr,
        &["SELECT count(*), max(quantity) FROM silver_events"],
    );
    assert!(ok && out.starts_with("count|max\n"), "{out}");
    let (ok, out, _) = psql(&bin, addr, &["SHOW server_version", "SELECT version()"]);
    assert!(ok && out.contains("weir"), "{out}");
}

const PSYCOPG: &str = r#"
import sys, json, datetime
import psycopg
host, port, password = sys.argv[1], sys.argv[2], sys.argv[3] or None
out = {}
with psycopg.connect(host=host, port=int(port), user="bi", dbname="shop", password=password) as conn:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM silver_events WHERE product_category = %s AND quantity >= %s",
            ("books", 2),
        )
        out["count"] = cur.fetchone()[0]
        # The same statement prepared on the server and run again with other values.
        q = "SELECT event_id, ts, amount, quantity, date FROM silver_events WHERE customer_id = %s ORDER BY event_id LIMIT %s"
        cur.execute("SELECT customer_id FROM silver_events ORDER BY customer_id LIMIT 1")
        cust = cur.fetchone()[0]
        first = None
        for _ in range(6):
            cur.execute(q, (cust, 3), prepare=True)
            rows = cur.fetchall()
            first = first or rows
            assert rows == first
        out["customer"] = cust
        out["rows"] = [[r[0], r[1].isoformat(), r[2], r[3], r[4].isoformat()] for r in rows]
        out["types"] = [type(v).__name__ for v in rows[0]]
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT count(*) AS n, max(ts) AS latest, avg(amount) AS a FROM silver_events WHERE event_type = %s", ("purchase",))
        n, latest, a = cur.fetchone()
        out["binary"] = [n, latest.isoformat(), round(a, 6)]
    try:
        conn.execute("SELECT * FROM silver_events WHERE nope = %s", (1,))
        out["error"] = None
    except psycopg.Error as e:
        out["error"] = [e.sqlstate, str(e)]
print(json.dumps(out))
"#;

fn psycopg(py: &str, addr: std::net::SocketAddr, password: &str) -> std::process::Output {
    Command::new(py)
        .args(["-c", PSYCOPG])
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(password)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_runs_parameterised_queries() {
    let Some(py) = tool("WEIR_TEST_PYTHON") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (config, _weir, addr, _stop) = served(dir.path(), None).await;
    let out = psycopg(&py, addr, "");
    assert!(
        out.status.success(),
        "psycopg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let expected = rows(
        &config,
        "SELECT count(*) FROM silver_events WHERE product_category = 'books' AND quantity >= 2",
    )
    .await;
    assert_eq!(v["count"].as_i64().unwrap().to_string(), expected[0][0]);
    assert!(v["count"].as_i64().unwrap() > 0);

    let cust = v["customer"].as_str().unwrap();
    let expected = rows(
        &config,
        &format!(
            "SELECT event_id, amount, quantity FROM silver_events WHERE customer_id = '{cust}' \
             ORDER BY event_id LIMIT 3"
        ),
    )
    .await;
    let got = v["rows"].as_array().unwrap();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g[0].as_str().unwrap(), e[0]);
        assert_eq!(g[2].as_f64().unwrap(), e[1].parse::<f64>().unwrap());
        assert_eq!(g[3].as_i64().unwrap().to_string(), e[2]);
    }
    assert_eq!(
        v["types"],
        serde_json::json!(["str", "datetime", "float", "int", "date"])
    );

    let expected = rows(
        &config,
        "SELECT count(*), avg(amount) FROM silver_events WHERE event_type = 'purchase'",
    )
    .await;
    assert_eq!(v["binary"][0].as_i64().unwrap().to_string(), expected[0][0]);
    let avg: f64 = expected[0][1].parse().unwrap();
    assert!((v["binary"][2].as_f64().unwrap() - avg).abs() < 1e-6);

    let err = &v["error"];
    assert_eq!(err[0], "42703", "{err}");
    assert!(err[1].as_str().unwrap().contains("nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_the_password_must_be_a_token() {
    let Some(py) = tool("WEIR_TEST_PYTHON") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = "reader-token-0123456789abcdef";
    let auth = AuthConfig {
        tokens: vec![TokenConfig {
            name: "bi".into(),
            token: Some(token.into()),
            token_env: None,
            role: Role::Reader,
        }],
    };
    let (_config, _weir, addr, _stop) = served(dir.path(), Some(auth)).await;
    let refused = psycopg(&py, addr, "wrong-token-0123456789");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.to_lowercase()
            .contains("password authentication failed"),
        "{err}"
    );
    let refused = psycopg(&py, addr, "");
    assert!(!refused.status.success());
    let accepted = psycopg(&py, addr, token);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jdbc_lists_schemas_tables_and_columns() {
    let Some(jar) = tool("WEIR_TEST_PGJDBC") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (config, _weir, addr, _stop) = served(dir.path(), None).await;
    let check = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jdbc/Check.java");
    let out = Command::new("java")
        .arg("-cp")
        .arg(&jar)
        .arg(&check)
        .arg(addr.port().to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"schema public"), "{text}");
    for t in ["bronze_events", "silver_events", "gold_category_minute"] {
        assert!(
            lines.contains(&format!("table {t} TABLE").as_str()),
            "{text}"
        );
    }
    for c in [
        "event_id text",
        "ts timestamptz",
        "amount float8",
        "quantity int8",
        "date date",
    ] {
        assert!(lines.contains(&format!("column {c}").as_str()), "{text}");
    }
    let expected = rows(
        &config,
        "SELECT count(*) FROM silver_events WHERE product_category = 'books'",
    )
    .await;
    assert!(
        lines.contains(&format!("count {}", expected[0][0]).as_str()),
        "{text}"
    );
}
