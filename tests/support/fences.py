"""Places for the API tests: a spot in Paris, metre offsets from it, and geofences of the
tenant fixture's first store written straight to the database."""

from __future__ import annotations

import math
from typing import Any

import asyncpg

from geo import geojson
from geo import store as geo_store
from tests.support.tenants import Tenant

LAT, LON = 48.86, 2.34
M_PER_DEG = 111_320.0


def offset(dx_m: float, dy_m: float, lat: float = LAT, lon: float = LON) -> tuple[float, float]:
    """(lat, lon) moved dx metres east and dy metres north."""
    return lat + dy_m / M_PER_DEG, lon + dx_m / (M_PER_DEG * math.cos(math.radians(lat)))


async def add_fence(conn: asyncpg.Connection, tenant: Tenant, feature: dict[str, Any]) -> int:
    parsed = geojson.parse_feature(feature)
    rec = await geo_store.insert_geofence(
        conn, merchant_id=tenant.merchant_id, store_id=tenant.store_ids[0], feature=parsed
    )
    return rec.id


def circle_feature(lat: float, lon: float, radius: float, name: str = "c") -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"name": name, "radius_m": radius},
    }
