// Drives weir's dashboard in headless Chromium like a person would: looks at the pipeline
// graph, waits for the live throughput chart to draw, runs a query in the SQL box and visits
// every view, saving a screenshot of each. Prints one JSON summary line (prefixed `RESULT `)
// for crates/weir/tests/dashboard.rs to check.
//
// usage: node check.mjs <dashboard url> <screenshot dir> [sql]
// The browser is the Chromium named by WEIR_TEST_CHROMIUM (no browser download). When
// WEIR_TEST_TOKEN is set, the server wants that token and the page must ask for it first.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, shots, sql = "SELECT count(*) AS n FROM silver_events"] = process.argv.slice(2);
if (!url || !shots) {
  console.error("usage: node check.mjs <url> <screenshot dir> [sql]");
  process.exit(2);
}
const executablePath = process.env.WEIR_TEST_CHROMIUM;
if (!executablePath) {
  console.error("WEIR_TEST_CHROMIUM must name a Chromium binary");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const result = { screenshots: [], pageErrors: [], consoleErrors: [], notAvailable: {} };
const browser = await chromium.launch({
  executablePath,
  headless: true,
  // No sandbox as root; nothing that reaches for the network on its own.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on("pageerror", (e) => result.pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") result.consoleErrors.push(m.text());
  });
  const shot = async (name) => {
    const path = join(shots, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    result.screenshots.push(path);
  };
  const notes = async (view) => {
    result.notAvailable[view] = await page.$$eval("[data-testid=not-available]", (els) => els.map((e) => e.textContent.trim()));
  };
  const tab = async (name) => {
    await page.click(`nav.tabs a[data-tab=${name}]`);
    await page.waitForFunction((t) => location.hash === `#${t}`, name);
  };

  // A weir with [server.auth] refuses the API without a token: the page asks for one, keeps
  // it in localStorage and reloads.
  await page.goto(url, { waitUntil: "load" });
  const token = process.env.WEIR_TEST_TOKEN;
  if (token) {
    await page.waitForSelector("[data-testid=token-prompt]", { timeout: 30_000 });
    result.tokenPrompt = await page.textContent("[data-testid=token-prompt]");
    await shot("token-prompt");
    await page.fill("[data-testid=token-prompt] input", token);
    await Promise.all([page.waitForEvent("load"), page.click("[data-testid=token-prompt] button[type=submit]")]);
  }

  // Pipeline: every node of the graph, and one node's details.
  await page.waitForSelector("[data-testid=pipeline-node]", { timeout: 30_000 });
  await page.waitForFunction(
    () => [...document.querySelectorAll("[data-testid=pipeline-node]")].some((n) => n.dataset.node === "silver_events"),
    null,
    { timeout: 30_000 },
  );
  result.nodes = await page.$$eval("[data-testid=pipeline-node]", (els) => els.map((e) => e.dataset.node));
  result.edges = await page.$$eval("[data-testid=pipeline-graph] path.edge", (els) => els.length);
  await notes("pipeline");
  await shot("pipeline");
  await page.click("[data-testid=pipeline-node][data-node=silver_events]");
  await page.waitForSelector("[data-testid=node-details]");
  result.nodeDetails = await page.$eval("[data-testid=node-details]", (e) => e.textContent);
  await shot("pipeline-details");

  // Throughput: at least two samples drawn by the live chart.
  await tab("charts");
  await page.waitForFunction(
    () => Number(document.querySelector("[data-testid=chart-throughput]")?.getAttribute("data-points") ?? 0) >= 2,
    null,
    { timeout: 30_000 },
  );
  result.throughputPoints = Number(await page.getAttribute("[data-testid=chart-throughput]", "data-points"));
  result.liveMode = await page.textContent("[data-testid=live-mode]");
  result.throughputCanvas = await page.$$eval("[data-testid=chart-throughput] canvas", (c) => c.map((x) => [x.width, x.height]));
  await notes("charts");
  await shot("charts");

  // Tables: a query typed into the SQL box, its rows, and the chart of the result.
  await tab("tables");
  await page.fill("[data-testid=sql-input]", sql);
  await page.click("[data-testid=sql-run]");
  await page.waitForSelector("[data-testid=sql-result] tbody tr, [data-testid=sql-error]", { timeout: 60_000 });
  result.sqlError = await page.$eval("[data-testid=sql-error]", (e) => e.textContent).catch(() => null);
  result.sql = await page
    .$eval("[data-testid=sql-result]", (t) => ({
      columns: [...t.querySelectorAll("thead th")].map((th) => th.textContent),
      rows: [...t.querySelectorAll("tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)),
    }))
    .catch(() => null);
  await page.waitForTimeout(1500);
  await notes("tables");
  await shot("tables");

  // A grouped query draws a bar chart next to its rows (the one-row count above drew none).
  await page.fill(
    "[data-testid=sql-input]",
    "SELECT event_type, count(*) AS events FROM silver_events GROUP BY 1 ORDER BY 2 DESC",
  );
  await page.click("[data-testid=sql-run]");
  await page.waitForSelector("[data-testid=sql-chart], [data-testid=sql-error]", { timeout: 60_000 });
  result.chartedQuery = await page.$eval("[data-testid=sql-chart]", () => true).catch(() => false);
  result.chartBars = await page.$$eval("[data-testid=sql-chart] .bar-row", (r) => r.length);
  await shot("tables-query-chart");

  await tab("quality");
  await page.waitForTimeout(2000);
  await notes("quality");
  await shot("quality");

  // DAGs: trigger a run from the UI, then open a task's attempts.
  await tab("dags");
  await page.waitForSelector("[data-testid=dag-trigger]", { timeout: 15_000 });
  await page.click("[data-testid=dag-trigger]");
  await page.waitForSelector("[data-testid=dag-grid] tbody tr", { timeout: 30_000 });
  result.dagRuns = await page.$$eval("[data-testid=dag-grid] tbody tr", (r) => r.length);
  result.dagMessage = await page.$eval(".ok-text, .card .error", (e) => e.textContent).catch(() => null);
  // A locator, not an element handle: the grid re-renders as it polls, and a locator
  // finds the cell again if it was replaced between finding and clicking it.
  const cells = page.locator("[data-testid=dag-grid] button.cell");
  if ((await cells.count()) > 0) {
    await cells.first().click({ timeout: 15_000 });
    await page.waitForSelector("h2:has-text(\"Run #\")", { timeout: 15_000 });
  }
  await page.waitForTimeout(1000);
  await notes("dags");
  await shot("dags");

  await tab("logs");
  await page.waitForTimeout(2500);
  await notes("logs");
  await shot("logs");

  await tab("config");
  await page.waitForTimeout(1500);
  await notes("config");
  await shot("config");
} catch (e) {
  result.failure = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
console.log("RESULT " + JSON.stringify(result));
