// The pipeline graph: sources -> tables -> sinks laid out in columns by depth, each node with
// its live figures; a click shows all of a node's figures. Data from GET /v1/pipeline, or —
// on a server without it — from GET /v1/status with edges inferred from weir's layer naming.

import { useMemo, useState } from "preact/hooks";
import { useWidth } from "../hooks";
import { usePoll } from "../hooks";
import { live, useLive } from "../live";
import { layerOf, statusTables, useStatus, type Status } from "../status";
import { fmtNum, fmtStat, KV, label, Pending, Section } from "../ui";

interface GNode {
  id: string;
  name: string;
  kind: string;
  layer: string | null;
  /** stream or batch (tables) */
  mode?: string | null;
  /** table, quarantine, ... */
  role?: string | null;
  stats: Record<string, unknown>;
}

interface Graph {
  nodes: GNode[];
  edges: { from: string; to: string }[];
  inferred: boolean;
}

interface PipelineJson {
  nodes?: {
    id: string;
    name?: string;
    label?: string;
    kind?: string;
    layer?: string | null;
    mode?: string | null;
    role?: string | null;
    stats?: Record<string, unknown>;
  }[];
  edges?: { from: string; to: string }[];
}

function fromPipeline(p: PipelineJson): Graph {
  return {
    nodes: (p.nodes ?? []).map((n) => ({
      id: String(n.id),
      name: String(n.name ?? n.label ?? n.id),
      kind: n.kind ?? "table",
      layer: n.layer ?? null,
      mode: n.mode ?? null,
      role: n.role ?? null,
      stats: n.stats ?? {},
    })),
    // One edge per pair, however many ways the server found it.
    edges: [...new Set((p.edges ?? []).map((e) => JSON.stringify([String(e.from), String(e.to)])))].map((k) => {
      const [from, to] = JSON.parse(k) as [string, string];
      return { from, to };
    }),
    inferred: false,
  };
}

function fromStatus(s: Status): Graph {
  const nodes: GNode[] = [];
  const edges: Graph["edges"] = [];
  for (const [name, src] of Object.entries(s.sources ?? {})) {
    nodes.push({
      id: `source:${name}`,
      name,
      kind: "source",
      layer: null,
      stats: { kind: src.kind, records_in: src.records_in, lag: src.lag },
    });
  }
  const tables = statusTables(s);
  // `<table>_quarantine` and `<table>_late` are side outputs of `<table>`.
  const parentOf = (name: string) => {
    const m = /^(.*)_(quarantine|late)$/.exec(name);
    return m && tables.includes(m[1]) ? { parent: m[1], role: m[2] } : null;
  };
  for (const name of tables) {
    const t = s.tables?.[name] ?? {};
    const { expectation_failures: _e, watermark_us: _w, ...counts } = t;
    const side = parentOf(name);
    nodes.push({
      id: name,
      name,
      kind: side ? "sink" : "table",
      role: side?.role ?? "table",
      layer: layerOf(name),
      stats: { ...counts, version: s.delta_versions?.[name] ?? t.delta_version },
    });
    if (side) edges.push({ from: side.parent, to: name });
  }
  const of = (layer: string) => tables.filter((n) => layerOf(n) === layer && !parentOf(n));
  for (const src of Object.keys(s.sources ?? {})) {
    if (tables.includes(`bronze_${src}`)) edges.push({ from: `source:${src}`, to: `bronze_${src}` });
  }
  const chain = [of("bronze"), of("silver"), of("gold")].filter((l) => l.length);
  for (let i = 0; i + 1 < chain.length; i++) {
    for (const a of chain[i]) for (const b of chain[i + 1]) edges.push({ from: a, to: b });
  }
  return { nodes, edges, inferred: true };
}

const H = 136;
const GX = 48;
const GY = 18;
const TOP = 28;

const LAYER_DEPTH: Record<string, number> = { bronze: 1, silver: 2, gold: 3 };

interface Placed extends GNode {
  x: number;
  y: number;
  col: number;
}

interface Layout {
  placed: Placed[];
  /** Card width: the columns share the available width, within limits. */
  w: number;
  width: number;
  height: number;
  columns: { x: number; title: string }[];
}

