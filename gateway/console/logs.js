// #/redemptions and #/decisions: the two logs as filtered, cursor-paged tables with a CSV
// download of exactly the filtered rows (GET /v1/logs/{redemptions,decisions}).

import { el, fill, loading, errorBox, when, note, names, label, authHeaders, qs, REASONS, REASON_TEXT } from "./review-ui.js";

const KINDS = {
  redemptions: {
    title: "Redemption log",
    path: "/v1/logs/redemptions",
    file: "redemptions.csv",
    what: "One row per coupon redeemed at a till, oldest first. Voided redemptions stay in the log with who voided them and why.",
    rowTestid: "redemption-row",
    columns: ["ID", "Redeemed at", "Offer", "Store", "Coupon code", "Order ref", "Amount (merchant currency)", "Status"],
    cells: (r, lk) => [
      r.id,
      when(r.redeemed_at),
      label(lk.offers, r.offer_id),
      label(lk.stores, r.store_id),
      el("code", {}, r.code),
      r.order_ref || "–",
      r.amount === null ? "–" : r.amount,
      r.voided_at ? `voided ${when(r.voided_at)} by key #${r.voided_by || "?"}${r.void_reason ? `: ${r.void_reason}` : ""}` : "redeemed",
    ],
  },
  decisions: {
    title: "Decision log",
    path: "/v1/logs/decisions",
    file: "decisions.csv",
    what: "One row per decision, oldest first: each time a shopper's ping made an offer eligible, whether it was sent or suppressed and why. Converted = the shopper bought at one of the offer's stores within the coupon's validity.",
    rowTestid: "decision-row",
    columns: ["ID", "Decided at", "Offer", "Store", "Shopper", "Geofence", "Trigger", "Outcome", "Reason", "Converted at"],
    cells: (r, lk) => [
      r.id,
      when(r.decided_at),
      label(lk.offers, r.offer_id),
      label(lk.stores, r.store_id),
      `#${r.shopper_id}`,
      `#${r.geofence_id}`,
      r.trigger,
      el("span", { class: `rv-outcome rv-${r.outcome}` }, r.outcome),
      r.reason ? el("span", { title: REASON_TEXT[r.reason] || "" }, r.reason) : "–",
      r.converted_at ? when(r.converted_at) : "–",
    ],
  },
};

const states = new Map();
const FILTERS = ["from", "to", "store_id", "offer_id", "outcome", "reason", "status"];

/** The screen's state. The filters are the URL's (#/decisions?offer_id=3), so a link or a
 * reload shows the same rows; the page reached is kept while they stay the same. */
function stateOf(kind, query) {
  if (!states.has(kind)) {
    states.set(kind, { filters: {}, limit: 50, cursors: [""], csvUrl: null, csvAbort: null });
  }
  const state = states.get(kind);
  const fromUrl = {};
  for (const name of FILTERS) {
    if (query && query.get(name)) fromUrl[name] = query.get(name);
  }
  if (JSON.stringify(fromUrl) !== JSON.stringify(state.filters)) {
    state.filters = fromUrl;
    state.cursors = [""];
  }
  return state;
}

/** Keep the filters in the hash's query without re-rendering. */
function remember(kind, filters) {
  const search = new URLSearchParams(filters).toString();
  history.replaceState(null, "", `#/${kind}${search ? `?${search}` : ""}`);
}

/** The day's local midnight as an RFC 3339 instant; `next` gives the following midnight. */
function instant(day, next = false) {
  if (!day) return "";
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + (next ? 1 : 0)).toISOString();
}

/** The API's query for the filters: `to` is inclusive in the form, exclusive in the API. */
function filterQuery(f) {
  return {
    from: instant(f.from),
    to: instant(f.to, true),
    store_id: f.store_id,
    offer_id: f.offer_id,
    outcome: f.outcome,
    reason: f.reason,
    status: f.status,
  };
}

function select(name, text, options, value) {
  const id = `rv-f-${name}`;
  return el(
    "label",
    { for: id },
    text,
    el("select", { id, name }, el("option", { value: "" }, "Any"), options.map(([v, t]) => el("option", { value: v, selected: String(v) === String(value || "") }, t))),
  );
}

