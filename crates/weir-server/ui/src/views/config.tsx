// The project's weir.toml (secrets masked by the server) and each table's SQL, read-only.

import { usePoll } from "../hooks";
import { Pending, Section } from "../ui";

export function ConfigView() {
  const [res, reload] = usePoll<{ toml?: string; tables?: { name: string; sql?: string | null }[] }>("/v1/config", 0);
  if (res.state !== "ok") {
    return (
      <Section title="Configuration">
        <Pending res={res} what="Configuration" />
      </Section>
    );
  }
  return (
    <>
      <Section
        title="weir.toml"
        extra={
          <span class="row-gap">
            <span class="muted small">read-only · secrets masked</span>
            <button class="btn" onClick={reload}>
              Reload
            </button>
          </span>
        }
      >
        <pre class="code full" data-testid="config-toml">
          {res.data.toml ?? ""}
        </pre>
      </Section>
      {(res.data.tables ?? []).map((t) => (
        <Section title={`${t.name}`}>
          {t.sql ? <pre class="code">{t.sql}</pre> : <p class="muted">No SQL (a raw table written by its source).</p>}
        </Section>
      ))}
    </>
  );
}
