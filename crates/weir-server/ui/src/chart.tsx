// A uPlot line chart as a Preact component. The plot is created once per set of series and
// fed new data in place, so a chart updated every second does not rebuild its canvas.

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useWidth } from "./hooks";

export const PALETTE = ["#4cc9f0", "#f72585", "#b5e48c", "#ffb703", "#9d8cff", "#ff7b54", "#2ec4b6", "#e9c46a"];

export interface SeriesDef {
  label: string;
  color: string;
  /** Fill under the line. */
  fill?: boolean;
  /** On a second y scale with its axis on the right (for a much smaller quantity). */
  right?: boolean;
}

interface Props {
  series: SeriesDef[];
  /** [xs, ys1, ys2, ...]; xs in seconds since the epoch when `time`. */
  data: (number | null)[][];
  height?: number;
  time?: boolean;
  yFormat?: (v: number) => string;
  xFormat?: (v: number) => string;
  testid?: string;
}

const AXIS = { stroke: "#9aa4b2", grid: { stroke: "#2a3140", width: 1 }, ticks: { stroke: "#2a3140", width: 1 } };

export function LineChart({ series, data, height = 220, time = true, yFormat, xFormat, testid }: Props) {
  const [wrap, width] = useWidth<HTMLDivElement>();
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const key = series.map((s) => s.label + s.color).join("|") + `|${time}`;

  useEffect(() => {
    if (!host.current || width <= 0) return;
    const yAxis = (scale: string, side: number): uPlot.Axis => ({
      ...AXIS,
      scale,
      side,
      size: 78,
      grid: side === 1 ? { show: false } : AXIS.grid,
      values: yFormat ? (_u, vals) => vals.map((v) => yFormat(v)) : undefined,
    });
    const twoScales = series.some((s) => s.right);
    const opts: uPlot.Options = {
      width,
      height,
      legend: { show: true, live: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time } },
      axes: [
        { ...AXIS, values: xFormat ? (_u, vals) => vals.map((v) => xFormat(v)) : undefined },
        yAxis("y", 3),
        ...(twoScales ? [yAxis("y2", 1)] : []),
      ],
      series: [
        { label: time ? "time" : "x" },
        ...series.map((s) => ({
          label: twoScales ? `${s.label} (${s.right ? "right" : "left"} axis)` : s.label,
          scale: s.right ? "y2" : "y",
          stroke: s.color,
          width: 2,
          fill: s.fill ? s.color + "22" : undefined,
          spanGaps: false,
          points: { show: false },
          value: yFormat ? (_u: uPlot, v: number | null) => (v == null ? "–" : yFormat(v)) : undefined,
        })),
      ],
      hooks: {
        // The number of points drawn, for tests and for people inspecting the page.
        draw: [(u) => host.current?.setAttribute("data-points", String(u.data[0]?.length ?? 0))],
      },
    };
    const u = new uPlot(opts, data as uPlot.AlignedData, host.current);
    plot.current = u;
    return () => {
      u.destroy();
      plot.current = null;
    };
    // Rebuilt only when the series or the width class change; data flows in via setData.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, width > 0, height]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);

  useEffect(() => {
    if (plot.current && width > 0) plot.current.setSize({ width, height });
  }, [width, height]);

  return (
    <div ref={wrap} class="chart">
      <div ref={host} data-testid={testid} data-points="0" />
    </div>
  );
}
