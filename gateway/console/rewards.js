// #/rewards: the rewards catalog (price, stock issued and left, limits, tiers, gift-card
// codes left) and the points report: points issued, spent, expired and outstanding per
// month, with the program's liability at the point value. Read-only; CSV of the report.
import { api, apiBlob } from "./api.js";
import { downloadBlob, errorBox, h, loading, pageHeader } from "./ui.js";

const KINDS = { free_item: "Free item", discount: "Discount", gift_card: "Gift card" };

function num(n) {
  return n === null || n === undefined ? "unlimited" : Number(n).toLocaleString("en");
}

function table(testid, heads, rows, empty) {
  const body = h("tbody", {}, rows);
  if (!rows.length) body.append(h("tr", {}, h("td", { colspan: heads.length, class: "empty" }, empty)));
  return h("div", { class: "table-wrap" }, h("table", { "data-testid": testid },
    h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))), body));
}

function rewardRow(r) {
  const left = r.stock === null ? null : r.stock - r.issued;
  return h("tr", { "data-testid": "reward-row", "data-reward-id": r.id },
    h("td", {}, r.name), h("td", {}, KINDS[r.kind] || r.kind),
    h("td", { class: "num" }, num(r.points)),
    h("td", { class: "num" }, `${num(r.issued)} / ${num(r.stock)}`),
    h("td", { class: "num" }, num(left)),
    h("td", { class: "num" }, num(r.per_shopper_limit)),
    h("td", {}, r.tiers ? r.tiers.join(", ") : "all"),
    h("td", { class: "num" }, r.kind === "gift_card" ? num(r.codes_left) : "–"),
    h("td", {}, h("span", { class: `badge ${r.status}` }, r.status === "active" ? "On sale" : "Paused")));
}

function monthRow(m) {
  return h("tr", { "data-testid": "points-month", "data-month": m.month },
    h("td", {}, m.month), h("td", { class: "num" }, num(m.issued)), h("td", { class: "num" }, num(m.spent)),
    h("td", { class: "num" }, num(m.expired)), h("td", { class: "num" }, num(m.outstanding)),
    h("td", { class: "num" }, m.liability));
}

export async function rewardsScreen(params, main) {
  loading(main, "Loading rewards and points…");
  let catalog;
  let points;
  try {
    [catalog, points] = await Promise.all([
      api("/v1/catalog/rewards", { query: { limit: 1000 } }),
      api("/v1/reports/points"),
    ]);
  } catch (err) {
    main.replaceChildren(errorBox(err, () => rewardsScreen(params, main)));
    return;
  }
  const csv = h("button", { type: "button", "data-testid": "points-csv" }, "Download CSV");
  csv.addEventListener("click", async () => {
    downloadBlob(await apiBlob("/v1/reports/points", { query: { format: "csv" } }), "points.csv");
  });
  const t = points.totals;
  main.replaceChildren(
    pageHeader("Rewards & points"),
    h("h2", {}, "Rewards catalog"),
    table("rewards-table",
      ["Reward", "Kind", "Price (points)", "Issued / stock", "Left", "Per shopper", "Tiers", "Codes left", "Status"],
      catalog.items.map(rewardRow), "No rewards yet."),
    h("div", { class: "page-head" }, h("h2", {}, "Points by month"), h("div", { class: "actions" }, csv)),
    h("p", { class: "hint" },
      `Outstanding: points held by shoppers at the month's end (UTC). Liability: outstanding × the point value (${points.point_value} a point), in the program's currency.`),
    h("p", { "data-testid": "points-liability", class: "lead" },
      `Outstanding now: ${num(t.outstanding)} points, a liability of ${t.liability}.`),
    table("points-table", ["Month", "Issued", "Spent", "Expired", "Outstanding", "Liability"],
      points.months.map(monthRow), "No points yet."));
}
