// weir's dashboard: an app shell with the project's headline figures and one tab per view.
// The view and its selection live in the URL hash (#tables/silver_events), so a view can be
// bookmarked and the back button works.

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { getToken, onUnauthorized, setToken } from "./api";
import { usePoll } from "./hooks";
import { live, useLive } from "./live";
import { StatusContext, type Status } from "./status";
import { fmtMs, fmtNum } from "./ui";
import { ChartsView } from "./views/charts";
import { ConfigView } from "./views/config";
import { DagsView } from "./views/dags";
import { LogsView } from "./views/logs";
import { PipelineView } from "./views/pipeline";
import { QualityView } from "./views/quality";
import { TablesView } from "./views/tables";

const TABS = [
  ["pipeline", "Pipeline"],
  ["charts", "Throughput & latency"],
  ["tables", "Tables & SQL"],
  ["quality", "Quality"],
  ["dags", "DAGs"],
  ["logs", "Logs"],
  ["config", "Config"],
] as const;

type Tab = (typeof TABS)[number][0];

function parseHash(): { tab: Tab; arg: string | null } {
  const h = decodeURIComponent(window.location.hash.replace(/^#\/?/, ""));
  const [tab, ...rest] = h.split("/");
  const known = TABS.find(([t]) => t === tab);
  return { tab: known ? known[0] : "pipeline", arg: rest.length ? rest.join("/") : null };
}

function App() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const f = () => setRoute(parseHash());
    window.addEventListener("hashchange", f);
    return () => window.removeEventListener("hashchange", f);
  }, []);
  const go = (h: string) => {
    window.location.hash = h;
  };
  const [status] = usePoll<Status>("/v1/status", 2000);
  const [authError, setAuthError] = useState<string | null>(null);
  useEffect(() => onUnauthorized(setAuthError), []);
  const feed = useLive();
  const s = status.state === "ok" ? status.data : null;
  const err = s?.pipeline?.error;
  const mode = {
    connecting: ["connecting", "idle"],
    sse: ["live", "ok"],
    reconnecting: ["reconnecting", "warn"],
    poll: feed.failing ? ["no live data", "bad"] : ["live (polling)", "ok"],
  }[feed.mode];

  return (
    <StatusContext.Provider value={status}>
      <header class="top">
        <div class="brand">
          <span class="logo">≋</span> weir
          {s?.project && <span class="project">{s.project}</span>}
        </div>
        <div class="pills">
          {status.state === "error" && (
            <span class="pill bad" title={status.message}>
              {status.status === undefined
                ? "server unreachable"
                : status.status === 401
                  ? "token needed"
                  : "status unavailable"}
            </span>
          )}
          {s &&
            (err ? (
              <span class="pill bad" title={err}>
                pipeline stopped
              </span>
            ) : (
              <span class="pill ok">pipeline running</span>
            ))}
          {s && <span class="pill">up {fmtMs((s.uptime_seconds ?? 0) * 1000)}</span>}
          {s && <span class="pill">{fmtNum(s.pipeline?.records_processed ?? 0)} records</span>}
          {s && <span class={`pill ${s.lag ? "warn" : ""}`}>lag {fmtNum(s.lag ?? 0)}</span>}
          {s && <span class={`pill ${s.dead_letters ? "warn" : ""}`}>{fmtNum(s.dead_letters ?? 0)} dead letters</span>}
          <span class={`pill ${mode[1]}`} data-testid="live-mode">
            <span class="dot-live" /> {mode[0]}
          </span>
        </div>
      </header>
      <nav class="tabs">
        {TABS.map(([t, name]) => (
          <a href={`#${t}`} class={route.tab === t ? "active" : ""} data-tab={t}>
            {name}
          </a>
        ))}
      </nav>
      {authError && <TokenPrompt message={authError} />}
      {err && <p class="error banner">The pipeline stopped: {err}</p>}
      <main>
        {route.tab === "pipeline" && <PipelineView go={go} />}
        {route.tab === "charts" && <ChartsView />}
        {route.tab === "tables" && <TablesView selected={route.arg} go={go} />}
        {route.tab === "quality" && <QualityView />}
        {route.tab === "dags" && <DagsView selected={route.arg} go={go} />}
        {route.tab === "logs" && <LogsView />}
        {route.tab === "config" && <ConfigView />}
      </main>
    </StatusContext.Provider>
  );
}

/** Asks for the API token when the server refused one (or there was none). */
function TokenPrompt({ message }: { message: string }) {
  const [value, setValue] = useState("");
  const had = getToken() !== null;
  return (
    <form
      class="banner token"
      data-testid="token-prompt"
      onSubmit={(e) => {
        e.preventDefault();
        setToken(value.trim() || null);
        window.location.reload();
      }}
    >
      <span>
        {had
          ? `The saved token was refused (${message}).`
          : "This weir needs an API token: one of the tokens under [server.auth] in its weir.toml."}
      </span>
      <input
        type="password"
        placeholder="token from [server.auth]"
        value={value}
        onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        autoComplete="off"
      />
      <button class="btn primary" type="submit">
        Use token
      </button>
      {had && (
        <button
          class="btn"
          type="button"
          onClick={() => {
            setToken(null);
            window.location.reload();
          }}
        >
          Forget saved token
        </button>
      )}
    </form>
  );
}

live.start();
const root = document.getElementById("app");
if (root) render(<App />, root);
