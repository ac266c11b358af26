"""``gateway serve`` as a real process: probes, OpenAPI, and racing replicas on one database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from gateway import migrate
from tests.support import proc
from tests.support.pg import PgServer


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
    """The README's first command: nothing configured, two replicas racing on a new data dir."""
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
