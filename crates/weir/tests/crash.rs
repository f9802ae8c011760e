//! Exactly-once under crash: `weir run` is SIGKILLed at random moments (at least 20 times),
//! restarted each time, and at the end every valid event is in silver exactly once and gold
//! equals an uninterrupted run's.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::harness::*;
use common::oracle;
use rand::{Rng, SeedableRng};

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

fn project(dir: &Path) -> std::path::PathBuf {
    shop_project(dir, |t| {
        small_batches(t)
            .replace("max_batch_records = 7000", "max_batch_records = 2500")
            .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
            .replace(
                "pg_listen = \"127.0.0.1:5433\"",
                "pg_listen = \"127.0.0.1:0\"",
            )
    })
}

fn preload(config: &Path, input: &Path) {
    let st = weir()
        .args(["ingest", "-c"])
        .arg(config)
        .arg("events")
        .arg(input)
        .status()
        .unwrap();
    assert!(st.success(), "weir ingest failed");
}

/// Runs until the pipeline is idle; returns false if it was killed first.
fn run_until_idle(config: &Path, kill_after: Option<Duration>) -> bool {
    let mut child = weir()
        .arg("run")
        .arg("-c")
        .arg(config)
        .arg("--exit-when-idle")
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "weir run exited with {status}");
            return true;
        }
        if kill_after.is_some_and(|k| start.elapsed() >= k) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return false;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "weir run did not finish"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the (drained) project once: ms until `weir run` reports it is running, and in all.
fn startup(config: &Path) -> (u64, u64) {
    use std::io::BufRead;
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg("-c")
        .arg(config)
        .arg("--exit-when-idle")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = None;
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if ready.is_none() && line.contains("weir is running") {
            ready = Some(started.elapsed().as_millis() as u64);
        }
    }
    assert!(child.wait().unwrap().success());
    let total = started.elapsed().as_millis() as u64;
    (ready.expect("`weir run` never said it was running"), total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = generate(150_000, 3);
    let input = tmp.path().join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let exp = oracle::compute(&refs);

    let crashed = project(&tmp.path().join("crashed"));
    let clean = project(&tmp.path().join("clean"));
    preload(&crashed, &input);
    preload(&clean, &input);

    // The uninterrupted run goes first, then a run of the drained project: the two give the
    // processing time and the start-up cost (until `weir run` says it is running) on this
    // machine, and the kill delays are drawn from them, so that 20 kills land all through
    // the work whether the machine is fast or slow.
    let started = Instant::now();
    assert!(run_until_idle(&clean, None));
    let clean_ms = started.elapsed().as_millis() as u64;
    let (startup_ms, idle_ms) = startup(&clean);
    let work_ms = clean_ms.saturating_sub(idle_ms).max(200);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        std::env::var("WEIR_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20261122),
    );
    // From half the start-up (a kill during recovery) to one twentieth of the work past it:
    // 20 kills then cover well under the whole work on average, so most land mid-batch.
    let (lo, hi) = (startup_ms / 2, startup_ms + work_ms / 20);
    let (mut kills, mut runs, mut finished_at) = (0, 0, None);
    while kills < 20 {
        runs += 1;
        assert!(runs <= 200, "{runs} runs and only {kills} kills");
        let delay = Duration::from_millis(rng.gen_range(lo..=hi));
        if run_until_idle(&crashed, Some(delay)) {
            // Done with the input: the remaining kills hit start-up and recovery, which must
            // be just as safe.
            finished_at.get_or_insert(kills);
        } else {
            kills += 1;
        }
    }
    eprintln!(
        "{kills} kills in {runs} runs (input done after {finished_at:?} kills); \
         clean run {clean_ms} ms, start-up {startup_ms} ms (idle run {idle_ms} ms), delays {lo}..={hi} ms"
    );
    assert!(
        finished_at.is_none_or(|k| k >= 10),
        "the input was done after {finished_at:?} kills: the delays are far too long for this machine"
    );
    assert!(run_until_idle(&crashed, None));

    assert_eq!(
        count(&crashed, "bronze_events").await,
        lines.len() as i64,
        "bronze rows"
    );
    let offsets = rows(
        &crashed,
        "SELECT count(DISTINCT \"offset\") FROM bronze_events",
    )
    .await;
    assert_eq!(
        offsets[0][0],
        lines.len().to_string(),
        "each offset once in bronze"
    );

    let ids: Vec<String> = rows(&crashed, "SELECT event_id FROM silver_events")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "an event is in silver twice");
    assert_eq!(unique, exp.silver_ids, "silver differs from the oracle");

    for sql in [
        "SELECT * FROM gold_category_minute ORDER BY window_start, product_category",
        "SELECT reason, count(*) FROM silver_events_quarantine GROUP BY reason ORDER BY reason",
        "SELECT event_id FROM gold_category_minute_late ORDER BY event_id",
    ] {
        let a = rows(&crashed, sql).await;
        let b = rows(&clean, sql).await;
        assert!(!b.is_empty(), "{sql} is empty");
        assert_eq!(a, b, "crashed and clean runs differ on: {sql}");
    }
}
