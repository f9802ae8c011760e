// Small shared pieces: number/time formatting, the loading / error / "not available" notes,
// and a readable data table.

import type { ComponentChildren } from "preact";
import type { Grid, Loaded } from "./api";

export function fmtNum(v: unknown): string {
  if (typeof v !== "number" || !Number.isFinite(v)) return v == null ? "–" : String(v);
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e4 || (a >= 1e3 && !Number.isInteger(v))) return (v / 1e3).toFixed(1) + "k";
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(a < 10 ? 2 : 1);
}

export function fmtBytes(v: unknown): string {
  if (typeof v !== "number" || !Number.isFinite(v)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let x = v;
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i === 0 ? x : x.toFixed(1)} ${units[i]}`;
}

export function fmtMs(ms: unknown): string {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "–";
  if (ms === 0) return "0 ms";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m ${Math.round((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h ${Math.round((ms % 3_600_000) / 60_000)}m`;
}

/**
 * Milliseconds since the epoch from the time encodings the API uses: RFC 3339 strings,
 * seconds, milliseconds or microseconds since the epoch (told apart by magnitude).
 */
export function toMillis(v: unknown): number | null {
  if (typeof v === "number" && Number.isFinite(v)) {
    if (v > 1e14) return v / 1000;
    if (v > 1e11) return v;
    if (v > 1e8) return v * 1000;
    return null;
  }
  if (typeof v === "string") {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

export function fmtAgo(v: unknown): string {
  const t = toMillis(v);
  if (t === null) return v == null ? "–" : String(v);
  const s = (Date.now() - t) / 1000;
  if (s < 0) return new Date(t).toISOString().replace("T", " ").slice(0, 19);
  if (s < 60) return `${Math.round(s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return new Date(t).toISOString().slice(0, 10);
}

export function fmtClock(v: unknown): string {
  const t = toMillis(v);
  return t === null ? "–" : new Date(t).toISOString().replace("T", " ").slice(0, 19);
}

/** A stat value formatted by what its key says it is. */
export function fmtStat(key: string, v: unknown): string {
  if (v == null) return "–";
  if (typeof v === "object") return JSON.stringify(v);
  const k = key.toLowerCase();
  if (typeof v === "number") {
    if (k.endsWith("bytes")) return fmtBytes(v);
    if (k.includes("per_s") || k.includes("rate")) return `${fmtNum(v)}/s`;
    if (k.endsWith("_ms")) return fmtMs(v);
    if (k.endsWith("seconds")) return fmtMs(v * 1000);
    if (k.includes("commit") || k.endsWith("_at") || k.endsWith("_us") || k === "ts") return fmtAgo(v);
    return fmtNum(v);
  }
  if (typeof v === "string" && (k.includes("commit") || k.endsWith("_at") || k === "ts")) return fmtAgo(v);
  return String(v);
}

export const label = (key: string) => key.replace(/_/g, " ");

/** Renders a `Loaded` that is not (yet) data; `null` when it is data. */
export function Pending({ res, what }: { res: Loaded<unknown>; what: string }) {
  if (res.state === "loading") return <p class="muted">Loading {what}…</p>;
  if (res.state === "missing") return <NotAvailable path={res.path} what={what} />;
  if (res.state === "error")
    return (
      <p class="error">
        {what}: {res.message}
      </p>
    );
  return null;
}

export function NotAvailable({ path, what }: { path: string; what: string }) {
  return (
    <p class="note" data-testid="not-available">
      {what} not available: this weir build has no <code>{path.split("?")[0]}</code> endpoint.
    </p>
  );
}

export function Section({
  title,
  children,
  extra,
}: {
  title: string;
  children: ComponentChildren;
  extra?: ComponentChildren;
}) {
  return (
    <section class="card">
      <header class="card-head">
        <h2>{title}</h2>
        {extra}
      </header>
      {children}
    </section>
  );
}

function cell(v: unknown) {
  if (v === null || v === undefined) return <span class="null">NULL</span>;
  if (typeof v === "object") return JSON.stringify(v);
  // Twelve significant digits hide binary floating-point noise (0.1 + 0.2) without rounding
  // any value a person would read.
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(parseFloat(v.toPrecision(12)));
  return String(v);
}

/** A scrollable table of a result grid. */
export function DataTable({ grid, max = 500, testid }: { grid: Grid; max?: number; testid?: string }) {
  if (!grid.columns.length) return <p class="muted">No columns.</p>;
  const rows = grid.rows.slice(0, max);
  // A column whose values are all numbers is right-aligned, header included.
  const numeric = grid.columns.map(
    (_, i) => rows.some((r) => typeof r[i] === "number") && rows.every((r) => r[i] == null || typeof r[i] === "number"),
  );
  return (
    <div class="table-wrap">
      <table class="data" data-testid={testid}>
        <thead>
          <tr>
            {grid.columns.map((c, i) => (
              <th class={numeric[i] ? "num" : undefined}>{c}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr>
              {r.map((v, i) => (
                <td class={numeric[i] ? "num" : undefined}>{cell(v)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {grid.rows.length === 0 && <p class="muted pad">No rows.</p>}
      {grid.rows.length > max && (
        <p class="muted pad">
          Showing {max} of {grid.rows.length} rows.
        </p>
      )}
    </div>
  );
}

/** Key/value pairs of an object as a two-column table. */
export function KV({ obj }: { obj: Record<string, unknown> }) {
  return (
    <table class="kv">
      <tbody>
        {Object.entries(obj).map(([k, v]) => (
          <tr>
            <th>{label(k)}</th>
            <td>{fmtStat(k, v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
