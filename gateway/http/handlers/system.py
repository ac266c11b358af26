"""Operational endpoints: liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import asyncio
from importlib import metadata

from aiohttp import web

from gateway import db, migrate
from gateway.db import POOL
from gateway.http import api, errors, openapi
from gateway.http.api import Endpoint, Reply
from gateway.http.routing import MOUNTED
from gateway.pingpath.geoindex import GEO_INDEX
from gateway.settings import SETTINGS


class Health(api.Out):
    status: str


class Ready(api.Out):
    status: str
    schema_version: int


async def healthz(request: web.Request) -> web.Response:
    return api.json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    want = migrate.latest_version()
    try:
        async with asyncio.timeout(2):
            async with db.acquire(request.app[POOL]) as conn:
                have = await migrate.current_version(conn)
    except Exception as exc:
        if not db.is_unavailable(exc):
            raise
        raise errors.Unavailable(
            "the database is unreachable", headers={"Retry-After": "2"}
        ) from None
    if have < want:
        raise errors.Unavailable(
            f"schema version {have}, need {want}; migrations pending",
            code="migrations_pending",
            headers={"Retry-After": "2"},
        )
    if not request.app[GEO_INDEX].ready:
        raise errors.Unavailable(
            "the geofence index is still loading",
            code="index_loading",
            headers={"Retry-After": "1"},
        )
    return api.json({"status": "ready", "schema_version": have})


def version() -> str:
    try:
        return metadata.version("geo-offer-gateway")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0"


async def openapi_json(request: web.Request) -> web.Response:
    endpoints = request.app[MOUNTED].values()
    doc = openapi.build(endpoints, version=version(), server_url=request.app[SETTINGS].public_url)
    return api.json(doc)


ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/healthz",
        handler=healthz,
        tag="system",
        summary="Liveness: the process is up",
        roles=None,
        uses_db=False,
        replies={200: Reply(description="Up", model=Health)},
    ),
    Endpoint(
        method="GET",
        path="/readyz",
        handler=readyz,
        tag="system",
        summary="Readiness: the database is reachable and fully migrated",
        roles=None,
        replies={200: Reply(description="Ready", model=Ready)},
    ),
    Endpoint(
        method="GET",
        path="/openapi.json",
        handler=openapi_json,
        tag="system",
        summary="This OpenAPI 3.1 document",
        roles=None,
        uses_db=False,
        replies={200: Reply(description="The document", schema={"type": "object"})},
    ),
]
