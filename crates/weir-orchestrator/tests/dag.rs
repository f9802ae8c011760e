//! DAG orchestration: dependency order and parallelism, max_active_runs, retries with growing
//! backoff, catchup, takeover after a crash without running a task twice, and alerts reaching
//! a real webhook receiver and a real SMTP receiver.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use weir_orchestrator::Project;
use weir_orchestrator::dag::Orchestrator;
use weir_orchestrator::dag::store::{AttemptRow, run_state, task_state};

fn load(dir: &Path, toml: &str) -> Project {
    let p = dir.join("weir.toml");
    std::fs::write(&p, toml).unwrap();
    Project::load(&p).unwrap()
}

/// Lines "<task> <start|end> <epoch ns>" that shell tasks append to `dir/trace`.
fn traced(dir: &Path, task: &str, sleep: &str) -> String {
    let trace = dir.join("trace");
    format!(
        "echo \"{task}-$WEIR_DS start $(date +%s%N)\" >> {t}; sleep {sleep}; echo \"{task}-$WEIR_DS end $(date +%s%N)\" >> {t}",
        t = trace.display()
    )
}

fn trace(dir: &Path) -> std::collections::BTreeMap<String, (u128, u128)> {
    let text = std::fs::read_to_string(dir.join("trace")).unwrap_or_default();
    let mut m: std::collections::BTreeMap<String, (u128, u128)> = Default::default();
    for l in text.lines() {
        let mut p = l.split_whitespace();
        let (k, what, t) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
        let e = m.entry(k.to_owned()).or_default();
        let t: u128 = t.parse().unwrap();
        if what == "start" {
            e.0 = t;
        } else {
            e.1 = t;
        }
    }
    m
}

