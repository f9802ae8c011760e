//! `weir.toml` validation: every error names the file, the key and what was expected.

use std::path::{Path, PathBuf};

use weir_orchestrator::Project;

fn project(dir: &Path, toml: &str, sql: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    for (name, text) in sql {
        std::fs::write(dir.join("sql").join(name), text).unwrap();
    }
    let p = dir.join("weir.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

const BASE: &str = r#"
[sources.events]
type = "http"

[tables.clean]
from = "events"
sql = "sql/clean.sql"
schema = "id string, ts timestamp, amount double"
"#;

fn load_err(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = project(
        dir.path(),
        toml,
        &[
            ("clean.sql", "SELECT * FROM events"),
            ("agg.sql", "SELECT 1"),
        ],
    );
    Project::load(&p).unwrap_err().to_string()
}

#[test]
fn a_valid_project_loads() {
    let dir = tempfile::tempdir().unwrap();
    let p = project(dir.path(), BASE, &[("clean.sql", "SELECT * FROM events")]);
    let project = Project::load(&p).unwrap();
    assert_eq!(project.stream_order().unwrap(), vec!["clean".to_string()]);
    assert_eq!(project.data_dir(), dir.path().join("data"));
}

#[test]
fn unknown_keys_are_errors_naming_them() {
    let e = load_err(&format!("{BASE}\n[pipeline]\nmax_batch = 5\n"));
    assert!(e.contains("weir.toml"), "{e}");
    assert!(e.contains("unknown field `max_batch`"), "{e}");
    assert!(
        e.contains("max_batch_records"),
        "should list the expected keys: {e}"
    );
    let e = load_err(&BASE.replace("type = \"http\"", "type = \"http\"\nport = 9"));
    assert!(e.contains("unknown field `port`"), "{e}");
    let e = load_err(&BASE.replace("type = \"http\"", "type = \"carrier_pigeon\""));
    assert!(e.contains("carrier_pigeon"), "{e}");
}

#[test]
fn cross_field_errors_name_the_key() {
    let e = load_err(&BASE.replace("from = \"events\"", "from = \"nowhere\""));
    assert!(e.contains("tables.clean.from"), "{e}");
    assert!(
        e.contains("`nowhere` is neither a source nor a table"),
        "{e}"
    );

    let e = load_err(&BASE.replace(
        "schema = \"id string, ts timestamp, amount double\"",
        "schema = \"id string, ts datetime\"",
    ));
    assert!(e.contains("tables.clean.schema"), "{e}");
    assert!(e.contains("unknown type `datetime`"), "{e}");

    let e = load_err(&BASE.replace("schema = \"id string, ts timestamp, amount double\"\n", ""));
    assert!(e.contains("tables.clean.schema"), "{e}");

    let e = load_err(&format!(
        "{BASE}dedup = {{ key = \"id\", within = \"10 minutes\" }}\n"
    ));
    assert!(e.contains("unknown unit"), "{e}");

    let e = load_err(&format!(
        "{BASE}dedup = {{ key = \"id\", within = \"10m\" }}\n"
    ));
    assert!(e.contains("tables.clean.event_time"), "{e}");

    let e = load_err(&format!(
        "{BASE}\n[tables.clean_late]\nfrom = \"clean\"\nsql = \"sql/agg.sql\"\n"
    ));
    assert!(e.contains("reserved"), "{e}");

    let e = load_err(&format!(
        "{BASE}\n[tables.a]\nfrom = \"b\"\nsql = \"sql/agg.sql\"\n[tables.b]\nfrom = \"a\"\nsql = \"sql/agg.sql\"\n"
    ));
    assert!(e.contains("cycle"), "{e}");

    let e = load_err(&format!(
        "{BASE}\n[tables.x]\nfrom = \"clean\"\nsql = \"sql/missing.sql\"\n"
    ));
    assert!(
        e.contains("tables.x.sql") && e.contains("missing.sql"),
        "{e}"
    );
}

#[test]
fn lake_settings_are_checked_naming_the_key() {
    // Loading does not contact the server.
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[project]\nlake = \"s3://weir-lake/shop\"\n{BASE}\n[lake.s3]\nendpoint = \"http://127.0.0.1:9\"\nallow_http = true\n"
    );
    let p = project(dir.path(), &toml, &[("clean.sql", "SELECT * FROM events")]);
    let project = Project::load(&p).unwrap();
    assert_eq!(
        project.config.project.lake.as_deref(),
        Some("s3://weir-lake/shop")
    );

    let with =
        |lake: &str, s3: &str| load_err(&format!("[project]\nlake = \"{lake}\"\n{BASE}{s3}"));
    let e = with("s3:///shop", "");
    assert!(
        e.contains("project.lake") && e.contains("names no bucket"),
        "{e}"
    );
    let e = with("/var/lake", "");
    assert!(
        e.contains("project.lake") && e.contains("s3://bucket/prefix"),
        "{e}"
    );
    let e = with("s3://weir-lake/a//b", "");
    assert!(e.contains("project.lake") && e.contains("empty"), "{e}");
    let e = with(
        "s3://weir-lake/shop",
        "\n[lake.s3]\nendpoint = \"http://127.0.0.1:9\"\n",
    );
    assert!(e.contains("lake.s3.allow_http"), "{e}");
    let e = with(
        "s3://weir-lake/shop",
        "\n[lake.s3]\nsecret_access_key = \"s\"\n",
    );
    assert!(e.contains("lake.s3.access_key_id"), "{e}");
    let e = with("s3://weir-lake/shop", "\n[lake.s3]\nbucket = \"x\"\n");
    assert!(e.contains("unknown field `bucket`"), "{e}");
    let e = load_err(&format!("{BASE}\n[lake.s3]\nregion = \"eu-west-1\"\n"));
    assert!(e.contains("lake.s3") && e.contains("[project]"), "{e}");
}

#[test]
fn environment_variables_are_substituted() {
    let dir = tempfile::tempdir().unwrap();
    let toml = BASE.replace(
        "[sources.events]",
        "[project]\nname = \"${WEIR_TEST_PROJECT_NAME_FOR_CONFIG}\"\n\n[sources.events]",
    );
    let p = project(dir.path(), &toml, &[("clean.sql", "SELECT * FROM events")]);
    let e = Project::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("WEIR_TEST_PROJECT_NAME_FOR_CONFIG") && e.contains("not set"),
        "{e}"
    );
    assert!(e.contains("line 3"), "{e}");

    // a variable that is set is substituted; `$${` stays a literal `${`
    let toml = BASE.replace(
        "[sources.events]",
        "[project]\nname = \"${PATH}-$${x}\"\n\n[sources.events]",
    );
    let p = project(dir.path(), &toml, &[("clean.sql", "SELECT * FROM events")]);
    let loaded = Project::load(&p).unwrap();
    assert_eq!(
        loaded.config.project.name,
        format!("{}-${{x}}", std::env::var("PATH").unwrap())
    );
}

