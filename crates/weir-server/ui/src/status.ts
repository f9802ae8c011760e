// GET /v1/status, polled once by the app shell and shared with the views that fall back on it
// when a newer endpoint is missing.

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Loaded } from "./api";

export interface SourceStatus {
  kind?: string;
  lag?: number;
  records_in?: number;
  partitions?: { partition: number; end_offset: number; committed_offset: number; lag: number }[];
}

export interface TableStatus {
  rows_in?: number;
  rows_out?: number;
  quarantined?: number;
  dropped?: number;
  duplicates?: number;
  late?: number;
  expectation_failures?: Record<string, number>;
  watermark_us?: number | null;
  delta_version?: number;
}

export interface Status {
  project?: string;
  uptime_seconds?: number;
  lag?: number;
  dead_letters?: number;
  sources?: Record<string, SourceStatus>;
  tables?: Record<string, TableStatus>;
  delta_versions?: Record<string, number>;
  pipeline?: {
    batches?: number;
    records_processed?: number;
    last_batch_seconds?: number;
    latency_ms?: { p50?: number | null; p99?: number | null; count?: number };
    error?: string | null;
  };
}

export const StatusContext = createContext<Loaded<Status>>({ state: "loading" });

export const useStatus = () => useContext(StatusContext);

/** Every table name the status knows: streaming tables and Delta tables (bronze included). */
export function statusTables(s: Status): string[] {
  const names = new Set<string>([...Object.keys(s.delta_versions ?? {}), ...Object.keys(s.tables ?? {})]);
  return [...names].sort();
}

/** bronze / silver / gold from weir's table naming, or null. */
export function layerOf(name: string): string | null {
  const m = /^(bronze|silver|gold)_/.exec(name);
  return m ? m[1] : null;
}
