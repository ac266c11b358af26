"""``gateway serve`` as a real process: probes, OpenAPI, and racing replicas on one database."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import aiohttp
import pytest

from gateway import db, migrate
from tests.support import proc
from tests.support.pg import PgServer
from tests.support.tenants import make_tenant


async def _probe(url: str) -> dict[str, int]:
    out = {}
    async with aiohttp.ClientSession() as session:
        for path in ("/healthz", "/readyz", "/openapi.json"):
            async with session.get(url + path) as resp:
                out[path] = resp.status
                await resp.read()
    return out


async def test_two_replicas_racing_on_an_empty_database_migrate_once(
    pg: PgServer, tmp_path: Path
) -> None:
    name, url = await pg.create(empty=True)
    environ = proc.env(url, tmp_path)
    servers = [proc.Served(proc.free_port(), environ) for _ in range(2)]
    try:
        await asyncio.gather(*(s.start() for s in servers))
        await asyncio.gather(*(s.wait_ready() for s in servers))
        for s in servers:
            assert await _probe(s.url) == {"/healthz": 200, "/readyz": 200, "/openapi.json": 200}
    finally:
        codes = [await s.stop() for s in servers]
        await pg.drop(name)
    assert codes == [0, 0], [s.log for s in servers]
    applied = sum(s.log.count("migration applied") for s in servers)
    assert applied == migrate.latest_version(), [s.log for s in servers]


@pytest.mark.timeout(180)
async def test_serve_with_no_database_url_uses_embedded_postgres(tmp_path: Path) -> None:
    """The README's walkthrough: `gateway serve` with nothing configured, two replicas
    racing on a new data dir."""
    environ = proc.env(None, tmp_path / "data")
    servers = [proc.Served(proc.free_port(), environ) for _ in range(2)]
    try:
        await asyncio.gather(*(s.start() for s in servers))
        await asyncio.gather(*(s.wait_ready(timeout=150) for s in servers))
        for s in servers:
            assert await _probe(s.url) == {"/healthz": 200, "/readyz": 200, "/openapi.json": 200}
    finally:
        codes = [await s.stop() for s in servers]
    assert codes == [0, 0], [s.log for s in servers]
    assert (tmp_path / "data" / "pg" / "PG_VERSION").exists()
    assert sum(s.log.count("migration applied") for s in servers) == migrate.latest_version()
    # the last process out stops the embedded server
    assert not (tmp_path / "data" / "pg" / "postmaster.pid").exists()


async def test_serve_with_several_workers(pg: PgServer, tmp_path: Path) -> None:
    name, url = await pg.create()
    server = proc.Served(proc.free_port(), proc.env(url, tmp_path), "--workers", "2")
    try:
        await server.start()
        await server.wait_ready()
        assert (await _probe(server.url))["/readyz"] == 200
    finally:
        code = await server.stop()
        await pg.drop(name)
    assert code == 0, server.log
    assert "2 worker(s)" in server.log


async def test_two_processes_stay_in_sync_after_a_geofence_edit(
    pg: PgServer, tmp_path: Path
) -> None:
    """A geofence created through one replica is matched by the other within a second or so."""
    name, url = await pg.create()
    conn = await db.connect(url)
    try:
        tenant = await make_tenant(conn, "Sync Coffee")
    finally:
        await conn.close()
    servers = [proc.Served(proc.free_port(), proc.env(url, tmp_path)) for _ in range(2)]
    try:
        await asyncio.gather(*(s.start() for s in servers))
        await asyncio.gather(*(s.wait_ready() for s in servers))
        a, b = servers
        feature = {
            "type": "Feature",
            # 2 km from the fixture's stores and their door fences.
            "geometry": {"type": "Point", "coordinates": [2.33, 48.87]},
            "properties": {"store_id": str(tenant.store_ids[0]), "name": "Opera", "radius_m": 80},
        }
        manager = {"Authorization": f"Bearer {tenant.tokens['manager']}"}
        shopper = {"Authorization": f"Bearer {tenant.tokens['shopper']}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{a.url}/v1/geofences", json=feature, headers=manager) as r:
                assert r.status == 201
                fence_id = (await r.json())["id"]
            created = time.monotonic()
            entered_after = None
            while time.monotonic() - created < 10:
                ping = {
                    "lat": 48.87,
                    "lon": 2.33,
                    "accuracy_m": 10,
                    "ts": dt.datetime.now(dt.UTC).isoformat(),
                }
                async with session.post(f"{b.url}/v1/pings", json=ping, headers=shopper) as r:
                    assert r.status == 200
                    body = await r.json()
                if any(t["geofence_id"] == fence_id for t in body["transitions"]):
                    entered_after = time.monotonic() - created
                    break
                await asyncio.sleep(0.05)
            assert entered_after is not None, "replica B never saw the new geofence"
            assert entered_after < 2.0
            # and a deletion through B reaches A
            async with session.delete(f"{b.url}/v1/geofences/{fence_id}", headers=manager) as r:
                assert r.status == 204
            await asyncio.sleep(1.0)
            far = {"lat": 48.88, "lon": 2.33, "accuracy_m": 10}
            for _ in range(2):
                far["ts"] = dt.datetime.now(dt.UTC).isoformat()
                async with session.post(f"{a.url}/v1/pings", json=far, headers=shopper) as r:
                    body = await r.json()
            # the visit to a deleted fence ends without an exit for an unknown fence id
            assert all(t["geofence_id"] == fence_id for t in body["transitions"])
    finally:
        for s in servers:
            await s.stop()
        await pg.drop(name)
