"""The demo's city: central Paris streets and weather, the shops' places and geofences,
and the ten offers that show the rules. Data and pure helpers; the simulation plays them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
from typing import Any
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
CENTRE = (2.3470, 48.8590)  # lon, lat: between Châtelet and the Louvre
M_PER_DEG = 111_320.0
DAY = dt.date(2026, 1, 14)  # a Wednesday in January
DB_NAME = "gateway_demo"

# Real streets of central Paris; the shops are placed near the centre, not at these
# exact addresses.
STREETS = [
    "Rue de Rivoli",
    "Rue Saint-Honoré",
    "Rue du Louvre",
    "Rue Montorgueil",
    "Rue Saint-Denis",
    "Boulevard de Sébastopol",
    "Rue de Turbigo",
    "Rue Réaumur",
    "Rue du Temple",
    "Rue des Archives",
    "Rue Vieille-du-Temple",
    "Rue de Bretagne",
    "Rue Saint-Antoine",
    "Rue de la Roquette",
    "Boulevard Saint-Germain",
    "Rue de Rennes",
    "Rue du Bac",
    "Rue de Seine",
    "Rue Mouffetard",
    "Boulevard Saint-Michel",
    "Rue Soufflot",
    "Rue de Buci",
    "Rue Dauphine",
    "Quai de la Mégisserie",
    "Rue des Petits-Champs",
    "Avenue de l'Opéra",
    "Rue de la Paix",
    "Rue Sainte-Anne",
    "Rue Étienne-Marcel",
    "Rue Rambuteau",
    "Rue Beaubourg",
    "Rue de Charonne",
    "Rue Oberkampf",
    "Rue de Lappe",
    "Rue des Rosiers",
    "Rue de Sèvres",
]


@dataclasses.dataclass(slots=True)
class Store:
    id: str
    name: str
    lon: float
    lat: float
    fences: list[str]


def offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    return (
        lon + east_m / (M_PER_DEG * math.cos(math.radians(lat))),
        lat + north_m / M_PER_DEG,
    )


def metres(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """(east, north) metres from a to b, locally flat."""
    return (
        (b[0] - a[0]) * M_PER_DEG * math.cos(math.radians(a[1])),
        (b[1] - a[1]) * M_PER_DEG,
    )


def weather_at(local: dt.datetime) -> dict[str, Any]:
    """A cold clear morning, rain from ten, clouds after noon."""
    h = local.hour + local.minute / 60
    if h < 10:
        return {"condition": "clear", "temp_c": round(1.0 + (h - 6) * 1.2, 1)}
    if h < 12:
        return {"condition": "rain", "temp_c": 8.0}
    return {"condition": "clouds", "temp_c": 11.0}


def place_shop(rng: random.Random) -> tuple[float, float]:
    """Where a shop stands: 300 m to 2.5 km from the centre, evenly over the disc."""
    ring = 300 + 2200 * math.sqrt(rng.random())
    angle = rng.uniform(0, 2 * math.pi)
    return offset(*CENTRE, ring * math.cos(angle), ring * math.sin(angle))


def shop_fences(
    store_id: str, lon: float, lat: float, radius: float, *, block: bool
) -> list[dict[str, Any]]:
    """A door circle for the shop, and with `block` the block around it as a polygon."""
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
            "properties": {"store_id": store_id, "name": "door", "radius_m": radius},
        }
    ]
    if block:
        corners = [
            offset(lon, lat, r * math.cos(a), r * math.sin(a))
            for r, a in ((140, 0.3), (120, 1.9), (150, 3.4), (130, 4.9))
        ]
        ring_coords = [[round(x, 6), round(y, 6)] for x, y in corners]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[*ring_coords, ring_coords[0]]]},
                "properties": {"store_id": store_id, "name": "block"},
            }
        )
    return features


# The offers' "store_ids": every shop, or the three newest (an opening offer).
EVERYWHERE = "everywhere"
OPENING = "opening"
_COUPON = {"valid_minutes": 90, "barcode_format": "qr"}
_ONCE_A_DAY = [{"max": 1, "days": 1}]

OFFERS: list[dict[str, Any]] = [
    {
        "name": "Cold mornings",
        "title": "20% off a hot coffee",
        "body": "It's cold out: warm up with us",
        "store_ids": EVERYWHERE,
        "trigger": "enter",
        "schedule": {"weekly": {d: ["07:00-10:30"] for d in ("mon", "tue", "wed", "thu", "fri")}},
        "weather": {"max_temp_c": 8},
        "caps": _ONCE_A_DAY,
        "priority": 10,
        "coupon": {**_COUPON, "discount": "20% off", "discount_pct": 20},
    },
    {
        "name": "Rainy day",
        "title": "A hot chocolate on us",
        "body": "Rain outside, cocoa inside",
        "store_ids": EVERYWHERE,
        "trigger": "enter",
        "weather": {"conditions": ["rain", "drizzle"]},
        "caps": _ONCE_A_DAY,
        "priority": 8,
        "coupon": {**_COUPON, "discount": "free hot chocolate"},
    },
    {
        "name": "Gold members",
        "title": "A pastry for our Gold members",
        "body": "Thank you for being Gold",
        "store_ids": EVERYWHERE,
        "trigger": "enter",
        "audience": {"tiers": ["Gold", "Platinum"]},
        "caps": _ONCE_A_DAY,
        "priority": 6,
        "coupon": {**_COUPON, "discount": "free pastry"},
    },
    {
        "name": "Latte test",
        "title": "1 euro off any latte",
        "body": "Your latte, a little cheaper",
        "store_ids": EVERYWHERE,
        "trigger": "enter",
        "holdout_pct": 20,
        "caps": _ONCE_A_DAY,
        "priority": 4,
        "coupon": {**_COUPON, "discount": "1 EUR off", "discount_amount": 1},
    },
    {
        "name": "Lunch while you wait",
        "title": "Sandwich + drink 7.50",
        "body": "Staying a while? Lunch is ready",
        "store_ids": EVERYWHERE,
        "trigger": "dwell",
        "schedule": {"weekly": {d: ["11:30-14:00"] for d in ("mon", "tue", "wed", "thu", "fri")}},
        "caps": _ONCE_A_DAY,
        "priority": 5,
        "coupon": {**_COUPON, "discount": "lunch 7.50"},
    },
    {
        "name": "New shops",
        "title": "Opening week: 30% off",
        "body": "Come and see our new shop",
        "store_ids": OPENING,
        "trigger": "enter",
        "budget": {"max_issued": 12},
        "caps": _ONCE_A_DAY,
        "priority": 20,
        "coupon": {**_COUPON, "discount": "30% off", "discount_pct": 30},
    },
    {
        "name": "Regulars",
        "title": "Double points today",
        "body": "For regulars with 500+ points",
        "store_ids": EVERYWHERE,
        "trigger": "enter",
        "audience": {"min_points": 500},
        "caps": _ONCE_A_DAY,
        "priority": 3,
        "coupon": {**_COUPON, "discount": "double points"},
    },
    {
        "name": "Students",
        "title": "Student espresso 1 euro",
        "body": "Show your card",
        "store_ids": EVERYWHERE,
        "trigger": "enter",
        "audience": {"tags": ["student"]},
        "caps": _ONCE_A_DAY,
        "priority": 2,
        "coupon": {**_COUPON, "discount": "espresso 1 EUR"},
    },
    {
        "name": "Evening (paused)",
        "title": "Happy hour",
        "body": "Paused by the manager",
        "store_ids": EVERYWHERE,
        "trigger": "enter",
        "status": "paused",
        "coupon": {**_COUPON, "discount": "2 for 1"},
    },
    {
        "name": "Weekend brunch",
        "title": "Brunch for two",
        "body": "Saturdays and Sundays",
        "store_ids": EVERYWHERE,
        "trigger": "enter",
        "schedule": {"weekly": {"sat": ["09:00-14:00"], "sun": ["09:00-14:00"]}},
        "coupon": {**_COUPON, "discount": "brunch 25 EUR"},
    },
]


def offer_bodies(store_ids: list[str]) -> list[dict[str, Any]]:
    """The request bodies of :data:`OFFERS` for these shops, on both channels."""
    chosen = {EVERYWHERE: store_ids, OPENING: store_ids[:3]}
    return [
        {
            "channels": ["inbox", "webpush"],
            **{k: (chosen[v] if k == "store_ids" else v) for k, v in offer.items()},
        }
        for offer in OFFERS
    ]
