//! Embeds the dashboard: lists every file under `ui/dist` (built by `npm run build` in `ui/`
//! and committed) into `$OUT_DIR/ui_assets.rs`, a table of `include_bytes!` entries that
//! `src/ui.rs` serves. A build without `ui/dist` gets an empty table and a warning; the server
//! then answers `/` with a note saying the dashboard was not built in.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// FNV-1a, for an ETag that changes when the bytes do.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() -> std::io::Result<()> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = manifest.join("ui").join("dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut found = Vec::new();
    if dist.join("index.html").is_file() {
        files(&dist, &mut found)?;
    } else {
        println!(
            "cargo:warning=ui/dist/index.html is missing: the dashboard is not embedded (run `npm ci && npm run build` in crates/weir-server/ui)"
        );
    }
    found.sort();
    let mut code = String::from("pub(crate) static ASSETS: &[Asset] = &[\n");
    for path in &found {
        let rel = path
            .strip_prefix(&dist)
            .expect("listed under dist")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let bytes = std::fs::read(path)?;
        writeln!(
            code,
            "    Asset {{ path: {rel:?}, bytes: include_bytes!({:?}), etag: \"\\\"{:016x}\\\"\" }},",
            path.display().to_string(),
            fnv(&bytes)
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("ui_assets.rs");
    std::fs::write(out, code)
}
