"""Geofences: the GeoJSON shapes around stores that offers are drawn onto."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Principal, Role
from gateway.db import POOL
from gateway.http import api, errors, paging
from gateway.http.api import Endpoint, Reply
from gateway.pingpath.geoindex import GEO_INDEX
from gateway.settings import SETTINGS
from geo import anchor, geojson
from geo import store as geo_store
from geo.models import FenceFeature

WRITERS = frozenset({Role.ADMIN, Role.MANAGER})
READERS = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})


class FeatureProperties(api.Out):
    model_config = pydantic.ConfigDict(extra="allow")
    store_id: str
    name: str
    radius_m: float | None = None


class GeofenceFeature(api.Out):
    """A stored geofence as a GeoJSON Feature (RFC 7946)."""

    type: str = pydantic.Field(json_schema_extra={"const": "Feature"})
    id: str
    geometry: dict[str, Any]
    properties: FeatureProperties


class GeofenceCollection(api.Out):
    type: str = pydantic.Field(json_schema_extra={"const": "FeatureCollection"})
    features: list[GeofenceFeature]


class GeofenceList(api.Out):
    items: list[GeofenceFeature]
    next_cursor: str | None


class ImportResult(api.Out):
    created: list[str]
    updated: list[str]
    deleted: list[str]


_FEATURE_IN = {
    "type": "object",
    "description": "A GeoJSON Feature. geometry: Polygon or MultiPolygon in [lon, lat], or a "
    "Point with properties.radius_m (10 to 10000 m) for a true metre circle. properties "
    f"must hold store_id and name. At most {geojson.MAX_VERTICES} positions per geofence.",
    "required": ["type", "geometry", "properties"],
    "properties": {
        "type": {"const": "Feature"},
        "geometry": {"type": "object"},
        "properties": {
            "type": "object",
            "required": ["store_id", "name"],
            "properties": {
                "store_id": {"type": "string"},
                "name": {"type": "string"},
                "radius_m": {"type": "number"},
            },
        },
    },
}


_NEAR = (
    " A geofence must lie within GATEWAY_MAX_FENCE_DISTANCE_M (50 km by default) of its "
    "store, measured from the store to the fence's nearest point: else 422 fence_too_far, "
    "with error.fields at the offending geometry.coordinates and, when exchanging each "
    "position's two numbers would bring the fence within reach, the hint \"did you swap "
    'longitude and latitude?".'
)


def _answer(rec: geo_store.GeofenceRecord) -> dict[str, Any]:
    props: dict[str, Any] = dict(rec.properties)
    props["store_id"] = str(rec.store_id)
    props["name"] = rec.name
    if rec.radius_m is not None:
        props["radius_m"] = rec.radius_m
    return {"type": "Feature", "id": str(rec.id), "geometry": rec.geometry, "properties": props}


async def _json_body(request: web.Request, limit: int) -> Any:
    raw = await api.read_body(
        request, limit=limit, media_types=("application/geo+json", "application/json")
    )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidJson(f"the body is not valid JSON: {exc}") from None


def _store_id_of(props: Any, path: str) -> int:
    store_id = api.as_id(props.get("store_id") if isinstance(props, dict) else None)
    if store_id is not None:
        return store_id
    raise errors.ValidationFailed(
        "the geofence needs a store", fields={f"{path}properties.store_id": "required: a store id"}
    )


async def _check_stores(
    conn: Any, p: Principal, store_ids: set[int], where: dict[int, str]
) -> dict[int, tuple[float, float]]:
    """The stores' (lon, lat), once each exists in the merchant and is in the token's scope."""
    found = await geo_store.store_locations(conn, p.merchant_id, sorted(store_ids))
    missing = store_ids - set(found)
    if missing:
        raise errors.ValidationFailed(
            "unknown store",
            fields={where[s]: f"no store {s} in this merchant" for s in sorted(missing)},
        )
    outside = {s for s in store_ids if not p.can_reach_store(s)}
    if outside:
        raise errors.Forbidden(
            f"this token is not scoped to store(s) {', '.join(map(str, sorted(outside)))}",
            code="out_of_scope",
        )
    return found


def _check_near(
    request: web.Request,
    fences: list[tuple[str, int, FenceFeature]],
    stores: dict[int, tuple[float, float]],
) -> None:
    """Each (path, store id, feature) must lie within GATEWAY_MAX_FENCE_DISTANCE_M of its store."""
    anchor.check(
        [
            anchor.Tethered(
                path=path,
                geometry=feature.geometry,
                radius_m=feature.radius_m,
                store_lon=stores[store_id][0],
                store_lat=stores[store_id][1],
            )
            for path, store_id, feature in fences
        ],
        request.app[SETTINGS].max_fence_distance_m,
    )


def _check_name(feature: FenceFeature, path: str) -> None:
    name = feature.properties.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise errors.ValidationFailed(
            "the geofence needs a name",
            fields={f"{path}properties.name": "required: a string of 1 to 200 characters"},
        )


def _parse_feature(data: Any, path: str = "") -> FenceFeature:
    feature = geojson.parse_feature(data, path=path)
    _check_name(feature, path)
    return feature


async def create_geofence(request: web.Request) -> web.Response:
    p = api.principal(request)
    data = await _json_body(request, request.app[SETTINGS].max_body_bytes)
    feature = _parse_feature(data)
    store_id = _store_id_of(feature.properties, "")
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        stores = await _check_stores(conn, p, {store_id}, {store_id: "properties.store_id"})
        _check_near(request, [("", store_id, feature)], stores)
        rec = await geo_store.insert_geofence(
            conn, merchant_id=p.merchant_id, store_id=store_id, feature=feature
        )
    await request.app[GEO_INDEX].refresh()
    return api.json(_answer(rec), status=201)


async def _visible_geofence(
    request: web.Request, conn: Any, *, lock: bool = False
) -> geo_store.GeofenceRecord:
    p = api.principal(request)
    rec = await geo_store.get_geofence(
        conn, api.path_id(request, "geofence_id"), p.merchant_id, lock=lock
    )
    if rec is None:
        raise errors.NotFound("no such geofence")
    api.require_store(p, rec.store_id)
    return rec


async def get_geofence(request: web.Request) -> web.Response:
    async with db.acquire(request.app[POOL]) as conn:
        rec = await _visible_geofence(request, conn)
    return api.json(_answer(rec))


async def patch_geofence(request: web.Request) -> web.Response:
    """Merge a partial Feature (geometry and/or properties) into the stored one."""
    p = api.principal(request)
    data = await _json_body(request, request.app[SETTINGS].max_body_bytes)
    if not isinstance(data, dict):
        raise errors.ValidationFailed("send a partial GeoJSON Feature", fields={"(body)": "object"})
    unknown = set(data) - {"type", "geometry", "properties", "id"}
    if unknown:
        raise errors.ValidationFailed(
            "unknown members", fields={k: "not a Feature member" for k in sorted(unknown)}
        )
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        current = _answer(await _visible_geofence(request, conn, lock=True))
        props = dict(current["properties"])
        patch_props = data.get("properties")
        if patch_props is None:  # absent or null: no property changes
            patch_props = {}
        if not isinstance(patch_props, dict):
            raise errors.ValidationFailed("bad properties", fields={"properties": "an object"})
        props.update(patch_props)
        props = {k: v for k, v in props.items() if v is not None}
        geometry = data.get("geometry", current["geometry"])
        # A circle redrawn as a polygon drops its radius unless the patch names one.
        new_kind = geometry.get("type") if isinstance(geometry, dict) else None
        if "geometry" in data and new_kind != "Point" and "radius_m" not in patch_props:
            props.pop("radius_m", None)
        merged = {"type": "Feature", "geometry": geometry, "properties": props}
        feature = _parse_feature(merged)
        store_id = _store_id_of(feature.properties, "")
        stores = await _check_stores(conn, p, {store_id}, {store_id: "properties.store_id"})
        if "geometry" in data or str(store_id) != current["properties"]["store_id"]:
            # A rename alone does not answer for where the fence was drawn long ago.
            _check_near(request, [("", store_id, feature)], stores)
        rec = await geo_store.update_geofence(
            conn,
            geofence_id=int(current["id"]),
            merchant_id=p.merchant_id,
            store_id=store_id,
            feature=feature,
        )
    assert rec is not None
    await request.app[GEO_INDEX].refresh()
    return api.json(_answer(rec))


async def delete_geofence(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        rec = await _visible_geofence(request, conn)
        await geo_store.delete_geofence(conn, rec.id, p.merchant_id)
    await request.app[GEO_INDEX].refresh()
    return web.Response(status=204)


def _bbox(request: web.Request) -> tuple[float, float, float, float] | None:
    """?bbox=west,south,east,north in degrees (RFC 7946 order), or None."""
    raw = request.query.get("bbox")
    if raw is None:
        return None
    problem = "west,south,east,north in degrees, for example 2.33,48.85,2.36,48.87"
    try:
        west, south, east, north = (float(v) for v in raw.split(","))
    except ValueError:
        raise errors.ValidationFailed("bad query parameter", fields={"bbox": problem}) from None
    if not all(math.isfinite(v) for v in (west, south, east, north)) or not (
        -180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90
    ):
        raise errors.ValidationFailed("bad query parameter", fields={"bbox": problem})
    if west > east:
        raise errors.ValidationFailed(
            "bad query parameter",
            fields={"bbox": "west is east of east: ask for each side of the antimeridian"},
        )
    return west, south, east, north


async def list_geofences(request: web.Request) -> web.StreamResponse:
    p = api.principal(request)
    store_id = paging.query_id(request, "store_id", "an id")
    within = _bbox(request)
    if store_id is not None:
        api.require_store(p, store_id)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "geojson"):
        raise errors.ValidationFailed(
            "bad query parameter", fields={"format": "'json' (paged) or 'geojson'"}
        )
    pool = request.app[POOL]
    if fmt == "json":
        limit = paging.limit(request, 500, 5000)
        async with db.acquire(pool) as conn:
            recs = await geo_store.list_geofences(
                conn,
                p.merchant_id,
                p.store_ids,
                store_id=store_id,
                within=within,
                after=paging.cursor(request),
                limit=limit,
            )
        items = [_answer(r) for r in recs]
        next_cursor = paging.next_cursor([i["id"] for i in items], limit)
        return api.json({"items": items, "next_cursor": next_cursor})
    # The whole collection, streamed page by page so memory stays flat.
    response = web.StreamResponse(headers={"Content-Type": "application/geo+json"})
    if not await api.prepare_stream(request, response):
        return response
    await response.write(b'{"type":"FeatureCollection","features":[')
    after, first = 0, True
    while True:
        async with db.acquire(pool) as conn:
            recs = await geo_store.list_geofences(
                conn,
                p.merchant_id,
                p.store_ids,
                store_id=store_id,
                within=within,
                after=after,
                limit=2000,
            )
        if not recs:
            break
        chunk = b",".join(orjson.dumps(_answer(r)) for r in recs)
        await response.write(chunk if first else b"," + chunk)
        first = False
        after = recs[-1].id
    await response.write(b"]}")
    await response.write_eof()
    return response


async def replace_geofences(request: web.Request) -> web.Response:
    """All or nothing: after this, the geofences in the caller's scope are exactly these."""
    p = api.principal(request)
    data = await _json_body(request, request.app[SETTINGS].max_import_bytes)
    features = geojson.parse_feature_collection(data)
    raw_features = data["features"]
    items: list[tuple[int | None, int, FenceFeature]] = []
    where: dict[int, str] = {}
    ids_seen: dict[int, str] = {}
    for i, (raw, feature) in enumerate(zip(raw_features, features, strict=True)):
        path = f"features[{i}]."
        _check_name(feature, path)
        store_id = _store_id_of(feature.properties, path)
        where.setdefault(store_id, f"{path}properties.store_id")
        gid: int | None = None
        if raw.get("id") is not None:
            gid = api.as_id(raw["id"])
            if gid is None:
                raise errors.ValidationFailed(
                    "bad feature id", fields={f"{path}id": "a geofence id, or omit it to create"}
                )
            if gid in ids_seen:
                raise errors.ValidationFailed(
                    "duplicate feature id",
                    fields={f"{path}id": f"also used by {ids_seen[gid].rstrip('.')}"},
                )
            ids_seen[gid] = path
        items.append((gid, store_id, feature))
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        # Before any check: what is checked stays true until this import commits.
        await geo_store.lock_geofence_set(conn, p.merchant_id)
        stores = await _check_stores(conn, p, set(where), where)
        _check_near(
            request,
            [(f"features[{i}].", sid, feature) for i, (_, sid, feature) in enumerate(items)],
            stores,
        )
        if ids_seen:
            existing = await geo_store.geofence_stores(conn, p.merchant_id, sorted(ids_seen))
            for gid, path in ids_seen.items():
                if gid not in existing:
                    raise errors.ValidationFailed(
                        "unknown geofence id",
                        fields={f"{path}id": f"no geofence {gid}; omit the id to create one"},
                    )
                if not p.can_reach_store(existing[gid]):
                    raise errors.Forbidden(
                        f"geofence {gid} belongs to a store outside this token's scope",
                        code="out_of_scope",
                    )
        result = await geo_store.replace_geofences(
            conn, merchant_id=p.merchant_id, scope=p.store_ids, items=items
        )
    await request.app[GEO_INDEX].refresh()
    return api.json(
        {
            "created": [str(i) for i in result.created],
            "updated": [str(i) for i in result.updated],
            "deleted": [str(i) for i in result.deleted],
        }
    )


ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/v1/geofences",
        handler=create_geofence,
        tag="places",
        summary="Create a geofence from a GeoJSON Feature",
        description=_NEAR.strip(),
        roles=WRITERS,
        body_schema=_FEATURE_IN,
        replies={201: Reply(description="The stored Feature with its id", model=GeofenceFeature)},
    ),
    Endpoint(
        method="GET",
        path="/v1/geofences",
        handler=list_geofences,
        tag="places",
        summary="List geofences (paged JSON) or export them all (?format=geojson)",
        roles=READERS,
        replies={
            200: Reply(
                description="A page of Features, or with format=geojson the whole "
                "FeatureCollection as application/geo+json",
                model=GeofenceList,
                alternatives={"application/geo+json": GeofenceCollection},
            )
        },
        errors=(422,),
        parameters=(
            *paging.PAGING,
            {"name": "store_id", "in": "query", "required": False, "schema": {"type": "string"}},
            {
                "name": "bbox",
                "in": "query",
                "required": False,
                "description": "Only geofences whose extent (a circle's includes its radius) "
                "meets this box: west,south,east,north in degrees, west not east of east.",
                "schema": {"type": "string", "example": "2.33,48.85,2.36,48.87"},
            },
            {
                "name": "format",
                "in": "query",
                "required": False,
                "schema": {"enum": ["json", "geojson"]},
            },
        ),
    ),
    Endpoint(
        method="PUT",
        path="/v1/geofences",
        handler=replace_geofences,
        tag="places",
        summary="Bulk import: replace the geofences in scope with a FeatureCollection",
        description="All or nothing. Features with an id update that geofence; features "
        "without one are created; geofences in the token's scope that are not in the "
        "collection are deleted. Export with GET ?format=geojson, edit, and PUT it back." + _NEAR,
        roles=WRITERS,
        body_schema={"type": "object", "description": "A GeoJSON FeatureCollection"},
        bulk_body=True,
        replies={200: Reply(description="What changed", model=ImportResult)},
    ),
    Endpoint(
        method="GET",
        path="/v1/geofences/{geofence_id}",
        handler=get_geofence,
        tag="places",
        summary="Read a geofence as a GeoJSON Feature",
        roles=READERS,
        replies={200: Reply(description="The Feature", model=GeofenceFeature)},
        errors=(404,),
    ),
    Endpoint(
        method="PATCH",
        path="/v1/geofences/{geofence_id}",
        handler=patch_geofence,
        tag="places",
        summary="Change a geofence: send geometry and/or properties to merge",
        description=_NEAR.strip(),
        roles=WRITERS,
        body_schema={"type": "object", "description": "A partial GeoJSON Feature"},
        replies={200: Reply(description="The Feature", model=GeofenceFeature)},
        errors=(404,),
    ),
    Endpoint(
        method="DELETE",
        path="/v1/geofences/{geofence_id}",
        handler=delete_geofence,
        tag="places",
        summary="Delete a geofence",
        roles=WRITERS,
        replies={204: Reply(description="Deleted", content_type="")},
        errors=(404,),
    ),
]
