"""The demo's HTML report: one self-contained file (no script, no network) with the
summary table, the uplift with its interval, the funnel as rates, the reasons in words,
and a map of the shops with their names, figures and a scale bar.

Charts are HTML and CSS, so their text keeps its size when the page narrows to a phone;
the map is an SVG that scales to the page, with its labels laid over it in HTML.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from gateway.demo import mapsvg, surveys
from gateway.demo.city import DAY, Store
from gateway.demo.referrals import words as referral_words
from gateway.demo.report import Summary, pct, uplift_text
from offers import report as funnel
from offers import stats
from offers.models import REASONS, TARGETING_REASONS


class _Walker(Protocol):
    @property
    def home(self) -> tuple[float, float]: ...


class _Options(Protocol):
    @property
    def seed(self) -> int: ...


class Played(Protocol):
    """What the report draws from a played morning (the simulation's ``Demo``)."""

    @property
    def o(self) -> _Options: ...
    @property
    def stores(self) -> Sequence[Store]: ...
    @property
    def geofences(self) -> dict[str, Any]: ...
    @property
    def walkers(self) -> Sequence[_Walker]: ...
    @property
    def summary(self) -> Summary: ...


def esc(text: object) -> str:
    return html.escape(str(text))


def _n(x: int) -> str:
    return f"{x:,}"


# -- the summary table ------------------------------------------------------------------

_COLUMNS = ("candidates", "eligible", "sent", "delivered", "opened", "redeemed")
_LABELS = {key: label for key, label, _ in funnel.STAGES}


def _cell(label: str, value: str, cls: str = "num") -> str:
    return f'<td class="{cls}" data-label="{esc(label)}">{value}</td>'


def summary_table(offers: Sequence[dict[str, Any]]) -> str:
    head = "".join(
        f'<th scope="col"><abbr title="{esc(funnel.DEFINITIONS[k])}">{esc(_LABELS[k])}</abbr></th>'
        for k in (*_COLUMNS, "conv_sent", "conv_holdout", "uplift")
    )
    rows = []
    for o in offers:
        u = o["holdout"]["uplift"]
        cells = [_cell(_LABELS[k], _n(o[k])) for k in _COLUMNS]
        cells.append(_cell(_LABELS["conv_sent"], pct(u["treated_rate"])))
        cells.append(_cell(_LABELS["conv_holdout"], pct(u["holdout_rate"])))
        held = o["holdout"]["holdout"]["decisions"]
        cells.append(
            _cell(_LABELS["uplift"], esc(uplift_text(u)) if held else "no holdout", "text")
        )
        rows.append(
            f'<tr data-offer="{esc(o["id"])}"><th scope="row">{esc(o["name"])}</th>'
            f"{''.join(cells)}</tr>"
        )
    return (
        '<table class="cards" data-testid="summary"><thead><tr><th scope="col">Offer</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# -- the uplift, drawn ------------------------------------------------------------------


def _nice(x: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``x``."""
    if x <= 0:
        return 1.0
    exp = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10**exp >= x:
            return float(m * 10**exp)
    return float(10 ** (exp + 1))


def uplift_section(offers: Sequence[dict[str, Any]]) -> str:
    tested = [o for o in offers if o["holdout"]["uplift"]["ci_low"] is not None]
    if not tested:
        return "<p>No offer had both shoppers sent it and shoppers held out: no uplift.</p>"
    reach = _nice(
        100
        * max(max(abs(o["holdout"]["uplift"][k]) for k in ("ci_low", "ci_high")) for o in tested)
    )

    def at(x: float) -> float:
        return 50 + 50 * (100 * x) / reach

    out = []
    for o in tested:
        u, h = o["holdout"]["uplift"], o["holdout"]
        low, high, mid = at(u["ci_low"]), at(u["ci_high"]), at(u["absolute"])
        sig = stats.verdict(u["ci_low"], u["ci_high"]).startswith("significant")
        out.append(
            f'<figure class="uplift" data-offer="{esc(o["id"])}">'
            f"<figcaption><b>{esc(o['name'])}</b>conv. sent {pct(u['treated_rate'])} "
            f"({_n(h['treatment']['converted'])} of {_n(h['treatment']['decisions'])}) "
            f"against conv. holdout {pct(u['holdout_rate'])} "
            f"({_n(h['holdout']['converted'])} of {_n(h['holdout']['decisions'])})</figcaption>"
            f'<div class="track" role="img" aria-label="uplift {esc(uplift_text(u))}">'
            f'<span class="zero" style="left:50%"></span>'
            f'<span class="ci" style="left:{low:.2f}%;width:{max(high - low, 0.5):.2f}%"></span>'
            f'<span class="dot" style="left:{mid:.2f}%"></span></div>'
            f'<div class="ticks"><span style="left:0%">\u2212{reach:.0f} pt</span>'
            f'<span style="left:50%">0</span><span style="left:100%">+{reach:.0f} pt</span></div>'
            f'<p class="verdict {"sig" if sig else "nonsig"}" data-testid="uplift-text">'
            f"Uplift {esc(uplift_text(u))}.</p></figure>"
        )
    return (
        '<p class="note">Percentage points; the dot is the estimate, the bar its 95 % '
        "interval. A bar that crosses the zero line is not significant.</p>" + "".join(out)
    )


# -- the funnel as rates ----------------------------------------------------------------

_FUNNEL_BARS = ("eligible", "sent", "delivered", "opened", "redeemed")
_AXIS = (
    '<div class="axis"><span></span><div class="ticks">'
    + "".join(f'<span style="left:{t}%">{t} %</span>' for t in (0, 50, 100))
    + "</div><span></span></div>"
)


def _bar(label: str, width: float, value: str, cls: str = "") -> str:
    return (
        f'<div class="row"><span class="lbl">{esc(label)}</span>'
        f'<span class="bg"><span class="bar {cls}" style="width:{min(width, 100):.2f}%">'
        f'</span></span><span class="val">{value}</span></div>'
    )


def funnel_section(offers: Sequence[dict[str, Any]]) -> str:
    out = []
    for o in offers:
        base = o["eligible"]
        head = (
            f"<figcaption><b>{esc(o['name'])}</b> {_n(o['candidates'])} candidates, "
            f"{_n(base)} eligible</figcaption>"
        )
        if o["candidates"] == 0:
            body = '<p class="note">No candidates in this period: nothing to show.</p>'
        elif base == 0:
            body = '<p class="note">Never eligible in this period: nothing to show.</p>'
        else:
            body = "".join(
                _bar(_LABELS[k], 100 * o[k] / base, f"{_n(o[k])} · {pct(o[k] / base)}")
                for k in _FUNNEL_BARS
            )
            body += _AXIS
        out.append(f'<figure class="funnel" data-offer="{esc(o["id"])}">{head}{body}</figure>')
    return (
        '<p class="note">Each stage as a share of the offer\'s eligible candidates '
        "(100 %). The definitions are at the end of the page.</p>"
        f'<div class="multiples">{"".join(out)}</div>'
    )


def journeys_section(journeys: Sequence[dict[str, Any]]) -> str:
    """Each journey's sends, opens, redemptions and uplift against its holdout."""
    if not journeys:
        return "<p>No journey ran.</p>"
    head = "".join(
        f"<th scope='col'>{esc(h)}</th>"
        for h in ("journey", "sent", "held out", "opened", "redeemed", "uplift (95 % interval)")
    )
    rows = "".join(
        f"<tr><th scope='row'>{esc(j['name'])}</th>"
        + _cell("sent", _n(j["sent"]))
        + _cell("held out", _n(j["holdout"]["holdout"]["decisions"]))
        + _cell("opened", _n(j["opened"]))
        + _cell("redeemed", _n(j["redeemed"]))
        + _cell("uplift", esc(uplift_text(j["holdout"]["uplift"])), "text")
        + "</tr>"
        for j in journeys
    )
    return (
        "<p class='note'>A welcome 30 minutes after joining, a win-back 30 days after the "
        "last visit or purchase; each holds 20 % out, decided by the same rules as the "
        "offers.</p>"
        f'<table class="cards" data-testid="journeys"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


# -- why offers were not sent -----------------------------------------------------------


def reasons_section(summary: Summary) -> str:
    candidates = sum(o["candidates"] for o in summary.offers) or 1
    most = max([*summary.suppressed.values(), 1])
    step = _nice(most / 3)
    top = step * math.ceil(most / step)
    groups = (
        ("Not eligible: the targeting did not match", TARGETING_REASONS, "warn"),
        ("Eligible, but not sent", [r for r in REASONS if r not in TARGETING_REASONS], "hold"),
    )
    out = []
    for title, reasons, cls in groups:
        rows = "".join(
            _bar(
                funnel.REASON_WORDS[r],
                100 * summary.suppressed[r] / top,
                f"{_n(summary.suppressed[r])} · {pct(summary.suppressed[r] / candidates)}",
                cls,
            )
            for r in reasons
            if summary.suppressed[r]
        )
        out.append(f"<h3>{esc(title)}</h3>{rows or '<p class=note>none</p>'}")
    axis = (
        '<div class="axis"><span></span><div class="ticks">'
        + "".join(
            f'<span style="left:{100 * t / top:.0f}%">{_n(int(t))}</span>'
            for t in (step * i for i in range(round(top / step) + 1))
        )
        + "</div><span></span></div>"
    )
    return (
        '<p class="note">Candidates not sent, summed over the offers, by reason: the count, '
        "and its share of all candidates.</p>"
        f'<div class="reasons" data-testid="reasons">{"".join(out)}{axis}</div>'
    )


# -- the page ---------------------------------------------------------------------------


def definitions() -> str:
    items = "".join(
        f"<dt>{esc(label)}</dt><dd>{esc(text)}.</dd>" for _, label, text in funnel.STAGES
    )
    return f'<dl class="defs" data-testid="definitions">{items}</dl>'


def _facts(s: Summary) -> Iterable[tuple[str, str]]:
    yield "pings", ", ".join(f"{k} {_n(v)}" for k, v in sorted(s.ping_status.items()))
    yield (
        "geofence transitions",
        ", ".join(f"{k} {_n(v)}" for k, v in sorted(s.transitions.items())),
    )
    yield "coupons in ping answers", _n(s.offers_received)
    yield "Web Push messages decrypted at the push service", _n(s.pushes_received)
    yield (
        "coupons opened · redeemed · purchases",
        (f"{_n(s.opened)} · {_n(s.redemptions)} · {_n(s.purchases)}"),
    )
    yield "second scans refused at the till", _n(s.second_scans_refused)
    yield (
        "referrals (a chain of friends, and a second account on one phone)",
        referral_words(s.referrals),
    )


STYLE = (Path(__file__).with_name("page.css")).read_text(encoding="utf-8")


def render(demo: Played) -> str:
    s = demo.summary
    shops_map = mapsvg.render(demo.stores, demo.geofences, demo.walkers, s.shops)
    facts = "".join(
        f"<tr><th scope='row'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _facts(s)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gateway demo report</title>
<style>{STYLE}</style></head><body><main>
<h1>Corner Coffee: one simulated morning</h1>
<p>{DAY.strftime("%A %d %B %Y")} in central Paris, seed {demo.o.seed}: {len(demo.stores)} shops,
{len(demo.geofences["features"])} geofences, {len(demo.walkers)} shoppers,
{_n(s.pings)} pings through the HTTP API.</p>
<section><h2>Summary per offer</h2>{summary_table(s.offers)}</section>
<section><h2>Uplift against the holdout</h2>{uplift_section(s.offers)}</section>
<section><h2>Funnel per offer</h2>{funnel_section(s.offers)}</section>
<section><h2>Lifecycle journeys</h2>{journeys_section(s.journeys)}</section>
<section><h2>Why offers were not sent</h2>{reasons_section(s)}</section>
<section><h2>Survey: Net Promoter Score</h2>{surveys.section(s.survey)}</section>
<section><h2>Shops and geofences</h2>{shops_map}</section>
<section><h2>The morning in numbers</h2><table class="facts">{facts}</table></section>
<section><h2>Definitions</h2>{definitions()}</section>
</main></body></html>
"""


def write_report(demo: Played, path: Path) -> Path:
    path.write_text(render(demo), encoding="utf-8")
    return path
