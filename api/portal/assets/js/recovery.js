// Recovering an endpoint's deliveries since a time: the form on the endpoint's page, and the
// recovery's own page, which follows its progress until it is done.

import { call, path } from "./api.js";
import { h, dl, badge, errorBox, field, when, plural, put } from "./dom.js";
import { notify } from "./notice.js";
import { poll } from "./poll.js";

const DAY_MS = 24 * 3600 * 1000;

// localInput is d as a datetime-local value in the reader's time zone, to the second.
export function localInput(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// fromInput reads a datetime-local value (the reader's time zone) as an RFC 3339 time in UTC.
function fromInput(input, label) {
  const d = new Date(input.value);
  if (Number.isNaN(d.getTime())) throw new Error(`${label} must be a date and time.`);
  return d.toISOString();
}

// recoverySection is the endpoint page's form: since, optionally until, and what to include.
export async function recoverySection(e) {
  const since = h("input", { type: "datetime-local", name: "since", step: 1, required: true, value: localInput(new Date(Date.now() - DAY_MS)) });
  const until = h("input", { type: "datetime-local", name: "until", step: 1 });
  const failed = h("input", { type: "checkbox", name: "include", value: "failed", checked: true });
  const missing = h("input", { type: "checkbox", name: "include", value: "missing" });
  const problem = h("div", { role: "alert" });
  const active = e.status === "active";
  const submit = h("button", { type: "submit", disabled: !active }, "Start recovery");
  const form = h("form", { class: "recover-form", "aria-label": "Recover deliveries", novalidate: true },
    h("div", { class: "inline-fields" },
      field("recover-since", "Since", since, "Events published from this time (your time zone)."),
      field("recover-until", "Until (optional)", until, "Empty: now.")),
    h("fieldset", null, h("legend", null, "Include"),
      h("label", { class: "check" }, failed, " failed deliveries: attempt them again, with a fresh budget"),
      h("label", { class: "check" }, missing, " missing deliveries: events this endpoint never got (it subscribed later)")),
    h("div", { class: "actions" }, submit),
    problem);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    put(problem);
    submit.disabled = true;
    try {
      const body = { since: fromInput(since, "Since"), include: [failed, missing].filter((b) => b.checked).map((b) => b.value) };
      if (until.value) body.until = fromInput(until, "Until");
      if (body.include.length === 0) throw new Error("Choose failed deliveries, missing ones or both.");
      const env = await call("POST", path("webhooks", e.id, "recover"), { body });
      notify("Recovery started.");
      location.hash = "#" + path("endpoints", e.id, "recoveries", env.data.id);
    } catch (err) {
      if (err.name !== "AbortError") put(problem, errorBox(err));
    } finally {
      submit.disabled = !active;
    }
  });
  return h("section", { class: "card", "aria-labelledby": "recover-title" },
    h("h2", { id: "recover-title" }, "Recover deliveries"),
    h("p", { class: "muted" }, "Send again what failed in a time window, and what this endpoint never got. " +
      "Succeeded, pending and held deliveries are left alone."),
    active ? null : h("p", { class: "muted small" }, "Enable the endpoint to run a recovery."),
    form);
}

// show is #/endpoints/{id}/recoveries/{recoveryId}: the recovery, asked again until it is done.
export async function show(ctx) {
  const [eid, rid] = ctx.params;
  const url = path("webhooks", eid, "recoveries", rid);
  const first = await call("GET", url, { signal: ctx.signal });
  const details = h("div", { "aria-live": "polite" });
  put(ctx.main,
    h("p", null, h("a", { href: "#" + path("endpoints", eid) }, "← Endpoint")),
    h("h1", { tabindex: "-1" }, "Recovery"),
    details);
  fill(details, eid, first.data);
  poll(ctx, url, first.data, { busy: (r) => r.status === "running", fill: (r) => fill(details, eid, r), where: details });
}

function fill(details, eid, r) {
  const done = r.status === "done";
  put(details,
    h("p", { class: "recovery-state", "data-status": r.status }, done
      ? `Done: ${plural(r.requeued, "failed delivery", "failed deliveries")} queued again and ${plural(r.created, "missing delivery", "missing deliveries")} made.`
      : "Running: deliveries are being queued…"),
    dl([
      ["Status", done ? badge("done", "ok") : badge("running", "info")],
      ["Window", `${when(r.since)} to ${when(r.until)}`],
      ["Includes", r.include.join(" and ")],
      ["Failed deliveries queued again", h("span", { "data-count": "requeued" }, String(r.requeued))],
      ["Missing deliveries made", h("span", { "data-count": "created" }, String(r.created))],
      ["Started", when(r.createdAt)],
      ["Finished", when(r.finishedAt)],
    ]),
    done ? h("p", null, "Follow them in ", h("a", { href: "#" + path("endpoints", eid) }, "the endpoint's delivery log"), ".") : null);
}