function layout(g: Graph, avail: number): Layout {
  const ids = new Set(g.nodes.map((n) => n.id));
  const edges = g.edges.filter((e) => ids.has(e.from) && ids.has(e.to) && e.from !== e.to);
  const preds = new Map<string, string[]>();
  for (const e of edges) preds.set(e.to, [...(preds.get(e.to) ?? []), e.from]);
  // A sink sits right after what feeds it (edges decide); a table without edges by its layer.
  const base = (n: GNode) => (n.kind === "source" ? 0 : n.kind === "sink" ? 1 : (LAYER_DEPTH[n.layer ?? ""] ?? 1));
  const depth = new Map(g.nodes.map((n) => [n.id, base(n)]));
  // Longest path from the sources; bounded so that a cycle cannot loop forever.
  for (let i = 0; i < g.nodes.length; i++) {
    let moved = false;
    for (const e of edges) {
      const d = (depth.get(e.from) ?? 0) + 1;
      if (d > (depth.get(e.to) ?? 0)) {
        depth.set(e.to, d);
        moved = true;
      }
    }
    if (!moved) break;
  }
  const used = [...new Set(depth.values())].sort((a, b) => a - b);
  const colOf = new Map(used.map((d, i) => [d, i]));
  const cols: GNode[][] = used.map(() => []);
  for (const n of g.nodes) cols[colOf.get(depth.get(n.id) ?? 0) ?? 0].push(n);
  const W = Math.max(190, Math.min(270, Math.floor((avail - (cols.length - 1) * GX) / Math.max(1, cols.length))));
  const yOf = new Map<string, number>();
  const placed: Placed[] = [];
  cols.forEach((col, ci) => {
    const center = (n: GNode) => {
      const ys = (preds.get(n.id) ?? []).map((p) => yOf.get(p)).filter((y): y is number => y !== undefined);
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : 0;
    };
    col.sort((a, b) => center(a) - center(b) || a.name.localeCompare(b.name));
    col.forEach((n, ri) => {
      const p = { ...n, col: ci, x: ci * (W + GX), y: TOP + ri * (H + GY) };
      yOf.set(n.id, p.y);
      placed.push(p);
    });
  });
  const rows = Math.max(1, ...cols.map((c) => c.length));
  const columns = cols.map((col, ci) => {
    const kinds = new Set(col.map((n) => (n.kind === "table" ? (n.layer ?? "tables") : n.kind + "s")));
    return { x: ci * (W + GX), title: [...kinds].join(" · ") };
  });
  return { placed, w: W, width: cols.length * (W + GX) - GX, height: TOP + rows * (H + GY), columns };
}

const HEADLINE = [
  "rows_per_s",
  "records_per_s",
  "events_per_s",
  "rate",
  "lag",
  "rows",
  "rows_out",
  "records_in",
  "quarantined",
  "late",
  "last_commit",
  "version",
];

/** The live rate of a node from the latest stream sample, when there is one. */
function liveRate(n: GNode, sources: number): number | null {
  const s = live.samples[live.samples.length - 1];
  const stat = (k: string) => (typeof n.stats[k] === "number" ? (n.stats[k] as number) : null);
  if (n.kind === "source") {
    return s?.sources[n.name] ?? (sources === 1 ? s?.events_in_per_s : undefined) ?? stat("events_per_s");
  }
  return s?.tables[n.name]?.rows_per_s ?? stat("rows_per_s");
}

function NodeCard({
  n,
  selected,
  onClick,
  rate,
  w,
}: {
  n: Placed;
  w: number;
  selected: boolean;
  onClick: () => void;
  rate: number | null;
}) {
  const keys = HEADLINE.filter((k) => n.stats[k] !== undefined && !(rate !== null && /per_s|rate/.test(k))).slice(
    0,
    rate !== null ? 3 : 4,
  );
  const warn = (k: string) =>
    (k === "quarantined" || k === "late" || k === "lag") &&
    typeof n.stats[k] === "number" &&
    (n.stats[k] as number) > 0;
  return (
    <div
      class={`node node-${n.kind} layer-${n.layer ?? "none"}${selected ? " selected" : ""}`}
      style={{ left: `${n.x}px`, top: `${n.y}px`, width: `${w}px`, height: `${H}px` }}
      onClick={onClick}
      data-testid="pipeline-node"
      data-node={n.name}
      title={`${n.kind} ${n.name}`}
    >
      <div class="node-name">
        {n.name.split("_").map((part, i) => (
          <>
            {i > 0 && (
              <>
                _<wbr />
              </>
            )}
            {part}
          </>
        ))}
      </div>
      <div class="node-sub">
        <span class="badges">
          {n.kind === "sink" ? (
            <span class={`badge b-sink`}>{n.role && n.role !== "table" ? `${n.role} sink` : "sink"}</span>
          ) : (
            <span class={`badge b-${n.layer ?? n.kind}`}>{n.layer ?? n.kind}</span>
          )}
          {n.mode === "batch" && <span class="badge b-batch">batch</span>}
        </span>
        {rate !== null && (
          <span class="node-rate">
            <b>{fmtNum(rate)}</b> {n.kind === "source" ? "events/s" : "rows/s"}
          </span>
        )}
      </div>
      <dl class="node-stats">
        {keys.map((k) => (
          <>
            <dt>{label(k)}</dt>
            <dd class={warn(k) ? "warn" : ""}>{fmtStat(k, n.stats[k])}</dd>
          </>
        ))}
      </dl>
    </div>
  );
}

