// #/live: decisions as they happen, newest on top, with running counts. The API's only event
// stream (/v1/inbox/stream) is a shopper's own coupons, so this follows the decision log
// (GET /v1/logs/decisions) forward from its last id every few seconds.

import { el, fill, when, note, names, label, errorBox, REASON_TEXT } from "./review-ui.js";

const EVERY_MS = 2000;
const KEEP_ROWS = 200;
const WINDOWS = [
  ["300", "the last 5 minutes"],
  ["3600", "the last hour"],
  ["86400", "the last 24 hours"],
];

let active = null; // the running view; a new render stops the previous one

function counts(tally) {
  const reasons = Object.entries(tally.reasons).sort((a, b) => b[1] - a[1]);
  return el(
    "dl",
    { class: "rv-figures rv-live-counts" },
    el("div", { class: "rv-figure" }, el("dt", {}, "Decisions"), el("dd", {}, String(tally.total)), el("dd", { class: "rv-def" }, "shown since the view started")),
    el("div", { class: "rv-figure" }, el("dt", {}, "Sent"), el("dd", {}, String(tally.sent)), el("dd", { class: "rv-def" }, "coupons issued")),
    el("div", { class: "rv-figure" }, el("dt", {}, "Suppressed"), el("dd", {}, String(tally.total - tally.sent)), el("dd", { class: "rv-def" }, reasons.length ? reasons.map(([r, n]) => `${r} ${n}`).join(", ") : "none")),
  );
}

const COLUMNS = ["Decided at", "Offer", "Store", "Shopper", "Trigger", "Outcome", "Reason"];

function row(d, lk) {
  const cells = [
    when(d.decided_at),
    label(lk.offers, d.offer_id),
    label(lk.stores, d.store_id),
    `#${d.shopper_id}`,
    d.trigger,
    el("span", { class: `rv-outcome rv-${d.outcome}` }, d.outcome),
    d.reason ? el("span", { title: REASON_TEXT[d.reason] || "" }, d.reason) : "–",
  ];
  // data-label: on a phone each row is stacked as "column: value" (reviewer.css).
  return el(
    "tr",
    { "data-testid": "live-row", "data-id": d.id, class: "rv-new" },
    cells.map((c, i) => el("td", { class: i === 0 ? "rv-time" : null, "data-label": COLUMNS[i] }, c)),
  );
}

export async function renderLive(params, main, { api }) {
  if (active) active.stop();
  const lk = { stores: null, offers: null };
  const status = el("p", { class: "rv-live-status", role: "status" }, "Starting…");
  const tallyBox = el("div");
  const tbody = el("tbody");
  const problem = el("div");
  const offerSel = el("select", { id: "rv-live-offer", name: "offer_id" }, el("option", { value: "" }, "Any offer"));
  const storeSel = el("select", { id: "rv-live-store", name: "store_id" }, el("option", { value: "" }, "Any store"));
  const windowSel = el("select", { id: "rv-live-window", name: "window" }, WINDOWS.map(([v, t]) => el("option", { value: v }, t)));
  const pause = el("button", { type: "button", "aria-pressed": "false" }, "Pause");
  const root = el(
    "div",
    { class: "rv-screen" },
    el("div", { class: "page-head" }, el("h1", {}, "Live decisions")),
    note("Each decision as it is made: a shopper's ping made an offer eligible, and the offer was sent or suppressed (with the reason). The view checks for new decisions every 2 seconds; newest on top, the last 200 kept."),
    el(
      "form",
      { class: "rv-filters", "aria-label": "What to watch" },
      el("label", { for: "rv-live-offer" }, "Offer", offerSel),
      el("label", { for: "rv-live-store" }, "Store", storeSel),
      el("label", { for: "rv-live-window" }, "Starting from", windowSel),
      pause,
    ),
    status,
    problem,
    tallyBox,
    el(
      "div",
      { class: "table-wrap rv-scroll" },
      el(
        "table",
        { class: "rv-table rv-stack" },
        el("thead", {}, el("tr", {}, COLUMNS.map((h) => el("th", { scope: "col" }, h)))),
        tbody,
      ),
    ),
  );
  fill(main, root);

  const view = { gen: 0, timer: null, stopped: false, paused: false, cursor: "", since: "", tally: null };
  view.stop = () => {
    view.stopped = true;
    clearTimeout(view.timer);
  };
  active = view;
  main.addEventListener("route:leave", () => view.stop()); // the shell's signal, if it sends one

  function restart() {
    view.cursor = "";
    view.since = new Date(Date.now() - Number(windowSel.value) * 1000).toISOString();
    view.tally = { total: 0, sent: 0, reasons: {} };
    tbody.replaceChildren();
    fill(tallyBox, counts(view.tally));
    clearTimeout(view.timer);
    view.gen += 1;
    poll(view.gen);
  }

  async function poll(gen) {
    if (gen !== view.gen) return; // a restart began another loop
    if (view.stopped || !root.isConnected) {
      view.stop();
      return;
    }
    if (!view.paused) {
      try {
        await fetchNew();
        fill(problem);
        status.textContent = `● Live: checked at ${new Date().toLocaleTimeString("en-GB")}.`;
        status.className = "rv-live-status rv-on";
      } catch (err) {
        fill(problem, errorBox("new decisions (retrying)", err));
        status.className = "rv-live-status rv-off";
        status.textContent = "○ Not updating: see the error below; retrying.";
      }
    }
    if (!view.stopped && gen === view.gen) view.timer = setTimeout(() => poll(gen), EVERY_MS);
  }

  async function fetchNew() {
    const generation = view.since;
    for (let i = 0; i < 5; i += 1) {
      const query = { from: view.since, limit: 200 };
      if (view.cursor) query.cursor = view.cursor;
      if (offerSel.value) query.offer_id = offerSel.value;
      if (storeSel.value) query.store_id = storeSel.value;
      const page = await api("/v1/logs/decisions", { query });
      if (generation !== view.since) return; // the filters changed meanwhile
      for (const d of page.items) {
        view.tally.total += 1;
        if (d.outcome === "sent") view.tally.sent += 1;
        else if (d.reason) view.tally.reasons[d.reason] = (view.tally.reasons[d.reason] || 0) + 1;
        tbody.prepend(row(d, lk));
      }
      if (page.items.length) view.cursor = page.items[page.items.length - 1].id;
      while (tbody.rows.length > KEEP_ROWS) tbody.lastElementChild.remove();
      fill(tallyBox, counts(view.tally));
      if (!page.next_cursor) break;
    }
  }

  pause.addEventListener("click", () => {
    view.paused = !view.paused;
    pause.textContent = view.paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(view.paused));
    status.textContent = view.paused ? "Paused." : "Resuming…";
  });
  for (const s of [offerSel, storeSel, windowSel]) s.addEventListener("change", restart);

  const [stores, offers] = await Promise.all([names(api, "stores").catch(() => null), names(api, "offers").catch(() => null)]);
  lk.stores = stores;
  lk.offers = offers;
  const options = (sel, map) => {
    for (const [id, name] of [...(map || new Map()).entries()].sort((a, b) => a[1].localeCompare(b[1]))) {
      sel.append(el("option", { value: id }, `${name} (#${id})`));
    }
  };
  options(offerSel, offers);
  options(storeSel, stores);
  restart();
}
