// #/offers/:id/report: an offer's funnel, its uplift against the holdout with the 95 %
// interval drawn, and the same figures by store, channel or day.
// Figures come from GET /v1/reports/offers/{id} only.

import {
  el, fill, loading, errorBox, int, pct, pp, note, chart, dropCharts, names, label,
  REASONS, REASON_TEXT,
} from "./review-ui.js";

// The definitions are offers/report.py's STAGES, word for word (a test checks).
const STAGES = [
  ["candidates", "Candidates", "decisions: times a shopper entering or dwelling at one of the offer's geofences or stores made the offer a candidate"],
  ["eligible", "Eligible", "candidates that passed the offer's targeting: consent, quiet hours, schedule, opening hours, weather and audience (a weekend-only offer is never eligible on a weekday)"],
  ["suppressed", "Suppressed", "candidates not sent, by reason: the targeting reasons (not eligible), then for eligible ones budget, caps, holdout or another offer's priority"],
  ["sent", "Sent", "coupons issued: eligible decisions that sent the offer"],
  ["delivered", "Delivered", "sent coupons that reached the shopper on at least one channel: in the app (the ping's answer or the inbox), by Web Push or on the wallet pass"],
  ["opened", "Opened", "delivered coupons the shopper opened (an open counts as a delivery too)"],
  ["saved", "Saved to wallet", "sent coupons the shopper added to a wallet, by wallet: Apple Wallet when a device registered the coupon's pass, Google Wallet when Google's signed callback reported the save; each coupon counts once per wallet, and removed counts those taken out of that wallet since"],
  ["redeemed", "Redeemed", "coupons redeemed at the till, voided redemptions excluded"],
];

// stage -> [the API's rate, its wording, the stage it is a share of]
const RATE_OF = {
  eligible: ["eligible_of_candidates", "of candidates", "candidates"],
  sent: ["sent_of_eligible", "of eligible", "eligible"],
  delivered: ["delivered_of_sent", "of sent", "sent"],
  opened: ["opened_of_delivered", "of delivered", "delivered"],
  saved: ["saved_of_sent", "of sent", "sent"],
  redeemed: ["redeemed_of_sent", "of sent", "sent"],
};

/** The stage as a share of the stage before it, or a note when it exceeds it: a share above
 * 100 % is no rate (e.g. opens recorded before an open counted as a delivery). */
function rateText(funnel, key) {
  const rate = RATE_OF[key];
  if (!rate) return null;
  const [name, wording, base] = rate;
  if (stageValue(funnel, key) > stageValue(funnel, base)) {
    const more = { sent: "sent", delivered: "deliveries", opened: "opens", saved: "saves", redeemed: "redemptions" }[key];
    const fewer = { eligible: "eligible decisions", sent: "coupons sent", delivered: "recorded deliveries" }[base];
    return [`more ${more} than ${fewer}: see the definitions`, true];
  }
  return [`${pct(funnel.rates[name])} ${wording}`, false];
}

const COLOURS = { stage: "#2f6f9f", suppressed: "#c77c1b", interval: "#2f6f9f", point: "#111" };

function stageValue(funnel, key) {
  if (key === "suppressed") return funnel.suppressed.total;
  if (key === "saved") return funnel.saved.total;
  return funnel[key];
}

/** Saves by wallet, e.g. "Apple 3 (1 removed), Google 2". */
function savedText(saved) {
  return Object.entries(saved.by_wallet)
    .map(([wallet, n]) => {
      const removed = saved.removed[wallet] || 0;
      const name = wallet[0].toUpperCase() + wallet.slice(1);
      return removed ? `${name} ${n} (${removed} removed)` : `${name} ${n}`;
    })
    .join(", ");
}