function filterForm(kind, state, lookups, onApply) {
  const f = state.filters;
  const byName = (map) => [...(map || new Map()).entries()].sort((a, b) => a[1].localeCompare(b[1])).map(([id, n]) => [id, `${n} (#${id})`]);
  const form = el(
    "form",
    { class: "rv-filters", "aria-label": "Filters" },
    el("label", { for: "rv-f-from" }, "From (day, inclusive)", el("input", { type: "date", id: "rv-f-from", name: "from", value: f.from || "" })),
    el("label", { for: "rv-f-to" }, "To (day, inclusive)", el("input", { type: "date", id: "rv-f-to", name: "to", value: f.to || "" })),
    select("store_id", "Store", byName(lookups.stores), f.store_id),
    select("offer_id", "Offer", byName(lookups.offers), f.offer_id),
    kind === "decisions" ? select("outcome", "Outcome", [["sent", "sent"], ["suppressed", "suppressed"]], f.outcome) : null,
    kind === "redemptions" ? select("status", "Status", [["active", "standing (not voided)"], ["voided", "voided"]], f.status) : null,
    kind === "decisions" ? select("reason", "Reason", REASONS.map((r) => [r, `${r}: ${REASON_TEXT[r]}`]), f.reason) : null,
    el(
      "label",
      { for: "rv-f-limit" },
      "Rows per page",
      el("select", { id: "rv-f-limit", name: "limit" }, [25, 50, 100, 200].map((n) => el("option", { value: String(n), selected: n === state.limit }, String(n)))),
    ),
    el("div", { class: "rv-filter-actions" }, el("button", { type: "submit", class: "primary" }, "Apply filters"), el("button", { type: "reset" }, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    state.limit = Number(data.limit) || 50;
    delete data.limit;
    state.filters = Object.fromEntries(Object.entries(data).filter(([, v]) => v !== ""));
    onApply();
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    state.filters = {};
    onApply(true);
  });
  return form;
}

/** The CSV link: the filtered log fetched with the token and offered as a Blob URL. */
function csvLink(kind, state) {
  const spec = KINDS[kind];
  const link = el("a", { class: "button primary rv-button", "data-testid": "csv-download", download: spec.file, href: "#", "aria-disabled": "true" }, "Preparing CSV…");
  const status = el("span", { class: "rv-note", role: "status" });
  if (state.csvAbort) state.csvAbort.abort();
  if (state.csvUrl) URL.revokeObjectURL(state.csvUrl);
  state.csvUrl = null;
  const abort = new AbortController();
  state.csvAbort = abort;
  const ready = (async () => {
    const response = await fetch(spec.path + qs({ ...filterQuery(state.filters), format: "csv" }), { headers: authHeaders(), signal: abort.signal });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const blob = await response.blob();
    const rows = Math.max(0, (await blob.text()).split("\r\n").filter((l) => l !== "").length - 1);
    state.csvUrl = URL.createObjectURL(blob);
    link.href = state.csvUrl;
    link.removeAttribute("aria-disabled");
    link.textContent = `Download CSV (${rows} rows)`;
    link.dataset.rows = String(rows);
    status.textContent = "every row matching the filters, not only this page";
  })();
  ready.catch((err) => {
    if (abort.signal.aborted) return;
    link.textContent = "CSV unavailable";
    status.textContent = `Could not prepare the CSV: ${err.message}`;
  });
  link.addEventListener("click", (event) => {
    if (!state.csvUrl) event.preventDefault();
  });
  return el("div", { class: "rv-csv" }, link, " ", status);
}

function table(kind, items, lookups) {
  const spec = KINDS[kind];
  return el(
    "div",
    { class: "table-wrap rv-scroll" },
    el(
      "table",
      { class: "rv-table rv-stack" },
      el("caption", { class: "rv-visually-hidden" }, spec.title),
      el("thead", {}, el("tr", {}, spec.columns.map((c) => el("th", { scope: "col" }, c)))),
      // data-label: on a phone each row is stacked as "column: value" (reviewer.css).
      el("tbody", {}, items.map((r) => el("tr", { "data-testid": spec.rowTestid, "data-id": r.id }, spec.cells(r, lookups).map((c, i) => el("td", { "data-label": spec.columns[i] }, c))))),
    ),
  );
}

export async function renderLog(kind, params, main, { api }) {
  const spec = KINDS[kind];
  const state = stateOf(kind, params && params.query);
  const lookups = { stores: null, offers: null };
  const filters = el("div");
  const csv = el("div");
  const body = el("div", { class: "rv-body" });
  fill(main, el("div", { class: "rv-screen" }, el("div", { class: "page-head" }, el("h1", {}, spec.title)), note(spec.what, " Times are shown in your time zone; days in the filters are your local days."), filters, csv, body));

  const [stores, offers] = await Promise.all([names(api, "stores").catch(() => null), names(api, "offers").catch(() => null)]);
  lookups.stores = stores;
  lookups.offers = offers;
  const redraw = (filtersChanged) => {
    if (filtersChanged) state.cursors = [""];
    remember(kind, state.filters);
    fill(filters, filterForm(kind, state, lookups, () => redraw(true)));
    fill(csv, csvLink(kind, state));
    loadPage();
  };

  async function loadPage() {
    loading(body, spec.title.toLowerCase());
    const page = state.cursors.length - 1;
    const query = { ...filterQuery(state.filters), limit: state.limit, cursor: state.cursors[page] };
    let answer;
    try {
      answer = await api(spec.path, { query: Object.fromEntries(Object.entries(query).filter(([, v]) => v !== "")) });
    } catch (err) {
      fill(body, errorBox(spec.title.toLowerCase(), err));
      return;
    }
    const first = page * state.limit + 1;
    const shown = answer.items.length;
    const prev = el("button", { type: "button", disabled: page === 0 }, "← Previous");
    const next = el("button", { type: "button", disabled: !answer.next_cursor }, "Next →");
    prev.addEventListener("click", () => {
      state.cursors.pop();
      loadPage();
    });
    next.addEventListener("click", () => {
      state.cursors.push(answer.next_cursor);
      loadPage();
    });
    const where = shown ? `Page ${page + 1} · rows ${first}–${first + shown - 1}` : `Page ${page + 1} · no rows`;
    fill(
      body,
      shown ? table(kind, answer.items, lookups) : el("p", { class: "rv-empty" }, "No rows match these filters."),
      el("nav", { class: "rv-pager", "aria-label": "Pages" }, prev, el("span", { role: "status" }, where), next),
    );
  }
  redraw(false);
}
