// Recent log lines from the server's in-memory ring buffer (GET /v1/logs), filtered by level
// and component, refreshed every two seconds unless paused.

import { useEffect, useState } from "preact/hooks";
import { usePoll } from "../hooks";
import type { LogLine } from "../live";
import { fmtClock, Pending, Section, toMillis } from "../ui";

const LEVELS = ["error", "warn", "info"];

export function LogsView() {
  const [level, setLevel] = useState("info");
  const [component, setComponent] = useState("");
  const [typed, setTyped] = useState("");
  const [paused, setPaused] = useState(false);
  const [ownOnly, setOwnOnly] = useState(false);
  const [limit, setLimit] = useState(200);
  // Typing in the component box waits for a pause before it asks the server.
  useEffect(() => {
    const t = window.setTimeout(() => setComponent(typed.trim()), 400);
    return () => window.clearTimeout(t);
  }, [typed]);
  const q = new URLSearchParams({ level, limit: String(limit) });
  // Components are target prefixes: `weir` keeps weir's own crates and hides dependencies'.
  const prefix = component || (ownOnly ? "weir" : "");
  if (prefix) q.set("component", prefix);
  const [res] = usePoll<{ lines?: LogLine[] }>(`/v1/logs?${q}`, paused ? 0 : 2000);
  const lines = res.state === "ok" ? [...(res.data.lines ?? [])] : [];
  lines.sort((a, b) => (toMillis(b.ts) ?? 0) - (toMillis(a.ts) ?? 0));
  return (
    <Section
      title="Logs"
      extra={
        <span class="row-gap">
          <label>
            level ≥{" "}
            <select value={level} onChange={(e) => setLevel((e.target as HTMLSelectElement).value)}>
              {LEVELS.map((l) => (
                <option value={l}>{l}</option>
              ))}
            </select>
          </label>
          <input
            placeholder="component, e.g. weir_sql"
            value={typed}
            onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
          />
          <label title="Only lines logged by weir's own crates (targets starting with weir)">
            <input
              type="checkbox"
              checked={ownOnly}
              onChange={(e) => setOwnOnly((e.target as HTMLInputElement).checked)}
            />{" "}
            weir only
          </label>
          <select value={limit} onChange={(e) => setLimit(Number((e.target as HTMLSelectElement).value))}>
            {[200, 500, 1000].map((l) => (
              <option value={l}>{l} lines</option>
            ))}
          </select>
          <button class="btn" onClick={() => setPaused(!paused)}>
            {paused ? "Resume" : "Pause"}
          </button>
        </span>
      }
    >
      {res.state !== "ok" ? (
        <Pending res={res} what="Logs" />
      ) : lines.length === 0 ? (
        <p class="muted">No log lines match.</p>
      ) : (
        <div class="logs" data-testid="log-lines">
          {lines.map((l) => (
            <div class={`log-line lv-${(l.level ?? "").toLowerCase()}`}>
              <span class="log-ts">{fmtClock(l.ts)}</span>
              <span class="log-lv">{(l.level ?? "").toUpperCase()}</span>
              <span class="log-target">{l.target}</span>
              <span class="log-msg">
                {l.message}
                {l.fields && Object.keys(l.fields).length > 0 && (
                  <span class="log-fields">
                    {Object.entries(l.fields).map(([k, v]) => (
                      <span>
                        {" "}
                        {k}=<b>{typeof v === "string" ? v : JSON.stringify(v)}</b>
                      </span>
                    ))}
                  </span>
                )}
              </span>
            </div>
          ))}
        </div>
      )}
    </Section>
  );
}
