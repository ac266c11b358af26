"""Shared fixtures: a real PostgreSQL per test, the app, and tenants with tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from aiohttp import test_utils

from gateway import app as app_mod
from gateway import db
from gateway.http import openapi
from gateway.http.handlers import system
from gateway.settings import Settings
from tests.support import split
from tests.support.client import ApiClient
from tests.support.openapi_check import SpecChecker
from tests.support.pg import PgServer
from tests.support.tenants import Tenant, make_tenant


@pytest.fixture(scope="session", autouse=True)
def _no_real_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The per-user data directory is a temporary one for the whole run: nothing the tests
    start may create or use the real user's embedded database (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
        mp.delenv("GATEWAY_DATA_DIR", raising=False)
        yield


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    server = PgServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def database_url(pg: PgServer) -> AsyncIterator[str]:
    name, url = await pg.create()
    try:
        yield url
    finally:
        await pg.drop(name)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await db.connect(database_url)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(data_dir=tmp_path, max_body_bytes=64 * 1024, db_pool_min=1, db_pool_max=4)


@pytest.fixture(scope="session")
def spec() -> SpecChecker:
    return SpecChecker(openapi.build(app_mod.all_endpoints(), version=system.version()))


@pytest.fixture
async def api(database_url: str, settings: Settings, spec: SpecChecker) -> AsyncIterator[ApiClient]:
    application = app_mod.create_app(settings, db_url=database_url)
    async with test_utils.TestClient(test_utils.TestServer(application)) as client:
        yield ApiClient(client, spec)


@pytest.fixture
async def tenant_a(conn: asyncpg.Connection) -> Tenant:
    return await make_tenant(conn, "Alpha Coffee")


@pytest.fixture
async def tenant_b(conn: asyncpg.Connection) -> Tenant:
    return await make_tenant(conn, "Beta Bakery")


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # pyproject's addopts ask pytest-xdist for one worker per core; with `-p no:xdist` its
    # options must still parse (and the run is one process).
    if not pluginmanager.hasplugin("xdist"):
        group = parser.getgroup("xdist", "pytest-xdist is disabled: these options do nothing")
        group.addoption("--numprocesses", dest="numprocesses", default=None)
        group.addoption("--dist", dest="dist", default="no")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = split.marker_of(item.nodeid)
        if name is not None:
            item.add_marker(getattr(pytest.mark, name))
