// The last 24 hours of an endpoint's attempts: one bar per hour, succeeded below failed, drawn
// as inline SVG with DOM calls (no library, nothing the Content-Security-Policy or Trusted Types
// must allow). The picture is for the eye only; the same numbers are in a sentence and in a
// table behind a disclosure, for screen readers and the keyboard.

import { call, path } from "./api.js";
import { h, svg, table, errorBox, plural } from "./dom.js";

// The drawing's own units: CSS stretches it to the card's width, so bars are wide at 1280 px
// and narrow at 390 px; every word is HTML, so none shrinks with it.
const W = 480;
const H = 120;
const SLOT = W / 24;

// chartSection is the endpoint page's "Last 24 hours" card.
export async function chartSection(e, ctx) {
  let body;
  try {
    const env = await call("GET", path("webhooks", e.id, "stats") + "?window=24h", { signal: ctx.signal });
    body = chart(env.data.hours);
  } catch (err) {
    if (err.name === "AbortError" || err.status === 401) throw err;
    body = errorBox(err);
  }
  return h("section", { class: "card", "aria-labelledby": "chart-title" },
    h("h2", { id: "chart-title" }, "Last 24 hours"), body);
}

function chart(hours) {
  const succeeded = hours.reduce((n, x) => n + x.succeeded, 0);
  const failed = hours.reduce((n, x) => n + x.failed, 0);
  const peak = Math.max(0, ...hours.map((x) => x.succeeded + x.failed));
  return [
    summary(succeeded, failed),
    h("div", { class: "chart" },
      h("p", { class: "chart-peak small muted" }, `Busiest hour: ${plural(peak, "attempt")}`),
      bars(hours, peak),
      h("div", { class: "chart-axis small muted" },
        h("span", null, hourLabel(hours[0].hour)), h("span", null, hourLabel(hours[hours.length >> 1].hour)),
        h("span", null, "this hour"))),
    h("ul", { class: "legend small" },
      h("li", null, h("span", { class: "swatch swatch-ok" }), "succeeded"),
      h("li", null, h("span", { class: "swatch swatch-bad" }), "failed")),
    h("details", { class: "chart-table" },
      h("summary", null, "Hour by hour, as a table"),
      hourTable(hours)),
  ];
}

// summary says what the chart shows in one sentence; data-* carry the totals.
function summary(succeeded, failed) {
  const all = succeeded + failed;
  if (all === 0) return h("p", { id: "chart-summary", "data-succeeded": 0, "data-failed": 0 }, "No attempts in the last 24 hours.");
  const share = Math.round((100 * failed) / all);
  return h("p", { id: "chart-summary", "data-succeeded": succeeded, "data-failed": failed },
    `${plural(all, "attempt")} in the last 24 hours: `,
    h("strong", null, `${succeeded} succeeded`), ", ", h("strong", null, `${failed} failed`),
    failed ? ` (${share} % failed).` : ".");
}

// bars draws one group per hour; each carries its numbers and a tooltip title.
function bars(hours, peak) {
  const scale = (n) => (n === 0 ? 0 : Math.max(1.5, (n / Math.max(peak, 1)) * (H - 2)));
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "chart-bars", "aria-hidden": "true", focusable: "false" },
    svg("line", { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: "chart-base" }),
    hours.map((x, i) => {
      const ok = scale(x.succeeded);
      const bad = scale(x.failed);
      const left = i * SLOT + SLOT * 0.15;
      return svg("g", { class: "hour", "data-hour": x.hour, "data-succeeded": x.succeeded, "data-failed": x.failed },
        svg("title", null, `${hourLabel(x.hour)}: ${x.succeeded} succeeded, ${x.failed} failed`),
        ok ? svg("rect", { x: left, y: H - ok, width: SLOT * 0.7, height: ok, class: "bar-ok" }) : null,
        bad ? svg("rect", { x: left, y: H - ok - bad, width: SLOT * 0.7, height: bad, class: "bar-bad" }) : null);
    }));
}

function hourTable(hours) {
  const ms = (v) => (v === null ? "—" : `≤ ${v} ms`);
  return table("Attempts per hour, oldest first", [
    { label: "Hour", cell: (x) => h("time", { datetime: x.hour }, hourLabel(x.hour)) },
    { label: "Succeeded", cell: (x) => h("span", { "data-count": "succeeded" }, String(x.succeeded)) },
    { label: "Failed", cell: (x) => h("span", { "data-count": "failed" }, String(x.failed)) },
    { label: "Median", cell: (x) => ms(x.p50Ms) },
    { label: "99th percentile", cell: (x) => ms(x.p99Ms) },
  ], hours);
}

// hourLabel is the hour starting at iso, in the reader's time zone ("Tue 14:00").
function hourLabel(iso) {
  return new Date(iso).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
}
