"""The demo's output as text: the live progress line, the summary and the tokens. The
HTML report is `page`; both word the funnel as `offers.report` defines it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from gateway.demo import surveys
from gateway.demo.city import PARIS
from gateway.demo.referrals import words as referral_words
from offers import report as funnel
from offers import stats


@dataclasses.dataclass(slots=True)
class Summary:
    pings: int = 0
    ping_status: Counter[str] = dataclasses.field(default_factory=Counter)
    transitions: Counter[str] = dataclasses.field(default_factory=Counter)
    offers_received: int = 0
    opened: int = 0
    redemptions: int = 0
    second_scans_refused: int = 0
    purchases: int = 0
    # Points spent (gateway/demo/rewards.py): rewards bought, payments with points at the
    # till, and the points report's outstanding balance and its liability.
    rewards_bought: int = 0
    points_payments: int = 0
    points_outstanding: int = 0
    points_liability: str = "0.00"
    pushes_received: int = 0
    offers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    suppressed: Counter[str] = dataclasses.field(default_factory=Counter)
    # Per shop (store id), summed over the offers: candidates, eligible, sent, redeemed.
    shops: dict[str, Counter[str]] = dataclasses.field(default_factory=dict)
    # GET /v1/reports/referrals after the morning (gateway/demo/referrals.py).
    referrals: dict[str, Any] = dataclasses.field(default_factory=dict)
    # GET /v1/reports/nps of the demo's survey, with its name and the recoveries sent.
    survey: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Lifecycle journeys: their reports (funnel, holdout, runs) and the coupons they sent
    # that were redeemed by shoppers who came back for them.
    journeys: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    journey_redemptions: int = 0
    report: Path | None = None
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


def progress_line(s: Summary, now: dt.datetime) -> str:
    local = now.astimezone(PARIS).strftime("%H:%M")
    return (
        f"\r{local}  pings {s.pings:,}  transitions {sum(s.transitions.values()):,}  "
        f"offers {s.offers_received:,}  opened {s.opened:,}  redeemed {s.redemptions:,}"
        "\x1b[K"
    )


def pct(x: float | None) -> str:
    if x is None:
        return "-"
    return "<1%" if 0 < x < 0.005 else f"{100 * x:.0f}%"


def points(x: float | None) -> str:
    """A difference of rates in percentage points, signed, one decimal."""
    return "-" if x is None else f"{100 * x:+.1f}".replace("-", "\u2212")


def uplift_text(u: dict[str, Any]) -> str:
    """An uplift as it must always be shown: estimate, 95 % interval, p-value and verdict."""
    if u["absolute"] is None or u["ci_low"] is None or u["ci_high"] is None:
        return stats.verdict(None, None)
    p = "-" if u["p_value"] is None else f"{u['p_value']:.3f}"
    return (
        f"{points(u['absolute'])} pt (95 % interval {points(u['ci_low'])} to "
        f"{points(u['ci_high'])} pt, p = {p}): {stats.verdict(u['ci_low'], u['ci_high'])}"
    )


def _funnel_lines(s: Summary) -> list[str]:
    lines = [
        f"{'offer':<22}{'cand.':>7}{'elig.':>7}{'sent':>6}{'deliv.':>7}{'opened':>7}"
        f"{'redeem.':>8}{'conv. sent':>11}{'conv. holdout':>14}",
    ]
    for o in s.offers:
        up = o["holdout"]["uplift"]
        lines.append(
            f"{o['name'][:21]:<22}{o['candidates']:>7}{o['eligible']:>7}{o['sent']:>6}"
            f"{o['delivered']:>7}{o['opened']:>7}{o['redeemed']:>8}"
            f"{pct(up['treated_rate']):>11}{pct(up['holdout_rate']):>14}"
        )
    return lines


def render_summary(s: Summary) -> str:
    lines = [
        "",
        f"Simulated a morning of {s.pings:,} pings in {s.seconds:.0f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(s.ping_status.items())),
        "transitions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s.transitions.items())),
        f"coupons in ping answers {s.offers_received:,}; Web Push messages decrypted at the "
        f"push service {s.pushes_received:,}; opened {s.opened:,}; redeemed {s.redemptions:,}; "
        f"second scans refused {s.second_scans_refused:,}; purchases {s.purchases:,}",
        f"rewards bought with points {s.rewards_bought:,}; paid with points at the till "
        f"{s.points_payments:,}; points outstanding {s.points_outstanding:,} "
        f"(liability {s.points_liability} EUR at the point value)",
        f"referrals (a chain of friends, and a second account on one phone): "
        f"{referral_words(s.referrals)}",
        "",
        *_funnel_lines(s),
        "",
        "Uplift against the holdout (conv. sent minus conv. holdout):",
    ]
    tested = [o for o in s.offers if o["holdout"]["holdout"]["decisions"]]
    for o in tested:
        lines.append(f"  {o['name']}: {uplift_text(o['holdout']['uplift'])}")
    if not tested:
        lines.append("  no offer had held-out shoppers")
    lines += ["", *journey_lines(s)]
    lines += [
        "",
        surveys.nps_text(s.survey),
        "",
        "Not sent, by reason: "
        + ", ".join(f"{funnel.REASON_WORDS[k]} {v:,}" for k, v in s.suppressed.most_common()),
        "",
        "Definitions:",
        *(
            f"  {label.lower()}: {funnel.DEFINITIONS[key]}"
            for key, label, _ in funnel.STAGES
            if key in SUMMARY_TERMS
        ),
    ]
    if s.report is not None:
        lines.append(f"report: {s.report.resolve()}")
    return "\n".join(lines)


def journey_lines(s: Summary) -> list[str]:
    """The lifecycle journeys: what each sent, what came of it, and its uplift."""
    lines = ["Lifecycle journeys (decided by the scheduler as the morning passed):"]
    for j in s.journeys:
        runs = j["runs"]
        cancelled = sum(runs.get("cancelled", {}).values())
        lines.append(
            f"  {j['name']} ({j['kind']}): sent {j['sent']:,}, held out "
            f"{j['holdout']['holdout']['decisions']:,}, opened {j['opened']:,}, redeemed "
            f"{j['redeemed']:,}; came back before it was due {cancelled:,}; uplift "
            f"{uplift_text(j['holdout']['uplift'])}"
        )
    if not s.journeys:
        lines.append("  none")
    return lines


# The terms the terminal summary's columns use without explaining them.
SUMMARY_TERMS = ("candidates", "eligible", "delivered", "conv_sent", "conv_holdout")


def render_tokens(s: Summary) -> str:
    url = s.tokens.get("url", "")
    lines = [
        f"The gateway keeps running at {url} (Ctrl-C stops it).",
        f"  console  {url}/console/  (sign in with the manager or reviewer token)",
        f"  API docs {url}/docs",
        "Tokens:",
    ]
    for role in ("admin", "manager", "reviewer", "pos", "app", "shopper"):
        if role in s.tokens:
            lines.append(f"  {role:<9}{s.tokens[role]}")
    return "\n".join(lines)
