"""Stores over HTTP: create, read, page, patch, delete, validation and store scope."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import pytest

from tests.support.client import ApiClient
from tests.support.tenants import Tenant

KIOSK: dict[str, Any] = {
    "name": "Gare du Nord kiosk",
    "lat": 48.8809,
    "lon": 2.3553,
    "timezone": "Europe/Paris",
}


async def _stores(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    """Every store row, to show that a refused request wrote nothing."""
    rows = await conn.fetch("SELECT * FROM stores ORDER BY id")
    return [tuple(r) for r in rows]


async def _store_row(conn: asyncpg.Connection, store_id: int | str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM stores WHERE id = $1", int(store_id))


# -- create -----------------------------------------------------------------------------------


async def test_create_store_answers_201_with_a_string_id_and_echoes_the_fields(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    hours = {"mon": ["07:00-19:00"], "sat": ["08:00-12:00", "14:00-18:00"], "fri": ["22:00-02:00"]}
    r = await api.post(
        "/v1/stores", token=tenant_a.tokens["admin"], json={**KIOSK, "opening_hours": hours}
    )
    assert r.status == 201, r.body
    body = r.json
    assert isinstance(body["id"], str) and body["id"].isdigit()
    assert body["name"] == KIOSK["name"]
    assert body["lat"] == KIOSK["lat"]
    assert body["lon"] == KIOSK["lon"]
    assert body["timezone"] == "Europe/Paris"
    assert body["opening_hours"] == hours
    created = dt.datetime.fromisoformat(body["created_at"])
    assert created.tzinfo is not None
    row = await _store_row(conn, body["id"])
    assert row is not None
    assert row["merchant_id"] == tenant_a.merchant_id
    assert (row["name"], row["lat"], row["lon"]) == (KIOSK["name"], KIOSK["lat"], KIOSK["lon"])
    assert row["opening_hours"] == hours


async def test_a_manager_may_create_a_store_without_opening_hours(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    r = await api.post("/v1/stores", token=tenant_a.tokens["manager"], json=KIOSK)
    assert r.status == 201, r.body
    assert r.json["opening_hours"] is None
    row = await _store_row(conn, r.json["id"])
    assert row is not None and row["opening_hours"] is None


@pytest.mark.parametrize(
    "hours",
    [
        {"mon": ["22:00-02:00"]},
        {"sun": ["00:00-24:00"]},
        {"tue": []},
        {"wed": ["06:00-11:00", "12:00-15:00", "16:00-23:30"]},
    ],
)
async def test_good_opening_hours_are_accepted(
    api: ApiClient, tenant_a: Tenant, hours: dict[str, list[str]]
) -> None:
    r = await api.post(
        "/v1/stores", token=tenant_a.tokens["admin"], json={**KIOSK, "opening_hours": hours}
    )
    assert r.status == 201, r.body
    assert r.json["opening_hours"] == hours


@pytest.mark.parametrize(
    ("hours", "hint"),
    [
        ({"funday": ["07:00-19:00"]}, "funday"),
        ({"Monday": ["07:00-19:00"]}, "Monday"),
        ({"mon": ["7-19"]}, "7-19"),
        ({"mon": ["25:00-26:00"]}, "25:00"),
        ({"mon": ["07:60-19:00"]}, "07:60"),
        ({"mon": ["09:00-09:00"]}, "empty"),
        ({"mon": ["24:00-02:00"]}, "24:00"),
        ({"mon": ["07:00-19:00"] * 7}, "at most"),
        ({"mon": "07:00-19:00"}, ""),
        ({"mon": [7]}, ""),
        ([["mon", "07:00-19:00"]], ""),
    ],
)
async def test_bad_opening_hours_are_422_and_write_nothing(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, hours: Any, hint: str
) -> None:
    before = await _stores(conn)
    r = await api.post(
        "/v1/stores", token=tenant_a.tokens["admin"], json={**KIOSK, "opening_hours": hours}
    )
    assert r.status == 422, r.body
    assert r.error_code == "validation_failed"
    fields = r.json["error"]["fields"]
    assert fields and all(k.startswith("opening_hours") for k in fields), fields
    assert hint in " ".join(fields.values())
    assert await _stores(conn) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "CET+5"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"lat": 90.0001}, "lat"),
        ({"lat": -91}, "lat"),
        ({"lon": 180.5}, "lon"),
        ({"lon": -181}, "lon"),
        ({"lat": "48.8"}, "lat"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": None}, "name"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_store_fields_are_422_naming_the_field(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, change: dict[str, Any], field: str
) -> None:
    before = await _stores(conn)
    r = await api.post("/v1/stores", token=tenant_a.tokens["admin"], json={**KIOSK, **change})
    assert r.status == 422, r.body
    assert field in r.json["error"]["fields"], r.json
    assert await _stores(conn) == before


@pytest.mark.parametrize("missing", ["name", "lat", "lon", "timezone"])
async def test_a_store_needs_every_required_field(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, missing: str
) -> None:
    before = await _stores(conn)
    body = {k: v for k, v in KIOSK.items() if k != missing}
    r = await api.post("/v1/stores", token=tenant_a.tokens["admin"], json=body)
    assert r.status == 422, r.body
    assert missing in r.json["error"]["fields"]
    assert await _stores(conn) == before


async def test_lat_and_lon_at_their_limits_are_accepted(api: ApiClient, tenant_a: Tenant) -> None:
    for lat, lon in [(90, 180), (-90, -180), (0, 0)]:
        body = {**KIOSK, "lat": lat, "lon": lon}
        r = await api.post("/v1/stores", token=tenant_a.tokens["admin"], json=body)
        assert r.status == 201, r.body
        assert (r.json["lat"], r.json["lon"]) == (lat, lon)


async def test_create_store_wants_json(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    before = await _stores(conn)
    r = await api.post(
        "/v1/stores",
        token=tenant_a.tokens["admin"],
        data=b"name=Kiosk",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 415
    assert r.error_code == "unsupported_media_type"
    r = await api.post(
        "/v1/stores",
        token=tenant_a.tokens["admin"],
        data=b'{"name": "Kiosk",',
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 400
    assert r.error_code == "invalid_json"
    assert await _stores(conn) == before


# -- read and list ----------------------------------------------------------------------------


async def test_get_store(api: ApiClient, tenant_a: Tenant) -> None:
    store_id = tenant_a.store_ids[1]
    r = await api.get(f"/v1/stores/{store_id}", token=tenant_a.tokens["reviewer"])
    assert r.status == 200, r.body
    assert r.json["id"] == str(store_id)
    assert r.json["name"] == "Alpha Coffee store 1"
    assert r.json["timezone"] == "Europe/Paris"
    assert r.json["lat"] == pytest.approx(48.8666)


@pytest.mark.parametrize("raw_id", ["999999999", "abc", "0", "1" * 19, "-1"])
async def test_get_unknown_store_is_404(api: ApiClient, tenant_a: Tenant, raw_id: str) -> None:
    r = await api.get(f"/v1/stores/{raw_id}", token=tenant_a.tokens["admin"])
    assert r.status == 404
    assert r.error_code == "not_found"


async def test_list_stores_pages_through_every_store_in_id_order(
    api: ApiClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    for i in range(5):
        body = {**KIOSK, "name": f"kiosk {i}"}
        r = await api.post("/v1/stores", token=tenant_a.tokens["admin"], json=body)
        assert r.status == 201, r.body
    expected = await api.get("/v1/stores", token=tenant_a.tokens["reviewer"])
    assert expected.status == 200
    everything = [s["id"] for s in expected.json["items"]]
    assert len(everything) == 7
    assert expected.json["next_cursor"] is None
    assert {str(s) for s in tenant_a.store_ids} <= set(everything)
    assert not {str(s) for s in tenant_b.store_ids} & set(everything)
    assert [int(i) for i in everything] == sorted(int(i) for i in everything)

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        path = "/v1/stores?limit=3" + (f"&cursor={cursor}" if cursor else "")
        r = await api.get(path, token=tenant_a.tokens["manager"])
        assert r.status == 200, r.body
        items = r.json["items"]
        assert len(items) <= 3
        seen += [s["id"] for s in items]
        pages += 1
        cursor = r.json["next_cursor"]
        if cursor is None:
            break
        assert cursor == items[-1]["id"]
        assert pages < 10
    assert seen == everything
    assert pages == 3


async def test_list_stores_last_full_page_leads_to_an_empty_one(
    api: ApiClient, tenant_a: Tenant
) -> None:
    r = await api.get("/v1/stores?limit=2", token=tenant_a.tokens["admin"])
    assert [s["id"] for s in r.json["items"]] == [str(s) for s in tenant_a.store_ids]
    cursor = r.json["next_cursor"]
    assert cursor == str(tenant_a.store_ids[1])
    r = await api.get(f"/v1/stores?limit=2&cursor={cursor}", token=tenant_a.tokens["admin"])
    assert r.status == 200
    assert r.json == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=-5", "cursor"),
        ("cursor=" + "9" * 19, "cursor"),
    ],
)
async def test_list_stores_bad_paging_is_422(
    api: ApiClient, tenant_a: Tenant, query: str, field: str
) -> None:
    r = await api.get(f"/v1/stores?{query}", token=tenant_a.tokens["admin"])
    assert r.status == 422, r.body
    assert field in r.json["error"]["fields"]


# -- patch ------------------------------------------------------------------------------------


async def test_patch_store_changes_only_the_fields_sent(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    hours = {"mon": ["07:00-19:00"]}
    created = await api.post(
        "/v1/stores", token=tenant_a.tokens["admin"], json={**KIOSK, "opening_hours": hours}
    )
    store = created.json
    path = f"/v1/stores/{store['id']}"

    r = await api.patch(path, token=tenant_a.tokens["manager"], json={"name": "Renamed"})
    assert r.status == 200, r.body
    assert r.json["name"] == "Renamed"
    for key in ("id", "lat", "lon", "timezone", "opening_hours", "created_at"):
        assert r.json[key] == store[key], key
    assert dt.datetime.fromisoformat(r.json["updated_at"]) >= dt.datetime.fromisoformat(
        store["updated_at"]
    )

    r = await api.patch(
        path, token=tenant_a.tokens["admin"], json={"lat": 45.764, "lon": 4.8357, "timezone": "UTC"}
    )
    assert r.status == 200, r.body
    assert (r.json["lat"], r.json["lon"], r.json["timezone"]) == (45.764, 4.8357, "UTC")
    assert r.json["name"] == "Renamed"
    assert r.json["opening_hours"] == hours

    row = await _store_row(conn, store["id"])
    assert row is not None
    assert (row["name"], row["lat"], row["lon"], row["timezone"]) == (
        "Renamed",
        45.764,
        4.8357,
        "UTC",
    )
    assert row["opening_hours"] == hours

    # An empty patch is a no-op, not an error.
    r = await api.patch(path, token=tenant_a.tokens["admin"], json={})
    assert r.status == 200, r.body
    assert r.json["name"] == "Renamed"


async def test_patch_opening_hours_null_clears_them_and_new_hours_replace_them(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    created = await api.post(
        "/v1/stores",
        token=tenant_a.tokens["admin"],
        json={**KIOSK, "opening_hours": {"mon": ["07:00-19:00"]}},
    )
    path = f"/v1/stores/{created.json['id']}"
    new_hours = {"sat": ["22:00-02:00"]}
    r = await api.patch(path, token=tenant_a.tokens["admin"], json={"opening_hours": new_hours})
    assert r.status == 200, r.body
    assert r.json["opening_hours"] == new_hours

    r = await api.patch(path, token=tenant_a.tokens["admin"], json={"opening_hours": None})
    assert r.status == 200, r.body
    assert r.json["opening_hours"] is None
    assert r.json["name"] == KIOSK["name"]
    assert await conn.fetchval(
        "SELECT opening_hours IS NULL FROM stores WHERE id = $1", int(created.json["id"])
    )
    r = await api.get(path, token=tenant_a.tokens["reviewer"])
    assert r.json["opening_hours"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"),
        ({"lat": None}, "lat"),
        ({"lon": None}, "lon"),
        ({"timezone": None}, "timezone"),
        ({"name": ""}, "name"),
        ({"lat": 91}, "lat"),
        ({"lon": -180.01}, "lon"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"opening_hours": {"mon": ["7-19"]}}, "opening_hours"),
        ({"opening_hours": {"someday": []}}, "opening_hours"),
        ({"id": "5"}, "id"),
    ],
)
async def test_bad_patch_is_422_and_changes_nothing(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, change: dict[str, Any], field: str
) -> None:
    before = await _stores(conn)
    r = await api.patch(
        f"/v1/stores/{tenant_a.store_ids[0]}", token=tenant_a.tokens["admin"], json=change
    )
    assert r.status == 422, r.body
    assert r.error_code == "validation_failed"
    assert field in r.json["error"]["fields"], r.json
    assert await _stores(conn) == before


async def test_patch_unknown_store_is_404(api: ApiClient, tenant_a: Tenant) -> None:
    r = await api.patch("/v1/stores/987654321", token=tenant_a.tokens["admin"], json={"name": "x"})
    assert r.status == 404


# -- delete -----------------------------------------------------------------------------------


async def test_delete_store_cascades_to_its_geofences_only(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    doomed, kept = tenant_a.store_ids[1], tenant_a.store_ids[0]
    extra = await api.post(
        "/v1/geofences",
        token=tenant_a.tokens["admin"],
        json={
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [2.3625, 48.8668]},
            "properties": {"store_id": str(doomed), "name": "terrace", "radius_m": 25},
        },
    )
    assert extra.status == 201, extra.body
    count = "SELECT count(*) FROM geofences WHERE store_id = $1"
    assert await conn.fetchval(count, doomed) == 2
    others = await conn.fetchval("SELECT count(*) FROM geofences WHERE store_id <> $1", doomed)

    r = await api.delete(f"/v1/stores/{doomed}", token=tenant_a.tokens["manager"])
    assert r.status == 204
    assert r.body == b""
    assert await _store_row(conn, doomed) is None
    assert await conn.fetchval(count, doomed) == 0
    assert await conn.fetchval("SELECT count(*) FROM geofences") == others
    assert await conn.fetchval(count, kept) == 1

    r = await api.get(f"/v1/stores/{doomed}", token=tenant_a.tokens["admin"])
    assert r.status == 404
    r = await api.get(f"/v1/geofences/{extra.json['id']}", token=tenant_a.tokens["admin"])
    assert r.status == 404
    r = await api.delete(f"/v1/stores/{doomed}", token=tenant_a.tokens["manager"])
    assert r.status == 404


async def test_deleting_the_only_store_of_a_scoped_key_leaves_it_reaching_nothing(
    api: ApiClient, tenant_a: Tenant
) -> None:
    r = await api.delete(f"/v1/stores/{tenant_a.store_ids[0]}", token=tenant_a.tokens["admin"])
    assert r.status == 204
    r = await api.get("/v1/stores", token=tenant_a.tokens["manager@store0"])
    assert r.status == 200
    assert r.json["items"] == []
    r = await api.get("/v1/geofences", token=tenant_a.tokens["manager@store0"])
    assert r.status == 200
    assert r.json["items"] == []


# -- store scope and tenancy ------------------------------------------------------------------


async def test_store_scoped_manager_sees_only_its_store(api: ApiClient, tenant_a: Tenant) -> None:
    token = tenant_a.tokens["manager@store0"]
    store0, store1 = tenant_a.store_ids
    r = await api.get("/v1/stores", token=token)
    assert r.status == 200
    assert [s["id"] for s in r.json["items"]] == [str(store0)]
    assert r.json["next_cursor"] is None

    r = await api.get(f"/v1/stores/{store0}", token=token)
    assert r.status == 200
    r = await api.get(f"/v1/stores/{store1}", token=token)
    assert r.status == 403
    assert r.error_code == "out_of_scope"


async def test_store_scoped_manager_cannot_change_or_delete_another_store(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    token = tenant_a.tokens["manager@store0"]
    store0, store1 = tenant_a.store_ids
    before = await _stores(conn)
    r = await api.patch(f"/v1/stores/{store1}", token=token, json={"name": "Mine now"})
    assert r.status == 403
    assert r.error_code == "out_of_scope"
    r = await api.delete(f"/v1/stores/{store1}", token=token)
    assert r.status == 403
    assert r.error_code == "out_of_scope"
    assert await _stores(conn) == before

    r = await api.patch(f"/v1/stores/{store0}", token=token, json={"name": "Mine"})
    assert r.status == 200, r.body
    assert r.json["name"] == "Mine"


@pytest.mark.parametrize("role", ["manager@store0", "admin@store0"])
async def test_store_scoped_tokens_cannot_create_stores(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, role: str
) -> None:
    before = await _stores(conn)
    r = await api.post("/v1/stores", token=tenant_a.tokens[role], json=KIOSK)
    assert r.status == 403
    assert r.error_code == "out_of_scope"
    assert await _stores(conn) == before


@pytest.mark.parametrize("role", ["reviewer", "pos", "app", "shopper"])
async def test_only_writers_create_stores(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, role: str
) -> None:
    before = await _stores(conn)
    r = await api.post("/v1/stores", token=tenant_a.tokens[role], json=KIOSK)
    assert r.status == 403
    assert r.error_code == "wrong_role"
    assert await _stores(conn) == before


async def test_another_merchants_store_is_404_and_unchanged(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    theirs = tenant_b.store_ids[0]
    before = await _stores(conn)
    token = tenant_a.tokens["admin"]
    r = await api.get(f"/v1/stores/{theirs}", token=token)
    assert r.status == 404
    assert r.error_code == "not_found"
    r = await api.patch(f"/v1/stores/{theirs}", token=token, json={"name": "Hijacked"})
    assert r.status == 404
    r = await api.patch(f"/v1/stores/{theirs}", token=token, json={"opening_hours": None})
    assert r.status == 404
    r = await api.delete(f"/v1/stores/{theirs}", token=token)
    assert r.status == 404
    assert await _stores(conn) == before
    assert await conn.fetchval("SELECT count(*) FROM geofences WHERE store_id = $1", theirs) == 1

    r = await api.get("/v1/stores", token=token)
    assert str(theirs) not in {s["id"] for s in r.json["items"]}
    # A scoped key is no way around it either: 404 before any scope question.
    r = await api.get(f"/v1/stores/{theirs}", token=tenant_a.tokens["manager@store0"])
    assert r.status == 404
