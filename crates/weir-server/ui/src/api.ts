// Talking to weir's REST API. Every call resolves to a `Loaded` value rather than throwing, so a
// view can show "loading", the data, a JSON error from the server, or — when the server build
// does not have the endpoint yet — a plain "not available" note.

export type Loaded<T> =
  | { state: "loading" }
  | { state: "ok"; data: T }
  | { state: "missing"; path: string }
  | { state: "error"; message: string; status?: number };

// A weir with `[server.auth]` wants `Authorization: Bearer <token>` on every API call (and
// `?access_token=` on the event stream, which cannot send headers). The dashboard keeps the
// token the user typed in this browser's localStorage.
const TOKEN_KEY = "weir.token";

export function getToken(): string | null {
  try {
    return window.localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null) {
  try {
    if (token) window.localStorage.setItem(TOKEN_KEY, token);
    else window.localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token lasts until the page is closed */
  }
}

const unauthorized = new Set<(message: string) => void>();

/** Calls `f` whenever the server refuses a call for want of a (valid) token. */
export function onUnauthorized(f: (message: string) => void): () => void {
  unauthorized.add(f);
  return () => unauthorized.delete(f);
}

/** `path` with the token as `access_token`, for EventSource. */
export function withToken(path: string): string {
  const t = getToken();
  if (!t) return path;
  return `${path}${path.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(t)}`;
}

/** The server's fallback answer for a path no route matches. */
function isMissingEndpoint(status: number, body: unknown): boolean {
  if (status === 405) return true;
  if (status !== 404) return false;
  const msg = (body as { error?: unknown } | null)?.error;
  return typeof msg === "string" && msg.startsWith("no such endpoint");
}

async function call<T>(method: string, path: string, body?: unknown): Promise<Loaded<T>> {
  let resp: Response;
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    return { state: "error", message: `cannot reach weir: ${String(e)}` };
  }
  const text = await resp.text();
  let parsed: unknown = null;
  try {
    parsed = text.length ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (resp.ok) {
    if (parsed === null && text.length) {
      return { state: "error", message: `${path} did not answer JSON`, status: resp.status };
    }
    return { state: "ok", data: parsed as T };
  }
  if (isMissingEndpoint(resp.status, parsed)) return { state: "missing", path };
  const msg = (parsed as { error?: unknown } | null)?.error;
  if (resp.status === 401) for (const f of unauthorized) f(typeof msg === "string" ? msg : "this weir needs a token");
  return {
    state: "error",
    status: resp.status,
    message: typeof msg === "string" ? msg : `${method} ${path}: HTTP ${resp.status}`,
  };
}

export const getJson = <T>(path: string) => call<T>("GET", path);
export const postJson = <T>(path: string, body?: unknown) => call<T>("POST", path, body);

/** `encodeURIComponent` for a path segment such as a table name. */
export const seg = (s: string) => encodeURIComponent(s);

/** A query or preview result as columns and rows of cells. */
export interface Grid {
  columns: string[];
  rows: unknown[][];
}

/**
 * Normalizes the result shapes the API uses: an array of row objects (POST /v1/query; JSON
 * leaves out null fields, so the columns are the union of the keys in order of appearance) or
 * `{columns, rows}` with rows as arrays or objects (GET /v1/tables/{name}/preview).
 */
export function toGrid(v: unknown): Grid {
  const fromObjects = (objs: Record<string, unknown>[], cols: string[]): Grid => {
    const seen = new Set(cols);
    for (const o of objs) {
      for (const k of Object.keys(o)) {
        if (!seen.has(k)) {
          seen.add(k);
          cols.push(k);
        }
      }
    }
    return { columns: cols, rows: objs.map((o) => cols.map((c) => (c in o ? o[c] : null))) };
  };
  if (Array.isArray(v)) return fromObjects(v as Record<string, unknown>[], []);
  if (v && typeof v === "object") {
    const o = v as { columns?: unknown; rows?: unknown };
    const cols = Array.isArray(o.columns)
      ? o.columns.map((c) => (typeof c === "string" ? c : String((c as { name?: unknown })?.name ?? c)))
      : [];
    const rows = Array.isArray(o.rows) ? o.rows : [];
    if (rows.length && !Array.isArray(rows[0])) {
      return fromObjects(rows as Record<string, unknown>[], cols);
    }
    return { columns: cols, rows: rows as unknown[][] };
  }
  return { columns: [], rows: [] };
}

/** The first array found in a response: `[...]`, `{"x": [...]}`. */
export function firstArray(v: unknown, ...preferred: string[]): unknown[] {
  if (Array.isArray(v)) return v;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    for (const k of preferred) if (Array.isArray(o[k])) return o[k] as unknown[];
    for (const x of Object.values(o)) if (Array.isArray(x)) return x;
  }
  return [];
}
