//! The command line as users run it: init, validate, ingest without a server, run until idle,
//! query (table, CSV, JSON, time travel) and status.

mod common;

use common::harness::ok;

use std::path::Path;
use std::process::{Command, Output};

fn weir(args: &[&str], config: &Path) -> Output {
    common::harness::weir_cli(args, config)
}

#[test]
fn init_validate_ingest_run_query() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let config = dir.join("weir.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    ok(&o);
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success(), "init must not overwrite a project");
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds a weir.toml"));

    // -c after the subcommand, and before it
    let out = ok(&weir(&["validate"], &config));
    assert!(
        out.contains("ok (1 sources, 2 streaming tables, 1 batch tables, 3 DAGs)"),
        "{out}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("-c")
        .arg(&config)
        .arg("validate")
        .output()
        .unwrap();
    ok(&o);

    // the server is not running: ingest appends to the log directly
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("127.0.0.1:8080", "127.0.0.1:0"),
    )
    .unwrap();
    let lines = common::harness::generate(130_000, 5);
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = ok(&weir(
        &["ingest", "events", input.to_str().unwrap()],
        &config,
    ));
    assert!(out.contains("\"accepted\":130000"), "{out}");

    let status = ok(&weir(&["status"], &config));
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["sources"]["events"]["lag"], 130_000, "{status}");

    ok(&weir(
        &[
            "run",
            "--exit-when-idle",
            "--listen",
            "127.0.0.1:0",
            "--pg-listen",
            "127.0.0.1:0",
        ],
        &config,
    ));
    let status = ok(&weir(&["status"], &config));
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["sources"]["events"]["lag"], 0, "{status}");

    let csv = ok(&weir(
        &[
            "query",
            "SELECT reason, count(*) AS n FROM silver_events_quarantine GROUP BY reason ORDER BY reason",
            "--format",
            "csv",
        ],
        &config,
    ));
    let mut it = csv.lines();
    assert_eq!(it.next(), Some("reason,n"));
    assert_eq!(it.count(), 5, "{csv}");

    let json = ok(&weir(
        &[
            "query",
            "SELECT count(*) AS n FROM gold_customer_daily",
            "--format",
            "json",
        ],
        &config,
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v[0]["n"].as_i64().unwrap() > 1000, "{json}");

    let table = ok(&weir(
        &["query", "SELECT count(*) AS n FROM silver_events"],
        &config,
    ));
    assert!(table.contains("| n "), "{table}");

    // time travel: version 0 is the empty table created before the first batch
    let v0 = ok(&weir(
        &[
            "query",
            "SELECT count(*) AS n FROM \"silver_events@v0\"",
            "--format",
            "csv",
        ],
        &config,
    ));
    assert_eq!(v0.lines().nth(1), Some("0"), "{v0}");
    let v1 = ok(&weir(
        &[
            "query",
            "SELECT count(*) AS n FROM \"silver_events@v1\"",
            "--format",
            "csv",
        ],
        &config,
    ));
    let n1: i64 = v1.lines().nth(1).unwrap().parse().unwrap();
    assert!(n1 > 0, "{v1}");
    let o = weir(&["query", "SELECT * FROM \"silver_events@v999\""], &config);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no version 999"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = weir(&["query", "SELECT nope FROM silver_events"], &config);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
}

#[test]
fn validate_reports_sql_errors_with_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    ok(&Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap());
    let sql = dir.join("sql/gold_category_minute.sql");
    std::fs::write(
        &sql,
        std::fs::read_to_string(&sql)
            .unwrap()
            .replace("product_category,\n  count", "product_categry,\n  count"),
    )
    .unwrap();
    let o = weir(&["validate"], &dir.join("weir.toml"));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("gold_category_minute") && err.contains("product_categry"),
        "{err}"
    );

    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "-c", "/nonexistent/weir.toml"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/weir.toml"));
}

/// Every example project under `examples/` validates as shipped, with none of the variables
/// it reads set (their defaults apply), and as `weir init --example` writes it.
#[test]
fn every_example_validates() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = Vec::new();
    for e in std::fs::read_dir(&examples).unwrap() {
        let dir = e.unwrap().path();
        let config = dir.join("weir.toml");
        if !config.exists() {
            continue;
        }
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["validate", "-c"])
            .arg(&config)
            .env_remove("WEIR_PG_URL")
            .env_remove("WEIR_MQTT_URL")
            .env_remove("WEIR_USERS_API")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "examples/{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        seen.push(name.clone());
        if !["shop", "users", "iot"].contains(&name.as_str()) {
            continue;
        }
        // The copy `weir init --example` writes is the same project.
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join(&name);
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["init", "--example", &name])
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "weir init --example {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = weir(&["validate"], &target.join("weir.toml"));
        assert!(
            out.status.success(),
            "weir init --example {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for e in ["iot", "shop", "users"] {
        assert!(seen.iter().any(|s| s == e), "examples/{e} is missing");
    }
}
