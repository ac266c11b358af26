"""The demo report's map: an SVG of the geofences, the shoppers' homes, a 500 m grid and
the Seine, with the shops' numbered pins, names and figures and a scale bar laid over
it in HTML, and the same shops as a table.

Why no tiles: the report is one file opened from disk, often offline, and a street
basemap cannot ship inside it. The grid is the console's offline fallback (mapbase.js),
the river's course a few hand-placed points, so the map still reads as central Paris.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gateway.demo.city import M_PER_DEG, Store

WIDTH = 960.0  # viewBox units; one unit is one CSS pixel at the desktop width
PAD_M = 350.0
GRID_M = 500.0
# The Seine through central Paris, west to east (lon, lat), roughly at its bridges:
# Bir-Hakeim, Iéna, Alma, Concorde, Pont Royal, Pont Neuf, Notre-Dame, Sully,
# Austerlitz, Bercy, Tolbiac. Approximate, and drawn as such.
SEINE = (
    (2.2870, 48.8550),
    (2.2935, 48.8612),
    (2.3020, 48.8640),
    (2.3195, 48.8640),
    (2.3290, 48.8605),
    (2.3413, 48.8575),
    (2.3510, 48.8548),
    (2.3600, 48.8500),
    (2.3660, 48.8445),
    (2.3760, 48.8375),
    (2.3830, 48.8330),
)


class _Home(Protocol):
    @property
    def home(self) -> tuple[float, float]: ...


class Frame:
    """Projects lon/lat onto the viewBox: locally flat metres, north up."""

    def __init__(self, stores: Sequence[Store]) -> None:
        lons = [s.lon for s in stores] or [2.347]
        lats = [s.lat for s in stores] or [48.859]
        self.lat0 = (min(lats) + max(lats)) / 2
        self.kx = M_PER_DEG * math.cos(math.radians(self.lat0))
        self.west = min(lons) - PAD_M / self.kx
        self.north = max(lats) + PAD_M / M_PER_DEG
        self.width_m = (max(lons) - min(lons)) * self.kx + 2 * PAD_M
        self.height_m = (max(lats) - min(lats)) * M_PER_DEG + 2 * PAD_M
        self.k = WIDTH / self.width_m  # units per metre
        self.height = self.height_m * self.k

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.west) * self.kx * self.k, (self.north - lat) * M_PER_DEG * self.k

    def left_top(self, x: float, y: float) -> str:
        return f"left:{100 * x / WIDTH:.2f}%;top:{100 * y / self.height:.2f}%"


def short(name: str) -> str:
    return name.removeprefix("Corner Coffee ")


def _svg(frame: Frame, geofences: dict[str, Any], homes: Sequence[_Home]) -> str:
    w, h, k = WIDTH, frame.height, frame.k
    parts = [f'<rect width="{w:.0f}" height="{h:.0f}" class="land"/>']
    step = GRID_M * k
    parts += [
        f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{h:.0f}" class="grid"/>'
        for x in _ticks(w, step)
    ]
    parts += [
        f'<line x1="0" y1="{y:.1f}" x2="{w:.0f}" y2="{y:.1f}" class="grid"/>'
        for y in _ticks(h, step)
    ]
    river = " ".join(f"{x:.1f},{y:.1f}" for x, y in (frame.xy(*p) for p in SEINE))
    parts.append(f'<polyline points="{river}" class="river" stroke-width="{max(60 * k, 4):.1f}"/>')
    for f in geofences["features"]:
        g = f["geometry"]
        if g["type"] == "Point":
            x, y = frame.xy(*g["coordinates"])
            r = max(f["properties"]["radius_m"] * k, 2)
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" class="fence"/>')
        elif g["type"] == "Polygon":
            pts = " ".join(
                f"{a:.1f},{b:.1f}" for a, b in (frame.xy(*c) for c in g["coordinates"][0])
            )
            parts.append(f'<polygon points="{pts}" class="fence"/>')
    for walker in homes[:200]:
        x, y = frame.xy(*walker.home)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.6" class="home"/>')
    return (
        f'<svg viewBox="0 0 {w:.0f} {h:.0f}" preserveAspectRatio="xMidYMid meet" '
        f'aria-hidden="true">{"".join(parts)}</svg>'
    )


def _ticks(length: float, step: float) -> list[float]:
    return [i * step for i in range(1, int(length / step) + 1)]


Box = tuple[float, float, float, float]


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place(
    x: float, y: float, size: tuple[float, float], taken: list[Box], frame: Frame
) -> Box | None:
    """Where a label fits beside its pin (right, left, above, below), if anywhere."""
    w, h = size
    for bx, by in (
        (x + 13, y - h / 2),
        (x - 13 - w, y - h / 2),
        (x - w / 2, y - 14 - h),
        (x - w / 2, y + 14),
    ):
        box = (bx, by, bx + w, by + h)
        inside = bx >= 2 and by >= 2 and box[2] <= WIDTH - 2 and box[3] <= frame.height - 2
        if inside and not any(_overlaps(box, t) for t in taken):
            return box
    return None


def _figures(c: Counter[str]) -> str:
    return f"{c['sent']:,} sent · {c['redeemed']:,} redeemed"


def _overlay(frame: Frame, stores: Sequence[Store], shops: Mapping[str, Counter[str]]) -> str:
    pins, names = [], []
    points = [frame.xy(s.lon, s.lat) for s in stores]
    taken: list[Box] = [(x - 11, y - 11, x + 11, y + 11) for x, y in points]
    for n, (s, (x, y)) in enumerate(zip(stores, points, strict=True), start=1):
        c = shops.get(s.id, Counter())
        title = html.escape(f"{n}. {s.name}: {_figures(c)}")
        pins.append(f'<span class="pin" style="{frame.left_top(x, y)}" title="{title}">{n}</span>')
        label, figures = short(s.name), _figures(c)
        size = (max(len(label) * 6.9, len(figures) * 6.0) + 10, 32)
        box = _place(x, y, size, taken, frame)
        if box is None:
            continue
        taken.append(box)
        names.append(
            f'<span class="name" style="{frame.left_top(box[0], box[1])}">'
            f"<b>{html.escape(label)}</b><small>{html.escape(figures)}</small></span>"
        )
    return "".join(pins + names)


def _scale(frame: Frame) -> str:
    metres = next((m for m in (250, 500, 1000, 2000, 5000) if m >= frame.width_m / 6), 5000)
    text = f"{metres // 1000} km" if metres >= 1000 else f"{metres} m"
    width = 100 * metres * frame.k / WIDTH
    return f'<div class="scale" style="width:{width:.2f}%"><span>{text}</span></div>'


def _shop_table(stores: Sequence[Store], shops: Mapping[str, Counter[str]]) -> str:
    keys = (
        ("candidates", "Candidates"),
        ("eligible", "Eligible"),
        ("sent", "Sent"),
        ("redeemed", "Redeemed"),
    )
    head = "".join(
        f'<th scope="col" class="num"><abbr title="{k}">{label}</abbr></th>' for k, label in keys
    )
    rows = []
    for n, s in enumerate(stores, start=1):
        c = shops.get(s.id, Counter())
        cells = "".join(f'<td class="num" data-label="{label}">{c[k]:,}</td>' for k, label in keys)
        rows.append(f'<tr><th scope="row">{n}. {html.escape(short(s.name))}</th>{cells}</tr>')
    return (
        '<table class="compact" data-testid="shops"><thead><tr><th scope="col">Shop</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def render(
    stores: Sequence[Store],
    geofences: dict[str, Any],
    homes: Sequence[_Home],
    shops: Mapping[str, Counter[str]],
) -> str:
    """The map (numbered pins, names where they fit) and the per-shop table, by shop name."""
    ordered = sorted(stores, key=lambda s: short(s.name))
    frame = Frame(ordered)
    return (
        '<p class="note">Numbered pins: the shops (names and figures beside them where they '
        "fit, all of them in the table below); blue: geofences (door circles and block "
        "polygons); grey dots: shoppers' homes; light blue: the Seine (approximate course); "
        "grid lines every 500 m. Shops are placed near the centre and named after real "
        "streets, not at those streets. Figures are summed over the offers.</p>"
        f'<div class="map" data-testid="map" style="aspect-ratio:{WIDTH:.0f}/{frame.height:.0f}">'
        f"{_svg(frame, geofences, homes)}{_overlay(frame, ordered, shops)}{_scale(frame)}"
        '<span class="north" aria-label="north is up">N&#8593;</span></div>'
        f"{_shop_table(ordered, shops)}"
    )
