// Throughput, latency and lag over the last 15 minutes, live from the shared stream.

import { LineChart, PALETTE } from "../chart";
import { useLive, type Sample } from "../live";
import { fmtBytes, fmtMs, fmtNum, Section } from "../ui";

function column(samples: Sample[], f: (s: Sample) => number | null | undefined): (number | null)[] {
  return samples.map((s) => {
    const v = f(s);
    return v === undefined ? null : v;
  });
}

export function ChartsView() {
  const feed = useLive();
  const samples = feed.samples;
  const xs = samples.map((s) => s.t / 1000);
  const tableNames = [...new Set(samples.flatMap((s) => Object.keys(s.tables)))].sort();
  const last = samples[samples.length - 1];

  const throughput = [
    xs,
    column(samples, (s) => s.events_in_per_s),
    ...tableNames.map((n) => column(samples, (s) => s.tables[n]?.rows_per_s)),
  ];
  const latency = [xs, column(samples, (s) => s.latency_p50_ms), column(samples, (s) => s.latency_p99_ms)];
  const lag = [xs, column(samples, (s) => s.lag)];
  const rss = [xs, column(samples, (s) => s.rss_bytes)];
  const hasRss = samples.some((s) => s.rss_bytes !== null);

  return (
    <>
      <div class="tiles" data-testid="live-tiles">
        <Tile name="events in" value={last ? `${fmtNum(last.events_in_per_s)}/s` : "–"} />
        <Tile name="latency p50" value={fmtMs(last?.latency_p50_ms)} />
        <Tile name="latency p99" value={fmtMs(last?.latency_p99_ms)} />
        <Tile name="consumer lag" value={fmtNum(last?.lag)} />
        <Tile name="batches, last second" value={fmtNum(last?.batches)} />
        <Tile name="memory (RSS)" value={fmtBytes(last?.rss_bytes)} />
        <Tile name="samples" value={String(samples.length)} />
      </div>
      {feed.mode === "poll" && (
        <p class="note" data-testid="not-available">
          Live samples from polling <code>/v1/status</code> each second: this weir build has no <code>/v1/stream</code>{" "}
          endpoint. Latency quantiles here are since start, and there is no history from before this page opened.
        </p>
      )}
      <Section title="Throughput (last 15 minutes)">
        <LineChart
          testid="chart-throughput"
          series={[
            { label: "events in /s", color: PALETTE[0], fill: true },
            ...tableNames.map((n, i) => ({ label: `${n} rows/s`, color: PALETTE[(i + 1) % PALETTE.length] })),
          ]}
          data={throughput}
          yFormat={fmtNum}
        />
      </Section>
      <div class="two">
        <Section title="Batch latency, ingest to commit">
          <LineChart
            testid="chart-latency"
            series={[
              { label: "p50", color: PALETTE[2] },
              { label: "p99", color: PALETTE[1] },
            ]}
            data={latency}
            yFormat={fmtMs}
            height={200}
          />
        </Section>
        <Section title="Consumer lag (records)">
          <LineChart
            testid="chart-lag"
            series={[{ label: "lag", color: PALETTE[3], fill: true }]}
            data={lag}
            yFormat={fmtNum}
            height={200}
          />
        </Section>
      </div>
      {hasRss && (
        <Section title="Memory (resident set)">
          <LineChart
            testid="chart-rss"
            series={[{ label: "RSS", color: PALETTE[4], fill: true }]}
            data={rss}
            yFormat={fmtBytes}
            height={160}
          />
        </Section>
      )}
    </>
  );
}

function Tile({ name, value }: { name: string; value: string }) {
  return (
    <div class="tile">
      <div class="tile-value">{value}</div>
      <div class="tile-name">{name}</div>
    </div>
  );
}
