// A scan's events: the search by scanId, the events it finds (newest first), and one event with
// its delivery to each endpoint, each linking to that delivery's attempts.

import { call, path } from "./api.js";
import { h, dl, table, pager, field, when, put } from "./dom.js";
import { deliveryBadge } from "./health.js";

// scanSearch is the form that finds a scan's events; it leads to #/events?scanId=.
export function scanSearch(scanId) {
  const input = h("input", { type: "search", name: "scanId", value: scanId, autocomplete: "off", spellcheck: "false",
    placeholder: "the scan's UUID", maxlength: 200 });
  const form = h("form", { class: "filter scan-search", role: "search", "aria-label": "Find a scan's events" },
    field("scan-id", "Find a scan's events by scan id", input), h("button", { type: "submit" }, "Find"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    location.hash = v ? "#/events?" + new URLSearchParams({ scanId: v }) : "#/events";
  });
  return form;
}

// list is #/events?scanId=&page=: one scan's events, or without a scan id the tenant's latest.
export async function list({ main, query, signal }) {
  const scanId = (query.get("scanId") || "").trim();
  const page = Math.max(1, Number.parseInt(query.get("page") || "1", 10) || 1);
  const q = new URLSearchParams({ page, limit: 20 });
  if (scanId) q.set("scanId", scanId);
  const env = await call("GET", "/events?" + q, { signal });
  const href = (p) => "#/events?" + new URLSearchParams(scanId ? { scanId, page: p } : { page: p });
  put(main,
    h("p", null, h("a", { href: "#/" }, "← All endpoints")),
    h("h1", { tabindex: "-1" }, scanId ? "Events of scan " : "Latest events", scanId ? h("code", null, scanId) : null),
    scanSearch(scanId),
    env.data.length ? eventTable(env.data, scanId)
      : h("p", { class: "empty" }, scanId ? "No events for this scan id." : "No events published yet."),
    pager(env.pagination, href));
}

function eventTable(items, scanId) {
  return table(scanId ? "The scan's events, newest first" : "Events, newest first", [
    { label: "Published", cell: (ev) => h("a", { href: "#" + path("events", ev.id) }, when(ev.createdAt)) },
    { label: "Type", cell: (ev) => ev.type },
    { label: "Scan type", cell: (ev) => scanField(ev, "scanType") || "—" },
    { label: "Event id", cell: (ev) => h("code", { class: "small" }, ev.id) },
  ], items);
}

// scanField is a string field of an event's data, or "" (operational events have no scan).
function scanField(ev, name) {
  const v = ev.data && ev.data[name];
  return typeof v === "string" ? v : "";
}

// show is #/events/{id}: the event, its data and its delivery to each endpoint.
export async function show(ctx) {
  const [env, urls] = await Promise.all([
    call("GET", path("events", ctx.params[0]), { signal: ctx.signal }),
    endpointURLs(ctx.signal),
  ]);
  const ev = env.data;
  const scanId = scanField(ev, "scanId");
  put(ctx.main,
    h("p", null, scanId ? h("a", { href: "#/events?" + new URLSearchParams({ scanId }) }, "← The scan's events")
      : h("a", { href: "#/events" }, "← Latest events")),
    h("h1", { tabindex: "-1" }, "Event ", h("code", null, ev.type)),
    dl([
      ["Event id", h("code", null, ev.id)],
      ["Scan", scanId ? h("code", null, scanId) : "—"],
      ["Published", when(ev.createdAt)],
    ]),
    h("h2", null, "Deliveries"),
    ev.deliveries.length ? deliveryTable(ev.deliveries, urls)
      : h("p", { class: "empty" }, "No endpoint was subscribed to this event when it was published. " +
        "A recovery that includes missing deliveries sends it to an endpoint subscribed now."),
    h("h2", null, "Data"),
    h("pre", { class: "body" }, JSON.stringify(ev.data, null, 2)));
}

// endpointURLs maps the tenant's endpoint ids to their URLs (the first 100), so that a
// delivery names its endpoint; an error leaves the ids.
async function endpointURLs(signal) {
  try {
    const env = await call("GET", "/webhooks?page=1&limit=100", { signal });
    return new Map(env.data.map((e) => [e.id, e.url]));
  } catch (err) {
    if (err.name === "AbortError" || err.status === 401) throw err;
    return new Map();
  }
}

function deliveryTable(items, urls) {
  return table("The event's deliveries, one per endpoint", [
    { label: "Endpoint", cell: (d) => h("a", { href: "#" + path("endpoints", d.webhookId), class: "url" }, urls.get(d.webhookId) || d.webhookId) },
    { label: "Status", cell: (d) => deliveryBadge(d.status) },
    { label: "Attempts", cell: (d) => String(d.attemptCount) },
    { label: "Last answer", cell: (d) => d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : d.attemptCount ? "no response" : "—" },
    { label: "Details", cell: (d) => h("a", { href: "#" + path("endpoints", d.webhookId, "deliveries", d.id) }, "Attempts →") },
  ], items);
}
