// The one way the page talks to the service: the JSON API of this origin, with the portal
// session's token in the X-Portal-Token header. The token arrives in the link's fragment
// (#cix_ps_...), which browsers never send to a server; it is moved to this tab's
// sessionStorage and removed from the address bar, so it is neither in the history nor in a
// copied URL, and a reload keeps working.

const TOKEN_KEY = "webhookd.portal.token";
const TOKEN_PREFIX = "cix_ps_";

let token = null;
let ended = () => {};

// takeToken reads a token from the fragment (a fresh link) or from this tab's storage. It
// returns whether there is one.
export function takeToken() {
  const frag = location.hash.slice(1);
  if (frag.startsWith(TOKEN_PREFIX)) {
    sessionStorage.setItem(TOKEN_KEY, frag);
    history.replaceState(null, "", location.pathname + "#/");
  }
  token = sessionStorage.getItem(TOKEN_KEY);
  return token !== null;
}

// onSessionEnded registers what happens when the service refuses the token (401): the page
// then forgets it and shows no data.
export function onSessionEnded(fn) {
  ended = fn;
}

// ApiError is an error envelope {success: false, error, code, requestId}, or a network failure.
export class ApiError extends Error {
  constructor(status, env) {
    super((env && env.error) || `The service answered ${status}.`);
    this.status = status;
    this.code = env && env.code;
    this.requestId = env && env.requestId;
  }
}

// call makes one request to /api/v1 + path and returns the success envelope
// ({data, pagination?}); it throws ApiError otherwise. signal aborts it when the view goes away.
export async function call(method, path, { body, signal } = {}) {
  if (token === null) throw new ApiError(401, { code: "INVALID_PORTAL_SESSION", error: "No portal session." });
  const headers = { "X-Portal-Token": token, Accept: "application/json" };
  const init = { method, headers, signal, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch("/api/v1" + path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { code: "NETWORK", error: "The service could not be reached. Check the connection and try again." });
  }
  let env = null;
  try {
    env = await res.json();
  } catch (e) {
    if (e.name === "AbortError") throw e;
  }
  if (res.ok && env && env.success) return env;
  const err = new ApiError(res.status, env);
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    token = null;
    ended(err);
  }
  throw err;
}

// path joins URL path segments, each escaped.
export function path(...segments) {
  return "/" + segments.map((s) => encodeURIComponent(s)).join("/");
}
