// The live feed behind the charts: one EventSource on GET /v1/stream (a `history` event with
// the last 15 minutes of 1-second samples, then a `sample` event each second, and `log`
// events), shared by every view. When the server has no /v1/stream, samples are derived by
// polling GET /v1/status once a second instead (rates from counter differences; latency
// quantiles there are since start), and /v1/stream is tried again now and then.

import { useEffect, useState } from "preact/hooks";
import { getJson, withToken } from "./api";
import { toMillis } from "./ui";

export interface TableSample {
  rows_per_s?: number | null;
  quarantined?: number | null;
  late?: number | null;
}

export interface Sample {
  /** ms since the epoch */
  t: number;
  events_in_per_s: number | null;
  /** Records appended per second, per source. */
  sources: Record<string, number>;
  tables: Record<string, TableSample>;
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
  lag: number | null;
  /** Micro-batches committed in the sample's interval. */
  batches: number | null;
  rss_bytes: number | null;
}

export type Mode = "connecting" | "sse" | "reconnecting" | "poll";

export interface LogLine {
  ts?: unknown;
  level?: string;
  target?: string;
  message?: string;
  fields?: Record<string, unknown>;
}

const KEEP_MS = 15 * 60 * 1000;
const MAX_SAMPLES = 900;
const SSE_RETRY_MS = 30_000;

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

function parseSample(raw: unknown): Sample | null {
  if (!raw || typeof raw !== "object") return null;
  const o = raw as Record<string, unknown>;
  const t = toMillis(o.ts);
  if (t === null) return null;
  const tables: Record<string, TableSample> = {};
  if (o.tables && typeof o.tables === "object") {
    for (const [k, v] of Object.entries(o.tables as Record<string, unknown>)) {
      const x = (v ?? {}) as Record<string, unknown>;
      tables[k] = { rows_per_s: num(x.rows_per_s), quarantined: num(x.quarantined), late: num(x.late) };
    }
  }
  const sources: Record<string, number> = {};
  if (o.sources && typeof o.sources === "object") {
    for (const [k, v] of Object.entries(o.sources as Record<string, unknown>)) {
      const x = num(v);
      if (x !== null) sources[k] = x;
    }
  }
  return {
    t,
    events_in_per_s: num(o.events_in_per_s),
    sources,
    tables,
    latency_p50_ms: num(o.latency_p50_ms),
    latency_p99_ms: num(o.latency_p99_ms),
    lag: num(o.lag),
    batches: num(o.batches),
    rss_bytes: num(o.rss_bytes),
  };
}

interface StatusJson {
  lag?: number;
  sources?: Record<string, { records_in?: number }>;
  tables?: Record<string, { rows_out?: number; quarantined?: number; late?: number }>;
  pipeline?: { batches?: number; latency_ms?: { p50?: number | null; p99?: number | null } };
}

class LiveFeed {
  samples: Sample[] = [];
  mode: Mode = "connecting";
  /** The last poll of /v1/status failed (poll mode only). */
  failing = false;
  version = 0;
  private listeners = new Set<() => void>();
  private logListeners = new Set<(l: LogLine) => void>();
  private pollTimer: number | undefined;
  private retryTimer: number | undefined;
  private prevStatus: { t: number; s: StatusJson } | null = null;
  private started = false;

  start() {
    if (this.started) return;
    this.started = true;
    this.connect();
  }

