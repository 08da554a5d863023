// One endpoint's page: health and actions, the last 24 hours, the delivery log, recovery and
// the signing secret.

import { call, path } from "./api.js";
import { h, dl, table, pager, errorBox, button, field, when, put } from "./dom.js";
import { notify } from "./notice.js";
import { endpointForm } from "./endpoints.js";
import { health, healthFacts, deliveryBadge, STATUSES } from "./health.js";
import { chartSection } from "./chart.js";
import { recoverySection } from "./recovery.js";

// The page's sections, in order. Each is an async section(endpoint, ctx) → element; they load
// their data at the same time.
const sections = [overview, chartSection, deliveriesSection, recoverySection, secretSection];

// show is #/endpoints/{id}.
export async function show(ctx) {
  const env = await call("GET", path("webhooks", ctx.params[0]), { signal: ctx.signal });
  const parts = await Promise.all(sections.map((s) => s(env.data, ctx)));
  put(ctx.main, h("p", null, h("a", { href: "#/" }, "← All endpoints")), parts);
}

// edit is #/endpoints/{id}/edit.
export async function edit(ctx) {
  const id = ctx.params[0];
  const env = await call("GET", path("webhooks", id), { signal: ctx.signal });
  const form = endpointForm(env.data, "Save changes", async (body) => {
    await call("PATCH", path("webhooks", id), { body });
    notify("Endpoint saved.");
    location.hash = "#" + path("endpoints", id);
  });
  put(ctx.main,
    h("p", null, h("a", { href: "#" + path("endpoints", id) }, "← Endpoint")),
    h("h1", { tabindex: "-1" }, "Edit endpoint"),
    h("p", { class: "url" }, env.data.url),
    form);
}

async function overview(e, ctx) {
  const problem = h("div", { role: "alert" });
  const fail = (err) => put(problem, errorBox(err));
  const headerNames = Object.keys(e.headers);
  return h("section", { class: "card", "aria-labelledby": "ep-title" },
    h("h1", { id: "ep-title", class: "url", tabindex: "-1" }, e.url),
    e.description ? h("p", { class: "description" }, e.description) : null,
    health(e),
    dl([
      ["Events", e.events.join(", ")],
      ["Custom headers", headerNames.length ? headerNames.join(", ") : "none"],
      ...healthFacts(e),
      ["Disabled since", e.status === "active" ? "—" : when(e.disabledAt)],
      ["Created", when(e.createdAt)],
      ["Updated", when(e.updatedAt)],
    ]),
    h("div", { class: "actions" },
      testButton(e, fail),
      toggleButton(e, ctx, fail),
      h("a", { class: "button", href: "#" + path("endpoints", e.id, "edit") }, "Edit"),
      button("Refresh", () => ctx.refresh()),
      deleteControl(e, fail)),
    e.status === "active" ? null : h("p", { class: "muted small" }, "A disabled endpoint gets no attempts: its deliveries are held and sent when you enable it."),
    problem);
}

function testButton(e, fail) {
  return button("Send test", async () => {
    try {
      const env = await call("POST", path("webhooks", e.id, "test"));
      notify("Test ping queued.");
      location.hash = "#" + path("endpoints", e.id, "deliveries", env.data.id);
    } catch (err) {
      if (err.name !== "AbortError") fail(err);
    }
  }, { disabled: e.status !== "active" });
}

function toggleButton(e, ctx, fail) {
  const enable = e.status !== "active";
  return button(enable ? "Enable" : "Disable", async () => {
    try {
      const env = await call("PATCH", path("webhooks", e.id), { body: { enabled: enable } });
      notify(enable ? enabledNotice(env.data) : "Endpoint disabled; its deliveries are held.");
      ctx.refresh();
    } catch (err) {
      if (err.name !== "AbortError") fail(err);
    }
  }, { class: enable ? "primary" : null });
}

function enabledNotice(e) {
  const n = e.requeuedDeliveries || 0;
  return `Endpoint enabled; ${n} held ${n === 1 ? "delivery" : "deliveries"} requeued.` +
    (e.probation ? " It is on probation: one attempt at a time until one succeeds." : "");
}

// deleteControl asks on the page itself (no browser dialog) before it deletes; "Keep it" or
// Escape takes the question back.
function deleteControl(e, fail) {
  const wrap = h("span", { class: "confirm" });
  const keep = () => { put(wrap, ask); ask.focus(); };
  wrap.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !wrap.contains(ask)) { ev.preventDefault(); keep(); }
  });
  const ask = button("Delete…", () => {
    const yes = button("Delete for good", async () => {
      try {
        await call("DELETE", path("webhooks", e.id));
        notify("Endpoint deleted; its pending deliveries stop.");
        location.hash = "#/";
      } catch (err) {
        if (err.name !== "AbortError") fail(err);
      }
    }, { class: "danger" });
    const no = button("Keep it", keep);
    put(wrap, h("span", null, "Delete this endpoint? "), yes, no);
    no.focus();
  }, { class: "danger" });
  wrap.append(ask);
  return wrap;
}

