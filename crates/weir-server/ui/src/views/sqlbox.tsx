// The SQL box: POST /v1/query, the result as a table, and a quick chart of the first numeric
// column against the first column.

import { useRef, useState } from "preact/hooks";
import { postJson, toGrid, type Grid } from "../api";
import { LineChart, PALETTE } from "../chart";
import { fmtClock, fmtNum, DataTable, Section } from "../ui";

type Outcome =
  | { state: "idle" }
  | { state: "running" }
  | { state: "ok"; grid: Grid; ms: number }
  | { state: "error"; message: string };

export function SqlBox({ sql, setSql }: { sql: string; setSql: (s: string) => void }) {
  const [out, setOut] = useState<Outcome>({ state: "idle" });
  const area = useRef<HTMLTextAreaElement>(null);
  const run = async () => {
    const text = sql.trim();
    if (!text) {
      setOut({ state: "error", message: "type a SQL statement first" });
      return;
    }
    setOut({ state: "running" });
    const t0 = performance.now();
    const r = await postJson<unknown>("/v1/query", { sql: text });
    const ms = performance.now() - t0;
    if (r.state === "ok") setOut({ state: "ok", grid: toGrid(r.data), ms });
    else if (r.state === "missing") setOut({ state: "error", message: "this weir build has no /v1/query endpoint" });
    else if (r.state === "error") setOut({ state: "error", message: r.message });
  };
  return (
    <Section
      title="SQL"
      extra={<span class="muted small">Ctrl+Enter runs · tables and batch views of this project</span>}
    >
      <div class="sql">
        <textarea
          ref={area}
          data-testid="sql-input"
          spellcheck={false}
          rows={4}
          value={sql}
          placeholder="SELECT product_category, sum(revenue) AS revenue FROM gold_category_minute GROUP BY 1 ORDER BY 2 DESC"
          onInput={(e) => setSql((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              void run();
            }
          }}
        />
        <div class="sql-actions">
          <button
            class="btn primary"
            data-testid="sql-run"
            disabled={out.state === "running"}
            onClick={() => void run()}
          >
            {out.state === "running" ? "Running…" : "Run"}
          </button>
          {out.state === "ok" && (
            <span class="muted" data-testid="sql-summary">
              {out.grid.rows.length} row{out.grid.rows.length === 1 ? "" : "s"} in {fmtNum(out.ms)} ms
            </span>
          )}
        </div>
      </div>
      {out.state === "error" && (
        <p class="error" data-testid="sql-error">
          {out.message}
        </p>
      )}
      {out.state === "ok" && (
        <div class="sql-result">
          <DataTable grid={out.grid} testid="sql-result" max={1000} />
          <QueryChart grid={out.grid} />
        </div>
      )}
    </Section>
  );
}

const isDateLike = (v: unknown) =>
  typeof v === "string" && /^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?$/.test(v);

function numericColumn(g: Grid, i: number): boolean {
  let seen = false;
  for (const r of g.rows) {
    const v = r[i];
    if (v === null || v === undefined) continue;
    if (typeof v !== "number") return false;
    seen = true;
  }
  return seen;
}

/** The first numeric column (other than the first) against the first column. */
function QueryChart({ grid }: { grid: Grid }) {
  // One row is a single figure: the table says it all.
  if (grid.rows.length < 2 || grid.columns.length === 0) return null;
  const yi = grid.columns.findIndex((_, i) => i > 0 && numericColumn(grid, i));
  const yIdx = yi >= 0 ? yi : grid.columns.length === 1 && numericColumn(grid, 0) ? 0 : -1;
  if (yIdx < 0) return <p class="muted pad">No numeric column to chart.</p>;
  const xName = grid.columns[0];
  const yName = grid.columns[yIdx];
  const xNumeric = yIdx > 0 && numericColumn(grid, 0);
  const xDates = yIdx > 0 && grid.rows.every((r) => r[0] === null || isDateLike(r[0]));
  if ((xNumeric || xDates) && grid.rows.length >= 2) {
    const pts = grid.rows
      .map(
        (r) =>
          [
            xDates ? Date.parse(String(r[0]).replace(" ", "T")) / 1000 : (r[0] as number),
            r[yIdx] as number | null,
          ] as const,
      )
      .filter(([x]) => typeof x === "number" && Number.isFinite(x))
      .sort((a, b) => a[0] - b[0]);
    return (
      <div class="query-chart" data-testid="sql-chart">
        <h3>
          {yName} by {xName}
        </h3>
        <LineChart
          series={[{ label: yName, color: PALETTE[0], fill: true }]}
          data={[pts.map((p) => p[0]), pts.map((p) => p[1])]}
          time={xDates}
          yFormat={fmtNum}
          xFormat={xDates ? undefined : fmtNum}
          height={220}
        />
      </div>
    );
  }
  const rows = grid.rows.slice(0, 30);
  const vals = rows.map((r) => (typeof r[yIdx] === "number" ? (r[yIdx] as number) : 0));
  const max = Math.max(...vals.map(Math.abs), 1e-12);
  return (
    <div class="query-chart" data-testid="sql-chart">
      <h3>
        {yName}
        {yIdx > 0 ? ` by ${xName}` : ""}
        {grid.rows.length > 30 ? " (first 30 rows)" : ""}
      </h3>
      <div class="bars">
        {rows.map((r, i) => (
          <div class="bar-row">
            <span class="bar-label" title={String(r[0])}>
              {yIdx > 0 ? (isDateLike(r[0]) ? fmtClock(r[0]) : String(r[0] ?? "NULL")) : `row ${i + 1}`}
            </span>
            <span class="bar-track">
              <span class="bar" style={{ width: `${(Math.abs(vals[i]) / max) * 100}%` }} />
            </span>
            <span class="bar-value">{fmtNum(vals[i])}</span>
          </div>
        ))}
      </div>
    </div>
  );
}
