// Small DOM helpers. Text from the API (offer titles, bodies) only ever goes in as text
// nodes, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "testid") el.dataset.testid = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  // A change after a tick is read out even when the text repeats.
  setTimeout(() => (region.textContent = text), 50);
}

export function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
}

export function setTitle(text) {
  document.getElementById("bar-title").textContent = text;
  document.title = text;
}

export function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** A status line whose text can change, read out politely. */
export function status(testid) {
  return h("p", { class: "note", role: "status", testid });
}

export function errorText(err) {
  return err && err.message ? err.message : String(err);
}
