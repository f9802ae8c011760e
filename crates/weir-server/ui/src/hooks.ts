// Hooks shared by the views: polling an endpoint while a view is shown.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { getJson, type Loaded } from "./api";

/**
 * GETs `path` now and every `everyMs` (0: once) while mounted, keeping the last good answer
 * on screen while a refresh is in flight. `path` null means "nothing to load yet".
 * Returns the result and a function that reloads at once.
 */
export function usePoll<T>(path: string | null, everyMs: number): [Loaded<T>, () => void] {
  const [res, setRes] = useState<Loaded<T>>({ state: "loading" });
  const [tick, setTick] = useState(0);
  const current = useRef(path);
  const shown = useRef<string | null>(null);
  current.current = path;
  useEffect(() => {
    if (path === null) {
      shown.current = null;
      setRes({ state: "loading" });
      return;
    }
    let alive = true;
    let timer: number | undefined;
    if (shown.current !== path) {
      shown.current = path;
      setRes({ state: "loading" });
    }
    const load = async () => {
      const r = await getJson<T>(path);
      if (!alive || current.current !== path) return;
      setRes(r);
      // A missing endpoint will not appear without a new server build: stop asking.
      if (everyMs > 0 && r.state !== "missing") timer = window.setTimeout(load, everyMs);
    };
    void load();
    return () => {
      alive = false;
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [path, everyMs, tick]);
  return [res, () => setTick((t) => t + 1)];
}

/**
 * The element's content width, following resizes. Returns a callback ref, so the width
 * follows whichever element currently carries it.
 */
export function useWidth<E extends HTMLElement>(): [(el: E | null) => void, number] {
  const [w, setW] = useState(0);
  const observer = useRef<ResizeObserver | null>(null);
  const current = useRef<E | null>(null);
  const ref = useCallback((el: E | null) => {
    if (el === current.current) return;
    observer.current?.disconnect();
    observer.current = null;
    current.current = el;
    if (!el) return;
    const ro = new ResizeObserver(() => setW(Math.floor(el.clientWidth)));
    ro.observe(el);
    observer.current = ro;
    setW(Math.floor(el.clientWidth));
  }, []);
  useEffect(() => () => observer.current?.disconnect(), []);
  return [ref, w];
}
