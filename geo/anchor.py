"""A geofence belongs near its store: the distance between them, and the check that refuses
a fence (or a store move) that would put them far apart, with a hint when the numbers only
look swapped.

Coordinates given as [lat, lon] instead of GeoJSON's [lon, lat] are usually still in range
(Paris's [48.86, 2.34] reads as a point off the coast of Somalia), so range checks miss
them; the distance to the store does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from geo import distance
from geo.errors import FenceTooFar
from geo.models import Problem

SWAP_QUESTION = "did you swap longitude and latitude?"
SWAP_HINT = f"{SWAP_QUESTION} GeoJSON positions are [lon, lat]"


@dataclass(frozen=True, slots=True, kw_only=True)
class Tethered:
    """One fence to check against its store: where to point in the request if it fails."""

    path: str
    geometry: Any  # shapely, lon/lat: a Point (with radius_m) or a (Multi)Polygon
    radius_m: float | None
    store_lon: float
    store_lat: float


def distance_m(geometry: Any, radius_m: float | None, lon: float, lat: float) -> float:
    """Metres from the point (lon, lat) to the nearest point of the fence; 0 inside it."""
    if radius_m is not None:
        centre = distance.haversine_m(geometry.x, geometry.y, lon, lat)
        return max(0.0, centre - radius_m)
    near = distance.polygon_distance_m(geometry, lon, lat)
    if near < 100_000:
        return near
    # The local flat frame of polygon_distance_m bends far from its centre: over such
    # distances the nearest vertex, on the sphere, is what to report.
    coords = shapely.get_coordinates(geometry)
    return float(distance.haversine_m_array(coords[:, 0], coords[:, 1], lon, lat).min())


def swapped(geometry: Any) -> Any | None:
    """The geometry with each position's two numbers exchanged; None when that is no place."""
    flipped = shapely.transform(geometry, lambda c: c[:, ::-1])
    lats = shapely.get_coordinates(flipped)[:, 1]
    return None if np.abs(lats).max() > 90.0 else flipped


def km(metres: float) -> str:
    return f"{metres / 1000:,.0f} km" if metres >= 10_000 else f"{metres / 1000:.1f} km"


def check(fences: Sequence[Tethered], max_m: float) -> None:
    """Raise FenceTooFar naming every fence farther than `max_m` from its store."""
    found = problems(fences, max_m)
    if found:
        raise FenceTooFar(found)


def check_store_move(
    fences: Sequence[tuple[str, Any, float | None]], lon: float, lat: float, max_m: float
) -> None:
    """Raise FenceTooFar if moving the store to (lon, lat) leaves a fence too far away."""
    found = store_move_problems(fences, lon, lat, max_m)
    if found:
        raise FenceTooFar(found)


def problems(fences: Sequence[Tethered], max_m: float) -> list[Problem]:
    """A problem at each fence farther than `max_m` from its store (none when `max_m` is 0)."""
    if max_m <= 0:
        return []
    found = []
    for f in fences:
        away = distance_m(f.geometry, f.radius_m, f.store_lon, f.store_lat)
        if away <= max_m:
            continue
        flipped = swapped(f.geometry)
        fixable = flipped is not None and (
            distance_m(flipped, f.radius_m, f.store_lon, f.store_lat) <= max_m
        )
        why = SWAP_HINT if fixable else f"at most {km(max_m)} is allowed"
        found.append(
            Problem(
                path=f"{f.path}geometry.coordinates",
                code="swapped_lon_lat" if fixable else "far_from_store",
                message=f"too far from its store ({km(away)}); {why}",
            )
        )
    return found


def store_move_problems(
    fences: Sequence[tuple[str, Any, float | None]], lon: float, lat: float, max_m: float
) -> list[Problem]:
    """Problems with moving a store to (lon, lat), given its fences as (name, geometry,
    radius_m): one at `lon` and `lat` naming the fences it would leave too far away."""
    if max_m <= 0:
        return []
    far = [
        (name, away)
        for name, geometry, radius in fences
        if (away := distance_m(geometry, radius, lon, lat)) > max_m
    ]
    if not far:
        return []
    names = ", ".join(f"{name!r} ({km(away)})" for name, away in far[:3])
    more = f" and {len(far) - 3} more" if len(far) > 3 else ""
    fixable = -90.0 <= lon <= 90.0 and all(
        distance_m(geometry, radius, lat, lon) <= max_m for _, geometry, radius in fences
    )
    why = SWAP_QUESTION if fixable else f"at most {km(max_m)} is allowed"
    message = f"this would leave its geofence {names}{more} too far from the store; {why}"
    code = "swapped_lon_lat" if fixable else "far_from_store"
    return [Problem(path=key, code=code, message=message) for key in ("lat", "lon")]
