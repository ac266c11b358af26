// #/nps: the Net Promoter Score of the surveys (GET /v1/reports/nps), for the whole program
// or one store: the score with its 95 % interval and sample size, the response rate, and the
// same per store. Read-only.

import { el, fill, names, label, errorBox, pct, int } from "./review-ui.js";

/** A score from -100 to 100, signed, one decimal; a dash without answers. */
function score(x) {
  if (x === null || x === undefined) return "–";
  const sign = x > 0 ? "+" : x < 0 ? "−" : "±";
  return `${sign}${Math.abs(x).toFixed(1)}`;
}

function interval(r) {
  const i = r.interval;
  if (i.low === null) return "no interval without answers";
  return `95 % interval ${score(i.low)} to ${score(i.high)} (Wald, on the +1/0/−1 score)`;
}

function figure(term, value, definition, testid) {
  return el(
    "div",
    { class: "rv-figure" },
    el("dt", {}, term),
    el("dd", { "data-testid": testid }, value),
    el("dd", { class: "rv-def" }, definition),
  );
}

function card(r) {
  return el(
    "section",
    { class: "rv-card", "data-testid": "nps-card", "data-nps": r.nps ?? "", "data-responses": r.responses },
    el("h2", {}, "Net Promoter Score"),
    el(
      "dl",
      { class: "rv-figures" },
      figure("NPS", score(r.nps), interval(r), "nps-value"),
      figure("Answers (sample size)", int(r.responses), `${int(r.promoters)} promoters (9–10), ${int(r.passives)} passives (7–8), ${int(r.detractors)} detractors (0–6)`, "nps-responses"),
      figure("Response rate", pct(r.response_rate), `answers per invitation sent (${int(r.invitations_sent)} sent, ${int(r.invitations_suppressed)} not sent)`, "nps-rate"),
    ),
    el("p", { class: "rv-note" }, "NPS = % promoters − % detractors, from −100 to 100. With few answers the interval is wide: read the score with it."),
  );
}

const COLUMNS = ["Store", "NPS", "95 % interval", "Answers", "Invitations sent", "Response rate"];

function storeTable(r, stores) {
  if (!r.stores.length) return el("p", { class: "rv-empty" }, "No invitations or answers yet.");
  return el(
    "table",
    { class: "rv-table rv-stack" },
    el("thead", {}, el("tr", {}, COLUMNS.map((c) => el("th", { scope: "col" }, c)))),
    el(
      "tbody",
      {},
      r.stores.map((s) => {
        const cells = [
          label(stores, s.store_id),
          score(s.nps),
          s.interval.low === null ? "–" : `${score(s.interval.low)} to ${score(s.interval.high)}`,
          int(s.responses),
          int(s.invitations_sent),
          pct(s.response_rate),
        ];
        return el("tr", { "data-testid": "nps-store", "data-id": s.store_id }, cells.map((c, i) => el("td", { "data-label": COLUMNS[i] }, c)));
      }),
    ),
  );
}

export async function renderNps(params, main, { api }) {
  const storeSel = el("select", { id: "rv-nps-store", name: "store_id" }, el("option", { value: "" }, "All stores"));
  const body = el("div", {}, el("p", { class: "rv-loading", role: "status" }, "Loading the NPS…"));
  const root = el(
    "div",
    { class: "rv-screen" },
    el("div", { class: "page-head" }, el("h1", {}, "Surveys: NPS")),
    el("div", { class: "rv-filters" }, el("label", { for: "rv-nps-store" }, "Store", storeSel)),
    body,
  );
  fill(main, root);
  let stores = new Map();
  try {
    stores = await names(api, "stores");
  } catch {
    stores = new Map(); // the figures still show, with store ids
  }
  for (const [id, name] of stores) storeSel.append(el("option", { value: id }, name));
  const load = async () => {
    const query = { by: "week" };
    if (storeSel.value) query.store_id = storeSel.value;
    try {
      const r = await api("/v1/reports/nps", { query });
      fill(body, card(r), el("h2", {}, "Per store"), storeTable(r, stores));
    } catch (err) {
      fill(body, errorBox("the NPS", err));
    }
  };
  storeSel.addEventListener("change", load);
  await load();
}