fn day(d: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_fan_in_runs_in_order_in_parallel_and_respects_max_active_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml = format!(
        r#"
[dags.fan]
schedule = "0 2 * * *"
max_active_runs = 1
[[dags.fan.tasks]]
id = "a"
shell = '{a}'
[[dags.fan.tasks]]
id = "b"
after = ["a"]
shell = '{b}'
[[dags.fan.tasks]]
id = "c"
after = ["a"]
shell = '{c}'
[[dags.fan.tasks]]
id = "d"
after = ["b", "c"]
shell = '{dd}'
"#,
        a = traced(d, "a", "0.05"),
        b = traced(d, "b", "0.4"),
        c = traced(d, "c", "0.4"),
        dd = traced(d, "d", "0.05"),
    );
    let orch = Orchestrator::open(load(d, &toml)).unwrap();
    let ids = orch
        .backfill_runs("fan", day("2026-01-01"), day("2026-01-03"))
        .unwrap();
    assert_eq!(ids.len(), 3);
    let rows = orch.execute_runs(&ids, |_, _| {}).await.unwrap();
    assert!(
        rows.iter().all(|r| r.state == run_state::SUCCESS),
        "{rows:?}"
    );

    let t = trace(d);
    for ds in ["2026-01-01", "2026-01-02", "2026-01-03"] {
        let g = |k: &str| t[&format!("{k}-{ds}")];
        let (a, b, c, dd) = (g("a"), g("b"), g("c"), g("d"));
        assert!(b.0 >= a.1 && c.0 >= a.1, "b and c start after a ends");
        assert!(dd.0 >= b.1 && dd.0 >= c.1, "d starts after b and c end");
        assert!(b.0 < c.1 && c.0 < b.1, "b and c run at the same time");
    }
    // max_active_runs = 1: a run starts only after the previous one ended.
    let runs: Vec<(u128, u128)> = ["2026-01-01", "2026-01-02", "2026-01-03"]
        .iter()
        .map(|ds| (t[&format!("a-{ds}")].0, t[&format!("d-{ds}")].1))
        .collect();
    for w in runs.windows(2) {
        assert!(w[1].0 >= w[0].1, "runs overlapped: {runs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_failing_twice_succeeds_on_the_third_attempt_with_growing_delays() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let counter = d.join("count");
    let toml = format!(
        r#"
[dags.flaky]
[[dags.flaky.tasks]]
id = "flaky"
retries = 3
retry_delay = "200ms"
shell = 'n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo "attempt $n"; [ $n -ge 3 ]'
[[dags.flaky.tasks]]
id = "after"
after = ["flaky"]
noop = true
"#,
        c = counter.display()
    );
    let orch = Orchestrator::open(load(d, &toml)).unwrap();
    let t = orch.logical_time("flaky", day("2026-02-01")).unwrap();
    let id = orch.trigger("flaky", t, "manual").unwrap();
    let rows = orch.execute_runs(&[id], |_, _| {}).await.unwrap();
    assert_eq!(rows[0].state, run_state::SUCCESS);
    let tasks = orch.store().tasks(id).unwrap();
    let flaky = tasks.iter().find(|t| t.task_id == "flaky").unwrap();
    assert_eq!(
        (flaky.state.as_str(), flaky.tries),
        (task_state::SUCCESS, 3)
    );
    let attempts: Vec<AttemptRow> = orch
        .store()
        .attempts(id)
        .unwrap()
        .into_iter()
        .filter(|a| a.task_id == "flaky")
        .collect();
    let states: Vec<&str> = attempts.iter().map(|a| a.state.as_str()).collect();
    assert_eq!(states, ["failed", "failed", "success"]);
    assert!(attempts[2].log.contains("attempt 3"));
    let gap = |i: usize| attempts[i + 1].started_us - attempts[i].ended_us.unwrap();
    assert!(
        gap(0) >= 200_000,
        "first retry waits the base delay: {}",
        gap(0)
    );
    assert!(gap(1) > gap(0), "delays grow: {} then {}", gap(0), gap(1));
    // A second trigger for the same date is refused, naming the existing run.
    let err = orch.trigger("flaky", t, "manual").unwrap_err().to_string();
    assert!(err.contains(&format!("run {id}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_mark_downstream_upstream_failed_and_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[dags.broken]
[[dags.broken.tasks]]
id = "slow"
timeout = "200ms"
shell = "sleep 5"
[[dags.broken.tasks]]
id = "next"
after = ["slow"]
noop = true
[[dags.broken.tasks]]
id = "last"
after = ["next"]
noop = true
[[dags.broken.tasks]]
id = "side"
noop = true
"#;
    let orch = Orchestrator::open(load(dir.path(), toml)).unwrap();
    let t = orch.logical_time("broken", day("2026-02-01")).unwrap();
    let id = orch.trigger("broken", t, "manual").unwrap();
    let started = std::time::Instant::now();
    let rows = orch.execute_runs(&[id], |_, _| {}).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout stopped the task"
    );
    assert_eq!(rows[0].state, run_state::FAILED);
    let states: std::collections::BTreeMap<String, String> = orch
        .store()
        .tasks(id)
        .unwrap()
        .into_iter()
        .map(|t| (t.task_id, t.state))
        .collect();
    assert_eq!(states["slow"], task_state::FAILED);
    assert_eq!(states["next"], task_state::UPSTREAM_FAILED);
    assert_eq!(states["last"], task_state::UPSTREAM_FAILED);
    assert_eq!(states["side"], task_state::SUCCESS);
    let a = orch.store().attempts(id).unwrap();
    let slow = a.iter().find(|a| a.task_id == "slow").unwrap();
    assert!(
        slow.error.as_deref().unwrap_or("").contains("timed out"),
        "{slow:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catchup_creates_exactly_the_missed_runs() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[dags.daily]
schedule = "0 2 * * *"
catchup = true
start = "2026-01-10"
[[dags.daily.tasks]]
id = "t"
noop = true

[dags.latest_only]
schedule = "0 2 * * *"
start = "2026-01-10"
[[dags.latest_only.tasks]]
id = "t"
noop = true
"#;
    let orch = Orchestrator::open(load(dir.path(), toml)).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 1, 15, 3, 0, 0).unwrap();
    // Intervals Jan 10..=Jan 14 have ended by Jan 15 03:00: five runs, plus one latest-only.
    assert_eq!(orch.schedule_due(now).unwrap(), 6);
    assert_eq!(orch.schedule_due(now).unwrap(), 0, "nothing twice");
    // A restarted scheduler (a new process on the same store) creates none again.
    let again = Orchestrator::open(orch.project().clone()).unwrap();
    assert_eq!(again.schedule_due(now).unwrap(), 0);
    // Down for two days: exactly the two missed days for the catchup DAG, one for the other.
    let later = Utc.with_ymd_and_hms(2026, 1, 17, 2, 30, 0).unwrap();
    assert_eq!(again.schedule_due(later).unwrap(), 3);
    let dates: Vec<String> = again
        .store()
        .runs(Some("daily"), 100)
        .unwrap()
        .into_iter()
        .rev()
        .map(|r| r.logical_date)
        .collect();
    assert_eq!(
        dates,
        [
            "2026-01-10",
            "2026-01-11",
            "2026-01-12",
            "2026-01-13",
            "2026-01-14",
            "2026-01-15",
            "2026-01-16"
        ]
    );
    let latest: Vec<String> = again
        .store()
        .runs(Some("latest_only"), 100)
        .unwrap()
        .into_iter()
        .map(|r| r.logical_date)
        .collect();
    assert_eq!(latest, ["2026-01-16", "2026-01-14"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_never_run_a_task_twice_and_a_dead_owner_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml = format!(
        r#"
[dags.once]
schedule = "0 2 * * *"
max_active_runs = 4
[[dags.once.tasks]]
id = "work"
retries = 1
retry_delay = "10ms"
shell = '{}'
"#,
        traced(d, "work", "0.1")
    );
    let project = load(d, &toml);
    let one = Orchestrator::open(project.clone()).unwrap();
    let two = Orchestrator::open(project).unwrap();
    let ids = one
        .backfill_runs("once", day("2026-03-01"), day("2026-03-08"))
        .unwrap();
    let (a, b) = tokio::join!(
        one.execute_runs(&ids, |_, _| {}),
        two.execute_runs(&ids, |_, _| {})
    );
    assert!(a.unwrap().iter().all(|r| r.state == run_state::SUCCESS));
    assert!(b.unwrap().iter().all(|r| r.state == run_state::SUCCESS));
    let text = std::fs::read_to_string(d.join("trace")).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains(" start ")).count(), 8);
    for id in &ids {
        assert_eq!(one.store().attempts(*id).unwrap().len(), 1);
    }

    // A run left `running` by a process that died mid-task: taken over at once, the lost
    // attempt recorded as failed by restart, and the task retried per its policy.
    let t = one.logical_time("once", day("2026-04-01")).unwrap();
    let id = one.trigger("once", t, "manual").unwrap();
    let dead = "localhost-that-died:4000000000:1";
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let dead = dead.replace("localhost-that-died", host.trim());
    let now = Utc::now().timestamp_micros();
    assert!(one.store().claim_run(id, &dead, now, 0).unwrap());
    one.store()
        .put_task(&weir_orchestrator::dag::store::TaskRow {
            run_id: id,
            task_id: "work".into(),
            state: task_state::RUNNING.into(),
            tries: 1,
            started_us: Some(now),
            ended_us: None,
        })
        .unwrap();
    let rows = two.execute_runs(&[id], |_, _| {}).await.unwrap();
    assert_eq!(rows[0].state, run_state::SUCCESS);
    let attempts = two.store().attempts(id).unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts[0].error.as_deref().unwrap().contains("restart"));
    assert_eq!(attempts[1].state, task_state::SUCCESS);
}

/// A one-shot HTTP receiver: records each request body.
fn webhook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            g.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (url, got)
}

/// A small SMTP receiver speaking enough of RFC 5321 for a client to deliver mail; records
/// each message's DATA.
fn smtp_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let _ = s.write_all(b"220 localhost ESMTP test\r\n");
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let cmd = line.to_ascii_uppercase();
                if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                    let _ = s.write_all(b"250-localhost\r\n250 8BITMIME\r\n");
                } else if cmd.starts_with("DATA") {
                    let _ = s.write_all(b"354 go ahead\r\n");
                    let mut data = String::new();
                    loop {
                        let mut l2 = String::new();
                        if r.read_line(&mut l2).unwrap_or(0) == 0 || l2 == ".\r\n" {
                            break;
                        }
                        data.push_str(&l2);
                    }
                    g.lock().unwrap().push(data);
                    let _ = s.write_all(b"250 queued\r\n");
                } else if cmd.starts_with("QUIT") {
                    let _ = s.write_all(b"221 bye\r\n");
                    break;
                } else {
                    let _ = s.write_all(b"250 ok\r\n");
                }
            }
        }
    });
    (addr, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_the_webhook_and_smtp_receivers() {
    let dir = tempfile::tempdir().unwrap();
    let (url, hooks) = webhook_receiver();
    let (smtp, mails) = smtp_receiver();
    let toml = format!(
        r#"
[alerts]
webhook = "{url}"
email = {{ smtp = "{smtp}", from = "weir@localhost", to = ["ops@localhost"] }}

[dags.nightly]
[[dags.nightly.tasks]]
id = "load_orders"
shell = "echo 'relation orders does not exist' >&2; exit 3"
"#
    );
    let orch = Orchestrator::open(load(dir.path(), &toml)).unwrap();
    let t = orch.logical_time("nightly", day("2026-05-01")).unwrap();
    let id = orch.trigger("nightly", t, "manual").unwrap();
    let rows = orch.execute_runs(&[id], |_, _| {}).await.unwrap();
    assert_eq!(rows[0].state, run_state::FAILED);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while (hooks.lock().unwrap().len() < 2 || mails.lock().unwrap().len() < 2)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let hooks = hooks.lock().unwrap().clone();
    let task_hook = hooks
        .iter()
        .map(|h| serde_json::from_str::<serde_json::Value>(h).unwrap())
        .find(|v| v["weir"]["event"] == "task_failed")
        .unwrap_or_else(|| panic!("no task_failed webhook in {hooks:?}"));
    assert_eq!(task_hook["weir"]["dag"], "nightly");
    assert_eq!(task_hook["weir"]["task"], "load_orders");
    assert_eq!(task_hook["weir"]["run_id"], id);
    let text = task_hook["text"].as_str().unwrap();
    assert!(text.contains("exited with"), "{text}");
    assert!(text.contains("relation orders does not exist"), "{text}");
    let mails = mails.lock().unwrap().clone();
    let mail = mails
        .iter()
        .find(|m| m.contains("load_orders"))
        .unwrap_or_else(|| panic!("no mail about the task in {mails:?}"));
    assert!(
        mail.contains("nightly") && mail.contains(&format!("run {id}")),
        "{mail}"
    );
    assert!(mail.contains("To: ops@localhost"), "{mail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_to_the_watched_table_queues_one_run_after_the_debounce() {
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::time::Instant;
    use weir_orchestrator::dag::CommitWatch;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(dir.path().join("sql/clean.sql"), "SELECT id FROM events").unwrap();
    let toml = r#"
[sources.events]
type = "http"

[tables.clean]
from = "events"
sql = "sql/clean.sql"
schema = "id string"

[dags.react]
on_commit = "clean"
debounce = "2s"
[[dags.react.tasks]]
id = "t"
noop = true
"#;
    let project = load(dir.path(), toml);
    let lake = weir_lake::Lake::try_new(project.data_dir().join("lake")).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap();
    let mut w = lake.writer("clean", vec![]).await.unwrap();
    w.append_once(vec![batch.clone()], "test", 0).await.unwrap();

    let orch = Orchestrator::open(project).unwrap();
    let mut watch = CommitWatch::default();
    let t0 = Instant::now();
    assert!(
        orch.trigger_on_commit(&mut watch, t0).unwrap().is_empty(),
        "old commits do not trigger"
    );
    w.append_once(vec![batch.clone()], "test", 1).await.unwrap();
    assert!(
        orch.trigger_on_commit(&mut watch, t0).unwrap().is_empty(),
        "debounced"
    );
    w.append_once(vec![batch], "test", 2).await.unwrap();
    let t1 = t0 + Duration::from_secs(1);
    assert!(
        orch.trigger_on_commit(&mut watch, t1).unwrap().is_empty(),
        "a newer commit restarts the debounce"
    );
    let created = orch
        .trigger_on_commit(&mut watch, t1 + Duration::from_secs(2))
        .unwrap();
    assert_eq!(created.len(), 1);
    assert!(
        orch.trigger_on_commit(&mut watch, t1 + Duration::from_secs(5))
            .unwrap()
            .is_empty()
    );
    let runs = orch.store().runs(Some("react"), 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].kind, "on_commit");
}

#[test]
fn a_metric_rule_alert_reaches_the_webhook_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(dir.path().join("sql/clean.sql"), "SELECT id FROM events").unwrap();
    let (url, hooks) = webhook_receiver();
    let toml = format!(
        r#"
[project]
name = "rules"

[server]
listen = "127.0.0.1:0"

[sources.events]
type = "http"

[tables.clean]
from = "events"
sql = "sql/clean.sql"
schema = "id string"

[alerts]
webhook = "{url}"
rule_interval = "100ms"

[[alerts.rules]]
name = "rejects"
metric = "dead_letters"
above = 0
for = "300ms"
"#
    );
    let project = load(dir.path(), &toml);
    let weir = weir_orchestrator::Weir::open(project).unwrap();
    weir.start(Vec::new()).unwrap();
    // Not UTF-8: dead-lettered by the source.
    let r = weir
        .ingest("events", b"{\"id\": \"a\"}\n\xff\xfe\n")
        .unwrap();
    assert_eq!((r.accepted, r.rejected), (1, 1));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while hooks.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    weir.stop();
    weir.join();
    let hooks = hooks.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1, "fires once: {hooks:?}");
    let v: serde_json::Value = serde_json::from_str(&hooks[0]).unwrap();
    assert_eq!(v["weir"]["event"], "metric_rule");
    assert_eq!(v["weir"]["task"], "rejects");
    assert!(
        v["text"].as_str().unwrap().contains("dead_letters = 1"),
        "{v}"
    );
}

#[test]
fn a_missed_sla_alerts_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, hooks) = webhook_receiver();
    let toml = format!(
        r#"
[alerts]
webhook = "{url}"

[dags.hourly]
schedule = "0 * * * *"
sla = "10m"
[[dags.hourly.tasks]]
id = "t"
noop = true
"#
    );
    let orch = Orchestrator::open(load(dir.path(), &toml)).unwrap();
    // The 10:00–11:00 interval is due at 11:00; at 11:05 it is within its SLA, at 11:30 not.
    let start = Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap();
    let id = orch.trigger("hourly", start, "scheduled").unwrap();
    orch.check_slas(Utc.with_ymd_and_hms(2026, 6, 1, 11, 5, 0).unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(hooks.lock().unwrap().is_empty());
    for _ in 0..2 {
        orch.check_slas(Utc.with_ymd_and_hms(2026, 6, 1, 11, 30, 0).unwrap())
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hooks.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let hooks = hooks.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let v: serde_json::Value = serde_json::from_str(&hooks[0]).unwrap();
    assert_eq!(v["weir"]["event"], "sla_missed");
    assert_eq!(v["weir"]["run_id"], id);
    assert!(v["text"].as_str().unwrap().contains("SLA 10m"), "{v}");
}