export function PipelineView({ go }: { go: (hash: string) => void }) {
  const [res] = usePoll<PipelineJson>("/v1/pipeline", 2000);
  const status = useStatus();
  useLive();
  const [sel, setSel] = useState<string | null>(null);
  const [outer, outerWidth] = useWidth<HTMLDivElement>();
  // The card's padding and border on both sides.
  const avail = Math.max(600, outerWidth - 36);

  const graph: Graph | null =
    res.state === "ok"
      ? fromPipeline(res.data)
      : res.state === "missing" && status.state === "ok"
        ? fromStatus(status.data)
        : null;
  const lay = useMemo(
    () => (graph ? layout(graph, avail) : null),
    [graph && JSON.stringify([graph.nodes.map((n) => n.id), graph.edges]), avail],
  );

  if (!graph || !lay) {
    return (
      <div ref={outer}>
        <Section title="Pipeline">
          <Pending res={res.state === "missing" ? status : res} what="pipeline graph" />
        </Section>
      </div>
    );
  }
  const W = lay.w;
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const sources = graph.nodes.filter((n) => n.kind === "source").length;
  const placedById = new Map(lay.placed.map((p) => [p.id, p]));
  const selected = sel ? byId.get(sel) : undefined;
  return (
    <div ref={outer} class="stack">
      <Section title="Pipeline">
        {graph.inferred && (
          <p class="note" data-testid="not-available">
            Graph built from <code>/v1/status</code>: this weir build has no <code>/v1/pipeline</code> endpoint, so
            edges are inferred from the bronze/silver/gold naming.
          </p>
        )}
        <div class="graph-scroll">
          <div
            class="graph"
            style={{ width: `${lay.width}px`, height: `${lay.height}px` }}
            data-testid="pipeline-graph"
          >
            {lay.columns.map((c) => (
              <div class="col-title" style={{ left: `${c.x}px`, width: `${W}px` }}>
                {c.title}
              </div>
            ))}
            <svg class="edges" width={lay.width} height={lay.height}>
              <defs>
                <marker
                  id="arrow"
                  viewBox="0 0 10 10"
                  refX="9"
                  refY="5"
                  markerWidth="7"
                  markerHeight="7"
                  orient="auto-start-reverse"
                >
                  <path d="M 0 0 L 10 5 L 0 10 z" fill="#5b6b85" />
                </marker>
              </defs>
              {graph.edges.map((e) => {
                const a = placedById.get(e.from);
                const b = placedById.get(e.to);
                if (!a || !b) return null;
                const x1 = a.x + W,
                  y1 = a.y + H / 2,
                  x2 = b.x - 2,
                  y2 = b.y + H / 2;
                const mx = (x1 + x2) / 2;
                const hot = sel === e.from || sel === e.to;
                return (
                  <path
                    d={`M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`}
                    class={hot ? "edge hot" : "edge"}
                    marker-end="url(#arrow)"
                  />
                );
              })}
            </svg>
            {lay.placed.map((p) => (
              <NodeCard
                n={{ ...p, stats: byId.get(p.id)?.stats ?? {} }}
                selected={sel === p.id}
                onClick={() => setSel(sel === p.id ? null : p.id)}
                rate={liveRate(p, sources)}
                w={W}
              />
            ))}
          </div>
        </div>
      </Section>
      {selected && (
        <Section
          title={`${selected.kind} ${selected.name}`}
          extra={
            selected.kind === "table" ? (
              <button class="btn" onClick={() => go(`tables/${selected.name}`)}>
                Open in Tables
              </button>
            ) : undefined
          }
        >
          <div class="details-grid" data-testid="node-details">
            <div>
              <h3>Figures</h3>
              <KV
                obj={{
                  kind: selected.kind,
                  layer: selected.layer,
                  mode: selected.mode,
                  role: selected.role,
                  ...flat(selected.stats),
                }}
              />
            </div>
            <div>
              <h3>Reads from</h3>
              <ul class="plain">
                {graph.edges
                  .filter((e) => e.to === selected.id)
                  .map((e) => (
                    <li>{byId.get(e.from)?.name ?? e.from}</li>
                  ))}
              </ul>
              <h3>Feeds</h3>
              <ul class="plain">
                {graph.edges
                  .filter((e) => e.from === selected.id)
                  .map((e) => (
                    <li>{byId.get(e.to)?.name ?? e.to}</li>
                  ))}
              </ul>
            </div>
          </div>
        </Section>
      )}
    </div>
  );
}

/** Nested stat objects one level flattened: {a: {b: 1}} -> {a_b: 1}. */
function flat(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) out[`${k} ${k2}`] = v2;
    } else out[k] = v;
  }
  return out;
}