/** The funnel as labelled numbers: <dt> label and definition, <dd data-metric> the number. */
function funnelList(funnel) {
  const list = el("dl", { class: "rv-funnel", "data-testid": "funnel" });
  for (const [key, name, definition] of STAGES) {
    const [share, odd] = rateText(funnel, key) || [null, false];
    list.append(
      el("dt", {}, el("span", { class: "rv-stage" }, name), el("span", { class: "rv-def" }, definition)),
      el("dd", { "data-metric": key }, String(stageValue(funnel, key))),
      el(
        "dd", { class: odd ? "rv-rate rv-rate-note" : "rv-rate" }, share || "\u00a0",
        // Saves by wallet, under their share: the grid keeps three cells a stage.
        key === "saved" ? el("div", { class: "rv-def", "data-testid": "saved-by-wallet" }, savedText(funnel.saved)) : null,
      ),
    );
  }
  return list;
}

function funnelChart(funnel) {
  // Suppressions are labelled by their reason in words (orange, with a legend entry); the
  // tooltip adds the code the logs and the CSV use.
  const rows = [["Candidates", funnel.candidates, COLOURS.stage, null]];
  for (const reason of REASONS) {
    const n = funnel.suppressed.by_reason[reason] || 0;
    if (n > 0) rows.push([`  ${REASON_TEXT[reason] || reason}`, n, COLOURS.suppressed, reason]);
  }
  for (const key of ["sent", "delivered", "opened", "redeemed"]) {
    rows.push([key[0].toUpperCase() + key.slice(1), funnel[key], COLOURS.stage, null]);
  }
  const legend = [
    { text: "funnel stage", fillStyle: COLOURS.stage, strokeStyle: COLOURS.stage },
    { text: "suppressed, by reason", fillStyle: COLOURS.suppressed, strokeStyle: COLOURS.suppressed },
  ];
  return chart(
    {
      type: "bar",
      data: {
        labels: rows.map((r) => r[0]),
        datasets: [{ label: "count", data: rows.map((r) => r[1]), backgroundColor: rows.map((r) => r[2]) }],
      },
      options: {
        indexAxis: "y",
        plugins: {
          legend: { position: "bottom", labels: { generateLabels: () => legend }, onClick: null },
          tooltip: {
            callbacks: {
              title: (items) => {
                const reason = rows[items[0].dataIndex][3];
                return reason ? `Suppressed: ${reason}` : rows[items[0].dataIndex][0];
              },
              afterLabel: (ctx) => (rows[ctx.dataIndex][3] ? `reason code ${rows[ctx.dataIndex][3]}` : ""),
            },
          },
        },
        scales: {
          // Counts are whole numbers: no 0.1 … 0.9 ticks when the numbers are small.
          x: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "count (decisions, then coupons)" } },
          y: { ticks: { autoSkip: false } },
        },
      },
    },
    { height: 100 + rows.length * 26, title: "Funnel of the offer, as a horizontal bar chart" },
  );
}

/** The verdict on an uplift interval, in words. */
export function verdict(u) {
  if (u.ci_low === null || u.ci_high === null) {
    return "No uplift can be computed: it needs shoppers who were sent the offer and shoppers held out (holdout above 0 %) in this period.";
  }
  if (u.ci_low > 0) return "Significant: the whole interval is above zero, so the offer raised conversion.";
  if (u.ci_high < 0) return "Significant: the whole interval is below zero, so the offer lowered conversion.";
  return "Not significant: the interval includes zero, so these figures cannot tell the offer's effect from chance.";
}

