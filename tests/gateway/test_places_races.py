"""Places requests racing a concurrent change: the answer must match what was committed.

Each test holds a row lock from its own connection so a request is caught between its
checks and its write, makes the conflicting change, and lets the request go on. No sleeps
decide the order: the test waits until the server's backend is seen waiting on the lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import asyncpg
import pytest

from gateway import db
from tests.support.client import ApiClient, Reply
from tests.support.tenants import Tenant


@pytest.fixture
async def other(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A second session: the concurrent writer."""
    c = await db.connect(database_url)
    try:
        yield c
    finally:
        await c.close()


async def _blocked(
    conn: asyncpg.Connection, request: Awaitable[Reply], *, waiters: int = 1
) -> asyncio.Task[Reply]:
    """Start ``request`` and return once ``waiters`` backends of this database wait on locks."""
    task = asyncio.ensure_future(request)
    for _ in range(500):
        await asyncio.sleep(0.01)
        if task.done():
            return task  # finished without waiting: the assertions will say what it did
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting >= waiters:
            return task
    task.cancel()
    raise AssertionError("the request never waited on the held lock")


def _circle(store_id: int, name: str = "door") -> Any:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [2.3695, 48.8535]},
        "properties": {"store_id": str(store_id), "name": name, "radius_m": 30},
    }


async def test_patch_of_a_store_deleted_meanwhile_is_404(
    api: ApiClient, conn: asyncpg.Connection, other: asyncpg.Connection, tenant_a: Tenant
) -> None:
    store = tenant_a.store_ids[1]
    tx = other.transaction()
    await tx.start()
    await other.execute("DELETE FROM stores WHERE id = $1", store)
    task = await _blocked(
        conn,
        api.patch(f"/v1/stores/{store}", token=tenant_a.tokens["admin"], json={"name": "late"}),
    )
    await tx.commit()
    r = await task
    assert r.status == 404, r.body
    assert await conn.fetchval("SELECT count(*) FROM stores WHERE id = $1", store) == 0


async def test_patch_of_a_geofence_deleted_meanwhile_is_404(
    api: ApiClient, conn: asyncpg.Connection, other: asyncpg.Connection, tenant_a: Tenant
) -> None:
    gid = tenant_a.geofence_ids[0]
    tx = other.transaction()
    await tx.start()
    await other.execute("DELETE FROM geofences WHERE id = $1", gid)
    task = await _blocked(
        conn,
        api.patch(
            f"/v1/geofences/{gid}",
            token=tenant_a.tokens["admin"],
            json={"properties": {"name": "late"}},
        ),
    )
    await tx.commit()
    r = await task
    assert r.status == 404, r.body
    assert await conn.fetchval("SELECT count(*) FROM geofences WHERE id = $1", gid) == 0


async def test_patch_merges_into_a_concurrent_change_instead_of_losing_it(
    api: ApiClient, conn: asyncpg.Connection, other: asyncpg.Connection, tenant_a: Tenant
) -> None:
    gid = tenant_a.geofence_ids[0]
    tx = other.transaction()
    await tx.start()
    # Another writer adds a property and has not committed yet.
    await other.execute(
        "UPDATE geofences SET properties = properties || '{\"floor\": 2}' WHERE id = $1", gid
    )
    task = await _blocked(
        conn,
        api.patch(
            f"/v1/geofences/{gid}",
            token=tenant_a.tokens["admin"],
            json={"properties": {"colour": "red"}},
        ),
    )
    await tx.commit()
    r = await task
    assert r.status == 200, r.body
    assert r.json["properties"]["floor"] == 2
    assert r.json["properties"]["colour"] == "red"
    props = await conn.fetchval("SELECT properties FROM geofences WHERE id = $1", gid)
    assert props == {"floor": 2, "colour": "red"}


async def test_geofence_on_a_store_deleted_meanwhile_is_422(
    api: ApiClient, conn: asyncpg.Connection, other: asyncpg.Connection, tenant_a: Tenant
) -> None:
    store = tenant_a.store_ids[1]
    before = await conn.fetchval("SELECT count(*) FROM geofences")
    tx = other.transaction()
    await tx.start()
    await other.execute("DELETE FROM stores WHERE id = $1", store)
    task = await _blocked(
        conn, api.post("/v1/geofences", token=tenant_a.tokens["admin"], json=_circle(store))
    )
    await tx.commit()
    r = await task
    assert r.status == 422, r.body
    assert "properties.store_id" in r.json["error"]["fields"]
    # The store's own fence went with it; nothing new was written.
    assert await conn.fetchval("SELECT count(*) FROM geofences") == before - 1


