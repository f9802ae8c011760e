//! The web dashboard served by weir: the embedded bundle with its content types and cache
//! headers, and — when `WEIR_TEST_CHROMIUM` names a Chromium binary (`.ci/run` installs
//! Debian's) — the page itself in headless Chromium while the shop pipeline runs: the
//! pipeline graph shows the shop's tables, the live throughput chart draws samples, a query
//! typed into the SQL box shows its rows, a DAG run is triggered from the page, and every view
//! is captured as a screenshot under `<target dir>/test-artifacts/dashboard` (or
//! `WEIR_TEST_ARTIFACTS`). That project has `[server.auth]`, so the page first asks for a
//! token.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::harness::*;
use weir_orchestrator::{Project, Weir};

/// The operator token of the browser test's project.
const TOKEN: &str = "dashboard-test-operator-token";

/// GET `url` without treating 4xx/5xx as an error: (status, headers by lowercase name, body).
fn get(url: &str, etag: Option<&str>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req = ureq::get(url);
    if let Some(e) = etag {
        req = req.set("If-None-Match", e);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or_default().to_owned();
            (n.to_ascii_lowercase(), v)
        })
        .collect();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    (status, headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_bundle_is_served_with_types_and_cache_headers() {
    let dir = tempfile::tempdir().unwrap();
    let config = shop_project(dir.path(), small_batches);
    let (weir, addr, tx) = serve_in_process(&config).await;
    let base = format!("http://{addr}");
    tokio::task::spawn_blocking(move || {
        let (status, h, body) = get(&format!("{base}/"), None);
        assert_eq!(status, 200);
        assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&h, "cache-control"), "no-cache");
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains("<div id=\"app\">"), "{html}");
        // Revalidation of the page answers 304 while it is unchanged.
        let etag = header(&h, "etag").to_owned();
        let (status, _, body) = get(&format!("{base}/"), Some(&etag));
        assert_eq!(status, 304);
        assert!(body.is_empty());

        let assets: Vec<&str> = html
            .split("\"/assets/")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect();
        assert!(assets.iter().any(|a| a.ends_with(".js")), "{html}");
        assert!(assets.iter().any(|a| a.ends_with(".css")), "{html}");
        for a in assets {
            let (status, h, body) = get(&format!("{base}/assets/{a}"), None);
            assert_eq!(status, 200, "{a}");
            let want = if a.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else {
                "text/css; charset=utf-8"
            };
            assert_eq!(header(&h, "content-type"), want, "{a}");
            assert_eq!(
                header(&h, "cache-control"),
                "public, max-age=31536000, immutable"
            );
            assert!(body.len() > 1000, "{a} is {} bytes", body.len());
        }

        // Unknown assets and unknown API paths are JSON errors.
        for path in ["/assets/nope-123.js", "/v1/no-such-thing"] {
            let (status, h, body) = get(&format!("{base}{path}"), None);
            assert_eq!(status, 404, "{path}");
            assert!(header(&h, "content-type").starts_with("application/json"));
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["kind"], "user", "{v}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        }
    })
    .await
    .unwrap();
    let _ = tx.send(());
    weir.stop();
    tokio::task::spawn_blocking(move || weir.join())
        .await
        .unwrap();
}

/// Where the screenshots go: `WEIR_TEST_ARTIFACTS`, else `test-artifacts/dashboard` in the
/// cargo target directory this test was built into.
fn artifacts_dir() -> PathBuf {
    if let Ok(d) = std::env::var("WEIR_TEST_ARTIFACTS") {
        return PathBuf::from(d).join("dashboard");
    }
    // <target>/debug/deps/dashboard-<hash>
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    target.join("test-artifacts").join("dashboard")
}