  subscribe(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  onLog(f: (l: LogLine) => void): () => void {
    this.logListeners.add(f);
    return () => this.logListeners.delete(f);
  }

  private changed() {
    this.version++;
    for (const f of this.listeners) f();
  }

  private push(s: Sample) {
    const last = this.samples[this.samples.length - 1];
    if (last && s.t <= last.t) return;
    this.samples.push(s);
    const cutoff = s.t - KEEP_MS;
    let drop = 0;
    while (drop < this.samples.length && this.samples[drop].t < cutoff) drop++;
    drop = Math.max(drop, this.samples.length - MAX_SAMPLES);
    if (drop > 0) this.samples.splice(0, drop);
  }

  private connect() {
    let es: EventSource;
    try {
      es = new EventSource(withToken("/v1/stream"));
    } catch {
      this.startPolling();
      return;
    }
    es.onopen = () => {
      this.stopPolling();
      this.mode = "sse";
      this.changed();
    };
    es.addEventListener("history", (e) => {
      let arr: unknown;
      try {
        arr = JSON.parse((e as MessageEvent).data);
      } catch {
        return;
      }
      const list = Array.isArray(arr) ? arr : ((arr as { samples?: unknown })?.samples ?? []);
      this.samples = [];
      for (const r of list as unknown[]) {
        const s = parseSample(r);
        if (s) this.push(s);
      }
      this.changed();
    });
    es.addEventListener("sample", (e) => {
      try {
        const s = parseSample(JSON.parse((e as MessageEvent).data));
        if (s) {
          this.push(s);
          this.changed();
        }
      } catch {
        /* a malformed event is skipped */
      }
    });
    es.addEventListener("log", (e) => {
      try {
        const l = JSON.parse((e as MessageEvent).data) as LogLine;
        for (const f of this.logListeners) f(l);
      } catch {
        /* skipped */
      }
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        // Not an event stream (no such endpoint on this server) or refused: poll instead.
        es.close();
        this.startPolling();
        this.retryTimer = window.setTimeout(() => this.connect(), SSE_RETRY_MS);
      } else if (this.mode === "sse") {
        this.mode = "reconnecting";
        this.changed();
      }
    };
  }

  private startPolling() {
    if (this.pollTimer !== undefined) return;
    this.mode = "poll";
    this.changed();
    const tick = async () => {
      const r = await getJson<StatusJson>("/v1/status");
      if (r.state === "ok") this.fromStatus(r.data);
      if (this.failing !== (r.state !== "ok")) {
        this.failing = r.state !== "ok";
        this.changed();
      }
      if (this.mode === "poll") this.pollTimer = window.setTimeout(tick, 1000);
      else this.pollTimer = undefined;
    };
    this.pollTimer = window.setTimeout(tick, 0);
  }

  private stopPolling() {
    if (this.pollTimer !== undefined) window.clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    if (this.retryTimer !== undefined) window.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.prevStatus = null;
  }

  private fromStatus(s: StatusJson) {
    const now = Date.now();
    const prev = this.prevStatus;
    this.prevStatus = { t: now, s };
    if (!prev) return;
    const dt = (now - prev.t) / 1000;
    if (dt <= 0) return;
    const recordsIn = (x: StatusJson) => Object.values(x.sources ?? {}).reduce((a, v) => a + (v.records_in ?? 0), 0);
    const sources: Record<string, number> = {};
    for (const [name, src] of Object.entries(s.sources ?? {})) {
      const before = prev.s.sources?.[name]?.records_in;
      if (before !== undefined && src.records_in !== undefined)
        sources[name] = Math.max(0, src.records_in - before) / dt;
    }
    const b0 = prev.s.pipeline?.batches;
    const b1 = s.pipeline?.batches;
    const tables: Record<string, TableSample> = {};
    for (const [name, t] of Object.entries(s.tables ?? {})) {
      const before = prev.s.tables?.[name]?.rows_out;
      tables[name] = {
        rows_per_s: before === undefined || t.rows_out === undefined ? null : Math.max(0, t.rows_out - before) / dt,
        quarantined: t.quarantined ?? null,
        late: t.late ?? null,
      };
    }
    this.push({
      t: now,
      events_in_per_s: Math.max(0, recordsIn(s) - recordsIn(prev.s)) / dt,
      sources,
      tables,
      latency_p50_ms: num(s.pipeline?.latency_ms?.p50),
      latency_p99_ms: num(s.pipeline?.latency_ms?.p99),
      lag: num(s.lag),
      batches: b0 !== undefined && b1 !== undefined ? Math.max(0, b1 - b0) : null,
      rss_bytes: null,
    });
    this.changed();
  }
}

export const live = new LiveFeed();

/** The live samples; re-renders on every new one. */
export function useLive(): LiveFeed {
  const [, setV] = useState(0);
  useEffect(() => {
    live.start();
    return live.subscribe(() => setV(live.version));
  }, []);
  return live;
}
