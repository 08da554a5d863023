// The status line above the page: short messages such as "Endpoint created" that stay through
// the navigation that usually follows them, and are cleared by the one after.

const notice = document.getElementById("notice");
let keep = false;

// notify shows text in the status line (a polite live region, so screen readers read it).
export function notify(text) {
  const p = document.createElement("p");
  p.className = "notice";
  p.textContent = text;
  notice.replaceChildren(p);
  keep = true;
}

// turnPage clears the status line unless a message was just shown for this navigation.
export function turnPage() {
  if (!keep) notice.replaceChildren();
  keep = false;
}

// clearNotice empties the status line.
export function clearNotice() {
  notice.replaceChildren();
  keep = false;
}