#[test]
fn dag_errors_name_the_dag_task_and_key() {
    let dag = |body: &str| load_err(&format!("{BASE}\n[dags.nightly]\n{body}"));
    let e = dag("schedule = \"0 25 * * *\"\n[[dags.nightly.tasks]]\nid = \"a\"\nnoop = true\n");
    assert!(
        e.contains("dags.nightly.schedule") && e.contains("0 25 * * *"),
        "{e}"
    );
    let e = dag("timezone = \"Mars/Base\"\n[[dags.nightly.tasks]]\nid = \"a\"\nnoop = true\n");
    assert!(
        e.contains("dags.nightly.timezone") && e.contains("IANA"),
        "{e}"
    );
    let e = dag("catchup = true\n[[dags.nightly.tasks]]\nid = \"a\"\nnoop = true\n");
    assert!(e.contains("dags.nightly.start"), "{e}");
    let e = dag("[[dags.nightly.tasks]]\nid = \"a\"\nafter = [\"b\"]\nnoop = true\n");
    assert!(
        e.contains("dags.nightly.tasks[0].after") && e.contains("`b`"),
        "{e}"
    );
    let e = dag(
        "[[dags.nightly.tasks]]\nid = \"a\"\nafter = [\"b\"]\nnoop = true\n[[dags.nightly.tasks]]\nid = \"b\"\nafter = [\"a\"]\nnoop = true\n",
    );
    assert!(e.contains("cycle"), "{e}");
    let e = dag("[[dags.nightly.tasks]]\nid = \"a\"\nbuild = \"clean\"\n");
    assert!(
        e.contains("dags.nightly.tasks[0].build") && e.contains("streaming"),
        "{e}"
    );
    let e = dag("[[dags.nightly.tasks]]\nid = \"a\"\nnoop = true\nshell = \"true\"\n");
    assert!(e.contains("shell and noop"), "{e}");
    let e = dag("[[dags.nightly.tasks]]\nid = \"a\"\n");
    assert!(e.contains("expected one of build, sql"), "{e}");
    let e = dag("[[dags.nightly.tasks]]\nid = \"a\"\nnoop = true\nretrys = 3\n");
    assert!(e.contains("retrys"), "{e}");
    let e = load_err(&format!(
        "{BASE}\n[[tables.clean.checks]]\ntype = \"row_count\"\n"
    ));
    assert!(
        e.contains("tables.clean.checks[0]") && e.contains("min"),
        "{e}"
    );
    let e = load_err(&format!(
        "{BASE}\n[[alerts.rules]]\nname = \"x\"\nmetric = \"lagg\"\nabove = 1\n"
    ));
    assert!(
        e.contains("alerts.rules[0]") && e.contains("lag_records"),
        "{e}"
    );
}
