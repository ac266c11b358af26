"""What browsers, GIS tools and load balancers rely on: GeoJSON polygons wound by RFC 7946's
right-hand rule, HEAD on every GET endpoint, and a geofence write live in this replica's
index before its answer (read your own writes)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import shapely

from gateway import db
from gateway.db import POOL
from gateway.pingpath.geoindex import GEO_INDEX
from tests.support.client import ApiClient, Reply
from tests.support.tenants import Tenant

W, S, E, N = 2.3690, 48.8530, 2.3700, 48.8540
# Clockwise: north first, then east. Its hole counterclockwise: both wrong for RFC 7946.
CW_SQUARE = [[W, S], [W, N], [E, N], [E, S], [W, S]]
CCW_HOLE = [[2.3694, 48.8534], [2.3696, 48.8534], [2.3696, 48.8536], [2.3694, 48.8536]]
CCW_HOLE.append(CCW_HOLE[0])
# By name: its number is whatever is next when it is merged.
[MIGRATION] = (Path(__file__).parents[2] / "gateway/migrations").glob("*_geofence_winding.sql")


def _polygon(store_id: int, rings: list[Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": rings},
        "properties": {"store_id": str(store_id), "name": "block"},
    }


def _right_handed(rings: list[Any]) -> bool:
    """Exterior counterclockwise and every hole clockwise, by shapely's reading."""
    exterior, *holes = (shapely.LinearRing(r) for r in rings)
    return bool(shapely.is_ccw(exterior)) and not any(shapely.is_ccw(h) for h in holes)


async def _exported(api: ApiClient, tenant: Tenant) -> dict[str, Any]:
    r = await api.get("/v1/geofences?format=geojson", token=tenant.tokens["manager"])
    assert r.status == 200
    return {f["id"]: f for f in orjson.loads(r.body)["features"]}


async def test_a_clockwise_polygon_with_a_hole_is_exported_by_the_right_hand_rule(
    api: ApiClient, tenant_a: Tenant
) -> None:
    assert not _right_handed([CW_SQUARE, CCW_HOLE])
    token = tenant_a.tokens["manager"]
    store = tenant_a.store_ids[0]
    r = await api.post("/v1/geofences", token=token, json=_polygon(store, [CW_SQUARE, CCW_HOLE]))
    assert r.status == 201, r.body
    assert _right_handed(r.json["geometry"]["coordinates"])
    multi = _polygon(store, [])
    shifted = [[[x + 0.002, y] for x, y in CW_SQUARE]]
    multi["geometry"] = {"type": "MultiPolygon", "coordinates": [[CW_SQUARE, CCW_HOLE], shifted]}
    m = await api.post("/v1/geofences", token=token, json=multi)
    assert m.status == 201, m.body
    features = await _exported(api, tenant_a)
    assert _right_handed(features[r.json["id"]]["geometry"]["coordinates"])
    for part in features[m.json["id"]]["geometry"]["coordinates"]:
        assert _right_handed(part)
    # The same area, the same places: only the direction of travel changed.
    stored = features[r.json["id"]]["geometry"]["coordinates"]
    assert shapely.Polygon(stored[0], stored[1:]).equals(shapely.Polygon(CW_SQUARE, [CCW_HOLE]))


