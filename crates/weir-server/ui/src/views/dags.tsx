// DAGs: runs x tasks grid with states and durations, an attempt's log on click, and the
// trigger and backfill buttons.

import { useEffect, useState } from "preact/hooks";
import { getJson, postJson, seg, type Loaded } from "../api";
import { usePoll } from "../hooks";
import { DataTable, fmtAgo, fmtClock, fmtMs, Pending, Section } from "../ui";

interface DagSummary {
  name: string;
  schedule?: string | null;
  timezone?: string;
  tasks?: number;
  last_run?: RunRow | null;
}

interface RunRow {
  id: number;
  dag: string;
  logical_date: string;
  kind: string;
  state: string;
  created_us: number;
  started_us?: number | null;
  ended_us?: number | null;
}

interface TaskRow {
  run_id: number;
  task_id: string;
  state: string;
  tries: number;
  started_us?: number | null;
  ended_us?: number | null;
}

interface AttemptRow {
  task_id: string;
  try_number: number;
  state: string;
  started_us: number;
  ended_us?: number | null;
  error?: string | null;
  log: string;
}

interface RunDetail {
  run: RunRow;
  tasks: TaskRow[];
  attempts: AttemptRow[];
  checks: unknown[];
}

const dur = (a?: number | null, b?: number | null) => (a ? fmtMs(((b ?? Date.now() * 1000) - a) / 1000) : "");

export function DagsView({ selected, go }: { selected: string | null; go: (hash: string) => void }) {
  const [dags] = usePoll<{ dags?: DagSummary[] }>("/v1/dags", 5000);
  if (dags.state !== "ok") {
    return (
      <Section title="DAGs">
        {dags.state === "error" && dags.status === 404 ? (
          <p class="muted">{dags.message}</p>
        ) : (
          <Pending res={dags} what="DAGs" />
        )}
      </Section>
    );
  }
  const list = dags.data.dags ?? [];
  const current = selected && list.some((d) => d.name === selected) ? selected : (list[0]?.name ?? null);
  return (
    <>
      <Section title="DAGs">
        <div class="dag-tabs">
          {list.map((d) => (
            <button class={`dag-tab${d.name === current ? " active" : ""}`} onClick={() => go(`dags/${d.name}`)}>
              <span class={`dot s-${d.last_run?.state ?? "none"}`} />
              <b>{d.name}</b>
              <span class="muted small">{d.schedule ? `${d.schedule} ${d.timezone ?? ""}` : "manual / on commit"}</span>
            </button>
          ))}
        </div>
      </Section>
      {current && <DagDetail key={current} name={current} />}
    </>
  );
}

