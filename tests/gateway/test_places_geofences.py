"""Geofences one at a time over HTTP: create, read, patch, delete, and every validation error.

A refused request must write nothing, so each failure compares the whole geofences table
before and after. The last test checks the in-memory index picks up an API change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import Any

import asyncpg
import orjson
import pytest

from geo import geojson
from tests.support.client import ApiClient
from tests.support.tenants import Tenant

# A ~75 m x 110 m block near the Bastille, well away from the fixtures' circles.
W, S, E, N = 2.3690, 48.8530, 2.3700, 48.8540
SQUARE = [[W, S], [E, S], [E, N], [W, N], [W, S]]


async def _fences(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    """Every geofence row, to show that a refused request wrote nothing."""
    rows = await conn.fetch("SELECT * FROM geofences ORDER BY id")
    return [tuple(r) for r in rows]


def _circle(store_id: int, *, lon: float = 2.3695, lat: float = 48.8535, radius: float = 40) -> Any:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"store_id": str(store_id), "name": "front door", "radius_m": radius},
    }


def _polygon(store_id: int, ring: list[list[float]] | None = None) -> Any:
    return {
        "type": "Feature",
        # Copies: the cases below edit positions in place.
        "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring or SQUARE]]},
        "properties": {"store_id": str(store_id), "name": "car park"},
    }


def _ring_around(lon: float, lat: float, corners: int, radius_deg: float = 0.001) -> list[Any]:
    """A closed, convex ring of ``corners`` distinct positions (plus the closing one)."""
    ring = [
        [
            round(lon + radius_deg * math.cos(2 * math.pi * k / corners), 7),
            round(lat + radius_deg * math.sin(2 * math.pi * k / corners), 7),
        ]
        for k in range(corners)
    ]
    return [*ring, ring[0]]


# -- create and read ----------------------------------------------------------------------------


async def test_create_circle_answers_the_stored_feature(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    store = tenant_a.store_ids[0]
    feature = _circle(store)
    feature["properties"]["floor"] = 2
    r = await api.post("/v1/geofences", token=tenant_a.tokens["manager"], json=feature)
    assert r.status == 201, r.body
    body = r.json
    assert body["type"] == "Feature"
    assert isinstance(body["id"], str) and body["id"].isdigit()
    assert body["geometry"] == {"type": "Point", "coordinates": [2.3695, 48.8535]}
    assert body["properties"] == {
        "store_id": str(store),
        "name": "front door",
        "radius_m": 40,
        "floor": 2,
    }
    row = await conn.fetchrow("SELECT * FROM geofences WHERE id = $1", int(body["id"]))
    assert row is not None
    assert (row["merchant_id"], row["store_id"], row["kind"]) == (
        tenant_a.merchant_id,
        store,
        "circle",
    )
    assert (row["name"], row["radius_m"], row["properties"]) == ("front door", 40, {"floor": 2})

    r = await api.get(f"/v1/geofences/{body['id']}", token=tenant_a.tokens["reviewer"])
    assert r.status == 200, r.body
    assert r.json == body


async def test_create_polygon_and_read_it_back(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    store = tenant_a.store_ids[1]
    r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=_polygon(store))
    assert r.status == 201, r.body
    assert r.json["geometry"] == {"type": "Polygon", "coordinates": [SQUARE]}
    assert r.json["properties"] == {"store_id": str(store), "name": "car park"}
    row = await conn.fetchrow(
        "SELECT kind, radius_m FROM geofences WHERE id = $1", int(r.json["id"])
    )
    assert row is not None and (row["kind"], row["radius_m"]) == ("polygon", None)
    got = await api.get(f"/v1/geofences/{r.json['id']}", token=tenant_a.tokens["manager"])
    assert got.status == 200
    assert got.json == r.json


async def test_create_polygon_with_a_hole(api: ApiClient, tenant_a: Tenant) -> None:
    hole = [[2.3694, 48.8534], [2.3694, 48.8536], [2.3696, 48.8536], [2.3696, 48.8534]]
    hole.append(hole[0])
    feature = _polygon(tenant_a.store_ids[0])
    feature["geometry"]["coordinates"] = [SQUARE, hole]
    r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=feature)
    assert r.status == 201, r.body
    assert r.json["geometry"]["coordinates"] == [SQUARE, hole]


async def test_create_multipolygon(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    shifted = [[lon + 0.002, lat] for lon, lat in SQUARE]
    feature = {
        "type": "Feature",
        "geometry": {"type": "MultiPolygon", "coordinates": [[SQUARE], [shifted]]},
        "properties": {"store_id": str(tenant_a.store_ids[0]), "name": "two halls"},
    }
    r = await api.post("/v1/geofences", token=tenant_a.tokens["manager"], json=feature)
    assert r.status == 201, r.body
    assert r.json["geometry"] == feature["geometry"]
    assert r.json["properties"]["name"] == "two halls"
    assert "radius_m" not in r.json["properties"]
    kind = await conn.fetchval("SELECT kind FROM geofences WHERE id = $1", int(r.json["id"]))
    assert kind == "polygon"


async def test_geo_json_content_type_is_accepted(api: ApiClient, tenant_a: Tenant) -> None:
    r = await api.post(
        "/v1/geofences",
        token=tenant_a.tokens["admin"],
        data=orjson.dumps(_circle(tenant_a.store_ids[0])),
        headers={"Content-Type": "application/geo+json"},
    )
    assert r.status == 201, r.body
    assert r.json["properties"]["radius_m"] == 40


@pytest.mark.parametrize("radius", [10, 10.0, 250.5, 10_000])
async def test_radius_limits_are_inclusive(api: ApiClient, tenant_a: Tenant, radius: float) -> None:
    feature = _circle(tenant_a.store_ids[0], radius=radius)
    r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=feature)
    assert r.status == 201, r.body
    assert r.json["properties"]["radius_m"] == radius


async def test_a_polygon_of_exactly_max_vertices_is_accepted(
    api: ApiClient, tenant_a: Tenant
) -> None:
    ring = _ring_around(2.3695, 48.8535, geojson.MAX_VERTICES - 1)
    assert len(ring) == geojson.MAX_VERTICES
    feature = _polygon(tenant_a.store_ids[0], ring)
    r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=feature)
    assert r.status == 201, r.body
    assert len(r.json["geometry"]["coordinates"][0]) == geojson.MAX_VERTICES


async def test_a_numeric_store_id_is_accepted_and_answered_as_a_string(
    api: ApiClient, tenant_a: Tenant
) -> None:
    feature = _circle(tenant_a.store_ids[0])
    feature["properties"]["store_id"] = tenant_a.store_ids[0]
    r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=feature)
    assert r.status == 201, r.body
    assert r.json["properties"]["store_id"] == str(tenant_a.store_ids[0])


@pytest.mark.parametrize("raw_id", ["999999999", "abc", "1" * 19])
async def test_unknown_geofence_is_404(api: ApiClient, tenant_a: Tenant, raw_id: str) -> None:
    token = tenant_a.tokens["admin"]
    assert (await api.get(f"/v1/geofences/{raw_id}", token=token)).status == 404
    r = await api.patch(f"/v1/geofences/{raw_id}", token=token, json={"properties": {"name": "x"}})
    assert r.status == 404
    assert (await api.delete(f"/v1/geofences/{raw_id}", token=token)).status == 404


# -- validation ---------------------------------------------------------------------------------


def _set_position(index: int, position: list[float]) -> Any:
    def change(f: Any) -> None:
        f["geometry"]["coordinates"][0][index] = position

    return change


def _set_ring(ring: list[list[float]]) -> Any:
    def change(f: Any) -> None:
        f["geometry"]["coordinates"] = [ring]

    return change


def _bow_tie(f: Any) -> None:
    # The edges 0-1 and 2-3 cross in the middle of the block.
    f["geometry"]["coordinates"] = [[[W, S], [E, N], [E, S], [W, N], [W, S]]]


def _antimeridian(f: Any) -> None:
    f["geometry"]["coordinates"] = [
        [[179.9, -17.0], [-179.9, -17.0], [-179.9, -16.9], [179.9, -16.9], [179.9, -17.0]]
    ]


def _too_many_vertices(f: Any) -> None:
    f["geometry"]["coordinates"] = [_ring_around(2.3695, 48.8535, geojson.MAX_VERTICES)]


def _swap_circle(f: Any) -> None:
    # Tokyo written [lat, lon]: 139.7 cannot be a latitude.
    f["geometry"] = {"type": "Point", "coordinates": [35.6812, 139.7671]}
    f["properties"]["radius_m"] = 50


def _swap_polygon(f: Any) -> None:
    ring = [[lat, lon] for lon, lat in _ring_around(139.7671, 35.6812, 4)]
    f["geometry"]["coordinates"] = [ring]


def _props(**changes: Any) -> Any:
    def change(f: Any) -> None:
        for key, value in changes.items():
            if value is _DROP:
                f["properties"].pop(key, None)
            else:
                f["properties"][key] = value

    return change


def _circle_props(**changes: Any) -> Any:
    def change(f: Any) -> None:
        f["geometry"] = {"type": "Point", "coordinates": [2.3695, 48.8535]}
        f["properties"]["radius_m"] = 40
        _props(**changes)(f)

    return change


_DROP = object()

# (id, how to break a valid polygon Feature, the field path the 422 must name, a word the
# message must contain)
INVALID = [
    ("lon-out-of-range", _set_position(2, [181.5, N]), "geometry.coordinates[0][2][0]", "181.5"),
    ("lon-far-out", _set_position(1, [-200.0, S]), "geometry.coordinates[0][1][0]", "-200"),
    ("lat-out-of-range", _set_position(2, [E, 200.0]), "geometry.coordinates[0][2][1]", "200"),
    ("lat-not-a-number", _set_position(2, [E, "48.85"]), "geometry.coordinates[0][2][1]", ""),
    ("lat-missing", _set_position(2, [E]), "geometry.coordinates[0][2]", ""),
    ("swapped-point", _swap_circle, "geometry.coordinates", "[lat, lon]"),
    ("swapped-ring", _swap_polygon, "geometry.coordinates[0][0]", "[lat, lon]"),
    (
        "unclosed",
        _set_ring([[W, S], [E, S], [E, N], [W, N]]),
        "geometry.coordinates[0][3]",
        "not closed",
    ),
    ("too-few-positions", _set_ring([[W, S], [E, N], [W, S]]), "geometry.coordinates[0]", "4"),
    ("bow-tie", _bow_tie, "geometry.coordinates[0][0]", "[2.3695, 48.8535]"),
    ("antimeridian", _antimeridian, "geometry.coordinates[0][1]", "antimeridian"),
    ("too-many-vertices", _too_many_vertices, "geometry.coordinates", str(geojson.MAX_VERTICES)),
    ("radius-below-10", _circle_props(radius_m=9.99), "properties.radius_m", "10"),
    ("radius-zero", _circle_props(radius_m=0), "properties.radius_m", ""),
    ("radius-above-10000", _circle_props(radius_m=10_000.5), "properties.radius_m", "10000"),
    ("radius-missing", _circle_props(radius_m=_DROP), "properties.radius_m", "radius_m"),
    ("radius-a-string", _circle_props(radius_m="40"), "properties.radius_m", ""),
    ("radius-on-polygon", _props(radius_m=40), "properties.radius_m", "Point"),
    ("name-missing", _props(name=_DROP), "properties.name", ""),
    ("name-empty", _props(name=""), "properties.name", ""),
    ("name-not-a-string", _props(name=7), "properties.name", ""),
    ("name-too-long", _props(name="x" * 201), "properties.name", ""),
    ("store-missing", _props(store_id=_DROP), "properties.store_id", ""),
    ("store-not-an-id", _props(store_id="main"), "properties.store_id", ""),
    ("store-unknown", _props(store_id="987654321"), "properties.store_id", "987654321"),
    ("linestring", _set_ring([[W, S], [E, N]]), "geometry.coordinates[0]", ""),
]


@pytest.mark.parametrize(
    ("breaks", "field", "hint"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
async def test_invalid_geofence_is_422_naming_the_path(
    api: ApiClient,
    conn: asyncpg.Connection,
    tenant_a: Tenant,
    breaks: Any,
    field: str,
    hint: str,
) -> None:
    feature = _polygon(tenant_a.store_ids[0])
    breaks(feature)
    before = await _fences(conn)
    r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=feature)
    assert r.status == 422, r.body
    assert r.error_code == "validation_failed"
    fields = r.json["error"]["fields"]
    assert field in fields, fields
    assert hint in fields[field], fields
    assert await _fences(conn) == before


async def test_bow_tie_message_says_where_and_which_edges(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    feature = _polygon(tenant_a.store_ids[0])
    _bow_tie(feature)
    before = await _fences(conn)
    r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=feature)
    assert r.status == 422
    message = r.json["error"]["fields"]["geometry.coordinates[0][0]"]
    assert "intersects itself at [2.3695, 48.8535]" in message
    assert "0-1" in message and "2-3" in message
    assert "2.3695" in r.json["error"]["message"]
    assert await _fences(conn) == before


async def test_every_problem_is_reported_at_once(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    feature = _polygon(tenant_a.store_ids[0])
    feature["geometry"]["coordinates"][0][1] = [190.0, S]
    feature["geometry"]["coordinates"][0][2] = [E, -300.0]
    before = await _fences(conn)
    r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=feature)
    assert r.status == 422
    fields = r.json["error"]["fields"]
    assert {"geometry.coordinates[0][1][0]", "geometry.coordinates[0][2][1]"} <= set(fields)
    assert await _fences(conn) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "Polygon", "coordinates": [SQUARE]}, "type"),
        ({"type": "FeatureCollection", "features": []}, "type"),
        ({"type": "Feature", "properties": {"name": "x"}}, "geometry"),
        ({"type": "Feature", "geometry": None, "properties": {"name": "x"}}, "geometry"),
        (
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": SQUARE}},
            "geometry.type",
        ),
        ([1, 2, 3], "(body)"),
        ("a string", "(body)"),
    ],
)
async def test_not_a_fence_feature_is_422(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, body: Any, field: str
) -> None:
    before = await _fences(conn)
    r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=body)
    assert r.status == 422, r.body
    assert field in r.json["error"]["fields"], r.json
    assert await _fences(conn) == before


async def test_another_merchants_store_is_422_and_writes_nothing(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    before = await _fences(conn)
    theirs = tenant_b.store_ids[0]
    r = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=_circle(theirs))
    assert r.status == 422, r.body
    assert "properties.store_id" in r.json["error"]["fields"]
    assert await _fences(conn) == before
    count = "SELECT count(*) FROM geofences WHERE merchant_id = $1 AND store_id = $2"
    assert await conn.fetchval(count, tenant_a.merchant_id, theirs) == 0


async def test_scoped_manager_cannot_draw_on_another_store(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    token = tenant_a.tokens["manager@store0"]
    before = await _fences(conn)
    r = await api.post("/v1/geofences", token=token, json=_circle(tenant_a.store_ids[1]))
    assert r.status == 403
    assert r.error_code == "out_of_scope"
    assert await _fences(conn) == before
    r = await api.post("/v1/geofences", token=token, json=_circle(tenant_a.store_ids[0]))
    assert r.status == 201, r.body


@pytest.mark.parametrize("role", ["reviewer", "pos", "app", "shopper"])
async def test_only_writers_create_geofences(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, role: str
) -> None:
    before = await _fences(conn)
    r = await api.post(
        "/v1/geofences", token=tenant_a.tokens[role], json=_circle(tenant_a.store_ids[0])
    )
    assert r.status == 403
    assert r.error_code == "wrong_role"
    assert await _fences(conn) == before


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b"{}", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"{}", "", 415, "unsupported_media_type"),
        (b'{"type": "Feature",', "application/json", 400, "invalid_json"),
        (b"{'type': 'Feature'}", "application/geo+json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (b"  \n ", "application/geo+json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
    ],
)
async def test_bad_bodies_are_refused_before_validation(
    api: ApiClient,
    conn: asyncpg.Connection,
    tenant_a: Tenant,
    data: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    before = await _fences(conn)
    headers = {"Content-Type": content_type} if content_type else {}
    for method in ("POST", "PUT"):
        r = await api.request(
            method, "/v1/geofences", token=tenant_a.tokens["admin"], data=data, headers=headers
        )
        assert r.status == status, (method, r.body)
        assert r.error_code == code
    r = await api.patch(
        f"/v1/geofences/{tenant_a.geofence_ids[0]}",
        token=tenant_a.tokens["admin"],
        data=data,
        headers=headers,
    )
    assert r.status == status, r.body
    assert await _fences(conn) == before


# -- patch and delete ---------------------------------------------------------------------------


async def test_patch_circle_into_polygon_drops_its_radius(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    created = await api.post(
        "/v1/geofences", token=tenant_a.tokens["admin"], json=_circle(tenant_a.store_ids[0])
    )
    gid = created.json["id"]
    square = {"type": "Polygon", "coordinates": [SQUARE]}
    r = await api.patch(
        f"/v1/geofences/{gid}", token=tenant_a.tokens["manager"], json={"geometry": square}
    )
    assert r.status == 200, r.body
    assert r.json["id"] == gid
    assert r.json["geometry"] == square
    assert r.json["properties"] == {"store_id": str(tenant_a.store_ids[0]), "name": "front door"}
    row = await conn.fetchrow("SELECT kind, radius_m FROM geofences WHERE id = $1", int(gid))
    assert row is not None and (row["kind"], row["radius_m"]) == ("polygon", None)

    # And back: a circle again needs its radius in the same patch.
    point = {"type": "Point", "coordinates": [2.3695, 48.8535]}
    before = await _fences(conn)
    r = await api.patch(
        f"/v1/geofences/{gid}", token=tenant_a.tokens["manager"], json={"geometry": point}
    )
    assert r.status == 422
    assert "properties.radius_m" in r.json["error"]["fields"]
    assert await _fences(conn) == before
    r = await api.patch(
        f"/v1/geofences/{gid}",
        token=tenant_a.tokens["manager"],
        json={"geometry": point, "properties": {"radius_m": 75}},
    )
    assert r.status == 200, r.body
    assert r.json["properties"]["radius_m"] == 75
    row = await conn.fetchrow("SELECT kind, radius_m FROM geofences WHERE id = $1", int(gid))
    assert row is not None and (row["kind"], row["radius_m"]) == ("circle", 75)


async def test_patch_name_and_extra_properties(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    feature = _polygon(tenant_a.store_ids[0])
    feature["properties"].update({"floor": 1, "colour": "red"})
    created = await api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=feature)
    gid = created.json["id"]
    r = await api.patch(
        f"/v1/geofences/{gid}",
        token=tenant_a.tokens["admin"],
        json={"properties": {"name": "visitor parking", "floor": None, "level": "B2"}},
    )
    assert r.status == 200, r.body
    assert r.json["geometry"] == created.json["geometry"]
    assert r.json["properties"] == {
        "store_id": str(tenant_a.store_ids[0]),
        "name": "visitor parking",
        "colour": "red",
        "level": "B2",
    }
    row = await conn.fetchrow("SELECT name, properties FROM geofences WHERE id = $1", int(gid))
    assert row is not None
    assert (row["name"], row["properties"]) == ("visitor parking", {"colour": "red", "level": "B2"})


async def test_patch_with_null_properties_changes_only_the_geometry(
    api: ApiClient, tenant_a: Tenant
) -> None:
    gid = tenant_a.geofence_ids[0]
    before = await api.get(f"/v1/geofences/{gid}", token=tenant_a.tokens["admin"])
    point = {"type": "Point", "coordinates": [2.3525, 48.8567]}
    r = await api.patch(
        f"/v1/geofences/{gid}",
        token=tenant_a.tokens["admin"],
        json={"type": "Feature", "geometry": point, "properties": None},
    )
    assert r.status == 200, r.body
    assert r.json["geometry"] == point
    assert r.json["properties"] == before.json["properties"]


async def test_patch_moves_a_geofence_to_another_store(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    gid = tenant_a.geofence_ids[0]
    store1 = tenant_a.store_ids[1]
    r = await api.patch(
        f"/v1/geofences/{gid}",
        token=tenant_a.tokens["admin"],
        json={"properties": {"store_id": str(store1)}},
    )
    assert r.status == 200, r.body
    assert r.json["properties"]["store_id"] == str(store1)
    assert await conn.fetchval("SELECT store_id FROM geofences WHERE id = $1", gid) == store1


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"geometry": {"type": "Polygon", "coordinates": [SQUARE[:-1]]}}, "coordinates[0][3]"),
        ({"geometry": None}, "geometry"),
        ({"properties": {"radius_m": 5}}, "properties.radius_m"),
        ({"properties": {"radius_m": 20_000}}, "properties.radius_m"),
        ({"properties": {"name": ""}}, "properties.name"),
        ({"properties": {"name": None}}, "properties.name"),
        ({"properties": {"store_id": "987654321"}}, "properties.store_id"),
        ({"properties": {"store_id": None}}, "properties.store_id"),
        ({"properties": "renamed"}, "properties"),
        ({"properties": []}, "properties"),
        ({"properties": ""}, "properties"),
        ({"properties": False}, "properties"),
        ({"bbox": [0, 0, 1, 1]}, "bbox"),
    ],
)
async def test_bad_patch_is_422_and_changes_nothing(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, patch: Any, field: str
) -> None:
    before = await _fences(conn)
    r = await api.patch(
        f"/v1/geofences/{tenant_a.geofence_ids[0]}", token=tenant_a.tokens["admin"], json=patch
    )
    assert r.status == 422, r.body
    fields = r.json["error"]["fields"]
    assert any(k == field or k.endswith(field) for k in fields), fields
    assert await _fences(conn) == before


async def test_patch_into_another_merchants_store_is_422(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    before = await _fences(conn)
    r = await api.patch(
        f"/v1/geofences/{tenant_a.geofence_ids[0]}",
        token=tenant_a.tokens["admin"],
        json={"properties": {"store_id": str(tenant_b.store_ids[0])}},
    )
    assert r.status == 422
    assert "properties.store_id" in r.json["error"]["fields"]
    assert await _fences(conn) == before


async def test_scoped_manager_cannot_touch_or_move_geofences_out_of_its_store(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    token = tenant_a.tokens["manager@store0"]
    mine, theirs = tenant_a.geofence_ids
    before = await _fences(conn)
    rename = {"properties": {"name": "mine"}}
    for r in [
        await api.get(f"/v1/geofences/{theirs}", token=token),
        await api.patch(f"/v1/geofences/{theirs}", token=token, json=rename),
        await api.delete(f"/v1/geofences/{theirs}", token=token),
        await api.patch(
            f"/v1/geofences/{mine}",
            token=token,
            json={"properties": {"store_id": str(tenant_a.store_ids[1])}},
        ),
    ]:
        assert r.status == 403, r.body
        assert r.error_code == "out_of_scope"
    assert await _fences(conn) == before
    r = await api.patch(f"/v1/geofences/{mine}", token=token, json=rename)
    assert r.status == 200, r.body


async def test_another_merchants_geofence_is_404_and_unchanged(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    theirs = tenant_b.geofence_ids[0]
    token = tenant_a.tokens["admin"]
    before = await _fences(conn)
    assert (await api.get(f"/v1/geofences/{theirs}", token=token)).status == 404
    r = await api.patch(
        f"/v1/geofences/{theirs}",
        token=token,
        json={"properties": {"store_id": str(tenant_a.store_ids[0])}},
    )
    assert r.status == 404
    assert (await api.delete(f"/v1/geofences/{theirs}", token=token)).status == 404
    assert await _fences(conn) == before


async def test_delete_geofence(api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant) -> None:
    gid, other = tenant_a.geofence_ids
    r = await api.delete(f"/v1/geofences/{gid}", token=tenant_a.tokens["manager"])
    assert r.status == 204
    assert r.body == b""
    assert await conn.fetchval("SELECT count(*) FROM geofences WHERE id = $1", gid) == 0
    assert await conn.fetchval("SELECT count(*) FROM geofences WHERE id = $1", other) == 1
    assert (await api.get(f"/v1/geofences/{gid}", token=tenant_a.tokens["admin"])).status == 404
    assert (await api.delete(f"/v1/geofences/{gid}", token=tenant_a.tokens["admin"])).status == 404


# -- the index follows ------------------------------------------------------------------------


async def _ping(api: ApiClient, token: str, lon: float, lat: float) -> Any:
    now = dt.datetime.now(dt.UTC).isoformat()
    r = await api.post(
        "/v1/pings", token=token, json={"lat": lat, "lon": lon, "accuracy_m": 5, "ts": now}
    )
    assert r.status == 200, r.body
    return r.json


async def _event_within(
    api: ApiClient, token: str, lon: float, lat: float, gid: str, event: str = "enter"
) -> bool:
    """Ping at (lon, lat) until ``event`` for ``gid`` is reported, for at most ~5 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while True:
        answer = await _ping(api, token, lon, lat)
        events = {(t["geofence_id"], t["event"]) for t in answer["transitions"]}
        if (gid, event) in events:
            return True
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.25)


