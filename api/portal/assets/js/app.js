// The portal's entry point: reads the token, routes the fragment (#/...) to a view, and shows
// "link expired" instead of any data once the service refuses the token.
//
// Adding a part later is one route below (a new page) or one section in endpoint.js (a new
// card on an endpoint's page); the API client, the router and the views stay as they are.

import { takeToken, onSessionEnded } from "./api.js";
import { h, errorBox, put } from "./dom.js";
import { turnPage, clearNotice } from "./notice.js";
import * as endpoints from "./endpoints.js";
import * as endpoint from "./endpoint.js";
import * as delivery from "./delivery.js";
import * as events from "./events.js";
import * as recovery from "./recovery.js";

const ID = "([0-9A-Za-z_-]{1,64})";

// Each route is a pattern on the fragment's path and a view(ctx). A view fills ctx.main;
// ctx.params are the pattern's groups, ctx.query the fragment's ?query, ctx.signal aborts when
// the reader leaves the view, ctx.refresh() renders the route again.
const routes = [
  [/^\/$/, endpoints.list],
  [/^\/endpoints\/new$/, endpoints.create],
  [new RegExp(`^/endpoints/${ID}$`), endpoint.show],
  [new RegExp(`^/endpoints/${ID}/edit$`), endpoint.edit],
  [new RegExp(`^/endpoints/${ID}/deliveries/${ID}$`), delivery.show],
  [new RegExp(`^/endpoints/${ID}/recoveries/${ID}$`), recovery.show],
  [/^\/events$/, events.list],
  [new RegExp(`^/events/${ID}$`), events.show],
];

const main = document.getElementById("main");
let current = null;
let over = false;
let renders = 0;

function parseHash() {
  const frag = location.hash.slice(1) || "/";
  const q = frag.indexOf("?");
  return q < 0 ? { path: frag, query: new URLSearchParams() } : { path: frag.slice(0, q), query: new URLSearchParams(frag.slice(q + 1)) };
}

async function render(focus = true) {
  if (over) return;
  if (current) current.abort();
  const ctl = new AbortController();
  current = ctl;
  turnPage();
  const { path, query } = parseHash();
  const route = routes.find(([re]) => re.test(path));
  if (!route) {
    location.replace("#/");
    return;
  }
  const ctx = { main, params: route[0].exec(path).slice(1), query, signal: ctl.signal, refresh: () => render(false) };
  main.setAttribute("aria-busy", "true");
  try {
    await route[1](ctx);
  } catch (e) {
    if (e.name === "AbortError" || over || ctl.signal.aborted) return;
    put(main, h("h1", { tabindex: "-1" }, "Something went wrong"), errorBox(e),
      h("p", null, h("a", { href: "#/" }, "Back to all endpoints")));
  }
  if (ctl.signal.aborted || over) return;
  main.removeAttribute("aria-busy");
  // data-render counts finished renders, so that a test can tell a fresh page from the last one.
  main.dataset.render = String(++renders);
  if (focus) {
    const h1 = main.querySelector("h1");
    if (h1) h1.focus();
  }
}

// sessionOver replaces everything on the page with why there is nothing to show.
function sessionOver(err) {
  over = true;
  main.removeAttribute("aria-busy");
  if (current) current.abort();
  clearNotice();
  const expired = err && err.code === "PORTAL_SESSION_EXPIRED";
  const title = !err ? "Open this page from a portal link" : expired ? "This portal link has expired" : "This portal link is not valid";
  document.title = title + " · Cert-IX portal";
  put(main,
    h("h1", { tabindex: "-1", id: "session-over", "data-code": (err && err.code) || "NO_TOKEN" }, title),
    h("p", null, "Portal links are personal and short-lived. Ask your organisation's Cert-IX administrator for a new link, " +
      "or make one with POST /api/v1/portal/sessions."),
  );
  main.querySelector("h1").focus();
}

onSessionEnded(sessionOver);
// A new link opened in this tab changes only the fragment: take its token and start again.
window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#cix_ps_") && takeToken()) {
    over = false;
    document.title = "Webhooks · Cert-IX portal";
  }
  render();
});
if (takeToken()) render();
else sessionOver(null);