function DagDetail({ name }: { name: string }) {
  const [def] = usePoll<{ config?: { tasks?: { id: string; after?: string[] }[] } }>(`/v1/dags/${seg(name)}`, 0);
  const [runs, reload] = usePoll<{ runs?: { run: RunRow; tasks: TaskRow[] }[] }>(
    `/v1/dags/${seg(name)}/runs?limit=25`,
    3000,
  );
  const [cell, setCell] = useState<{ run: number; task: string } | null>(null);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [date, setDate] = useState("");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");

  const taskIds = def.state === "ok" ? (def.data.config?.tasks ?? []).map((t) => t.id) : [];
  const rows = runs.state === "ok" ? (runs.data.runs ?? []) : [];
  for (const r of rows) for (const t of r.tasks) if (!taskIds.includes(t.task_id)) taskIds.push(t.task_id);

  const trigger = async () => {
    const r = await postJson<{ run_id?: number; logical_date?: string }>(
      `/v1/dags/${seg(name)}/runs`,
      date ? { date } : undefined,
    );
    if (r.state === "ok") setMsg({ ok: true, text: `queued run ${r.data.run_id} for ${r.data.logical_date}` });
    else
      setMsg({
        ok: false,
        text: r.state === "error" ? r.message : "triggering runs is not available on this weir build",
      });
    reload();
  };
  const backfill = async () => {
    if (!from || !to) {
      setMsg({ ok: false, text: "backfill needs a start and an end date" });
      return;
    }
    const r = await postJson<unknown>(`/v1/dags/${seg(name)}/backfill`, { start: from, end: to });
    if (r.state === "ok") {
      const d = r.data as { run_ids?: unknown[]; created?: number };
      const ids = d.run_ids ?? (Array.isArray(r.data) ? r.data : []);
      const created = typeof d.created === "number" ? d.created : ids.length;
      setMsg({
        ok: true,
        text: `backfill ${from} … ${to}: ${created} new run${created === 1 ? "" : "s"}, ${ids.length} in the range${ids.length ? ` (#${ids.map(String).join(", #")})` : ""}`,
      });
    } else if (r.state === "missing") {
      setMsg({
        ok: false,
        text: "backfill not available: this weir build has no POST /v1/dags/{name}/backfill endpoint",
      });
    } else if (r.state === "error") setMsg({ ok: false, text: r.message });
    reload();
  };

  return (
    <>
      <Section title={`Runs of ${name}`}>
        <div class="dag-actions">
          <label>
            logical date{" "}
            <input type="date" value={date} onInput={(e) => setDate((e.target as HTMLInputElement).value)} />
          </label>
          <button class="btn primary" onClick={() => void trigger()} data-testid="dag-trigger">
            Trigger run
          </button>
          <span class="sep" />
          <label>
            backfill from{" "}
            <input type="date" value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} />
          </label>
          <label>
            to <input type="date" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} />
          </label>
          <button class="btn" onClick={() => void backfill()} data-testid="dag-backfill">
            Backfill
          </button>
        </div>
        {msg && <p class={msg.ok ? "ok-text" : "error"}>{msg.text}</p>}
        {runs.state !== "ok" ? (
          <Pending res={runs} what="runs" />
        ) : rows.length === 0 ? (
          <p class="muted">No runs yet.</p>
        ) : (
          <div class="table-wrap">
            <table class="data grid" data-testid="dag-grid">
              <thead>
                <tr>
                  <th>run</th>
                  <th>logical date</th>
                  <th>kind</th>
                  <th>state</th>
                  <th>duration</th>
                  {taskIds.map((t) => (
                    <th>{t}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {rows.map(({ run, tasks }) => (
                  <tr>
                    <td>#{run.id}</td>
                    <td>{run.logical_date}</td>
                    <td>{run.kind}</td>
                    <td>
                      <span class={`state s-${run.state}`}>{run.state}</span>
                    </td>
                    <td title={`created ${fmtClock(run.created_us)}`}>
                      {run.started_us ? dur(run.started_us, run.ended_us) : fmtAgo(run.created_us)}
                    </td>
                    {taskIds.map((tid) => {
                      const t = tasks.find((x) => x.task_id === tid);
                      const active = cell?.run === run.id && cell.task === tid;
                      return (
                        <td>
                          {t ? (
                            <button
                              class={`cell s-${t.state}${active ? " active" : ""}`}
                              onClick={() => setCell(active ? null : { run: run.id, task: tid })}
                              title={`${tid}: ${t.state}, ${t.tries} tr${t.tries === 1 ? "y" : "ies"}`}
                            >
                              <span>{t.state}</span>
                              <span class="small">{dur(t.started_us, t.ended_us)}</span>
                            </button>
                          ) : (
                            <span class="muted">–</span>
                          )}
                        </td>
                      );
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
      {cell && <Attempts run={cell.run} task={cell.task} />}
    </>
  );
}

function Attempts({ run, task }: { run: number; task: string }) {
  const [res, setRes] = useState<Loaded<RunDetail>>({ state: "loading" });
  useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const load = async () => {
      const r = await getJson<RunDetail>(`/v1/runs/${run}`);
      if (!alive) return;
      setRes(r);
      const running =
        r.state === "ok" &&
        r.data.tasks.some(
          (t) => t.task_id === task && !["success", "failed", "upstream_failed", "skipped"].includes(t.state),
        );
      if (running) timer = window.setTimeout(load, 2000);
    };
    void load();
    return () => {
      alive = false;
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [run, task]);
  if (res.state !== "ok") {
    return (
      <Section title={`Run #${run} · ${task}`}>
        <Pending res={res} what="run" />
      </Section>
    );
  }
  const attempts = res.data.attempts.filter((a) => a.task_id === task);
  const checks = (res.data.checks as Record<string, unknown>[]).filter((c) => c.task_id === task);
  return (
    <Section title={`Run #${run} · ${task}`}>
      {attempts.length === 0 && <p class="muted">No attempts yet.</p>}
      {attempts.map((a) => (
        <div class="attempt" data-testid="attempt">
          <div class="attempt-head">
            <span class={`state s-${a.state}`}>{a.state}</span>
            <b>try {a.try_number}</b>
            <span class="muted">
              {fmtClock(a.started_us)} · {dur(a.started_us, a.ended_us)}
            </span>
          </div>
          {a.error && <p class="error">{a.error}</p>}
          <pre class="code log">{a.log || "(no log output)"}</pre>
        </div>
      ))}
      {checks.length > 0 && (
        <>
          <h3>Checks</h3>
          <DataTable
            grid={{
              columns: ["table", "check", "passed", "severity", "observed"],
              rows: checks.map((c) => [
                c.table_name,
                c.check_name,
                c.passed ? "✔ passed" : "✘ failed",
                c.severity,
                c.observed,
              ]),
            }}
          />
        </>
      )}
    </Section>
  );
}
