"""The demo's output: the live progress line, the summary and tokens as text, and the HTML
report with a map of the shops and geofences and bar charts of the funnel."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from gateway.demo.city import CENTRE, DAY, M_PER_DEG, PARIS, Store


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
    pushes_received: int = 0
    offers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    suppressed: Counter[str] = dataclasses.field(default_factory=Counter)
    report: Path | None = None
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


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


def progress_line(s: Summary, now: dt.datetime) -> str:
    local = now.astimezone(PARIS).strftime("%H:%M")
    return (
        f"\r{local}  pings {s.pings:,}  transitions {sum(s.transitions.values()):,}  "
        f"offers {s.offers_received:,}  opened {s.opened:,}  redeemed {s.redemptions:,}"
        "\x1b[K"
    )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.0f}pt"


def render_summary(s: Summary) -> str:
    lines = [
        "",
        f"Simulated a morning of {s.pings:,} pings in {s.seconds:.0f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(s.ping_status.items())),
        "transitions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s.transitions.items())),
        f"coupons in ping answers {s.offers_received:,}; Web Push messages decrypted at the "
        f"push service {s.pushes_received:,}; opened {s.opened:,}; redeemed {s.redemptions:,}; "
        f"second scans refused {s.second_scans_refused:,}; purchases {s.purchases:,}",
        "",
        f"{'offer':<22}{'eligible':>9}{'sent':>6}{'held':>6}{'deliv.':>7}{'opened':>7}"
        f"{'redeem.':>8}{'conv. sent':>11}{'holdout':>9}{'uplift':>8}",
    ]
    for o in s.offers:
        h, up = o["holdout"], o["holdout"]["uplift"]
        lines.append(
            f"{o['name'][:21]:<22}{o['eligible']:>9}{o['sent']:>6}{h['holdout']['decisions']:>6}"
            f"{o['delivered']:>7}{o['opened']:>7}{o['redeemed']:>8}"
            f"{_pct(up['treated_rate']):>11}{_pct(up['holdout_rate']):>9}"
            f"{_signed(up['absolute']):>8}"
        )
    lines += [
        "",
        "suppressed, by reason: " + ", ".join(f"{k} {v:,}" for k, v in s.suppressed.most_common()),
    ]
    if s.report is not None:
        lines.append(f"report: {s.report.resolve()}")
    return "\n".join(lines)


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


def _svg_map(demo: Played, width: int = 720, height: int = 560) -> str:
    lons = [s.lon for s in demo.stores] or [CENTRE[0]]
    lats = [s.lat for s in demo.stores] or [CENTRE[1]]
    pad = 0.004
    west, east = min(lons) - pad, max(lons) + pad
    south, north = min(lats) - pad, max(lats) + pad
    kx = width / (east - west)
    ky = height / (north - south)
    k = min(kx, ky * math.cos(math.radians(CENTRE[1])))

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return (
            (lon - west) * k,
            (north - lat) * k / math.cos(math.radians(CENTRE[1])),
        )

    shapes = []
    for f in demo.geofences["features"]:
        g = f["geometry"]
        if g["type"] == "Point":
            x, y = xy(*g["coordinates"])
            r = f["properties"]["radius_m"] / M_PER_DEG * k
            shapes.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{max(r, 2):.1f}" class="fence"/>')
        elif g["type"] == "Polygon":
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in (xy(*c) for c in g["coordinates"][0]))
            shapes.append(f'<polygon points="{pts}" class="fence"/>')
    for s in demo.stores:
        x, y = xy(s.lon, s.lat)
        shapes.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="store"><title>'
            f"{html.escape(s.name)}</title></circle>"
        )
    for w in demo.walkers[:200]:
        x, y = xy(*w.home)
        shapes.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.2" class="home"/>')
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="stores and geofences">{"".join(shapes)}</svg>'
    )


def _bars(rows: list[tuple[str, list[tuple[str, int]]]], width: int = 720) -> str:
    colours = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948"]
    top = max([v for _, vals in rows for _, v in vals] + [1])
    row_h, label_w = 22, 170
    out = []
    y = 0
    for label, vals in rows:
        out.append(f'<text x="0" y="{y + 15}" class="label">{html.escape(label)}</text>')
        bar_h = (row_h - 4) / max(len(vals), 1)
        for i, (name, v) in enumerate(vals):
            w = (width - label_w - 60) * v / top
            yy = y + i * bar_h
            out.append(
                f'<rect x="{label_w}" y="{yy:.1f}" width="{w:.1f}" height="{bar_h - 1:.1f}" '
                f'fill="{colours[i % len(colours)]}"><title>{name}: {v}</title></rect>'
            )
            out.append(
                f'<text x="{label_w + w + 4:.1f}" y="{yy + bar_h - 2:.1f}" class="value">{v}</text>'
            )
        y += row_h + 6
    return f'<svg viewBox="0 0 {width} {y}" width="{width}" height="{y}">{"".join(out)}</svg>'


def write_report(demo: Played, path: Path) -> Path:
    s = demo.summary
    metrics = ["eligible", "sent", "delivered", "opened", "redeemed"]
    funnel_rows = [(o["name"], [(m, int(o[m])) for m in metrics]) for o in s.offers]
    reasons = [(k, [(k, v)]) for k, v in s.suppressed.most_common()]
    legend = " ".join(
        f'<span style="color:{c}">&#9632; {m}</span>'
        for m, c in zip(
            metrics, ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"], strict=True
        )
    )
    summary_text = html.escape(render_summary(dataclasses.replace(s, report=None)))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gateway demo report</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 780px; color: #222 }}
.fence {{ fill: #4e79a733; stroke: #4e79a7; stroke-width: 1 }}
.store {{ fill: #e15759 }} .home {{ fill: #999 }}
.label, .value {{ font-size: 12px }} pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto }}
svg {{ display: block; margin: 1em 0 }}
</style></head><body>
<h1>Corner Coffee: one simulated morning</h1>
<p>{DAY.isoformat()} in central Paris, seed {demo.o.seed}: {len(demo.stores)} shops,
{len(demo.geofences["features"])} geofences, {len(demo.walkers)} shoppers,
{s.pings:,} pings through the HTTP API.</p>
<h2>Shops and geofences</h2>
<p>Red: shops; blue: geofences (door circles and block polygons); grey: shoppers' homes.</p>
{_svg_map(demo)}
<h2>Funnel per offer</h2><p>{legend}</p>
{_bars(funnel_rows)}
<h2>Why offers were not sent</h2>
{_bars(reasons)}
<h2>Summary</h2><pre>{summary_text}</pre>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
