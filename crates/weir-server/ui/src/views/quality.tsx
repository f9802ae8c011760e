// Data quality: expectation pass/fail counts per table over time (GET /v1/quality), the
// quarantined rows with their reasons, DAG check results and the dead-letter queue.

import { useState } from "preact/hooks";
import { firstArray, seg, toGrid, type Grid } from "../api";
import { LineChart, PALETTE } from "../chart";
import { usePoll } from "../hooks";
import { useLive } from "../live";
import { useStatus } from "../status";
import { DataTable, fmtClock, fmtNum, Pending, Section, toMillis } from "../ui";

interface Expectation {
  name: string;
  check?: string;
  action?: string;
  failures: number | null;
}

interface TableQuality {
  name: string;
  /** Figures since start: rows_in, passed, failed, quarantined, dropped, warned, ... */
  figures: Record<string, number>;
  expectations: Expectation[];
  series: { t: number; passed: number | null; failed: number | null }[];
}

const n = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

function normExpectations(v: unknown): Expectation[] {
  if (Array.isArray(v)) {
    return v.map((x) => {
      const o = (x ?? {}) as Record<string, unknown>;
      return {
        name: String(o.name ?? "?"),
        check: typeof o.check === "string" ? o.check : undefined,
        action: typeof o.action === "string" ? o.action : undefined,
        failures: n(o.failures ?? o.failed),
      };
    });
  }
  if (v && typeof v === "object") {
    return Object.entries(v as Record<string, unknown>).map(([name, x]) => ({ name, failures: n(x) }));
  }
  return [];
}

/** GET /v1/quality's tables (each with its figures, expectations and series) and checks. */
function normQuality(q: unknown): { tables: TableQuality[]; checks: unknown[] } {
  const o = (q ?? {}) as Record<string, unknown>;
  const tables = (Array.isArray(o.tables) ? o.tables : []).map((raw) => {
    const t = (raw ?? {}) as Record<string, unknown>;
    const figures: Record<string, number> = {};
    for (const [k, v] of Object.entries(t)) if (typeof v === "number") figures[k] = v;
    const series = (Array.isArray(t.series) ? t.series : [])
      .map((x) => {
        const p = (x ?? {}) as Record<string, unknown>;
        return { t: toMillis(p.ts) ?? NaN, passed: n(p.passed), failed: n(p.failed) };
      })
      .filter((p) => Number.isFinite(p.t));
    return { name: String(t.table ?? t.name ?? "?"), figures, expectations: normExpectations(t.expectations), series };
  });
  return { tables, checks: Array.isArray(o.checks) ? o.checks : [] };
}

export function QualityView() {
  const [q] = usePoll<unknown>("/v1/quality", 5000);
  const status = useStatus();
  const feed = useLive();

  let tables: TableQuality[] = [];
  let checks: unknown[] = [];
  let fallback = false;
  if (q.state === "ok") ({ tables, checks } = normQuality(q.data));
  else if (q.state === "missing" && status.state === "ok") {
    // From /v1/status: failures per expectation since start, and the quarantine count over
    // the time this page has been watching.
    fallback = true;
    tables = Object.entries(status.data.tables ?? {})
      .filter(([, t]) => t.quarantined !== undefined)
      .map(([name, t]) => ({
        name,
        figures: Object.fromEntries(
          (["rows_in", "quarantined", "dropped", "duplicates", "late"] as const)
            .filter((k) => typeof t[k] === "number")
            .map((k) => [k, t[k] as number]),
        ),
        expectations: normExpectations(t.expectation_failures ?? {}),
        series: feed.samples.map((s, i, all) => {
          const cur = s.tables[name]?.quarantined ?? null;
          const prev = i > 0 ? (all[i - 1].tables[name]?.quarantined ?? null) : null;
          return { t: s.t, passed: null, failed: cur !== null && prev !== null ? Math.max(0, cur - prev) : null };
        }),
      }));
  }

  return (
    <>
      {fallback && (
        <p class="note" data-testid="not-available">
          Expectation figures from <code>/v1/status</code>: this weir build has no <code>/v1/quality</code> endpoint
          (failures since start; the chart covers only the time this page has been open).
        </p>
      )}
      {q.state !== "ok" && !fallback && (
        <Section title="Quality">
          <Pending res={q} what="Quality figures" />
        </Section>
      )}
      {tables.map((t) => (
        <TableQualityCard t={t} />
      ))}
      {checks.length > 0 && (
        <Section title="DAG check results">
          <DataTable grid={checksGrid(checks)} />
        </Section>
      )}
      <DeadLetters />
    </>
  );
}

function checksGrid(checks: unknown[]): Grid {
  const g = toGrid(checks);
  const order = ["table", "check", "passed", "severity", "observed", "at", "run_id"].filter((c) =>
    g.columns.includes(c),
  );
  const cols = [...order, ...g.columns.filter((c) => !order.includes(c))];
  return {
    columns: cols,
    rows: g.rows.map((r) =>
      cols.map((c) => {
        const v = r[g.columns.indexOf(c)];
        if (c === "at") return fmtClock(v);
        if (c === "passed") return v === true ? "✔ passed" : v === false ? "✘ failed" : v;
        return v;
      }),
    ),
  };
}

const FIGURES: [string, string][] = [
  ["rows_in", "rows checked"],
  ["passed", "passed"],
  ["failed", "failed"],
  ["quarantined", "quarantined"],
  ["dropped", "dropped"],
  ["warned", "warned"],
  ["malformed", "malformed JSON"],
  ["duplicates", "duplicates"],
  ["late", "late"],
];

