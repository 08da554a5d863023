// One delivery with every attempt: what the receiver answered, how long it took, its error and
// the first 4 KiB of its response body. While the delivery is still on its way the page asks
// again (poll.js).

import { call, path } from "./api.js";
import { h, dl, table, errorBox, button, when, put } from "./dom.js";
import { notify } from "./notice.js";
import { deliveryBadge } from "./health.js";
import { poll } from "./poll.js";

// show is #/endpoints/{id}/deliveries/{deliveryId}.
export async function show(ctx) {
  const [eid, did] = ctx.params;
  const url = path("webhooks", eid, "deliveries", did);
  const first = await call("GET", url, { signal: ctx.signal });
  const details = h("div", { "aria-live": "polite" });
  const problem = h("div", { role: "alert" });
  const retry = button("Retry now", async () => {
    put(problem);
    try {
      await call("POST", url + "/retry");
      notify("Delivery queued again.");
      ctx.refresh();
    } catch (err) {
      if (err.name !== "AbortError") put(problem, errorBox(err));
    }
  });
  if (first.data.status === "held") { // its endpoint is disabled: the API would refuse (WEBHOOK_DISABLED)
    retry.disabled = true;
    retry.title = "Enable the endpoint first: its held deliveries are then sent again";
  }
  put(ctx.main,
    h("p", null, h("a", { href: "#" + path("endpoints", eid) }, "← Endpoint")),
    h("h1", { tabindex: "-1" }, "Delivery"),
    details,
    h("div", { class: "actions" }, retry, button("Refresh", () => ctx.refresh())),
    problem);
  fill(details, eid, first.data);
  poll(ctx, url, first.data, { busy: (d) => ["pending", "retrying"].includes(d.status), fill: (d) => fill(details, eid, d), where: details });
}

function fill(details, eid, d) {
  // Test pings are not in the event log; every other event has a page of its own.
  const event = d.eventType === "webhook.test" ? h("code", null, d.eventId)
    : h("a", { href: "#" + path("events", d.eventId) }, h("code", null, d.eventId));
  put(details,
    dl([
      ["Status", deliveryBadge(d.status)],
      ["Event", [d.eventType, " ", event]],
      d.waitingFor ? ["Waiting for", ["the delivery before it of the same scan: ",
        h("a", { href: "#" + path("endpoints", eid, "deliveries", d.waitingFor) }, h("code", null, d.waitingFor))]] : null,
      ["Delivery id", h("code", null, d.id)],
      ["Attempts", String(d.attemptCount)],
      ["Next attempt", when(d.nextAttemptAt)],
      ["Created", when(d.createdAt)],
      ["Updated", when(d.updatedAt)],
    ].filter(Boolean)),
    h("h2", null, "Attempts"),
    d.attempts.length ? attemptTable(d.attempts) : h("p", { class: "empty" }, "No attempt yet."));
}

function attemptTable(attempts) {
  return table("Attempts, first to last", [
    { label: "#", cell: (a) => String(a.number) },
    { label: "Started", cell: (a) => when(a.startedAt) },
    { label: "Duration", cell: (a) => `${a.durationMs} ms` },
    { label: "Response", cell: (a) => a.statusCode ? h("span", { class: "status-code" }, `HTTP ${a.statusCode}`) : "no response" },
    { label: "Error", cell: (a) => a.error || "—" },
    { label: "Response body", cell: (a) => a.responseBody ? h("pre", { class: "body" }, a.responseBody) : "—" },
  ], attempts);
}
