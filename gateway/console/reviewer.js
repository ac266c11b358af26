// The campaign reviewer's screens: an offer's report (funnel, uplift, breakdowns), the
// redemption and decision logs, the live decisions and the referral program's figures. Read-only: no screen here writes.

import { ensureCss } from "./review-ui.js";
import { renderReport } from "./report.js";
import { renderLog } from "./logs.js";
import { renderLive } from "./live.js";
import { rewardsScreen } from "./rewards.js";
import { renderReferrals } from "./referrals.js";
import { renderNps } from "./nps.js";

export function register({ route, api, whoami }) {
  ensureCss();
  const ctx = { api, whoami };
  route("#/offers/:id/report", (params, main) => renderReport(params, main, ctx));
  route("#/redemptions", (params, main) => renderLog("redemptions", params, main, ctx));
  route("#/decisions", (params, main) => renderLog("decisions", params, main, ctx));
  route("#/live", (params, main) => renderLive(params, main, ctx));
  route("#/rewards", (params, main) => rewardsScreen(params, main));
  route("#/referrals", (params, main) => renderReferrals(params, main, ctx));
  route("#/nps", (params, main) => renderNps(params, main, ctx));
}
