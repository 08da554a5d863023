// The list of endpoints with their health, and the form that creates or edits one.

import { call, path } from "./api.js";
import { h, table, pager, errorBox, field, put } from "./dom.js";
import { notify } from "./notice.js";
import { health } from "./health.js";
import { scanSearch } from "./events.js";

// SCAN_EVENTS and OPERATIONAL_EVENTS are the event types an endpoint may subscribe to: the scan
// platform's, and those webhookd publishes about the tenant's other endpoints.
export const SCAN_EVENTS = ["scan.started", "scan.completed", "scan.failed", "scan.cancelled"];
export const OPERATIONAL_EVENTS = ["webhook.degraded", "webhook.disabled", "webhook.enabled", "delivery.exhausted"];

function pageOf(query) {
  const n = Number.parseInt(query.get("page") || "1", 10);
  return Number.isInteger(n) && n > 0 ? n : 1;
}

// list is #/ : the tenant's endpoints, 20 a page, optionally only active or disabled ones.
export async function list({ main, query, signal }) {
  const status = ["active", "disabled"].includes(query.get("status")) ? query.get("status") : "";
  const q = new URLSearchParams({ page: pageOf(query), limit: 20 });
  if (status) q.set("status", status);
  const env = await call("GET", "/webhooks?" + q, { signal });
  const href = (p) => "#/?" + new URLSearchParams(status ? { status, page: p } : { page: p });
  put(main,
    h("div", { class: "heading" },
      h("h1", { tabindex: "-1" }, "Webhook endpoints"),
      h("a", { class: "button primary", href: "#/endpoints/new" }, "New endpoint")),
    h("div", { class: "tools" }, statusFilter(status), scanSearch("")),
    env.data.length ? endpointTable(env.data)
      : h("p", { class: "empty" }, status ? "No endpoint has this status." : "No endpoints yet. Create one to receive scan events."),
    pager(env.pagination, href));
}

function statusFilter(status) {
  const select = h("select", { name: "status" },
    [["", "All"], ["active", "Active"], ["disabled", "Disabled"]].map(([v, label]) =>
      h("option", { value: v, selected: v === status }, label)));
  const form = h("form", { class: "filter", "aria-label": "Filter endpoints" },
    field("endpoint-status", "Status", select), h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = select.value ? "#/?status=" + encodeURIComponent(select.value) : "#/";
  });
  return form;
}

function endpointTable(items) {
  return table("Webhook endpoints", [
    { label: "Endpoint", cell: (e) => [h("a", { href: "#" + path("endpoints", e.id), class: "url" }, e.url),
      e.description ? h("p", { class: "description" }, e.description) : null] },
    { label: "Events", cell: (e) => e.events.join(", ") },
    { label: "Health", cell: health },
  ], items);
}

// create is #/endpoints/new.
export async function create({ main }) {
  const form = endpointForm(null, "Create endpoint", async (body) => {
    const env = await call("POST", "/webhooks", { body });
    notify("Endpoint created. Reveal its signing secret below to verify deliveries.");
    location.hash = "#" + path("endpoints", env.data.id);
  });
  put(main,
    h("p", null, h("a", { href: "#/" }, "← All endpoints")),
    h("h1", { tabindex: "-1" }, "New endpoint"),
    h("p", { class: "muted" }, "The URL must be https:// and must answer one request (any status) when you save."),
    form);
}

// endpointForm is the create and edit form. save(body) sends it; its ApiError is shown in the form.
export function endpointForm(e, submitLabel, save) {
  const c = controls(e);
  const problem = h("div", { class: "form-problem", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, submitLabel);
  const form = h("form", { class: "endpoint-form", novalidate: true },
    field("ep-url", "URL", c.url),
    eventBoxes("Scan events", SCAN_EVENTS, c.boxes),
    eventBoxes("Operational events (about your other endpoints)", OPERATIONAL_EVENTS, c.boxes),
    field("ep-description", "Description (optional)", c.desc),
    field("ep-headers", "Custom headers (optional)", c.headers, "One per line, as Name: value. Sent with every delivery."),
    field("ep-ordering", "Ordering", c.ordering, "Per scan: the deliveries of one scanId are attempted one at a time, in publish order."),
    field("ep-rate", "Rate limit (attempts a second, optional)", c.rate, "1 to 10,000, across all workers. Empty: no limit."),
    problem,
    h("div", { class: "actions" }, submit, h("a", { href: e ? "#" + path("endpoints", e.id) : "#/" }, "Cancel")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    put(problem);
    submit.disabled = true;
    try {
      await save(readForm(c));
    } catch (err) {
      if (err.name === "AbortError") return;
      put(problem, errorBox(err));
      problem.querySelector("p").setAttribute("tabindex", "-1");
      problem.querySelector("p").focus();
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// controls makes the form's fields, filled with e's values (or a new endpoint's defaults).
function controls(e) {
  const url = h("input", { type: "url", name: "url", required: true, maxlength: 2048, autocomplete: "off",
    spellcheck: "false", placeholder: "https://receiver.example.com/hooks", value: e ? e.url : "" });
  const boxes = [...SCAN_EVENTS, ...OPERATIONAL_EVENTS].map((t) => h("input", { type: "checkbox", name: "events", value: t,
    checked: e ? e.events.includes(t) : t === "scan.completed" || t === "scan.failed" }));
  // No maxlength: the browser would cut a longer text without a word; the API's answer names the limit.
  const desc = h("textarea", { name: "description", rows: 2 });
  desc.value = e ? e.description : "";
  const headers = h("textarea", { name: "headers", rows: 3, spellcheck: "false" });
  headers.value = e ? Object.entries(e.headers).map(([k, v]) => `${k}: ${v}`).join("\n") : "";
  const ordering = h("select", { name: "ordering" }, [["none", "None: several at once"], ["scan", "Per scan"]].map(([v, label]) =>
    h("option", { value: v, selected: (e ? e.ordering : "none") === v }, label)));
  const rate = h("input", { type: "number", name: "rateLimitPerSecond", min: 1, max: 10000, step: 1, inputmode: "numeric",
    placeholder: "no limit", value: e && e.rateLimitPerSecond ? e.rateLimitPerSecond : "" });
  return { url, boxes, desc, headers, ordering, rate };
}

function eventBoxes(legend, types, boxes) {
  const mine = boxes.filter((b) => types.includes(b.value));
  return h("fieldset", null, h("legend", null, legend), mine.map((b) => h("label", { class: "check" }, b, " ", b.value)));
}

// readForm is the request body; the service checks every value, the form only what it cannot send.
function readForm(c) {
  if (c.rate.validity.badInput) throw new Error("The rate limit must be a whole number, or empty for none.");
  return { url: c.url.value.trim(), events: c.boxes.filter((b) => b.checked).map((b) => b.value),
    description: c.desc.value, headers: parseHeaders(c.headers.value), ordering: c.ordering.value,
    rateLimitPerSecond: c.rate.value === "" ? null : Number(c.rate.value) };
}

// parseHeaders reads "Name: value" lines; the service checks names and values.
function parseHeaders(text) {
  const out = {};
  text.split("\n").map((l) => l.trim()).filter(Boolean).forEach((line, i) => {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`Header line ${i + 1} must look like "Name: value".`);
    out[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  });
  return out;
}
