// #/referrals: the two-sided referral program in figures (GET /v1/reports/referrals) and the
// rules that produce them (GET /v1/referrals/rules). Read-only, for reviewers and managers.

import { el, fill, int, loading, errorBox, note } from "./review-ui.js";

// Each refusal reason in words (offers/README.md, "Fraud limits").
export const REFUSAL_TEXT = {
  self_referral: "the shopper's own code, at enrolment",
  shared_device: "the two shoppers share a phone (push endpoint or wallet device)",
  cap_reached: "the referrer's cap for the period was reached",
};

const QUALIFY_TEXT = {
  first_purchase: "the friend's first purchase",
  first_redemption: "the friend's first coupon redemption",
  points_threshold: "the friend's balance reaching",
};

function figure(key, name, value, definition) {
  return el(
    "div",
    { class: "rv-figure", "data-testid": "referral-figure", "data-key": key },
    el("dt", {}, name),
    el("dd", { "data-value": String(value) }, int(value)),
    el("dd", { class: "rv-def" }, definition),
  );
}

function figures(r) {
  return el(
    "dl",
    { class: "rv-figures" },
    figure("invitations_used", "Invitations used", r.invitations_used, "shoppers who enrolled with a friend's valid code"),
    figure("qualified", "Qualified", r.qualified, "of them, those who did what the rules ask (below)"),
    figure("rewarded", "Rewarded", r.rewarded, "referrals whose rewards were paid to both sides, once"),
    figure("refused_total", "Refused", r.refused_total, "refused by the fraud limits, by reason below"),
    figure("pending", "Pending", r.pending, "enrolled with a code, not qualified yet"),
    figure("points_paid", "Points paid", r.points_paid, "points earned by referrers and their friends together"),
    figure("coupons_issued", "Reward coupons", r.coupons_issued, "coupons issued as referral rewards"),
  );
}

function refusals(r) {
  // Figures rather than a table: the reasons are sentences, which wrap at phone width.
  return el(
    "dl",
    { class: "rv-figures" },
    Object.entries(REFUSAL_TEXT).map(([reason, words]) =>
      el(
        "div",
        { class: "rv-figure", "data-testid": "referral-refusal", "data-reason": reason },
        el("dt", {}, words),
        el("dd", { "data-value": String(r.refused[reason] || 0) }, int(r.refused[reason] || 0)),
      ),
    ),
  );
}

function rulesText(rules) {
  const what = rules.qualify === "points_threshold"
    ? `${QUALIFY_TEXT.points_threshold} ${int(rules.threshold_points)} points`
    : QUALIFY_TEXT[rules.qualify] || rules.qualify;
  const coupon = (id) => (id ? ` and a coupon of offer #${id}` : "");
  return [
    el("li", {}, `Qualifies: ${what}.`),
    el("li", {}, `The referrer earns ${int(rules.referrer_points)} points${coupon(rules.referrer_offer_id)}; the friend earns ${int(rules.referee_points)} points${coupon(rules.referee_offer_id)}.`),
    el("li", {}, `At most ${int(rules.cap_limit)} rewarded referral${rules.cap_limit === 1 ? "" : "s"} per referrer in any ${int(rules.cap_days)} days.`),
  ];
}

export async function renderReferrals(params, main, { api }) {
  const body = el("div", { class: "rv-body" });
  fill(
    main,
    el(
      "div",
      { class: "rv-screen" },
      el("div", { class: "page-head" }, el("h1", {}, "Referrals")),
      note("Each shopper has a code to share. A friend who enrols with it is an invitation used; when the friend qualifies, both are rewarded, unless a fraud limit refuses it."),
      body,
    ),
  );
  loading(body, "the referral report");
  try {
    const [report, rules] = await Promise.all([api("/v1/reports/referrals"), api("/v1/referrals/rules")]);
    fill(
      body,
      el("section", { class: "card rv-card", "aria-labelledby": "rv-ref-figures" }, el("h2", { id: "rv-ref-figures" }, "The program in figures"), figures(report)),
      el("section", { class: "card rv-card", "aria-labelledby": "rv-ref-refused" }, el("h2", { id: "rv-ref-refused" }, "Refusals by reason"), refusals(report)),
      el("section", { class: "card rv-card", "aria-labelledby": "rv-ref-rules" }, el("h2", { id: "rv-ref-rules" }, "The rules"), el("ul", { "data-testid": "referral-rules" }, rulesText(rules))),
    );
  } catch (err) {
    fill(body, errorBox("the referral report", err));
  }
}