/** A forest plot: one row per label, the 95 % interval as a floating bar, the estimate as a dot. */
function intervalChart(rows, title) {
  const values = rows.flatMap((r) => [r.u.ci_low, r.u.ci_high]).map((v) => v * 100);
  // A symmetric scale around zero, rounded to whole steps, so that zero sits in the middle.
  const widest = Math.max(1, ...values.map(Math.abs));
  const step = widest > 50 ? 20 : widest > 20 ? 10 : widest > 5 ? 5 : 1;
  const reach = Math.ceil((widest * 1.05) / step) * step;
  return chart(
    {
      type: "bar",
      data: {
        labels: rows.map((r) => r.label),
        datasets: [
          {
            type: "bar",
            label: "95 % interval",
            data: rows.map((r) => [r.u.ci_low * 100, r.u.ci_high * 100]),
            backgroundColor: "rgba(47,111,159,0.35)",
            borderColor: COLOURS.interval,
            borderWidth: 1,
            barThickness: 10,
          },
          {
            type: "line",
            label: "uplift (estimate)",
            data: rows.map((r) => r.u.absolute * 100),
            showLine: false,
            pointRadius: 5,
            pointBackgroundColor: COLOURS.point,
            borderColor: COLOURS.point,
          },
        ],
      },
      options: {
        indexAxis: "y",
        plugins: {
          legend: { position: "bottom", labels: { usePointStyle: true } },
          tooltip: {
            callbacks: {
              label: (ctx) => {
                const r = rows[ctx.dataIndex];
                return ctx.datasetIndex === 0
                  ? `95 % interval ${pp(r.u.ci_low)} to ${pp(r.u.ci_high)}`
                  : `uplift ${pp(r.u.absolute)}`;
              },
            },
          },
        },
        scales: {
          x: {
            min: -reach,
            max: reach,
            title: { display: true, text: "uplift in conversion rate, percentage points (0 = no effect)" },
            ticks: { stepSize: step, callback: (v) => `${v > 0 ? "+" : ""}${Number(v).toFixed(0)}` },
            grid: {
              color: (ctx) => (ctx.tick && ctx.tick.value === 0 ? "#000" : "rgba(0,0,0,0.1)"),
              lineWidth: (ctx) => (ctx.tick && ctx.tick.value === 0 ? 2 : 1),
            },
          },
          y: { ticks: { autoSkip: false } },
        },
      },
    },
    { height: 90 + rows.length * 30, title },
  );
}

function figure(name, value, definition) {
  return el("div", { class: "rv-figure" }, el("dt", {}, name), el("dd", {}, value), el("dd", { class: "rv-def" }, definition));
}

function upliftSection(funnel) {
  const h = funnel.holdout;
  const u = h.uplift;
  const section = el("section", { class: "card rv-card", "aria-labelledby": "rv-uplift-h" });
  section.append(
    el("h2", { id: "rv-uplift-h" }, "Uplift against the holdout"),
    note(
      "A conversion is a transaction at one of the offer's stores (a redemption or a purchase) within the coupon's validity after the decision, counted the same way for shoppers sent the offer and for shoppers held out.",
    ),
  );
  const defined = u.ci_low !== null && u.ci_high !== null && u.absolute !== null;
  if (defined) section.append(intervalChart([{ label: "Whole offer", u }], "Uplift and its 95 % interval"));
  section.append(
    el("p", { class: `rv-verdict ${defined && (u.ci_low > 0 || u.ci_high < 0) ? "rv-sig" : "rv-nonsig"}`, "data-testid": "uplift-verdict" }, verdict(u)),
    el(
      "dl",
      { class: "rv-figures" },
      ...(defined ? upliftFigures(u) : []),
    figure("Sent: conversion rate", pct(u.treated_rate), `${int(h.treatment.converted)} converted of ${int(h.treatment.decisions)} decisions sent`),
    figure("Holdout: conversion rate", pct(u.holdout_rate), `${int(h.holdout.converted)} converted of ${int(h.holdout.decisions)} decisions held out`),
    ),
  );
  return section;
}

function upliftFigures(u) {
  return [
    figure("Uplift", pp(u.absolute), "sent conversion rate minus holdout conversion rate, in percentage points"),
    figure("95 % interval", `${pp(u.ci_low)} to ${pp(u.ci_high)}`, "Newcombe hybrid score interval of the difference"),
    figure("p-value", u.p_value === null ? "–" : u.p_value.toFixed(3), "two-sided two-proportion z-test; below 0.05 is conventionally significant"),
    figure("Relative uplift", pct(u.relative), "uplift divided by the holdout conversion rate"),
    figure("Incremental conversions", u.incremental_conversions === null ? "–" : u.incremental_conversions.toFixed(1), "conversions the offer caused among shoppers sent it (uplift × sent)"),
  ];
}