async def test_a_new_geofence_reaches_the_index(api: ApiClient, tenant_a: Tenant) -> None:
    lon, lat = 2.3695, 48.8535
    created = await api.post(
        "/v1/geofences",
        token=tenant_a.tokens["manager"],
        json=_circle(tenant_a.store_ids[0], lon=lon, lat=lat, radius=30),
    )
    assert created.status == 201, created.body
    gid = created.json["id"]
    assert await _event_within(api, tenant_a.tokens["shopper"], lon, lat, gid)


async def test_a_patched_geofence_reaches_the_index(api: ApiClient, tenant_a: Tenant) -> None:
    # The fixture's first circle moves to the Bastille block; a shopper there enters it.
    gid = str(tenant_a.geofence_ids[0])
    r = await api.patch(
        f"/v1/geofences/{gid}",
        token=tenant_a.tokens["admin"],
        json={"geometry": {"type": "Polygon", "coordinates": [SQUARE]}},
    )
    assert r.status == 200, r.body
    assert await _event_within(api, tenant_a.tokens["shopper"], (W + E) / 2, (S + N) / 2, gid)


async def test_a_deleted_geofence_leaves_the_index(api: ApiClient, tenant_a: Tenant) -> None:
    lon, lat = 2.3695, 48.8535
    shopper = tenant_a.tokens["shopper"]
    created = await api.post(
        "/v1/geofences",
        token=tenant_a.tokens["admin"],
        json=_circle(tenant_a.store_ids[0], lon=lon, lat=lat, radius=30),
    )
    gid = created.json["id"]
    assert await _event_within(api, shopper, lon, lat, gid)
    r = await api.delete(f"/v1/geofences/{gid}", token=tenant_a.tokens["admin"])
    assert r.status == 204
    # Standing still, the shopper leaves the fence that is no longer there.
    assert await _event_within(api, shopper, lon, lat, gid, "exit")


