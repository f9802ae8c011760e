// Tables: the list (GET /v1/tables), one table's schema, partitions, Delta history and newest
// rows, and the SQL box.

import { useState } from "preact/hooks";
import { firstArray, seg, toGrid } from "../api";
import { usePoll } from "../hooks";
import { layerOf, statusTables, useStatus } from "../status";
import { DataTable, fmtAgo, fmtBytes, fmtClock, fmtNum, NotAvailable, Pending, Section } from "../ui";
import { SqlBox } from "./sqlbox";

interface TableSummary {
  name: string;
  layer?: string | null;
  kind?: string;
  role?: string;
  version?: number | null;
  rows?: number | null;
  files?: number | null;
  size_bytes?: number | null;
  partition_by?: string[];
  last_commit?: unknown;
}

interface TableDetail extends TableSummary {
  schema?: { name: string; type: string; nullable?: boolean }[];
  partitions?: { values?: Record<string, unknown>; files?: number; rows?: number; size_bytes?: number }[];
  sql?: string | null;
  from?: string | null;
  inputs?: string[];
}

interface HistoryEntry {
  version?: number;
  timestamp?: unknown;
  operation?: string;
  parameters?: unknown;
  metrics?: unknown;
}

function compact(v: unknown): string {
  if (v == null) return "";
  if (typeof v !== "object") return String(v);
  return Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `${k}=${typeof x === "object" ? JSON.stringify(x) : String(x)}`)
    .join(", ");
}

export function TablesView({ selected, go }: { selected: string | null; go: (hash: string) => void }) {
  const [list] = usePoll<{ tables?: TableSummary[] }>("/v1/tables", 5000);
  const status = useStatus();
  const [sql, setSql] = useState("");

  let tables: TableSummary[] = [];
  let fromStatus = false;
  if (list.state === "ok") tables = list.data.tables ?? [];
  else if (list.state === "missing" && status.state === "ok") {
    fromStatus = true;
    tables = statusTables(status.data).map((name) => ({
      name,
      layer: layerOf(name),
      version: status.data.delta_versions?.[name] ?? null,
      rows: status.data.tables?.[name]?.rows_out ?? null,
    }));
  }
  const current = selected ?? tables[0]?.name ?? null;

  return (
    <>
      <SqlBox sql={sql} setSql={setSql} />
      <div class="split">
        <Section title="Tables">
          {fromStatus && (
            <p class="note" data-testid="not-available">
              From <code>/v1/status</code>: this weir build has no <code>/v1/tables</code> endpoint (rows are rows
              written since start).
            </p>
          )}
          {list.state !== "ok" && !fromStatus && <Pending res={list} what="tables" />}
          <ul class="table-list" data-testid="table-list">
            {tables.map((t) => (
              <li class={t.name === current ? "active" : ""} onClick={() => go(`tables/${t.name}`)}>
                <div class="tl-name">
                  {t.name}
                  {t.layer && <span class={`badge b-${t.layer}`}>{t.layer}</span>}
                  {t.kind === "batch" && <span class="badge b-batch">batch</span>}
                  {t.role && t.role !== "table" && <span class={`badge b-${t.role}`}>{t.role}</span>}
                </div>
                <div class="tl-meta muted">
                  {t.rows != null && <span>{fmtNum(t.rows)} rows</span>}
                  {t.size_bytes != null && <span>{fmtBytes(t.size_bytes)}</span>}
                  {t.version != null && <span>{t.version < 0 ? "no commit yet" : `v${t.version}`}</span>}
                </div>
              </li>
            ))}
          </ul>
        </Section>
        <div class="stack">
          {current ? (
            <TableDetails
              key={current}
              name={current}
              summary={tables.find((t) => t.name === current)}
              onQuery={(q) => {
                setSql(q);
                window.scrollTo({ top: 0, behavior: "smooth" });
              }}
            />
          ) : (
            <Section title="Table">
              <p class="muted">No tables yet.</p>
            </Section>
          )}
        </div>
      </div>
    </>
  );
}

