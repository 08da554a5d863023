// How things are doing, in words and badges: an endpoint's health (active or disabled and why,
// probation, degraded, throttling, its failure streak), the settings that shape how fast it is sent to,
// and a delivery's status.

import { h, badge, plural } from "./dom.js";

const REASONS = {
  consecutive_failures: "after repeated failed deliveries",
  gone: "the receiver answered 410 Gone",
  manual: "disabled by hand",
  probation_failed: "the first attempt after it was enabled failed",
};

// throttled reports whether 429 or 503 answers lowered the attempts the endpoint may have in
// flight (probation lowers them too, and says so itself).
function throttled(e) {
  return !e.probation && e.effectiveConcurrency < e.maxConcurrency;
}

// health shows an endpoint's status, why it is disabled, probation, degraded, throttling and its failure streak.
export function health(e) {
  const parts = [e.status === "active" ? badge("Active", "ok") : badge("Disabled", "bad")];
  if (e.status !== "active" && e.disabledReason) {
    parts.push(h("span", { class: "reason" }, REASONS[e.disabledReason] || e.disabledReason));
  }
  if (e.probation) {
    parts.push(h("span", { class: "badge badge-warn", title: "One attempt at a time until one succeeds; a failure disables it again." }, "Probation"));
  }
  if (e.degraded) {
    parts.push(h("span", { class: "badge badge-warn", title: "Its failures in a row reached half of what disables it." }, "Degraded"));
  }
  if (throttled(e)) {
    parts.push(h("span", { class: "badge badge-warn", title: "The receiver answered 429 or 503: fewer attempts at once until it recovers." }, "Throttled"));
  }
  if (e.consecutiveFailures > 0) {
    parts.push(h("span", { class: "failures" }, plural(e.consecutiveFailures, "consecutive failure")));
  }
  return h("div", { class: "health" }, parts);
}

// healthFacts are the [term, value] pairs of an endpoint's page about how it is sent to.
export function healthFacts(e) {
  return [
    ["Attempts at once", concurrency(e)],
    ["Rate limit", e.rateLimitPerSecond ? `at most ${e.rateLimitPerSecond} a second` : "none"],
    ["Ordering", e.ordering === "scan" ? "per scan: one at a time for each scanId, in publish order" : "none"],
  ];
}

function concurrency(e) {
  const n = e.effectiveConcurrency;
  const max = e.maxConcurrency;
  if (e.probation) return `${n} of ${max}, on probation until an attempt succeeds`;
  if (n < max) return `${n} of ${max}, lowered after 429 or 503 answers; it grows back with each run of successes`;
  return `${n} (the most the service allows)`;
}

// STATUSES are a delivery's statuses.
export const STATUSES = ["pending", "retrying", "succeeded", "failed", "held"];
const STATUS_KIND = { succeeded: "ok", failed: "bad", held: "warn", pending: "info", retrying: "info" };

// deliveryBadge shows a delivery status.
export function deliveryBadge(status) {
  return badge(status, STATUS_KIND[status] || "info");
}
