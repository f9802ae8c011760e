//! `[server.auth]`: every API call needs a bearer token and the right role; without auth weir
//! refuses to listen beyond loopback unless `--insecure`.

mod common;

use common::harness::*;
use weir_orchestrator::{Project, Weir};

const READER: &str = "reader-token-0123456789abcdef";
const OPERATOR: &str = "operator-token-0123456789abcdef";

fn status(r: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    match r {
        Ok(r) => {
            let code = r.status();
            let text = r.into_string().unwrap();
            (
                code,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            )
        }
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_guard_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let config = shop_project(dir.path(), |t| {
        t.replace(
            "[server]\n",
            &format!(
                "[server.auth]\ntokens = [\n  {{ name = \"grafana\", token = \"{READER}\", role = \"reader\" }},\n  {{ name = \"ops\", token = \"{OPERATOR}\", role = \"operator\" }},\n]\n\n[server]\n"
            ),
        )
    });
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
    let body = generate(10, 3).join("\n");

    let checks = tokio::task::spawn_blocking(move || {
        // Liveness needs no token.
        assert_eq!(status(ureq::get(&format!("{base}/health")).call()).0, 200);
        // No token, a wrong token: 401 with a JSON error.
        let (code, err) = status(ureq::get(&format!("{base}/v1/status")).call());
        assert_eq!(code, 401);
        assert_eq!(err["kind"], "user");
        assert!(err["error"].as_str().unwrap().contains("Bearer"), "{err}");
        let (code, _) = status(
            ureq::get(&format!("{base}/metrics"))
                .set("Authorization", "Bearer not-a-token-at-all-really")
                .call(),
        );
        assert_eq!(code, 401);
        // A reader reads and queries…
        let reader = format!("Bearer {READER}");
        assert_eq!(
            status(
                ureq::get(&format!("{base}/v1/status"))
                    .set("Authorization", &reader)
                    .call()
            )
            .0,
            200
        );
        let (code, _) = status(
            ureq::post(&format!("{base}/v1/query"))
                .set("Authorization", &reader)
                .send_string(r#"{"sql": "SELECT 1 AS one"}"#),
        );
        assert_eq!(code, 200);
        // …but may not ingest: 403 naming the role needed.
        let (code, err) = status(
            ureq::post(&format!("{base}/v1/sources/events/records"))
                .set("Authorization", &reader)
                .send_string(&body),
        );
        assert_eq!(code, 403);
        assert!(err["error"].as_str().unwrap().contains("operator"), "{err}");
        // An operator may; the token can also come as access_token (for EventSource).
        let (code, v) = status(
            ureq::post(&format!(
                "{base}/v1/sources/events/records?access_token={OPERATOR}"
            ))
            .send_string(&body),
        );
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["accepted"], 10);
    });
    checks.await.unwrap();
    let _ = tx.send(());
    weir.stop();
    weir.join();
}

#[test]
fn without_auth_weir_stays_on_loopback_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let config = shop_project(dir.path(), |t| t);
    let out = weir_cli(
        &[
            "run",
            "--exit-when-idle",
            "--listen",
            "0.0.0.0:0",
            "--pg-listen",
            "",
        ],
        &config,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0:0"), "{err}");
    assert!(err.contains("--insecure"), "{err}");

    let out = weir_cli(
        &[
            "run",
            "--exit-when-idle",
            "--listen",
            "0.0.0.0:0",
            "--pg-listen",
            "",
            "--insecure",
        ],
        &config,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("WARNING"), "{err}");
}

#[test]
fn bad_tokens_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = shop_project(dir.path(), |t| {
        t.replace(
            "[server]\n",
            "[server.auth]\ntokens = [{ name = \"x\", token = \"short\", role = \"reader\" }]\n\n[server]\n",
        )
    });
    let out = weir_cli(&["validate"], &config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.auth") && err.contains("at least 16"),
        "{err}"
    );
}
