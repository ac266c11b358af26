"""A merchant's allowed web origins: the pages that may call the shopper and app endpoints
from a browser (CORS; see gateway/http/cors.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts import origins
from gateway.accounts.auth import Role
from gateway.db import POOL
from gateway.http import api, errors
from gateway.http.api import Endpoint, Reply


class OriginIn(api.Model):
    origin: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=300)] = (
        pydantic.Field(examples=["https://shop.example.com"])
    )


class OriginOut(api.Out):
    id: str
    origin: str = pydantic.Field(description="As browsers send it: scheme://host[:port]")
    created_at: dt.datetime


class OriginList(api.Out):
    items: list[OriginOut]


def _out(o: origins.AllowedOrigin) -> OriginOut:
    return OriginOut.model_construct(id=str(o.id), origin=o.origin, created_at=o.created_at)


async def list_origins(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn:
        items = await origins.list_for(conn, p.merchant_id)
    return api.json(OriginList.model_construct(items=[_out(o) for o in items]))


async def add_origin(request: web.Request) -> web.Response:
    p = api.principal(request)
    api.require_merchant_wide(p, "allowed origins")
    req = await api.body(request, OriginIn)
    async with db.acquire(request.app[POOL]) as conn:
        row, created = await origins.add(conn, p.merchant_id, req.origin)
    return api.json(_out(row), status=201 if created else 200)


async def remove_origin(request: web.Request) -> web.Response:
    p = api.principal(request)
    api.require_merchant_wide(p, "allowed origins")
    origin_id = api.path_id(request, "origin_id")
    async with db.acquire(request.app[POOL]) as conn:
        if await origins.remove(conn, p.merchant_id, origin_id) is None:
            raise errors.NotFound("no such origin")
    return web.Response(status=204)


_ADMIN = frozenset({Role.ADMIN})
_CORS = (
    "Pages on these origins may call the shopper and app endpoints with this merchant's "
    "tokens: preflights and answers carry Access-Control-Allow-Origin for them. Every "
    "replica follows a change at once (LISTEN/NOTIFY)."
)

ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/origins",
        handler=list_origins,
        tag="tenancy",
        summary="List the web origins allowed to call the API from a browser (CORS)",
        description=_CORS,
        roles=frozenset({Role.ADMIN, Role.MANAGER}),
        replies={200: Reply(description="The merchant's allowed origins", model=OriginList)},
    ),
    Endpoint(
        method="POST",
        path="/v1/origins",
        handler=add_origin,
        tag="tenancy",
        summary="Allow a web origin to call the API from a browser (CORS)",
        description=_CORS + " The origin is stored as browsers send it (lower case, no "
        "default port); 201 when new, 200 when it was already allowed. Merchant-wide "
        "admins only.",
        roles=_ADMIN,
        body=OriginIn,
        replies={
            201: Reply(description="Allowed", model=OriginOut),
            200: Reply(description="Already allowed", model=OriginOut),
        },
    ),
    Endpoint(
        method="DELETE",
        path="/v1/origins/{origin_id}",
        handler=remove_origin,
        tag="tenancy",
        summary="Stop allowing a web origin",
        description="Answers from the origin lose their CORS headers at once on every "
        "replica; a browser may still send requests whose preflight it cached "
        "(Access-Control-Max-Age), but cannot read their answers.",
        roles=_ADMIN,
        replies={204: Reply(description="Removed", content_type="")},
        errors=(404,),
    ),
]
