"""Stores: where a merchant sells, with its time zone and opening hours."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, cast

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.db import POOL
from gateway.http import api, errors, paging
from gateway.http.api import Endpoint, Reply
from gateway.pingpath.geoindex import GEO_INDEX
from gateway.settings import SETTINGS
from geo import anchor
from geo import places as geo_places
from geo import store as geo_store

WRITERS = frozenset({Role.ADMIN, Role.MANAGER})
READERS = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})

Name = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)]
Lat = Annotated[float, pydantic.Field(ge=-90, le=90, allow_inf_nan=False)]
Lon = Annotated[float, pydantic.Field(ge=-180, le=180, allow_inf_nan=False)]


def _check_hours(value: dict[str, Any] | None) -> dict[str, list[str]] | None:
    return None if value is None else geo_places.check_opening_hours(value)


OpeningHours = Annotated[
    dict[str, list[str]] | None,
    pydantic.AfterValidator(_check_hours),
    pydantic.Field(
        description='Weekly hours in the store\'s time zone: {"mon": ["07:00-19:00"], ...}. '
        "An interval ending before it starts runs past midnight.",
        examples=[{"mon": ["07:00-19:00"], "sat": ["08:00-12:00", "14:00-18:00"]}],
    ),
]


class StoreCreate(api.Model):
    name: Name
    lat: Lat
    lon: Lon
    timezone: api.TimeZone
    opening_hours: OpeningHours = None


class StorePatch(api.Model):
    name: Name | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    timezone: api.TimeZone | None = None
    opening_hours: OpeningHours = None


class StoreOut(api.Out):
    id: str
    name: str
    lat: float
    lon: float
    timezone: str
    opening_hours: dict[str, list[str]] | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, s: geo_places.Store) -> StoreOut:
        return cls.model_construct(
            id=str(s.id),
            name=s.name,
            lat=s.lat,
            lon=s.lon,
            timezone=s.timezone,
            # A JSON object from the database: already this shape.
            opening_hours=cast("dict[str, list[str]] | None", s.opening_hours),
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


class StoreList(api.Out):
    items: list[StoreOut]
    next_cursor: str | None


async def create_store(request: web.Request) -> web.Response:
    p = api.principal(request)
    req = await api.body(request, StoreCreate)
    if p.store_ids is not None:
        raise errors.Forbidden(
            "a store-scoped token cannot create stores; use a merchant-wide key",
            code="out_of_scope",
        )
    async with db.acquire(request.app[POOL]) as conn:
        store = await geo_store.insert_store(
            conn,
            merchant_id=p.merchant_id,
            name=req.name,
            lat=req.lat,
            lon=req.lon,
            timezone=req.timezone,
            opening_hours=req.opening_hours,
        )
    return api.json(StoreOut.of(store), status=201)


async def list_stores(request: web.Request) -> web.Response:
    p = api.principal(request)
    limit = paging.limit(request, 100, 1000)
    async with db.acquire(request.app[POOL]) as conn:
        stores = await geo_store.list_stores(
            conn, p.merchant_id, p.store_ids, after=paging.cursor(request), limit=limit
        )
    items = [StoreOut.of(s) for s in stores]
    next_cursor = paging.next_cursor([i.id for i in items], limit)
    return api.json(StoreList.model_construct(items=items, next_cursor=next_cursor))


async def _visible_store(request: web.Request, conn: Any) -> geo_places.Store:
    p = api.principal(request)
    store_id = api.path_id(request, "store_id")
    store = await geo_store.get_store(conn, store_id, p.merchant_id)
    if store is None:
        raise errors.NotFound("no such store")
    api.require_store(p, store_id)
    return store


async def get_store(request: web.Request) -> web.Response:
    async with db.acquire(request.app[POOL]) as conn:
        store = await _visible_store(request, conn)
    return api.json(StoreOut.of(store))


async def patch_store(request: web.Request) -> web.Response:
    p = api.principal(request)
    req = await api.body(request, StorePatch)
    changes = req.model_dump(exclude_unset=True)
    for name in ("name", "lat", "lon", "timezone"):
        if name in changes and changes[name] is None:
            raise errors.ValidationFailed("bad field", fields={name: "cannot be null"})
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        store = await _visible_store(request, conn)
        updated = await geo_store.update_store(conn, store.id, p.merchant_id, changes)
        if updated is not None and (updated.lon, updated.lat) != (store.lon, store.lat):
            # After the update, which holds the store row: a fence written meanwhile has
            # committed (and is read here) or waits for this move (and is checked against it).
            anchor.check_store_move(
                await geo_store.store_fences(conn, store.id),
                updated.lon,
                updated.lat,
                request.app[SETTINGS].max_fence_distance_m,
            )
    if updated is None:  # deleted while this request ran
        raise errors.NotFound("no such store")
    return api.json(StoreOut.of(updated))


async def delete_store(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        store = await _visible_store(request, conn)
        await geo_store.delete_store(conn, store.id, p.merchant_id)
    # Its geofences went with it.
    await request.app[GEO_INDEX].refresh()
    return web.Response(status=204)


ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/v1/stores",
        handler=create_store,
        tag="places",
        summary="Create a store",
        description="Needs a merchant-wide key: a store-scoped key cannot widen its own scope.",
        roles=WRITERS,
        body=StoreCreate,
        replies={201: Reply(description="The store", model=StoreOut)},
    ),
    Endpoint(
        method="GET",
        path="/v1/stores",
        handler=list_stores,
        tag="places",
        summary="List the stores within the token's scope",
        roles=READERS,
        replies={200: Reply(description="A page of stores", model=StoreList)},
        errors=(422,),
        parameters=paging.PAGING,
    ),
    Endpoint(
        method="GET",
        path="/v1/stores/{store_id}",
        handler=get_store,
        tag="places",
        summary="Read a store",
        roles=READERS,
        replies={200: Reply(description="The store", model=StoreOut)},
        errors=(404,),
    ),
    Endpoint(
        method="PATCH",
        path="/v1/stores/{store_id}",
        handler=patch_store,
        tag="places",
        summary="Change some of a store's fields (opening_hours: null clears them)",
        description="A move (lat, lon) that would leave one of the store's geofences farther "
        "than GATEWAY_MAX_FENCE_DISTANCE_M (50 km by default) from it is refused with 422 "
        'fence_too_far, naming the fences at lat and lon, and asking "did you swap '
        'longitude and latitude?" when the swapped position would keep them all in reach. '
        "Changing opening_hours changes when offers are sent: by default an offer is not sent "
        "while its store is closed (decision reason store_closed).",
        roles=WRITERS,
        body=StorePatch,
        replies={200: Reply(description="The store", model=StoreOut)},
        errors=(404,),
    ),
    Endpoint(
        method="DELETE",
        path="/v1/stores/{store_id}",
        handler=delete_store,
        tag="places",
        summary="Delete a store and its geofences",
        roles=WRITERS,
        replies={204: Reply(description="Deleted", content_type="")},
        errors=(404,),
    ),
]