function groupName(by, key, stores) {
  return by === "store" ? label(stores, key) : key;
}

function breakdownChart(by, groups, stores) {
  const labels = groups.map((g) => groupName(by, g.key, stores));
  const metric = (key, colour) => ({ label: key, data: groups.map((g) => g[key]), backgroundColor: colour, borderColor: colour, maxBarThickness: 40 });
  const datasets = [metric("sent", "#2f6f9f"), metric("opened", "#6aa84f"), metric("redeemed", "#b04a7d")];
  const horizontal = by !== "day";
  return chart(
    {
      type: "bar",
      data: { labels, datasets },
      options: {
        indexAxis: horizontal ? "y" : "x",
        plugins: { legend: { position: "bottom" } },
        scales: {
          [horizontal ? "x" : "y"]: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "coupons (count)" } },
          [horizontal ? "y" : "x"]: { ticks: { autoSkip: !horizontal } },
        },
      },
    },
    { height: horizontal ? 90 + groups.length * 34 : 280, title: `Sent, opened and redeemed coupons by ${by}` },
  );
}

function breakdownTable(by, groups, stores) {
  const head = ["Group", "Eligible", "Suppressed", "Sent", "Delivered", "Opened", "Redeemed", "Redeemed of sent", "Uplift (95 % interval)", "p-value"];
  const rows = groups.map((g) => {
    const u = g.holdout.uplift;
    const interval = u.ci_low === null ? "–" : `${pp(u.absolute)} (${pp(u.ci_low)} to ${pp(u.ci_high)})`;
    return el(
      "tr",
      { "data-key": g.key },
      el("th", { scope: "row" }, groupName(by, g.key, stores)),
      [g.eligible, g.suppressed.total, g.sent, g.delivered, g.opened, g.redeemed].map((n) => el("td", { class: "rv-num" }, String(n))),
      el("td", { class: "rv-num" }, pct(g.rates.redeemed_of_sent)),
      el("td", { class: "rv-num" }, interval),
      el("td", { class: "rv-num" }, u.p_value === null ? "–" : u.p_value.toFixed(3)),
    );
  });
  return el(
    "div",
    { class: "table-wrap rv-scroll" },
    el("table", { class: "rv-table" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows)),
  );
}

function breakdownSection(by, groups, stores) {
  const section = el("section", { class: "card rv-card" }, el("h2", {}, `By ${by}`));
  if (groups.length === 0) {
    section.append(note(`Nothing happened for this offer in this period, so there is no ${by} to show.`));
    return section;
  }
  const defs = {
    store: "One row per store where something happened. Counts as in the funnel above.",
    channel: "Delivery channels (inbox, Web Push, wallet...): decisions and redemptions happen before a channel is involved, so only delivered, opened, dismissed and failed are split by channel, and a coupon can reach several channels.",
    day: "Days local to the store where things happened.",
  };
  if (by === "store") {
    // By name, as a reviewer looks a shop up; ids would sort "10" before "2".
    const name = (g) => groupName(by, g.key, stores);
    groups = [...groups].sort((a, b) => name(a).localeCompare(name(b)));
  }
  section.append(note(defs[by]), breakdownChart(by, groups, stores), breakdownTable(by, groups, stores));
  const withInterval = groups.filter((g) => g.holdout.uplift.ci_low !== null && g.holdout.uplift.absolute !== null);
  if (withInterval.length) {
    section.append(
      el("h3", {}, `Uplift by ${by}, with 95 % intervals`),
      note("A dot is the estimate; the bar its 95 % interval. A bar crossing the zero line is not significant."),
      intervalChart(withInterval.map((g) => ({ label: groupName(by, g.key, stores), u: g.holdout.uplift })), `Uplift by ${by}`),
    );
  }
  return section;
}

