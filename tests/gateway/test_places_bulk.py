"""Geofences in bulk over HTTP: the FeatureCollection import (PUT), export, and paged lists.

The import is all or nothing, so each refused import compares a full snapshot of the
geofences table before and after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from gateway.settings import Settings
from tests.support.client import ApiClient
from tests.support.tenants import Tenant

IMPORT_LIMIT = 2 * 1024 * 1024


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The shared test settings, with an import limit small enough to exceed cheaply.
    return Settings(
        data_dir=tmp_path,
        max_body_bytes=64 * 1024,
        max_import_bytes=IMPORT_LIMIT,
        db_pool_min=1,
        db_pool_max=4,
    )


W, S, E, N = 2.3690, 48.8530, 2.3700, 48.8540
SQUARE = [[W, S], [E, S], [E, N], [W, N], [W, S]]


async def _fences(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    rows = await conn.fetch("SELECT * FROM geofences ORDER BY id")
    return [tuple(r) for r in rows]


async def _ids(conn: asyncpg.Connection, merchant_id: int) -> set[int]:
    rows = await conn.fetch("SELECT id FROM geofences WHERE merchant_id = $1", merchant_id)
    return {r["id"] for r in rows}


def _circle(store_id: int, name: str = "door", *, lon: float = 2.3695, lat: float = 48.8535) -> Any:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"store_id": str(store_id), "name": name, "radius_m": 30},
    }


def _polygon(store_id: int, name: str = "car park") -> Any:
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in SQUARE]]},
        "properties": {"store_id": str(store_id), "name": name},
    }


def _collection(*features: Any) -> Any:
    return {"type": "FeatureCollection", "features": list(features)}


async def _export(api: ApiClient, token: str, query: str = "") -> Any:
    r = await api.get(f"/v1/geofences?format=geojson{query}", token=token)
    assert r.status == 200, r.body
    assert r.headers["Content-Type"].split(";")[0] == "application/geo+json"
    data = r.json
    assert data["type"] == "FeatureCollection"
    return data


# -- import ---------------------------------------------------------------------------------


async def test_put_creates_updates_and_deletes(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    g0, g1 = tenant_a.geofence_ids
    store0, store1 = tenant_a.store_ids
    kept = _polygon(store0, "redrawn door")
    kept["id"] = str(g0)
    new_circle = _circle(store1, "terrace", lon=2.3630, lat=48.8670)
    new_polygon = _polygon(store1, "car park")
    theirs_before = await conn.fetch(
        "SELECT * FROM geofences WHERE merchant_id = $1 ORDER BY id", tenant_b.merchant_id
    )

    r = await api.put(
        "/v1/geofences",
        token=tenant_a.tokens["manager"],
        json=_collection(new_circle, kept, new_polygon),
    )
    assert r.status == 200, r.body
    result = r.json
    assert result["updated"] == [str(g0)]
    assert result["deleted"] == [str(g1)]
    assert len(result["created"]) == 2
    assert all(isinstance(i, str) and i.isdigit() for i in result["created"])
    circle_id, polygon_id = (int(i) for i in result["created"])
    assert await _ids(conn, tenant_a.merchant_id) == {g0, circle_id, polygon_id}

    row = await conn.fetchrow("SELECT * FROM geofences WHERE id = $1", g0)
    assert row is not None
    assert (row["name"], row["kind"], row["radius_m"]) == ("redrawn door", "polygon", None)
    assert row["geometry"] == kept["geometry"]
    row = await conn.fetchrow("SELECT * FROM geofences WHERE id = $1", circle_id)
    assert row is not None
    assert (row["store_id"], row["name"], row["kind"], row["radius_m"]) == (
        store1,
        "terrace",
        "circle",
        30,
    )
    got = await api.get(f"/v1/geofences/{polygon_id}", token=tenant_a.tokens["reviewer"])
    assert got.json["properties"] == {"store_id": str(store1), "name": "car park"}

    theirs_after = await conn.fetch(
        "SELECT * FROM geofences WHERE merchant_id = $1 ORDER BY id", tenant_b.merchant_id
    )
    assert [tuple(r) for r in theirs_after] == [tuple(r) for r in theirs_before]


async def test_put_an_empty_collection_deletes_every_geofence_of_the_merchant(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    r = await api.put("/v1/geofences", token=tenant_a.tokens["admin"], json=_collection())
    assert r.status == 200, r.body
    assert r.json == {
        "created": [],
        "updated": [],
        "deleted": [str(i) for i in tenant_a.geofence_ids],
    }
    assert await _ids(conn, tenant_a.merchant_id) == set()
    assert await _ids(conn, tenant_b.merchant_id) == set(tenant_b.geofence_ids)


async def test_put_accepts_geo_json_and_numeric_ids(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    g0, g1 = tenant_a.geofence_ids
    first = _circle(tenant_a.store_ids[0], "one")
    first["id"] = g0
    second = _circle(tenant_a.store_ids[1], "two", lon=2.3622, lat=48.8666)
    second["id"] = str(g1)
    r = await api.put(
        "/v1/geofences",
        token=tenant_a.tokens["admin"],
        data=orjson.dumps(_collection(first, second)),
        headers={"Content-Type": "application/geo+json"},
    )
    assert r.status == 200, r.body
    assert r.json == {"created": [], "updated": [str(g0), str(g1)], "deleted": []}
    names = await conn.fetch("SELECT id, name FROM geofences WHERE id = ANY($1)", [g0, g1])
    assert {r["id"]: r["name"] for r in names} == {g0: "one", g1: "two"}


def _unclosed(f: Any) -> None:
    f["geometry"]["coordinates"][0].pop()


def _drop_name(f: Any) -> None:
    del f["properties"]["name"]


def _drop_store(f: Any) -> None:
    del f["properties"]["store_id"]


def _unknown_store(f: Any) -> None:
    f["properties"]["store_id"] = "987654321"


def _tiny_radius(f: Any) -> None:
    f["geometry"] = {"type": "Point", "coordinates": [2.3695, 48.8535]}
    f["properties"]["radius_m"] = 5


def _bow_tie(f: Any) -> None:
    f["geometry"]["coordinates"] = [[[W, S], [E, N], [E, S], [W, N], [W, S]]]


def _not_a_feature(f: Any) -> None:
    f.clear()
    f.update({"type": "Polygon", "coordinates": [SQUARE]})


def _bad_id(f: Any) -> None:
    f["id"] = "first"


BROKEN = [
    ("unclosed", _unclosed, "features[2].geometry.coordinates[0][3]"),
    ("bow-tie", _bow_tie, "features[2].geometry.coordinates[0][0]"),
    ("radius", _tiny_radius, "features[2].properties.radius_m"),
    ("name", _drop_name, "features[2].properties.name"),
    ("store-missing", _drop_store, "features[2].properties.store_id"),
    ("store-unknown", _unknown_store, "features[2].properties.store_id"),
    ("not-a-feature", _not_a_feature, "features[2].type"),
    ("bad-id", _bad_id, "features[2].id"),
]


@pytest.mark.parametrize(("breaks", "field"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
async def test_one_bad_feature_refuses_the_whole_collection(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, breaks: Any, field: str
) -> None:
    store0, store1 = tenant_a.store_ids
    updated = _circle(store0, "renamed")
    updated["id"] = str(tenant_a.geofence_ids[0])
    bad = _polygon(store1, "broken")
    breaks(bad)
    # Valid creates and an update around the bad one, and geofence 1 left out (a delete).
    body = _collection(_circle(store1, "new"), updated, bad, _polygon(store0, "also new"))
    before = await _fences(conn)
    r = await api.put("/v1/geofences", token=tenant_a.tokens["admin"], json=body)
    assert r.status == 422, r.body
    assert r.error_code == "validation_failed"
    fields = r.json["error"]["fields"]
    assert field in fields, fields
    assert all(k.startswith("features[2]") for k in fields), fields
    assert await _fences(conn) == before


async def test_every_bad_feature_is_named(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    first, second = _polygon(tenant_a.store_ids[0]), _polygon(tenant_a.store_ids[0])
    _unclosed(first)
    second["properties"]["radius_m"] = 30
    before = await _fences(conn)
    r = await api.put(
        "/v1/geofences",
        token=tenant_a.tokens["admin"],
        json=_collection(first, _circle(tenant_a.store_ids[0]), second),
    )
    assert r.status == 422
    assert {
        "features[0].geometry.coordinates[0][3]",
        "features[2].properties.radius_m",
    } <= set(r.json["error"]["fields"])
    assert await _fences(conn) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "FeatureCollection"}, "features"),
        ({"type": "FeatureCollection", "features": {}}, "features"),
        ({"type": "Feature", "features": []}, "type"),
        ({"features": []}, "type"),
        ([], "(body)"),
    ],
)
async def test_not_a_feature_collection_is_422(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, body: Any, field: str
) -> None:
    before = await _fences(conn)
    r = await api.put("/v1/geofences", token=tenant_a.tokens["admin"], json=body)
    assert r.status == 422, r.body
    assert field in r.json["error"]["fields"]
    assert await _fences(conn) == before


async def test_unknown_id_is_422_and_changes_nothing(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    ghost = _circle(tenant_a.store_ids[0], "ghost")
    ghost["id"] = "987654321"
    before = await _fences(conn)
    r = await api.put(
        "/v1/geofences",
        token=tenant_a.tokens["admin"],
        json=_collection(_circle(tenant_a.store_ids[1]), ghost),
    )
    assert r.status == 422, r.body
    assert "987654321" in r.json["error"]["fields"]["features[1].id"]
    assert await _fences(conn) == before


async def test_another_merchants_geofence_id_is_unknown(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    stolen = _circle(tenant_a.store_ids[0], "stolen")
    stolen["id"] = str(tenant_b.geofence_ids[0])
    before = await _fences(conn)
    r = await api.put("/v1/geofences", token=tenant_a.tokens["admin"], json=_collection(stolen))
    assert r.status == 422, r.body
    assert "features[0].id" in r.json["error"]["fields"]
    assert await _fences(conn) == before


async def test_another_merchants_store_is_422(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    before = await _fences(conn)
    r = await api.put(
        "/v1/geofences",
        token=tenant_a.tokens["admin"],
        json=_collection(_circle(tenant_a.store_ids[0]), _circle(tenant_b.store_ids[1])),
    )
    assert r.status == 422, r.body
    assert "features[1].properties.store_id" in r.json["error"]["fields"]
    assert await _fences(conn) == before


@pytest.mark.parametrize("second_id", ["same", "same-as-number"])
async def test_duplicated_id_is_422_and_changes_nothing(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, second_id: str
) -> None:
    gid = tenant_a.geofence_ids[0]
    first = _circle(tenant_a.store_ids[0], "first")
    first["id"] = str(gid)
    second = _polygon(tenant_a.store_ids[0], "second")
    second["id"] = str(gid) if second_id == "same" else gid
    before = await _fences(conn)
    r = await api.put(
        "/v1/geofences", token=tenant_a.tokens["admin"], json=_collection(first, second)
    )
    assert r.status == 422, r.body
    assert "features[0]" in r.json["error"]["fields"]["features[1].id"]
    assert await _fences(conn) == before


async def test_scoped_manager_replaces_only_its_own_stores_geofences(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    g0, g1 = tenant_a.geofence_ids
    store0 = tenant_a.store_ids[0]
    store1_rows = await conn.fetch(
        "SELECT * FROM geofences WHERE store_id = $1 ORDER BY id", tenant_a.store_ids[1]
    )
    r = await api.put(
        "/v1/geofences",
        token=tenant_a.tokens["manager@store0"],
        json=_collection(_polygon(store0, "whole shop")),
    )
    assert r.status == 200, r.body
    assert r.json["updated"] == []
    assert r.json["deleted"] == [str(g0)]
    assert len(r.json["created"]) == 1
    new = int(r.json["created"][0])
    assert await _ids(conn, tenant_a.merchant_id) == {new, g1}
    after = await conn.fetch(
        "SELECT * FROM geofences WHERE store_id = $1 ORDER BY id", tenant_a.store_ids[1]
    )
    assert [tuple(r) for r in after] == [tuple(r) for r in store1_rows]

    # Its export holds only its store, and PUTting that back changes nothing.
    export = await _export(api, tenant_a.tokens["manager@store0"])
    assert [f["id"] for f in export["features"]] == [str(new)]
    r = await api.put("/v1/geofences", token=tenant_a.tokens["manager@store0"], json=export)
    assert r.status == 200, r.body
    assert r.json == {"created": [], "updated": [str(new)], "deleted": []}
    assert await _ids(conn, tenant_a.merchant_id) == {new, g1}


async def test_scoped_manager_cannot_import_into_another_store(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    token = tenant_a.tokens["manager@store0"]
    g0, g1 = tenant_a.geofence_ids
    store0, store1 = tenant_a.store_ids
    theirs = _circle(store0, "taken over")
    theirs["id"] = str(g1)
    mine = _circle(store0, "mine")
    mine["id"] = str(g0)
    before = await _fences(conn)
    for body in [
        _collection(mine, _circle(store1, "intruder")),
        _collection(mine, theirs),
    ]:
        r = await api.put("/v1/geofences", token=token, json=body)
        assert r.status == 403, r.body
        assert r.error_code == "out_of_scope"
        assert await _fences(conn) == before


@pytest.mark.parametrize("role", ["reviewer", "pos", "app", "shopper"])
async def test_only_writers_import(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, role: str
) -> None:
    before = await _fences(conn)
    r = await api.put("/v1/geofences", token=tenant_a.tokens[role], json=_collection())
    assert r.status == 403
    assert await _fences(conn) == before


# -- export -----------------------------------------------------------------------------------


async def test_export_round_trip_changes_nothing(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    store0, store1 = tenant_a.store_ids
    hole = [[2.3694, 48.8534], [2.3694, 48.8536], [2.3696, 48.8536], [2.3694, 48.8534]]
    with_hole = _polygon(store1, "ring")
    with_hole["geometry"]["coordinates"].append(hole)
    with_hole["properties"]["floor"] = -1
    shifted = [[lon + 0.002, lat] for lon, lat in SQUARE]
    multi = {
        "type": "Feature",
        "geometry": {"type": "MultiPolygon", "coordinates": [[SQUARE], [shifted]]},
        "properties": {"store_id": str(store0), "name": "two halls", "tags": ["a", "b"]},
    }
    for feature in (with_hole, multi, _circle(store0, "3D", lon=2.36, lat=48.85)):
        r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=feature)
        assert r.status == 201, r.body

    export = await _export(api, tenant_a.tokens["reviewer"])
    ids = [f["id"] for f in export["features"]]
    assert ids == sorted(ids, key=int)
    assert {int(i) for i in ids} == await _ids(conn, tenant_a.merchant_id)
    assert not {str(i) for i in tenant_b.geofence_ids} & set(ids)
    for f in export["features"]:
        one = await api.get(f"/v1/geofences/{f['id']}", token=tenant_a.tokens["reviewer"])
        assert one.json == f

    stable = "SELECT * FROM geofences ORDER BY id"  # all but updated_at, compared below
    before = [{k: v for k, v in r.items() if k != "updated_at"} for r in await conn.fetch(stable)]
    r = await api.request(
        "PUT",
        "/v1/geofences",
        token=tenant_a.tokens["manager"],
        data=orjson.dumps(export),
        headers={"Content-Type": "application/geo+json"},
    )
    assert r.status == 200, r.body
    assert r.json == {"created": [], "updated": ids, "deleted": []}
    again = await _export(api, tenant_a.tokens["reviewer"])
    assert again == export
    after = [{k: v for k, v in r.items() if k != "updated_at"} for r in await conn.fetch(stable)]
    # Only the timestamps of the rewrite move.
    assert after == before


async def test_export_filtered_by_store(api: ApiClient, tenant_a: Tenant) -> None:
    store1 = tenant_a.store_ids[1]
    export = await _export(api, tenant_a.tokens["admin"], f"&store_id={store1}")
    assert [f["id"] for f in export["features"]] == [str(tenant_a.geofence_ids[1])]


async def test_export_of_nothing_is_an_empty_collection(api: ApiClient, tenant_a: Tenant) -> None:
    r = await api.put("/v1/geofences", token=tenant_a.tokens["admin"], json=_collection())
    assert r.status == 200
    assert await _export(api, tenant_a.tokens["admin"]) == _collection()


def _grid(tenant: Tenant, count: int) -> list[Any]:
    """``count`` small circles on a grid, alternating between the tenant's two stores."""
    return [
        _circle(
            tenant.store_ids[i % 2],
            f"fence {i}",
            lon=round(2.30 + (i % 100) * 0.001, 6),
            lat=round(48.80 + (i // 100) * 0.001, 6),
        )
        for i in range(count)
    ]


async def _put_chunked(api: ApiClient, token: str, body: Any) -> tuple[int, Any]:
    """PUT without a Content-Length, in 64 KiB chunks, as a streaming client would."""
    raw = orjson.dumps(body)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start : start + 64 * 1024]

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/geo+json"}
    async with api.raw.request("PUT", "/v1/geofences", data=chunks(), headers=headers) as resp:
        assert resp.headers.get("Content-Type", "").startswith("application/json")
        answer = orjson.loads(await resp.read())
        api.spec.check("PUT", "/v1/geofences", resp.status, "application/json", answer)
        return resp.status, answer


async def test_export_of_thousands_streams_every_page(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    # More than two of the export's 2000-row pages, so the joins between pages are exercised.
    count = 4500
    features = _grid(tenant_a, count)
    status, result = await _put_chunked(api, tenant_a.tokens["admin"], _collection(*features))
    assert status == 200, result
    assert len(result["created"]) == count
    assert len(set(result["created"])) == count
    assert result["deleted"] == [str(g) for g in tenant_a.geofence_ids]
    assert await conn.fetchval("SELECT count(*) FROM geofences") == count

    export = await _export(api, tenant_a.tokens["reviewer"])
    got = export["features"]
    assert len(got) == count
    assert [f["id"] for f in got] == sorted(result["created"], key=int)
    assert {f["properties"]["name"] for f in got} == {f"fence {i}" for i in range(count)}
    by_name = {f["properties"]["name"]: f for f in got}
    for i in (0, 1999, 2000, 2001, 3999, 4000, count - 1):
        assert by_name[f"fence {i}"]["geometry"] == features[i]["geometry"], i

    # The store filter streams the same way.
    half = await _export(api, tenant_a.tokens["admin"], f"&store_id={tenant_a.store_ids[1]}")
    assert len(half["features"]) == count // 2

    # Putting the whole export back keeps every id and deletes nothing.
    status, again = await _put_chunked(api, tenant_a.tokens["manager"], export)
    assert status == 200, again
    assert again["created"] == [] and again["deleted"] == []
    assert again["updated"] == [f["id"] for f in got]
    assert await _export(api, tenant_a.tokens["reviewer"]) == export


async def test_an_import_larger_than_the_body_limit_is_accepted(
    api: ApiClient, settings: Settings, tenant_a: Tenant
) -> None:
    # GATEWAY_MAX_IMPORT_BYTES, not GATEWAY_MAX_BODY_BYTES, bounds a bulk import.
    body = orjson.dumps(_collection(*_grid(tenant_a, 1000)))
    assert settings.max_body_bytes < len(body) < settings.max_import_bytes
    r = await api.put(
        "/v1/geofences",
        token=tenant_a.tokens["admin"],
        data=body,
        headers={"Content-Type": "application/geo+json"},
    )
    assert r.status == 200, r.body
    assert len(r.json["created"]) == 1000


async def test_an_import_larger_than_the_import_limit_is_413(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, settings: Settings
) -> None:
    before = await _fences(conn)
    features = _grid(tenant_a, 1000)
    while len(orjson.dumps(features)) <= settings.max_import_bytes:
        features += features
    status, answer = await _put_chunked(api, tenant_a.tokens["admin"], _collection(*features))
    assert status == 413, answer
    assert answer["error"]["code"] == "payload_too_large"
    assert await _fences(conn) == before


# -- paged list -------------------------------------------------------------------------------


async def _make_many(api: ApiClient, tenant: Tenant, per_store: int) -> list[str]:
    features = [
        _circle(store, f"{store}-{i}", lon=2.36 + i * 0.001, lat=48.85)
        for store in tenant.store_ids
        for i in range(per_store)
    ]
    old = []
    for gid in tenant.geofence_ids:
        keep = _circle(tenant.store_ids[0], f"old {gid}")
        keep["id"] = str(gid)
        old.append(keep)
    r = await api.put(
        "/v1/geofences", token=tenant.tokens["admin"], json=_collection(*old, *features)
    )
    assert r.status == 200, r.body
    return sorted([str(g) for g in tenant.geofence_ids] + r.json["created"], key=int)


async def _walk(api: ApiClient, token: str, query: str) -> tuple[list[Any], int]:
    items: list[Any] = []
    pages = 0
    cursor: str | None = None
    while True:
        path = f"/v1/geofences?{query}" + (f"&cursor={cursor}" if cursor else "")
        r = await api.get(path, token=token)
        assert r.status == 200, r.body
        page = r.json["items"]
        items += page
        pages += 1
        cursor = r.json["next_cursor"]
        if cursor is None:
            return items, pages
        assert cursor == page[-1]["id"]
        assert pages < 100


async def test_list_pages_through_every_geofence(
    api: ApiClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    every = await _make_many(api, tenant_a, 6)
    assert len(every) == 14
    first = await api.get("/v1/geofences", token=tenant_a.tokens["reviewer"])
    assert [f["id"] for f in first.json["items"]] == every
    assert first.json["next_cursor"] is None
    assert all(f["type"] == "Feature" for f in first.json["items"])

    items, pages = await _walk(api, tenant_a.tokens["reviewer"], "limit=4")
    assert [f["id"] for f in items] == every
    assert pages == 4
    assert not {str(g) for g in tenant_b.geofence_ids} & {f["id"] for f in items}


async def test_list_filtered_by_store(api: ApiClient, tenant_a: Tenant) -> None:
    await _make_many(api, tenant_a, 5)
    store1 = tenant_a.store_ids[1]
    items, pages = await _walk(api, tenant_a.tokens["admin"], f"store_id={store1}&limit=2")
    assert len(items) == 5
    assert pages == 3
    assert {f["properties"]["store_id"] for f in items} == {str(store1)}


async def test_scoped_manager_lists_only_its_store(api: ApiClient, tenant_a: Tenant) -> None:
    await _make_many(api, tenant_a, 3)
    store0, store1 = tenant_a.store_ids
    token = tenant_a.tokens["manager@store0"]
    items, _ = await _walk(api, token, "limit=2")
    # The fixtures' two fences were both moved to store 0 by _make_many.
    assert len(items) == 5
    assert {f["properties"]["store_id"] for f in items} == {str(store0)}
    r = await api.get(f"/v1/geofences?store_id={store1}", token=token)
    assert r.status == 403
    assert r.error_code == "out_of_scope"
    r = await api.get(f"/v1/geofences?store_id={store1}&format=geojson", token=token)
    assert r.status == 403


async def test_list_filtered_by_another_merchants_store_is_empty(
    api: ApiClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    r = await api.get(
        f"/v1/geofences?store_id={tenant_b.store_ids[0]}", token=tenant_a.tokens["admin"]
    )
    assert r.status == 200
    assert r.json == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("format=kml", "format"),
        ("format=GEOJSON", "format"),
        ("format=", "format"),
        ("limit=0", "limit"),
        ("limit=5001", "limit"),
        ("limit=many", "limit"),
        ("cursor=next", "cursor"),
        ("store_id=main", "store_id"),
        ("store_id=-1", "store_id"),
    ],
)
async def test_list_bad_query_is_422(
    api: ApiClient, tenant_a: Tenant, query: str, field: str
) -> None:
    r = await api.get(f"/v1/geofences?{query}", token=tenant_a.tokens["admin"])
    assert r.status == 422, r.body
    assert r.error_code == "validation_failed"
    assert field in r.json["error"]["fields"]


async def test_a_swapped_feature_refuses_the_collection_and_says_which(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    store0, store1 = tenant_a.store_ids
    swapped = _circle(store1, "swapped", lon=48.8535, lat=2.3695)
    body = _collection(_circle(store0, "fine"), swapped)
    before = await _fences(conn)
    r = await api.put("/v1/geofences", token=tenant_a.tokens["admin"], json=body)
    assert (r.status, r.error_code) == (422, "fence_too_far"), r.body
    [(where, why)] = r.json["error"]["fields"].items()
    assert where == "features[1].geometry.coordinates"
    assert "did you swap longitude and latitude?" in why
    assert await _fences(conn) == before
