// Views of something that is still changing (a delivery on its way, a running recovery) ask
// the service again every 1.5 s until it settles, and stop as soon as the reader leaves.

import { call } from "./api.js";
import { errorBox } from "./dom.js";

const POLL_MS = 1500;

// poll GETs url again while busy(data) holds for the last answer, handing each answer to fill.
// An error ends the polling and is shown at the end of where.
export function poll(ctx, url, data, { busy, fill, where }) {
  if (!busy(data)) return;
  const timer = setTimeout(async () => {
    try {
      const env = await call("GET", url, { signal: ctx.signal });
      fill(env.data);
      poll(ctx, url, env.data, { busy, fill, where });
    } catch (err) {
      if (err.name !== "AbortError" && !ctx.signal.aborted) where.append(errorBox(err));
    }
  }, POLL_MS);
  ctx.signal.addEventListener("abort", () => clearTimeout(timer));
}