async def test_import_updating_a_geofence_deleted_meanwhile_is_422(
    api: ApiClient, conn: asyncpg.Connection, other: asyncpg.Connection, tenant_a: Tenant
) -> None:
    g0, g1 = tenant_a.geofence_ids
    keep = _circle(tenant_a.store_ids[0], "kept")
    keep["id"] = str(g0)
    tx = other.transaction()
    await tx.start()
    await other.execute("DELETE FROM geofences WHERE id = $1", g0)
    task = await _blocked(
        conn,
        api.put(
            "/v1/geofences",
            token=tenant_a.tokens["admin"],
            json={"type": "FeatureCollection", "features": [keep]},
        ),
    )
    await tx.commit()
    r = await task
    # Answering 200 with g0 under "updated" would claim a write that never happened.
    assert r.status == 422, r.body
    assert "features[0].id" in r.json["error"]["fields"]
    ids = await conn.fetch("SELECT id FROM geofences WHERE merchant_id = $1", tenant_a.merchant_id)
    assert {r["id"] for r in ids} == {g1}


async def test_import_into_a_store_deleted_meanwhile_is_422(
    api: ApiClient, conn: asyncpg.Connection, other: asyncpg.Connection, tenant_a: Tenant
) -> None:
    store0, store1 = tenant_a.store_ids
    tx = other.transaction()
    await tx.start()
    await other.execute("DELETE FROM stores WHERE id = $1", store1)
    task = await _blocked(
        conn,
        api.put(
            "/v1/geofences",
            token=tenant_a.tokens["admin"],
            json={"type": "FeatureCollection", "features": [_circle(store0), _circle(store1)]},
        ),
    )
    await tx.commit()
    r = await task
    assert r.status == 422, r.body
    assert "features[1].properties.store_id" in r.json["error"]["fields"]
    ids = await conn.fetch("SELECT id FROM geofences WHERE merchant_id = $1", tenant_a.merchant_id)
    assert {r["id"] for r in ids} == {tenant_a.geofence_ids[0]}


async def test_concurrent_imports_of_one_merchant_serialise(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    g0, _ = tenant_a.geofence_ids
    keep = _circle(tenant_a.store_ids[0], "kept")
    keep["id"] = str(g0)
    collections = [
        {"type": "FeatureCollection", "features": [keep, _circle(tenant_a.store_ids[1], f"n{i}")]}
        for i in range(6)
    ]
    replies = await asyncio.gather(
        *(api.put("/v1/geofences", token=tenant_a.tokens["admin"], json=c) for c in collections)
    )
    assert [r.status for r in replies] == [200] * 6, [r.body for r in replies]
    # Whichever ran last wins: g0 and exactly one new circle remain.
    rows = await conn.fetch(
        "SELECT id, name FROM geofences WHERE merchant_id = $1 ORDER BY id", tenant_a.merchant_id
    )
    assert rows[0]["id"] == g0
    assert len(rows) == 2
    last = [r for r in replies if str(rows[1]["id"]) in r.json["created"]]
    assert len(last) == 1


async def test_two_imports_waiting_on_one_row_do_not_deadlock(
    api: ApiClient, conn: asyncpg.Connection, other: asyncpg.Connection, tenant_a: Tenant
) -> None:
    g0, _ = tenant_a.geofence_ids
    keep = _circle(tenant_a.store_ids[0], "kept")
    keep["id"] = str(g0)
    token = tenant_a.tokens["admin"]
    tx = other.transaction()
    await tx.start()
    await other.execute("SELECT id FROM geofences WHERE id = $1 FOR UPDATE", g0)
    # The first import keeps g0, the second deletes everything; both must wait their turn.
    first = await _blocked(
        conn,
        api.put(
            "/v1/geofences", token=token, json={"type": "FeatureCollection", "features": [keep]}
        ),
    )
    second = await _blocked(
        conn,
        api.put("/v1/geofences", token=token, json={"type": "FeatureCollection", "features": []}),
        waiters=2,
    )
    await tx.commit()
    a, b = await first, await second
    assert a.status == 200, a.body
    assert a.json["updated"] == [str(g0)]
    assert b.status == 200, b.body
    assert str(g0) in b.json["deleted"]
    count = "SELECT count(*) FROM geofences WHERE merchant_id = $1"
    assert await conn.fetchval(count, tenant_a.merchant_id) == 0