function TableDetails({
  name,
  summary,
  onQuery,
}: {
  name: string;
  summary?: TableSummary;
  onQuery: (sql: string) => void;
}) {
  const [detail] = usePoll<TableDetail>(`/v1/tables/${seg(name)}`, 5000);
  const [history] = usePoll<{ history?: HistoryEntry[] }>(`/v1/tables/${seg(name)}/history?limit=20`, 10000);
  const [preview, reloadPreview] = usePoll<unknown>(`/v1/tables/${seg(name)}/preview?limit=50`, 10000);
  const d: TableDetail | undefined = detail.state === "ok" ? detail.data : summary;
  return (
    <>
      <Section
        title={name}
        extra={
          <button class="btn" onClick={() => onQuery(`SELECT * FROM ${name} LIMIT 100`)}>
            Query this table
          </button>
        }
      >
        {detail.state === "missing" && (
          <NotAvailable path={detail.path} what="Table details (schema, partitions, size)" />
        )}
        {detail.state === "error" && <Pending res={detail} what="table" />}
        {d && (
          <div class="facts" data-testid="table-facts">
            <Fact k="layer" v={d.layer ?? "–"} />
            <Fact k="kind" v={d.kind ?? "–"} />
            <Fact k="Delta version" v={d.version == null ? "–" : d.version < 0 ? "no commit yet" : d.version} />
            <Fact k="rows" v={fmtNum(d.rows)} />
            <Fact k="files" v={fmtNum(d.files)} />
            <Fact k="size" v={fmtBytes(d.size_bytes)} />
            <Fact k="partitioned by" v={d.partition_by?.length ? d.partition_by.join(", ") : "–"} />
            <Fact k="last commit" v={fmtAgo(d.last_commit)} />
            {d.inputs && d.inputs.length > 0 && <Fact k="reads" v={d.inputs.join(", ")} />}
          </div>
        )}
      </Section>
      {detail.state === "ok" && (
        <div class="two">
          <Section title="Schema">
            <DataTable
              grid={{
                columns: ["column", "type", "nullable"],
                rows: (detail.data.schema ?? []).map((c) => [
                  c.name,
                  c.type,
                  c.nullable === undefined ? null : c.nullable ? "yes" : "no",
                ]),
              }}
            />
          </Section>
          <Section title="Partitions">
            {(detail.data.partition_by ?? []).length === 0 ? (
              <p class="muted">Not partitioned.</p>
            ) : (
              <DataTable
                grid={{
                  columns: ["partition", "files", "rows", "size"],
                  rows: (detail.data.partitions ?? []).map((p) => [
                    compact(p.values) || "(unpartitioned)",
                    p.files ?? null,
                    p.rows ?? null,
                    fmtBytes(p.size_bytes),
                  ]),
                }}
                max={200}
              />
            )}
          </Section>
        </div>
      )}
      {detail.state === "ok" && detail.data.sql && (
        <Section title="SQL">
          <pre class="code">{detail.data.sql}</pre>
        </Section>
      )}
      <Section title="Delta history">
        {history.state === "ok" ? (
          <DataTable
            grid={{
              columns: ["version", "time", "operation", "parameters", "metrics"],
              rows: firstArray(history.data, "history").map((h) => {
                const e = h as HistoryEntry;
                return [
                  e.version ?? null,
                  fmtClock(e.timestamp),
                  e.operation ?? null,
                  compact(e.parameters),
                  compact(e.metrics),
                ];
              }),
            }}
          />
        ) : (
          <Pending res={history} what="Delta history" />
        )}
      </Section>
      <Section
        title="Newest rows"
        extra={
          <button class="btn" onClick={reloadPreview}>
            Refresh
          </button>
        }
      >
        {preview.state === "ok" ? (
          <DataTable grid={toGrid(preview.data)} testid="table-preview" />
        ) : (
          <Pending res={preview} what="Row preview" />
        )}
      </Section>
    </>
  );
}

function Fact({ k, v }: { k: string; v: unknown }) {
  return (
    <div class="fact">
      <div class="fact-k">{k}</div>
      <div class="fact-v">{String(v)}</div>
    </div>
  );
}