/// `npm ci` in the driver's folder when its node_modules is missing.
fn install_driver(dir: &Path) {
    if dir.join("node_modules").join("playwright-core").is_dir() {
        return;
    }
    let out = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .expect("npm must be installed to run the dashboard test");
    assert!(
        out.status.success(),
        "npm ci in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let Ok(chromium) = std::env::var("WEIR_TEST_CHROMIUM") else {
        eprintln!(
            "SKIPPED: dashboard_in_headless_chromium (set WEIR_TEST_CHROMIUM to a Chromium binary, e.g. /usr/bin/chromium)"
        );
        return;
    };
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard");
    install_driver(&driver);

    let dir = tempfile::tempdir().unwrap();
    let config = shop_project(dir.path(), |t| {
        small_batches(t).replace(
            "[server]\n",
            &format!(
                "[server.auth]\ntokens = [{{ name = \"ops\", token = \"{TOKEN}\", role = \"operator\" }}]\n\n[server]\n"
            ),
        )
    });
    let weir = Weir::open(Project::load(&config).unwrap()).unwrap();
    weir.start(Vec::new()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let listen = weir_server::listen::Listen {
        http: "127.0.0.1:0".into(),
        pg: None,
        insecure: false,
    };
    let addr = weir_server::listen::start(weir.clone(), &listen, async move {
        let _ = rx.await;
    })
    .await
    .unwrap()
    .http;
    let lines = generate(120_000, 11);
    let (first, rest) = lines.split_at(20_000);
    let w = weir.clone();
    let first = first.to_vec();
    tokio::task::spawn_blocking(move || {
        ingest_lines(&w, &first, 5000);
        wait_caught_up(&w, Duration::from_secs(120));
    })
    .await
    .unwrap();
    let silver_before = weir.status_json()["tables"]["silver_events"]["rows_out"]
        .as_u64()
        .unwrap();
    assert!(silver_before > 0);

    // Events keep arriving while the browser watches (about 10 000 a second, bounded).
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (w, stop, rest) = (weir.clone(), stop.clone(), rest.to_vec());
        std::thread::spawn(move || {
            for chunk in rest.chunks(1000) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                ingest_lines(&w, chunk, 1000);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let shots = artifacts_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let url = format!("http://{addr}/");
    let out = tokio::task::spawn_blocking({
        let (driver, shots) = (driver.clone(), shots.clone());
        move || {
            std::process::Command::new("node")
                .arg(driver.join("check.mjs"))
                .arg(&url)
                .arg(&shots)
                .env("WEIR_TEST_CHROMIUM", &chromium)
                .env("WEIR_TEST_TOKEN", TOKEN)
                .output()
                .expect("node must be installed to run the dashboard test")
        }
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no RESULT from check.mjs ({}):\n{stdout}\n{stderr}",
                out.status
            )
        });
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    eprintln!("screenshots in {}:", shots.display());
    for s in r["screenshots"].as_array().into_iter().flatten() {
        eprintln!("  {}", s.as_str().unwrap_or_default());
    }
    for (view, notes) in r["notAvailable"].as_object().into_iter().flatten() {
        for n in notes.as_array().into_iter().flatten() {
            eprintln!("  note on {view}: {}", n.as_str().unwrap_or_default());
        }
    }
    assert!(
        r["failure"].is_null(),
        "the browser check failed: {}\n{r:#}",
        r["failure"]
    );
    assert_eq!(r["pageErrors"], serde_json::json!([]), "{r:#}");
    assert!(
        r["tokenPrompt"]
            .as_str()
            .is_some_and(|t| t.contains("needs an API token")),
        "{r:#}"
    );

    let nodes: Vec<&str> = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    for t in [
        "events",
        "bronze_events",
        "silver_events",
        "gold_category_minute",
    ] {
        assert!(
            nodes.contains(&t),
            "no `{t}` node in the pipeline graph: {nodes:?}"
        );
    }
    assert!(r["edges"].as_u64().unwrap() >= 3, "{r:#}");
    assert!(
        r["nodeDetails"].as_str().unwrap().contains("bronze_events"),
        "silver_events' details do not name its input: {r:#}"
    );
    assert!(r["throughputPoints"].as_u64().unwrap() >= 2, "{r:#}");

    let sql = &r["sql"];
    assert!(r["sqlError"].is_null(), "{r:#}");
    assert_eq!(sql["columns"], serde_json::json!(["n"]), "{r:#}");
    let rows = sql["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{r:#}");
    let n: u64 = rows[0][0].as_str().unwrap().parse().unwrap();
    assert!(
        n >= silver_before,
        "count {n} in the SQL box < {silver_before} rows written before"
    );
    assert_eq!(r["chartedQuery"], true, "{r:#}");
    // One bar per event type seen (view, add_to_cart, purchase, refund).
    assert!(r["chartBars"].as_u64().unwrap() >= 4, "{r:#}");
    // The run the page triggered (today's logical date, with the operator's token).
    assert!(
        r["dagMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("queued run")),
        "{r:#}"
    );
    assert!(r["dagRuns"].as_u64().unwrap() >= 1, "{r:#}");
    assert_eq!(r["screenshots"].as_array().unwrap().len(), 10, "{r:#}");

    let _ = tx.send(());
    weir.stop();
    tokio::task::spawn_blocking(move || weir.join())
        .await
        .unwrap();
}
