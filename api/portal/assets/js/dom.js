// Building the page from data. Every value becomes a text node or an attribute value: nothing
// here parses HTML, and the page's Trusted Types policy refuses any code that tries, so a
// tenant's "<img src=x onerror=...>" can only ever show as text.

// h creates an element. props are attributes ("class", "href", ...) or "on<event>" listeners;
// children are nodes or values shown as text; null, undefined and false are skipped.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

// SVG_NS is the namespace SVG elements are made in (a name, not an address: nothing is fetched).
const SVG_NS = "http://www.w3.org/2000/svg";

// svg creates an SVG element with attributes and children, like h.
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

// put replaces el's children with children, skipping null, undefined and false like h.
export function put(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// badge is a status label; its text carries the meaning, the colour only repeats it.
export function badge(text, kind) {
  return h("span", { class: "badge badge-" + kind }, text);
}

// when shows an RFC 3339 time in the reader's locale, or a dash.
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

// dl is a definition list from [term, value] pairs.
export function dl(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([t, v]) => [h("dt", null, t), h("dd", null, v)]));
}

// table shows rows under columns [{label, cell(row) → node or text}]. On narrow screens CSS
// stacks each row, and data-label names each cell.
export function table(caption, columns, rows) {
  return h("div", { class: "table-wrap" },
    h("table", { class: "stack" },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", null, h("tr", null, columns.map((c) => h("th", { scope: "col" }, c.label)))),
      h("tbody", null, rows.map((r) =>
        h("tr", null, columns.map((c) => h("td", { "data-label": c.label }, h("div", { class: "cell" }, c.cell(r)))))))));
}

// pager links to the previous and next page of a list; href(page) builds each link.
export function pager(p, href) {
  if (!p || p.totalPages <= 1) return null;
  return h("nav", { class: "pager", "aria-label": "Pages" },
    p.page > 1 ? h("a", { href: href(p.page - 1), rel: "prev" }, "← Previous") : null,
    h("span", null, `Page ${p.page} of ${p.totalPages} (${p.total})`),
    p.page < p.totalPages ? h("a", { href: href(p.page + 1), rel: "next" }, "Next →") : null);
}

// errorBox shows an API error: its message, code and request id (for support).
export function errorBox(err) {
  return h("div", { class: "error", role: "alert" },
    h("p", null, err.message || "Something went wrong."),
    err.code ? h("p", { class: "muted small" }, `Code ${err.code}` + (err.requestId ? ` · request ${err.requestId}` : "")) : null);
}

// button is a real <button>; busy work disables it until onclick's promise settles (also when
// onclick took it off the page, which may put it back later, as the delete confirmation does).
export function button(label, onclick, props = {}) {
  const b = h("button", { type: "button", ...props }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await onclick(b);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

// field wraps a control with its label and an optional hint tied to it by aria-describedby.
export function field(id, label, control, hint) {
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    control.setAttribute("aria-describedby", id + "-hint");
    parts.splice(1, 0, h("p", { class: "hint", id: id + "-hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

// plural is "1 thing" or "n things" (or n many, when "s" does not make the plural).
export function plural(n, word, many = word + "s") {
  return `${n} ${n === 1 ? word : many}`;
}
