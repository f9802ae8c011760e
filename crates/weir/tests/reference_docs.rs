//! docs/reference/cli.md is generated from `weir --help`; this test regenerates it and fails
//! on drift. Run with `WEIR_UPDATE_DOCS=1` to rewrite the file.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cli_reference_is_up_to_date() {
    let mut doc = String::from(
        "# weir command line\n\nGenerated from `weir --help` by `crates/weir/tests/reference_docs.rs`; do not edit.\n\n",
    );
    for cmd in [
        vec![],
        vec!["init"],
        vec!["validate"],
        vec!["run"],
        vec!["demo"],
        vec!["query"],
        vec!["ingest"],
        vec!["status"],
        vec!["bench", "shop"],
        vec!["bench", "dag"],
        vec!["bench", "postgres"],
        vec!["bench", "cdc"],
        vec!["bench", "serve"],
        vec!["dag"],
        vec!["dag", "list"],
        vec!["dag", "show"],
        vec!["dag", "trigger"],
        vec!["dag", "backfill"],
        vec!["dag", "runs"],
        vec!["dag", "logs"],
        vec!["dag", "clear"],
        vec!["dlq"],
        vec!["dlq", "list"],
        vec!["dlq", "show"],
        vec!["dlq", "replay"],
    ] {
        let title = if cmd.is_empty() {
            "weir".to_string()
        } else {
            format!("weir {}", cmd.join(" "))
        };
        doc.push_str(&format!("## {title}\n\n```\n{}```\n\n", help(&cmd)));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference/cli.md");
    if std::env::var("WEIR_UPDATE_DOCS").is_ok() {
        std::fs::write(&path, &doc).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == doc,
        "docs/reference/cli.md is out of date: run `WEIR_UPDATE_DOCS=1 cargo test --workspace --test reference_docs`"
    );
}