# --- a geofence stays near its store (GATEWAY_MAX_FENCE_DISTANCE_M, 50 km by default) ------


async def test_swapped_lon_lat_is_422_with_a_hint_and_writes_nothing(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    """The fixture's store is in Paris; [48.8535, 2.3695] is in range, and off Somalia."""
    before = await _fences(conn)
    swapped = _circle(tenant_a.store_ids[0], lon=48.8535, lat=2.3695)
    r = await api.post("/v1/geofences", token=tenant_a.tokens["manager"], json=swapped)
    assert (r.status, r.error_code) == (422, "fence_too_far"), r.body
    [(where, why)] = r.json["error"]["fields"].items()
    assert where == "geometry.coordinates"
    assert "did you swap longitude and latitude?" in why
    assert "did you swap longitude and latitude?" in r.json["error"]["message"]
    # A polygon drawn in Lyon is simply far: no hint, but how far.
    lyon = _polygon(tenant_a.store_ids[0], _ring_around(4.8357, 45.764, 6))
    r = await api.post("/v1/geofences", token=tenant_a.tokens["manager"], json=lyon)
    assert (r.status, r.error_code) == (422, "fence_too_far"), r.body
    why = r.json["error"]["fields"]["geometry.coordinates"]
    assert "too far from its store (39" in why and "swap" not in why, why
    assert await _fences(conn) == before


async def test_patching_a_fence_far_away_is_refused_but_a_rename_is_not(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    path = f"/v1/geofences/{tenant_a.geofence_ids[0]}"
    before = await _fences(conn)
    far = {"geometry": {"type": "Point", "coordinates": [48.8566, 2.3522]}}
    r = await api.patch(path, token=tenant_a.tokens["admin"], json=far)
    assert (r.status, r.error_code) == (422, "fence_too_far"), r.body
    assert "swap" in r.json["error"]["fields"]["geometry.coordinates"]
    # Renaming a fence checks nothing about where it lies.
    r = await api.patch(
        path, token=tenant_a.tokens["admin"], json={"properties": {"name": "renamed"}}
    )
    assert r.status == 200, r.body
    assert len(await _fences(conn)) == len(before)


async def test_a_store_move_that_strands_its_fences_is_refused(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    store = tenant_a.store_ids[0]
    path = f"/v1/stores/{store}"
    row = await conn.fetchrow("SELECT lat, lon FROM stores WHERE id = $1", store)
    assert row is not None
    # lat and lon swapped: within range, 6,800 km from the store's door geofence.
    r = await api.patch(
        path, token=tenant_a.tokens["manager"], json={"lat": row["lon"], "lon": row["lat"]}
    )
    assert (r.status, r.error_code) == (422, "fence_too_far"), r.body
    fields = r.json["error"]["fields"]
    assert set(fields) == {"lat", "lon"}
    assert "'door 0'" in fields["lat"] and "did you swap longitude and latitude?" in fields["lat"]
    r = await api.patch(path, token=tenant_a.tokens["manager"], json={"lat": 45.764, "lon": 4.8357})
    assert (r.status, r.error_code) == (422, "fence_too_far"), r.body
    assert "swap" not in r.json["error"]["message"]
    after = await conn.fetchrow("SELECT lat, lon FROM stores WHERE id = $1", store)
    assert after == row
    # Across the street is fine.
    r = await api.patch(path, token=tenant_a.tokens["manager"], json={"lat": row["lat"] + 0.001})
    assert r.status == 200, r.body