async function secretSection(e) {
  const shown = h("div", { class: "secret", "aria-live": "polite" });
  const problem = h("div", { role: "alert" });
  let visible = false;
  const show = (s) => {
    put(shown, dl([
      ["Current secret", h("code", { class: "secret-value" }, s.secret)],
      ...s.previousSecrets.map((p, i) => [i === 0 ? "Previous secret" : "Older secret",
        [h("code", null, p.secret), ` signs too until ${when(p.expiresAt)}`]]),
    ]));
  };
  const reveal = button("Reveal secret", async () => {
    put(problem);
    if (visible) {
      put(shown);
      visible = false;
      reveal.textContent = "Reveal secret";
      return;
    }
    try {
      show((await call("GET", path("webhooks", e.id, "secret"))).data);
      visible = true;
      reveal.textContent = "Hide secret";
    } catch (err) {
      if (err.name !== "AbortError") put(problem, errorBox(err));
    }
  });
  return h("section", { class: "card", "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, "Signing secret"),
    h("p", { class: "muted" }, "Receivers check each delivery's webhook-signature header with this secret (Standard Webhooks)."),
    h("div", { class: "actions" }, reveal),
    shown,
    rotateForm(e, problem, (s) => { show(s); visible = true; reveal.textContent = "Hide secret"; }),
    problem);
}

function rotateForm(e, problem, show) {
  const grace = h("select", { name: "grace" },
    [[0, "no time"], [3600, "1 hour"], [86400, "24 hours"], [604800, "7 days"]].map(([v, label]) =>
      h("option", { value: v, selected: v === 86400 }, label)));
  const submit = h("button", { type: "submit" }, "Rotate secret");
  const form = h("form", { class: "inline-form", "aria-label": "Rotate the signing secret" },
    field("rotate-grace", "The old secret keeps signing for", grace), submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    put(problem);
    submit.disabled = true;
    try {
      const env = await call("POST", path("webhooks", e.id, "rotate-secret"), { body: { gracePeriodSeconds: Number(grace.value) } });
      show(env.data);
      notify("Secret rotated. Update your receiver with the new secret.");
    } catch (err) {
      if (err.name !== "AbortError") put(problem, errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

async function deliveriesSection(e, ctx) {
  const status = STATUSES.includes(ctx.query.get("status")) ? ctx.query.get("status") : "";
  const page = Math.max(1, Number.parseInt(ctx.query.get("page") || "1", 10) || 1);
  const q = new URLSearchParams({ page, limit: 20 });
  if (status) q.set("status", status);
  const href = (p) => "#" + path("endpoints", e.id) + "?" + new URLSearchParams(status ? { status, page: p } : { page: p });
  let body;
  try {
    const env = await call("GET", path("webhooks", e.id, "deliveries") + "?" + q, { signal: ctx.signal });
    body = [env.data.length ? deliveryTable(e, env.data)
      : h("p", { class: "empty" }, env.pagination.total > 0 ? "No deliveries on this page."
        : status ? `No ${status} deliveries.` : "No deliveries yet. Send a test to see one."),
    pager(env.pagination, href)];
  } catch (err) {
    if (err.name === "AbortError" || err.status === 401) throw err;
    body = errorBox(err);
  }
  return h("section", { class: "card", "aria-labelledby": "dlv-title" },
    h("h2", { id: "dlv-title" }, "Deliveries"),
    deliveryFilter(e, status),
    h("div", null, body));
}

function deliveryFilter(e, status) {
  const select = h("select", { name: "status" }, [["", "All"], ...STATUSES.map((s) => [s, s])].map(([v, label]) =>
    h("option", { value: v, selected: v === status }, label)));
  const form = h("form", { class: "filter", "aria-label": "Filter deliveries" },
    field("delivery-status", "Status", select), h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const base = "#" + path("endpoints", e.id);
    location.hash = select.value ? base + "?status=" + encodeURIComponent(select.value) : base;
  });
  return form;
}

function deliveryTable(e, items) {
  return table("Deliveries, newest first", [
    { label: "Created", cell: (d) => h("a", { href: "#" + path("endpoints", e.id, "deliveries", d.id) }, when(d.createdAt)) },
    { label: "Event", cell: (d) => [d.eventType, h("br"), h("code", { class: "small" }, d.eventId)] },
    { label: "Status", cell: (d) => deliveryBadge(d.status) },
    { label: "Attempts", cell: (d) => String(d.attemptCount) },
    { label: "Next attempt", cell: (d) => when(d.nextAttemptAt) },
  ], items);
}
