// Hash routes (#/offers/:id/report), so a reload keeps the screen. Each visit renders into a
// fresh <main> element: a slow render of a screen already left writes into a detached node.

const routes = [];
let outlet = null;
let fallback = null;

function compile(pattern) {
  const names = [];
  const source = pattern
    .replace(/^#/, "")
    .split("/")
    .map((part) => {
      if (part.startsWith(":")) {
        names.push(part.slice(1));
        return "([^/]+)";
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("/");
  return { regex: new RegExp(`^${source}/?$`), names };
}

/** Register a screen: pattern like "#/offers/:id/report"; render(params, main) is async. */
export function route(pattern, render) {
  routes.push({ pattern, render, ...compile(pattern) });
}

/** Navigate to a hash such as "#/offers/3". */
export function go(hash) {
  if (window.location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else window.location.hash = hash;
}

/** The current hash's path and its query (after "?"), e.g. #/decisions?offer_id=3. */
export function current() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search) };
}

/** Replace the hash's query without re-rendering (filters kept in the URL). */
export function setQuery(query) {
  const { path } = current();
  const search = new URLSearchParams(query).toString();
  history.replaceState(null, "", `#${path}${search ? `?${search}` : ""}`);
}

export function match(path) {
  for (const r of routes) {
    const m = r.regex.exec(path);
    if (m) {
      const params = {};
      r.names.forEach((name, i) => {
        params[name] = decodeURIComponent(m[i + 1]);
      });
      return { route: r, params };
    }
  }
  return null;
}

async function render() {
  const { path, query } = current();
  const found = match(path);
  const main = document.createElement("main");
  main.id = "main";
  main.tabIndex = -1;
  const old = outlet.querySelector("main");
  if (old) old.dispatchEvent(new CustomEvent("route:leave"));
  outlet.replaceChildren(main);
  window.dispatchEvent(new CustomEvent("route:change", { detail: { path } }));
  if (!found) {
    if (fallback) fallback(path, main);
    return;
  }
  const params = { ...found.params, query };
  try {
    await found.route.render(params, main);
  } catch (err) {
    window.dispatchEvent(new CustomEvent("route:error", { detail: { error: err, main } }));
  }
}

/** Start listening; called once by app.js after sign-in. */
export function start(element, notFound) {
  outlet = element;
  fallback = notFound;
  window.addEventListener("hashchange", render);
  return render();
}

export function stop() {
  window.removeEventListener("hashchange", render);
  if (outlet) outlet.replaceChildren();
}
