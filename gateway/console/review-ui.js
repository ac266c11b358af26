// Small DOM and formatting helpers shared by the reviewer's screens (report, logs, live).
// Every text from the API goes through text nodes: nothing here parses HTML.

const PROPS = new Set(["value", "checked", "disabled", "selected", "hidden", "href", "download"]);

/** An element: `attrs` become attributes (or properties for form state); strings become text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (PROPS.has(key)) {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function loading(node, what) {
  fill(node, el("p", { class: "rv-loading", role: "status" }, `Loading ${what}…`));
}

/** An error box saying what failed, with the API's code and message when there is one. */
export function errorBox(what, err) {
  const status = err && err.status ? ` (HTTP ${err.status}${err.code ? `, ${err.code}` : ""})` : "";
  const message = err && err.message ? err.message : String(err);
  const fields = err && err.fields ? Object.entries(err.fields).map(([k, v]) => `${k}: ${v}`) : [];
  return el(
    "div",
    { class: "rv-error", role: "alert" },
    el("strong", {}, `Could not load ${what}${status}.`),
    " ",
    message,
    fields.length ? el("ul", {}, fields.map((f) => el("li", {}, f))) : null,
  );
}

const INT = new Intl.NumberFormat("en-GB");

export function int(n) {
  return n === null || n === undefined ? "–" : INT.format(n);
}

/** A proportion (0..1) as a percentage, or a dash when undefined. */
export function pct(x, digits = 1) {
  return x === null || x === undefined ? "–" : `${(x * 100).toFixed(digits)} %`;
}

/** A difference of two proportions in percentage points, signed. */
export function pp(x, digits = 1) {
  if (x === null || x === undefined) return "–";
  const v = x * 100;
  const sign = v > 0 ? "+" : v < 0 ? "−" : "±";
  return `${sign}${Math.abs(v).toFixed(digits)} pp`;
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString("en-GB", { timeZoneName: "short" });
}

export const REASONS = [
  "no_consent",
  "quiet_hours",
  "outside_schedule",
  "occurrence_lapsed",
  "store_closed",
  "weather_mismatch",
  "audience_mismatch",
  "budget_exhausted",
  "frequency_capped",
  "fatigue_capped",
  "holdout",
  "lower_priority",
];

// Each reason code in words, as offers/report.py REASON_WORDS says them (a test compares).
export const REASON_TEXT = {
  no_consent: "no marketing consent",
  quiet_hours: "quiet hours",
  outside_schedule: "outside the schedule",
  occurrence_lapsed: "journey moment passed",
  store_closed: "store closed",
  weather_mismatch: "weather did not match",
  audience_mismatch: "not in the audience",
  budget_exhausted: "budget used up",
  frequency_capped: "per-shopper cap reached",
  fatigue_capped: "daily offer limit reached",
  holdout: "held out (control group)",
  lower_priority: "another offer had priority",
};

/** All pages of a small list endpoint (stores, offers), at most `pages` pages. */
async function allPages(api, path, pages = 10) {
  const items = [];
  let cursor;
  for (let i = 0; i < pages; i += 1) {
    const query = { limit: 1000 };
    if (cursor) query.cursor = cursor;
    const page = await api(path, { query });
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return items;
}

const lookups = new Map();

/** id -> name of the stores (or offers) the token can see; fetched once per page load. */
export function names(api, kind) {
  if (!lookups.has(kind)) {
    const path = kind === "stores" ? "/v1/stores" : "/v1/offers";
    const promise = allPages(api, path)
      .then((items) => new Map(items.map((i) => [i.id, i.name])))
      .catch((err) => {
        lookups.delete(kind);
        throw err;
      });
    lookups.set(kind, promise);
  }
  return lookups.get(kind);
}

/** "Name (#id)", or "#id" when the name is unknown. */
export function label(map, id) {
  if (id === null || id === undefined) return "";
  const name = map && map.get(String(id));
  return name ? `${name} (#${id})` : `#${id}`;
}

/** Load reviewer.css once, with the same version query as this module. */
export function ensureCss() {
  if (document.querySelector("link[data-rv-css]")) return;
  const url = new URL("./reviewer.css", import.meta.url);
  url.search = new URL(import.meta.url).search;
  document.head.append(el("link", { rel: "stylesheet", href: url.pathname + url.search, "data-rv-css": true }));
}

// Charts of the screen on display, destroyed when the screen is drawn again.
const charts = new Set();

export function dropCharts() {
  for (const c of charts) c.destroy();
  charts.clear();
}

/** A Chart.js chart in a sized box, or a note when the library did not load. */
export function chart(config, { height = 240, title } = {}) {
  const canvas = el("canvas", { role: "img", "aria-label": title || "chart" });
  const box = el("div", { class: "rv-chart" }, canvas);
  box.style.height = `${height}px`;
  if (typeof globalThis.Chart !== "function") {
    return fill(box, el("p", { class: "rv-note" }, "The chart library did not load; the figures are listed below."));
  }
  const merged = { ...config, options: { responsive: true, maintainAspectRatio: false, ...config.options } };
  charts.add(new globalThis.Chart(canvas, merged));
  return box;
}

/** A line of definition text under a heading or a figure. */
export function note(...children) {
  return el("p", { class: "rv-note" }, ...children);
}

/** The API token, for the raw fetches api() cannot make (CSV, streams). */
export function authHeaders() {
  const token = sessionStorage.getItem("gw.token");
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** A query string from an object, leaving out empty values. */
export function qs(query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== "") params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}
