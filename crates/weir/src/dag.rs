//! `weir dag ...`: list, show, trigger, backfill, runs, logs and clear, over the project's
//! metadata store. `trigger` and `backfill` execute the runs in this process (a run that a
//! running `weir run` has already claimed is waited for instead), so they work with or without
//! a server.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use weir_orchestrator::Project;
use weir_orchestrator::dag::Orchestrator;
use weir_orchestrator::dag::config::topo_order;
use weir_orchestrator::dag::schedule::{Schedule, parse_date};
use weir_orchestrator::dag::store::{RunRow, run_state};

#[derive(Debug, clap::Subcommand)]
pub enum DagCommand {
    /// Every DAG with its schedule and latest run.
    List,
    /// A DAG's tasks in dependency order and its next scheduled runs.
    Show { name: String },
    /// Run a DAG now, for a logical date (default: today), and wait for it.
    Trigger {
        name: String,
        /// Logical date, YYYY-MM-DD.
        #[arg(long)]
        date: Option<String>,
    },
    /// Run a DAG for every logical date from D1 to D2 (inclusive). Interrupted, the same
    /// command resumes: finished dates are not run again.
    Backfill {
        name: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Runs of a DAG with their task states and durations, newest first.
    Runs {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Every attempt of a run's tasks with its log.
    Logs { run: i64 },
    /// Set a run (or some of its tasks and what follows them) back to queued, to run again.
    Clear {
        run: i64,
        /// Only this task and its downstream tasks.
        #[arg(long)]
        task: Vec<String>,
        /// Execute the cleared run now.
        #[arg(long)]
        run_now: bool,
    },
}

fn fmt_us(us: Option<i64>) -> String {
    us.and_then(DateTime::<Utc>::from_timestamp_micros)
        .map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn dur(a: Option<i64>, b: Option<i64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => {
            let ms = (b - a) as f64 / 1000.0;
            if ms < 1000.0 {
                format!("{ms:.1} ms")
            } else {
                format!("{:.2} s", ms / 1000.0)
            }
        }
        (Some(_), None) => "running".into(),
        _ => "-".into(),
    }
}

pub async fn run(project: Project, cmd: DagCommand) -> anyhow::Result<ExitCode> {
    let orch = Orchestrator::open(project.clone())?;
    let store = orch.store().clone();
    match cmd {
        DagCommand::List => {
            if project.config.dags.is_empty() {
                println!("no DAGs in {}", project.path.display());
            }
            for (name, d) in &project.config.dags {
                let last = store.runs(Some(name), 1)?;
                println!(
                    "{name:<24} {:<16} {:<14} {} tasks  last run: {}",
                    d.schedule.as_deref().unwrap_or("(manual)"),
                    d.timezone,
                    d.tasks.len(),
                    last.first().map_or("none".into(), |r| format!(
                        "{} {} ({})",
                        r.id, r.logical_date, r.state
                    ))
                );
            }
        }
        DagCommand::Show { name } => {
            let d = project
                .config
                .dags
                .get(&name)
                .with_context(|| format!("no DAG named `{name}`"))?;
            println!(
                "DAG {name}: schedule {} ({}), catchup {}, start {}, max_active_runs {}",
                d.schedule.as_deref().unwrap_or("none"),
                d.timezone,
                d.catchup,
                d.start.as_deref().unwrap_or("-"),
                d.max_active_runs
            );
            let order = topo_order(&d.tasks).map_err(anyhow::Error::msg)?;
            for i in order {
                let t = &d.tasks[i];
                let kind = t.kind().map_err(anyhow::Error::msg)?;
                println!(
                    "  {:<20} {:<6} after [{}] retries {} timeout {}",
                    t.id,
                    kind.name(),
                    t.after.join(", "),
                    t.retries,
                    t.timeout.map_or("-".into(), |x| x.to_string())
                );
            }
            if let Some(s) = &d.schedule {
                let sched = Schedule::try_new(s, &d.timezone).map_err(anyhow::Error::msg)?;
                let mut t = Utc::now();
                print!("  next ticks:");
                for _ in 0..3 {
                    if let Some(n) = sched.next_tick(t, false) {
                        print!(
                            " {}",
                            n.with_timezone(&sched.tz()).format("%Y-%m-%d %H:%M %Z")
                        );
                        t = n;
                    }
                }
                println!();
            }
        }
        DagCommand::Trigger { name, date } => {
            let date = match date {
                Some(d) => parse_date(&d).map_err(anyhow::Error::msg)?,
                None => Utc::now().date_naive(),
            };
            let t = orch.logical_time(&name, date)?;
            let id = orch.trigger(&name, t, "manual")?;
            eprintln!("run {id} of `{name}` for {date} queued");
            let rows = orch.execute_runs(&[id], |_, _| {}).await?;
            return report(&orch, &rows);
        }
        DagCommand::Backfill { name, from, to } => {
            let from: NaiveDate = parse_date(&from).map_err(anyhow::Error::msg)?;
            let to: NaiveDate = parse_date(&to).map_err(anyhow::Error::msg)?;
            if to < from {
                bail!("--to {to} is before --from {from}");
            }
            let ids = orch.backfill_runs(&name, from, to)?;
            if ids.is_empty() {
                bail!("the schedule of `{name}` has no run between {from} and {to}");
            }
            let started = Instant::now();
            let tty = std::io::stderr().is_terminal();
            let mut last_done = usize::MAX;
            let rows = orch
                .execute_runs(&ids, |done, total| {
                    if done == last_done {
                        return;
                    }
                    last_done = done;
                    let el = started.elapsed().as_secs_f64();
                    let eta = if done > 0 {
                        format!("{:.0}s", el / done as f64 * (total - done) as f64)
                    } else {
                        "?".into()
                    };
                    let width = 30;
                    let filled = width * done / total.max(1);
                    let bar = format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled));
                    if tty {
                        eprint!("\r{bar} {done}/{total} runs  {el:.1}s elapsed  ETA {eta}   ");
                    } else {
                        eprintln!("{bar} {done}/{total} runs  {el:.1}s elapsed  ETA {eta}");
                    }
                })
                .await?;
            if tty {
                eprintln!();
            }
            return report(&orch, &rows);
        }
        DagCommand::Runs { name, limit } => {
            for r in store.runs(Some(&name), limit)? {
                println!(
                    "run {:<6} {}  {:<9} {:<8} started {}  took {}",
                    r.id,
                    r.logical_date,
                    r.kind,
                    r.state,
                    fmt_us(r.started_us),
                    dur(r.started_us, r.ended_us)
                );
                for t in store.tasks(r.id)? {
                    println!(
                        "    {:<20} {:<15} tries {}  {}",
                        t.task_id,
                        t.state,
                        t.tries,
                        dur(t.started_us, t.ended_us)
                    );
                }
            }
        }
        DagCommand::Logs { run } => {
            let r = store.run(run)?.with_context(|| format!("no run {run}"))?;
            println!(
                "run {} of `{}` for {} ({})",
                r.id, r.dag, r.logical_date, r.state
            );
            for a in store.attempts(run)? {
                println!(
                    "--- {} attempt {} {} at {} ({})",
                    a.task_id,
                    a.try_number,
                    a.state,
                    fmt_us(Some(a.started_us)),
                    dur(Some(a.started_us), a.ended_us)
                );
                if let Some(e) = &a.error {
                    println!("error: {e}");
                }
                if !a.log.is_empty() && a.error.as_deref() != Some(a.log.trim_end()) {
                    println!("{}", a.log.trim_end());
                }
            }
            for c in store.checks(run)? {
                println!(
                    "check {} on {}: {} [{}] {}",
                    c.check_name,
                    c.table_name,
                    if c.passed { "pass" } else { "FAIL" },
                    c.severity,
                    c.observed
                );
            }
        }
        DagCommand::Clear { run, task, run_now } => {
            let r = store.run(run)?.with_context(|| format!("no run {run}"))?;
            let d = project.config.dags.get(&r.dag).with_context(|| {
                format!("the DAG `{}` of run {run} is no longer configured", r.dag)
            })?;
            let mut cleared: Vec<String> = Vec::new();
            if !task.is_empty() {
                let mut stack = task.clone();
                while let Some(t) = stack.pop() {
                    if !d.tasks.iter().any(|x| x.id == t) {
                        bail!("`{t}` is not a task of `{}`", r.dag);
                    }
                    if !cleared.contains(&t) {
                        stack.extend(
                            d.tasks
                                .iter()
                                .filter(|x| x.after.contains(&t))
                                .map(|x| x.id.clone()),
                        );
                        cleared.push(t);
                    }
                }
            }
            store.clear(run, &cleared)?;
            eprintln!(
                "run {run} cleared ({}); it runs again {}",
                if cleared.is_empty() {
                    "all tasks".into()
                } else {
                    cleared.join(", ")
                },
                if run_now {
                    "now"
                } else {
                    "when `weir run` schedules it"
                }
            );
            if run_now {
                let rows = orch.execute_runs(&[run], |_, _| {}).await?;
                return report(&orch, &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(orch: &Orchestrator, rows: &[RunRow]) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for r in rows {
        let tasks = orch.store().tasks(r.id)?;
        let summary: Vec<String> = tasks
            .iter()
            .map(|t| format!("{}={}", t.task_id, t.state))
            .collect();
        println!(
            "run {} {} {}: {}",
            r.id,
            r.logical_date,
            r.state,
            summary.join(" ")
        );
        if r.state != run_state::SUCCESS {
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} runs failed; `weir dag logs RUN` shows why",
            rows.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