async def test_the_migration_rewinds_polygons_stored_before(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    r = await api.post(
        "/v1/geofences",
        token=tenant_a.tokens["manager"],
        json=_polygon(tenant_a.store_ids[0], [CW_SQUARE, CCW_HOLE]),
    )
    gid = int(r.json["id"])
    # As an older gateway stored it: the rings as they were drawn.
    old = {"type": "Polygon", "coordinates": [CW_SQUARE, CCW_HOLE]}
    await conn.execute(
        "UPDATE geofences SET geometry = $2::text::jsonb WHERE id = $1",
        gid,
        orjson.dumps(old).decode(),
    )
    stored = orjson.loads(
        await conn.fetchval("SELECT geometry::text FROM geofences WHERE id = $1", gid)
    )
    assert not _right_handed(stored["coordinates"])
    await conn.execute(MIGRATION.read_text())
    stored = orjson.loads(
        await conn.fetchval("SELECT geometry::text FROM geofences WHERE id = $1", gid)
    )
    assert _right_handed(stored["coordinates"])
    assert shapely.Polygon(stored["coordinates"][0], stored["coordinates"][1:]).equals(
        shapely.Polygon(CW_SQUARE, [CCW_HOLE])
    )


async def _head(api: ApiClient, path: str, token: str | None = None) -> Reply:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with api.raw.request("HEAD", path, headers=headers) as resp:
        return Reply(status=resp.status, headers=resp.headers, body=await resp.read())


async def test_head_answers_as_get_without_a_body(api: ApiClient, tenant_a: Tenant) -> None:
    health = await _head(api, "/healthz")
    assert (health.status, health.body) == (200, b"")
    get = await api.get("/healthz")
    assert health.headers["Content-Type"] == get.headers["Content-Type"]
    shopper = tenant_a.tokens["shopper"]
    inbox = await _head(api, "/v1/inbox", shopper)
    assert (inbox.status, inbox.body) == (200, b"")
    assert inbox.headers["Content-Type"].startswith("application/json")
    refused = await _head(api, "/v1/inbox")
    assert (refused.status, refused.body) == (401, b"")
    manager = tenant_a.tokens["manager"]
    export = await _head(api, "/v1/geofences?format=geojson", manager)
    assert (export.status, export.body) == (200, b"")
    assert export.headers["Content-Type"].startswith("application/geo+json")
    csv = await _head(api, "/v1/logs/decisions?format=csv", manager)
    assert (csv.status, csv.body) == (200, b"")
    # The live feed never ends for GET; for HEAD its head is the whole answer.
    feed = await _head(api, "/v1/inbox/stream", shopper)
    assert (feed.status, feed.body) == (200, b"")
    assert feed.headers["Content-Type"].startswith("text/event-stream")
    page = await _head(api, "/app/")
    assert (page.status, page.body) == (200, b"")
    # POST endpoints are not made HEAD-able.
    post_only = await _head(api, "/v1/pings", shopper)
    assert post_only.status == 405


def _circle(store_id: int, lon: float, lat: float) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"store_id": str(store_id), "name": "kiosk", "radius_m": 30},
    }


async def _ping(api: ApiClient, token: str, lon: float, lat: float) -> set[tuple[str, str]]:
    body = {"lat": lat, "lon": lon, "accuracy_m": 5, "ts": dt.datetime.now(dt.UTC).isoformat()}
    r = await api.post("/v1/pings", token=token, json=body)
    assert r.status == 200, r.body
    return {(t["geofence_id"], t["event"]) for t in r.json["transitions"]}


async def test_a_geofence_write_is_live_here_before_its_answer(
    api: ApiClient, tenant_a: Tenant
) -> None:
    index = api.raw.server.app[GEO_INDEX]
    manager, shopper = tenant_a.tokens["manager"], tenant_a.tokens["shopper"]
    lon, lat = 2.3695, 48.8535
    created = await api.post(
        "/v1/geofences", token=manager, json=_circle(tenant_a.store_ids[0], lon, lat)
    )
    gid = created.json["id"]
    # At once: no wait for the NOTIFY and the rebuild it sets off.
    assert index.index.get(int(gid)) is not None
    # The write's own NOTIFY then has nothing left to build here.
    assert not await index.stale()
    assert (gid, "enter") in await _ping(api, shopper, lon, lat)

    moved = await api.patch(
        f"/v1/geofences/{gid}",
        token=manager,
        json={"geometry": {"type": "Point", "coordinates": [lon + 0.003, lat]}},
    )
    assert moved.status == 200
    fence = index.index.get(int(gid))
    assert fence is not None and abs(fence.geometry.x - (lon + 0.003)) < 1e-9

    gone = await api.delete(f"/v1/geofences/{gid}", token=manager)
    assert gone.status == 204
    assert index.index.get(int(gid)) is None

    imported = await api.put(
        "/v1/geofences",
        token=manager,
        json={"type": "FeatureCollection", "features": [_circle(tenant_a.store_ids[0], lon, lat)]},
    )
    assert imported.status == 200, imported.body
    [new] = imported.json["created"]
    assert index.index.get(int(new)) is not None
    assert {int(d) for d in imported.json["deleted"]}.isdisjoint(f.id for f in index.index.fences())
    # A change this process did not make is seen as one.
    async with db.acquire(api.raw.server.app[POOL]) as conn:
        await conn.execute("UPDATE geofences SET name = 'renamed by SQL' WHERE id = $1", int(new))
    assert await index.stale()
