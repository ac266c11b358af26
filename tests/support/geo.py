"""Helpers shared by the geo tests: metre offsets on the Earth and small fence builders."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely

from geo.models import Fence

WGS84_A = 6_378_137.0
WGS84_E2 = 6.694_379_990_14e-3
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def offset_ellipsoid(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    """Move by metres on the WGS 84 ellipsoid (local radii of curvature; exact enough <1 km).

    Deliberately not the sphere the code under test uses, so circle tests check real metres.
    """
    s = math.sin(math.radians(lat))
    w = math.sqrt(1.0 - WGS84_E2 * s * s)
    meridian = WGS84_A * (1.0 - WGS84_E2) / w**3
    normal = WGS84_A / w
    return (
        lon + math.degrees(east_m / (normal * math.cos(math.radians(lat)))),
        lat + math.degrees(north_m / meridian),
    )


def destination(lon: float, lat: float, bearing_deg: float, metres: float) -> tuple[float, float]:
    """Great-circle destination on the sphere of radius 6 371 008.8 m."""
    r = 6_371_008.8
    d = metres / r
    b = math.radians(bearing_deg)
    p1 = math.radians(lat)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = math.radians(lon) + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    lon2 = (math.degrees(l2) + 540.0) % 360.0 - 180.0
    return lon2, math.degrees(p2)


def circle(fence_id: int, lon: float, lat: float, radius_m: float, merchant_id: int = 1) -> Fence:
    return Fence(
        id=fence_id,
        merchant_id=merchant_id,
        store_id=fence_id,
        kind="circle",
        geometry=shapely.Point(lon, lat),
        radius_m=radius_m,
    )


def polygon(fence_id: int, geometry: Any, merchant_id: int = 1) -> Fence:
    return Fence(
        id=fence_id,
        merchant_id=merchant_id,
        store_id=fence_id,
        kind="polygon",
        geometry=geometry,
        radius_m=None,
    )


def square(lon: float, lat: float, side_m: float) -> Any:
    """An axis-aligned square polygon of about `side_m` metres, south-west corner at lon/lat."""
    east, north = offset_ellipsoid(lon, lat, side_m, side_m)
    return shapely.Polygon([(lon, lat), (east, lat), (east, north), (lon, north), (lon, lat)])


def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def polygon_feature(*rings: Any, **properties: Any) -> dict[str, Any]:
    return feature({"type": "Polygon", "coordinates": list(rings)}, **properties)
