//! The workspace's dependency direction: core ← {log, lake, connectors} ← sql ← orchestrator
//! ← server ← weir. A crate may only depend on crates of a lower layer.

use std::collections::BTreeMap;
use std::process::Command;

fn layer(name: &str) -> Option<u32> {
    Some(match name {
        "weir-core" => 0,
        "weir-log" | "weir-lake" => 1,
        "weir-connectors" => 2,
        "weir-sql" => 2,
        "weir-orchestrator" => 3,
        "weir-server" => 4,
        "weir" => 5,
        _ => return None,
    })
}

#[test]
fn dependencies_point_down() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut edges = BTreeMap::new();
    for p in v["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let from =
            layer(name).unwrap_or_else(|| panic!("crate {name} has no layer; add it to this test"));
        for d in p["dependencies"].as_array().unwrap() {
            if d["kind"].is_string() {
                continue; // dev and build dependencies may point anywhere
            }
            let dep = d["name"].as_str().unwrap();
            if let Some(to) = layer(dep) {
                assert!(
                    to < from,
                    "{name} (layer {from}) depends on {dep} (layer {to}): dependencies must point down"
                );
                edges.insert((name.to_owned(), dep.to_owned()), ());
            }
        }
    }
    assert!(edges.contains_key(&("weir-sql".to_owned(), "weir-lake".to_owned())));
}
