// #/journeys: the lifecycle journeys (welcome, win-back, tier-up, birthday, points about to
// expire) with each one's sends, opens, redemptions and uplift against its holdout, from
// GET /v1/reports/journeys; managers create, pause and resume them.
import { api } from "./api.js";
import { go } from "./router.js";
import { clearErrors, errorBox, field, fieldErrors, h, loading, pageHeader, toast } from "./ui.js";

// Each kind, its parameter and how the parameter reads in words.
const KINDS = {
  welcome: { label: "Welcome", param: "delay_minutes", ask: "Minutes after enrolment", initial: 60, says: (v) => `${v} min after enrolment` },
  winback: { label: "Win-back", param: "inactive_days", ask: "Days without a visit or purchase", initial: 30, says: (v) => `after ${v} days away` },
  tier_up: { label: "Tier-up", param: "tier", ask: "Tier reached", initial: "Gold", says: (v) => `on reaching ${v}` },
  birthday: { label: "Birthday", param: "days_before", ask: "Days before the birthday (at 09:00)", initial: 0, says: (v) => (v ? `${v} days before the birthday` : "on the birthday") },
  points_expiring: { label: "Points about to expire", param: "days_before", ask: "Days before points expire", initial: 7, says: (v) => `${v} days before points expire` },
};

function when(j) {
  const k = KINDS[j.kind];
  return k.says(j[k.param]);
}

/** An uplift as it must be shown: the estimate, its 95 % interval and whether it is significant. */
function uplift(u) {
  if (u.absolute === null || u.ci_low === null || u.ci_high === null) return "not measurable yet";
  const pts = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(x * 100).toFixed(1)} pt`;
  const sure = u.ci_low > 0 || u.ci_high < 0 ? "" : ", not significant";
  return `${pts(u.absolute)} (95 % interval ${pts(u.ci_low)} to ${pts(u.ci_high)}${sure})`;
}

function form(offers, onCreated) {
  const kind = h("select", { name: "kind" }, Object.entries(KINDS).map(([v, k]) => h("option", { value: v }, k.label)));
  const param = h("input", { name: "param", value: String(KINDS.welcome.initial), required: true });
  const paramField = field(KINDS.welcome.ask, param, { name: "param" });
  kind.addEventListener("change", () => {
    const k = KINDS[kind.value];
    param.value = String(k.initial);
    paramField.querySelector("label").textContent = k.ask;
    paramField.dataset.field = k.param;
  });
  paramField.dataset.field = "delay_minutes";
  const offer = h("select", { name: "offer_id", required: true },
    offers.length ? offers.map((o) => h("option", { value: o.id }, o.name)) : h("option", { value: "" }, "No offer with the trigger “journey” yet"));
  const name = h("input", { name: "name", required: true, maxlength: 200, placeholder: "Win back after 30 days" });
  const f = h("form", { class: "card", "data-testid": "journey-form", "aria-label": "New journey" },
    h("h2", {}, "New journey"),
    field("Name", name),
    field("When", kind, { name: "kind" }),
    paramField,
    field("Offer it sends", offer, { name: "offer_id", hint: "An offer whose trigger is “journey”: its coupon, channels, audience, caps and holdout apply." }),
    h("button", { type: "submit", class: "primary" }, "Create journey"));
  f.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(f);
    const k = KINDS[kind.value];
    const value = k.param === "tier" ? param.value.trim() : Number(param.value);
    try {
      const made = await api("/v1/journeys", { method: "POST", body: { name: name.value.trim(), kind: kind.value, offer_id: offer.value, [k.param]: value } });
      toast(`${made.name} is running.`);
      onCreated();
    } catch (err) {
      fieldErrors(f, err);
    }
  });
  return f;
}

function row(item, whoami, refresh) {
  const j = item.journey;
  const f = item.funnel;
  const held = f.holdout.holdout.decisions;
  const buttons = h("div", { class: "actions" });
  if (whoami.canEdit) {
    const active = j.status === "active";
    buttons.append(h("button", {
      type: "button", class: "small", "data-action": active ? "pause" : "resume",
      onclick: async (event) => {
        event.currentTarget.disabled = true;
        try {
          await api(`/v1/journeys/${encodeURIComponent(j.id)}`, { method: "PATCH", body: { status: active ? "paused" : "active" } });
          refresh();
        } catch (err) {
          event.currentTarget.disabled = false;
          toast(`Could not change it: ${err.message}`, "error");
        }
      },
    }, active ? "Pause" : "Resume"));
  }
  buttons.append(h("a", { href: `#/offers/${encodeURIComponent(j.offer_id)}/report`, class: "button small" }, "Report"));
  return h("tr", { "data-testid": "journey-row", "data-id": j.id, "data-status": j.status },
    h("td", {}, h("div", { class: "name" }, h("strong", {}, j.name)), h("div", { class: "muted" }, `${KINDS[j.kind].label}: ${when(j)}`)),
    h("td", {}, h("span", { class: `badge ${j.status}` }, j.status === "active" ? "Active" : "Paused")),
    h("td", { "data-metric": "sent" }, String(f.sent)),
    h("td", { "data-metric": "held_out" }, String(held)),
    h("td", { "data-metric": "opened" }, String(f.opened)),
    h("td", { "data-metric": "redeemed" }, String(f.redeemed)),
    h("td", { "data-metric": "uplift" }, held ? uplift(f.holdout.uplift) : "no holdout"),
    h("td", {}, buttons));
}

export async function journeysScreen(params, main, whoami) {
  loading(main, "Loading journeys…");
  let reports;
  let offers = [];
  try {
    reports = await api("/v1/reports/journeys");
    if (whoami.canEdit) {
      const all = await api("/v1/offers", { query: { limit: 1000, status: "active" } });
      const owned = new Set(reports.items.map((i) => i.journey.offer_id));
      offers = all.items.filter((o) => o.trigger === "journey" && !owned.has(o.id));
    }
  } catch (err) {
    main.replaceChildren(errorBox(err, () => go("#/journeys")));
    return;
  }
  const refresh = () => journeysScreen(params, main, whoami);
  const rows = reports.items.map((i) => row(i, whoami, refresh));
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No journeys yet.")));
  const head = ["Journey", "Status", "Sent", "Held out", "Opened", "Redeemed", "Uplift (conversion, sent − held out)", ""];
  main.replaceChildren(
    pageHeader("Journeys"),
    h("p", { class: "muted" }, "Offers sent on time and behaviour rather than place, through the same rules as every offer. Uplift compares the conversion of the shoppers sent the offer with that of the held-out ones, with its 95 % interval."),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows))),
    ...(whoami.canEdit ? [form(offers, refresh)] : []));
}