function controls(state, onApply) {
  const from = el("input", { type: "date", name: "from", id: "rv-from", value: state.from });
  const to = el("input", { type: "date", name: "to", id: "rv-to", value: state.to });
  const by = el(
    "select",
    { name: "by", id: "rv-by" },
    [["", "Whole offer only"], ["store", "By store"], ["channel", "By channel"], ["day", "By day"]].map(([v, t]) =>
      el("option", { value: v, selected: v === state.by }, t),
    ),
  );
  const form = el(
    "form",
    { class: "rv-filters", "aria-label": "Report period and view" },
    el("label", { for: "rv-from" }, "From (day, inclusive)", from),
    el("label", { for: "rv-to" }, "To (day, inclusive)", to),
    el("label", { for: "rv-by" }, "View", by),
    el("button", { type: "submit", class: "primary" }, "Show"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onApply({ from: from.value, to: to.value, by: by.value });
  });
  by.addEventListener("change", () => form.requestSubmit());
  return form;
}

const states = new Map();

export async function renderReport(params, main, { api }) {
  const id = params.id;
  // The URL's query (#/offers/3/report?by=store) wins, so a link or a reload shows the same view.
  const state = states.get(id) || { from: "", to: "", by: "" };
  states.set(id, state);
  const query = params.query;
  if (query && [...query.keys()].length) {
    for (const k of ["from", "to", "by"]) state[k] = query.get(k) || "";
  }
  dropCharts();
  const heading = el("h1", {}, `Offer #${id}: report`);
  const subtitle = el("p", { class: "rv-sub" });
  const body = el("div", { class: "rv-body" });
  const logs = el(
    "p",
    { class: "rv-links" },
    el("a", { href: `#/redemptions?offer_id=${encodeURIComponent(id)}` }, "Redemptions of this offer"),
    " · ",
    el("a", { href: `#/decisions?offer_id=${encodeURIComponent(id)}` }, "Decisions of this offer"),
  );
  fill(main, el("div", { class: "rv-screen" }, el("div", { class: "page-head" }, heading), subtitle, logs, controls(state, (next) => {
    Object.assign(state, next);
    const search = new URLSearchParams(Object.entries(state).filter(([, v]) => v)).toString();
    history.replaceState(null, "", `#/offers/${encodeURIComponent(id)}/report${search ? `?${search}` : ""}`);
    load();
  }), note("Days are local to the store where things happened. Leave both days empty for the whole life of the offer."), body));

  api(`/v1/offers/${encodeURIComponent(id)}`)
    .then((offer) => {
      heading.textContent = `${offer.name}: report`;
      fill(subtitle, `Offer #${offer.id} · title “`, el("span", { class: "rv-title" }, offer.title), `” · ${offer.status} · holdout ${offer.holdout_pct} %`);
    })
    .catch(() => {});

  async function load() {
    dropCharts();
    loading(body, "the report");
    const query = {};
    if (state.from) query.from = state.from;
    if (state.to) query.to = state.to;
    if (state.by) query.by = state.by;
    let report;
    let stores = null;
    try {
      [report, stores] = await Promise.all([
        api(`/v1/reports/offers/${encodeURIComponent(id)}`, { query }),
        state.by === "store" ? names(api, "stores").catch(() => null) : null,
      ]);
    } catch (err) {
      fill(body, errorBox("the report", err));
      return;
    }
    const f = report.funnel;
    const period = report.from || report.to ? `${report.from || "the start"} to ${report.to || "today"}` : "the whole life of the offer";
    fill(
      body,
      el(
        "section",
        { class: "card rv-card", "aria-labelledby": "rv-funnel-h" },
        el("h2", { id: "rv-funnel-h" }, "Funnel"),
        note(`Period: ${period}. Also: ${f.dismissed} coupons dismissed by the shopper, ${f.failed} deliveries failed on every channel.`),
        el("div", { class: "rv-split" }, funnelChart(f), funnelList(f)),
      ),
      upliftSection(f),
      report.by ? breakdownSection(report.by, report.breakdown, stores) : null,
    );
  }
  await load();
}
