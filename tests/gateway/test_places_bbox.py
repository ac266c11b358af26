"""GET /v1/geofences?bbox=: the fences a map's view meets, by their extent (a circle's
includes its radius), in paged JSON and in the GeoJSON export; bad boxes are refused; and
the migration's backfill of the extent agrees with the one computed for new rows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg

from geo.distance import M_PER_DEG
from tests.support.client import ApiClient
from tests.support.tenants import Tenant

MIGRATION = Path(__file__).parents[2] / "gateway/migrations/0013_geofence_extent.sql"
LON, LAT = 2.3600, 48.8600  # a clear patch of Paris, away from the fixtures' fences


def _circle(store_id: int, lon: float, lat: float, radius: float) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"store_id": str(store_id), "name": "door", "radius_m": radius},
    }


def _square(store_id: int, west: float, south: float, side: float) -> dict[str, Any]:
    ring = [[west, south], [west + side, south], [west + side, south + side]]
    ring += [[west, south + side], [west, south]]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"store_id": str(store_id), "name": "yard"},
    }


async def _make(api: ApiClient, tenant: Tenant, feature: dict[str, Any]) -> str:
    r = await api.post("/v1/geofences", token=tenant.tokens["manager"], json=feature)
    assert r.status == 201, r.body
    return str(r.json["id"])


async def _ids_in(
    api: ApiClient, tenant: Tenant, box: tuple[float, ...], fmt: str = ""
) -> set[str]:
    query = "bbox=" + ",".join(f"{v:.6f}" for v in box) + (f"&format={fmt}" if fmt else "")
    r = await api.get(f"/v1/geofences?{query}", token=tenant.tokens["reviewer"])
    assert r.status == 200, r.body
    return {f["id"] for f in (r.json["features"] if fmt else r.json["items"])}


async def test_a_view_lists_the_fences_it_meets(api: ApiClient, tenant_a: Tenant) -> None:
    store = tenant_a.store_ids[0]
    # A 100 m circle whose centre is 60 m west of the view: only its radius reaches in.
    lon_per_m = 1 / (M_PER_DEG * 0.6574)  # cos(48.86°)
    edge = await _make(api, tenant_a, _circle(store, LON - 60 * lon_per_m, LAT, 100))
    far = await _make(api, tenant_a, _circle(store, LON - 300 * lon_per_m, LAT, 100))
    yard = await _make(api, tenant_a, _square(store, LON + 0.001, LAT, 0.0005))
    view = (LON, LAT - 0.0005, LON + 0.0012, LAT + 0.0005)
    assert await _ids_in(api, tenant_a, view) == {edge, yard}
    assert await _ids_in(api, tenant_a, view, "geojson") == {edge, yard}
    assert far in await _ids_in(api, tenant_a, (LON - 0.01, LAT - 0.01, LON + 0.01, LAT + 0.01))
    assert await _ids_in(api, tenant_a, (LON + 1, LAT + 1, LON + 1.1, LAT + 1.1)) == set()
    # A patch moves its extent with it.
    moved = _square(store, LON + 0.5, LAT, 0.0005)
    r = await api.patch(
        f"/v1/geofences/{yard}",
        token=tenant_a.tokens["manager"],
        json={"geometry": moved["geometry"]},
    )
    assert r.status == 200, r.body
    assert await _ids_in(api, tenant_a, view) == {edge}


async def test_a_bulk_import_writes_extents_too(api: ApiClient, tenant_a: Tenant) -> None:
    store = tenant_a.store_ids[0]
    features = [_square(store, LON + 0.001 * i, LAT, 0.0005) for i in range(3)]
    r = await api.put(
        "/v1/geofences",
        token=tenant_a.tokens["admin"],
        json={"type": "FeatureCollection", "features": features},
    )
    assert r.status == 200, r.body
    ids = await _ids_in(api, tenant_a, (LON + 0.0011, LAT, LON + 0.0019, LAT + 0.0004))
    assert len(ids) == 1


async def test_bad_boxes_are_refused(api: ApiClient, tenant_a: Tenant) -> None:
    for raw in ("1,2,3", "a,b,c,d", "0,0,200,1", "0,50,1,40", "nan,0,1,1", "10,0,-10,1"):
        r = await api.get(f"/v1/geofences?bbox={raw}", token=tenant_a.tokens["reviewer"])
        assert (r.status, r.error_code) == (422, "validation_failed"), raw
        assert "bbox" in r.json["error"]["fields"], raw


async def test_the_migrations_backfill_contains_the_computed_extent(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    store = tenant_a.store_ids[0]
    await _make(api, tenant_a, _circle(store, LON, LAT, 250))
    await _make(api, tenant_a, _circle(store, LON, LAT + 0.05, 5000))
    await _make(api, tenant_a, _square(store, LON, LAT, 0.002))
    computed = await conn.fetch("SELECT id, extent FROM geofences ORDER BY id")
    backfill = re.search(r"UPDATE geofences .*?END;", MIGRATION.read_text(), re.S)
    assert backfill is not None
    async with conn.transaction():
        await conn.execute(backfill.group(0))
        redone = await conn.fetch("SELECT id, extent FROM geofences ORDER BY id")
    for before, after in zip(computed, redone, strict=True):
        (bx, by), (ax, ay) = before["extent"].high, after["extent"].high
        (lx, ly), (mx, my) = before["extent"].low, after["extent"].low
        # The backfill's box holds the exact one and is at most 2 % wider.
        assert mx <= lx + 1e-9 and my <= ly + 1e-9 and ax >= bx - 1e-9 and ay >= by - 1e-9
        assert (ax - mx) <= 1.02 * (bx - lx) + 1e-9 and (ay - my) <= 1.02 * (by - ly) + 1e-9