function TableQualityCard({ t }: { t: TableQuality }) {
  const [showQ, setShowQ] = useState(false);
  const xs = t.series.map((p) => p.t / 1000);
  const hasPassed = t.series.some((p) => p.passed !== null);
  const bad = new Set(["failed", "quarantined", "dropped", "warned", "malformed", "late"]);
  return (
    <Section title={t.name} extra={<span class="muted small">since the pipeline started</span>}>
      <div class="qual-figures" data-testid="quality-figures">
        {FIGURES.filter(([k]) => t.figures[k] !== undefined).map(([k, name]) => (
          <span>
            <span class="muted">{name}</span>{" "}
            <b class={bad.has(k) && t.figures[k] > 0 ? "warn" : ""}>{fmtNum(t.figures[k])}</b>
          </span>
        ))}
      </div>
      <div class="two">
        <div>
          <h3>Expectations</h3>
          {t.expectations.length ? (
            <DataTable
              grid={{
                columns: ["expectation", "action", "failures", "check"],
                rows: t.expectations.map((e) => [e.name, e.action ?? null, e.failures, e.check ?? null]),
              }}
            />
          ) : (
            <p class="muted">No expectations on this table.</p>
          )}
        </div>
        <div>
          <h3>Rows passed / failed per second, last 15 minutes</h3>
          <LineChart
            series={[
              ...(hasPassed ? [{ label: "passed", color: PALETTE[2] }] : []),
              { label: "failed", color: PALETTE[1], fill: true, right: hasPassed },
            ]}
            data={[xs, ...(hasPassed ? [t.series.map((p) => p.passed)] : []), t.series.map((p) => p.failed)]}
            yFormat={fmtNum}
            height={170}
          />
        </div>
      </div>
      <button class="btn" onClick={() => setShowQ(!showQ)} data-testid="show-quarantine">
        {showQ ? "Hide quarantined rows" : "Show quarantined rows"}
      </button>
      {showQ && <Quarantine table={t.name} />}
    </Section>
  );
}

function Quarantine({ table }: { table: string }) {
  const [res] = usePoll<unknown>(`/v1/tables/${seg(table)}/quarantine?limit=50`, 0);
  if (res.state !== "ok") return <Pending res={res} what="Quarantined rows" />;
  const g = toGrid(Array.isArray(res.data) ? res.data : firstArray(res.data, "rows", "quarantine", "quarantined"));
  // When the answer is {columns, rows}, firstArray picked the rows; recover the columns.
  const grid = g.columns.length || !res.data || typeof res.data !== "object" ? g : toGrid(res.data);
  const byReason = (res.data as { by_reason?: Record<string, number> })?.by_reason ?? {};
  const ri = grid.columns.indexOf("reason");
  const ordered: Grid =
    ri > 0
      ? {
          columns: ["reason", ...grid.columns.filter((_, i) => i !== ri)],
          rows: grid.rows.map((r) => [r[ri], ...r.filter((_, i) => i !== ri)]),
        }
      : grid;
  return (
    <>
      {Object.keys(byReason).length > 0 && (
        <div class="reasons">
          {Object.entries(byReason).map(([r, c]) => (
            <span class="reason">
              {r}: {fmtNum(c)}
            </span>
          ))}
        </div>
      )}
      <DataTable grid={ordered} testid="quarantine-rows" />
    </>
  );
}

function DeadLetters() {
  const [limit, setLimit] = useState(50);
  const [open, setOpen] = useState<number | null>(null);
  const status = useStatus();
  const [res, reload] = usePoll<unknown>(`/v1/dead-letters?limit=${limit}`, 10000);
  const served = res.state === "ok" ? n((res.data as { total?: unknown })?.total) : null;
  const total = served ?? (status.state === "ok" ? status.data.dead_letters : undefined);
  const rows = res.state === "ok" ? (firstArray(res.data, "dead_letters", "records") as Record<string, unknown>[]) : [];
  return (
    <Section
      title="Dead-letter queue"
      extra={
        <span class="row-gap">
          {total != null && <span class="muted">{fmtNum(total)} in total</span>}
          <select value={limit} onChange={(e) => setLimit(Number((e.target as HTMLSelectElement).value))}>
            {[50, 200, 1000].map((l) => (
              <option value={l}>newest {l}</option>
            ))}
          </select>
          <button class="btn" onClick={reload}>
            Refresh
          </button>
        </span>
      }
    >
      {res.state !== "ok" ? (
        <Pending res={res} what="Dead letters" />
      ) : rows.length === 0 ? (
        <p class="muted">The dead-letter queue is empty.</p>
      ) : (
        <div class="table-wrap">
          <table class="data" data-testid="dead-letters">
            <thead>
              <tr>
                <th>time</th>
                <th>source</th>
                <th>error</th>
                <th>partition</th>
                <th>offset</th>
                <th>raw (click a row to expand)</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r, i) => {
                const raw = typeof r.raw === "string" ? r.raw : JSON.stringify(r.raw ?? "");
                const enc = r.raw_encoding === "hex" ? " (hex)" : "";
                return (
                  <tr onClick={() => setOpen(open === i ? null : i)} class="clickable">
                    <td class="num">{fmtClock(r.ts)}</td>
                    <td>{String(r.source ?? "–")}</td>
                    <td class="err-text" title={String(r.error ?? "")}>
                      {String(r.error ?? r.reason ?? "")}
                    </td>
                    <td class="num">{String(r.partition ?? "–")}</td>
                    <td class="num">{String(r.offset ?? "–")}</td>
                    <td>
                      <code class={open === i ? "raw open" : "raw"}>
                        {open === i ? raw : raw.slice(0, 100) + (raw.length > 100 ? "…" : "")}
                        {enc}
                      </code>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}
