"""SQL access for stores, geofences, shoppers' visit state and the ping log.

Functions take a connection and never open, commit or close one: the caller
owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg
import shapely
from asyncpg.types import Box, Point

from geo import distance, errors, geojson, locks, sql
from geo.models import Fence, FenceFeature, FenceState, Fix, Transition
from geo.places import Store

_Q = sql.load("geo")


@dataclass(frozen=True, slots=True, kw_only=True)
class GeofenceRecord:
    """A stored geofence as the API shows it."""

    id: int
    merchant_id: int
    store_id: int
    name: str
    kind: str
    geometry: Mapping[str, Any]
    radius_m: float | None
    properties: Mapping[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> GeofenceRecord:
        return cls(**{k: row[k] for k in cls.__slots__})


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopperGeo:
    visits: dict[int, FenceState]
    last_fix: Fix | None
    # None: the shopper has no row yet.
    version: int | None = None


# -- stores -----------------------------------------------------------------------------


async def insert_store(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    name: str,
    lat: float,
    lon: float,
    timezone: str,
    opening_hours: Mapping[str, Sequence[str]] | None,
) -> Store:
    row = await conn.fetchrow(
        _Q["insert_store"], merchant_id, name, lat, lon, timezone, opening_hours
    )
    assert row is not None
    return Store.from_row(row)


async def get_store(conn: asyncpg.Connection, store_id: int, merchant_id: int) -> Store | None:
    row = await conn.fetchrow(_Q["get_store"], store_id, merchant_id)
    return None if row is None else Store.from_row(row)


async def list_stores(
    conn: asyncpg.Connection,
    merchant_id: int,
    scope: frozenset[int] | None,
    *,
    after: int = 0,
    limit: int = 100,
) -> list[Store]:
    rows = await conn.fetch(
        _Q["list_stores"], merchant_id, None if scope is None else sorted(scope), after, limit
    )
    return [Store.from_row(r) for r in rows]


async def update_store(
    conn: asyncpg.Connection, store_id: int, merchant_id: int, changes: Mapping[str, Any]
) -> Store | None:
    row = await conn.fetchrow(
        _Q["update_store"],
        store_id,
        merchant_id,
        changes.get("name"),
        changes.get("lat"),
        changes.get("lon"),
        changes.get("timezone"),
        sorted(changes),
        changes.get("opening_hours"),
    )
    return None if row is None else Store.from_row(row)


async def delete_store(conn: asyncpg.Connection, store_id: int, merchant_id: int) -> bool:
    return await conn.fetchval(_Q["delete_store"], store_id, merchant_id) is not None


async def existing_stores(
    conn: asyncpg.Connection, merchant_id: int, store_ids: Sequence[int]
) -> set[int]:
    rows = await conn.fetch(_Q["stores_in_merchant"], merchant_id, list(store_ids))
    return {r["id"] for r in rows}


async def store_locations(
    conn: asyncpg.Connection, merchant_id: int, store_ids: Sequence[int]
) -> dict[int, tuple[float, float]]:
    """store id -> (lon, lat) for those of the ids in the merchant, share-locked until the
    transaction ends so that no move of the store slips past a fence being written."""
    rows = await conn.fetch(_Q["store_locations"], merchant_id, list(store_ids))
    return {r["id"]: (r["lon"], r["lat"]) for r in rows}


async def store_fences(
    conn: asyncpg.Connection, store_id: int
) -> list[tuple[str, Any, float | None]]:
    """(name, shapely geometry, radius_m) of each of the store's geofences."""
    rows = await conn.fetch(_Q["store_fences"], store_id)
    geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else []
    return [(r["name"], g, r["radius_m"]) for r, g in zip(rows, geoms, strict=True)]


# -- geofences --------------------------------------------------------------------------


def extent_of(feature: FenceFeature) -> Box:
    """The feature's lon/lat bounding box; a circle's includes its radius. A circle that
    wraps the antimeridian or reaches a pole spans every longitude."""
    if feature.radius_m is not None:
        point = feature.geometry
        west, south, east, north = distance.bbox_around(point.x, point.y, feature.radius_m)
        if west > east:
            west, east = -180.0, 180.0
    else:
        west, south, east, north = feature.geometry.bounds
    return Box(Point(east, north), Point(west, south))


def _columns(
    feature: FenceFeature,
) -> tuple[str, str, dict[str, Any], bytes, float | None, dict[str, Any], Box]:
    """(name, kind, geometry GeoJSON, WKB, radius, extra properties, extent) of a validated
    feature."""
    props = dict(feature.properties)
    name = str(props.pop("name"))
    props.pop("store_id", None)
    props.pop("radius_m", None)
    geometry = geojson.geometry_to_geojson(feature.geometry)
    wkb: bytes = shapely.to_wkb(feature.geometry)
    return name, feature.kind, geometry, wkb, feature.radius_m, props, extent_of(feature)


async def insert_geofence(
    conn: asyncpg.Connection, *, merchant_id: int, store_id: int, feature: FenceFeature
) -> GeofenceRecord:
    row = await conn.fetchrow(_Q["insert_geofence"], merchant_id, store_id, *_columns(feature))
    assert row is not None
    return GeofenceRecord.from_row(row)


async def update_geofence(
    conn: asyncpg.Connection,
    *,
    geofence_id: int,
    merchant_id: int,
    store_id: int,
    feature: FenceFeature,
) -> GeofenceRecord | None:
    row = await conn.fetchrow(
        _Q["update_geofence"], geofence_id, merchant_id, store_id, *_columns(feature)
    )
    return None if row is None else GeofenceRecord.from_row(row)


async def get_geofence(
    conn: asyncpg.Connection, geofence_id: int, merchant_id: int, *, lock: bool = False
) -> GeofenceRecord | None:
    """The geofence; with ``lock``, also held until the transaction ends."""
    query = _Q["lock_geofence"] if lock else _Q["get_geofence"]
    row = await conn.fetchrow(query, geofence_id, merchant_id)
    return None if row is None else GeofenceRecord.from_row(row)


async def list_geofences(
    conn: asyncpg.Connection,
    merchant_id: int,
    scope: frozenset[int] | None,
    *,
    store_id: int | None = None,
    within: tuple[float, float, float, float] | None = None,
    after: int = 0,
    limit: int = 1000,
) -> list[GeofenceRecord]:
    """The geofences in scope, by id; ``within`` (west, south, east, north) keeps those
    whose extent meets that box."""
    view = None if within is None else Box(Point(within[2], within[3]), Point(*within[:2]))
    rows = await conn.fetch(
        _Q["list_geofences"],
        merchant_id,
        None if scope is None else sorted(scope),
        store_id,
        after,
        limit,
        view,
    )
    return [GeofenceRecord.from_row(r) for r in rows]


async def geofence_stores(
    conn: asyncpg.Connection, merchant_id: int, geofence_ids: Sequence[int]
) -> dict[int, int]:
    """geofence id -> store id, for those of the ids that exist in the merchant."""
    rows = await conn.fetch(_Q["geofence_scopes"], merchant_id, list(geofence_ids))
    return {r["id"]: r["store_id"] for r in rows}


async def delete_geofence(conn: asyncpg.Connection, geofence_id: int, merchant_id: int) -> bool:
    return await conn.fetchval(_Q["delete_geofence"], geofence_id, merchant_id) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceResult:
    created: list[int]
    updated: list[int]
    deleted: list[int]


async def lock_geofence_set(conn: asyncpg.Connection, merchant_id: int) -> None:
    """Serialise bulk replacements of one merchant's geofences until the transaction ends."""
    await conn.execute(_Q["lock_geofences"], merchant_id, locks.GEOFENCE_SET)


async def replace_geofences(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    scope: frozenset[int] | None,
    items: Sequence[tuple[int | None, int, FenceFeature]],
) -> ReplaceResult:
    """Make the set of geofences in scope exactly ``items`` (id or None, store id, feature).

    Call inside a transaction; ids must already be checked to exist in scope.
    """
    await lock_geofence_set(conn, merchant_id)
    keep = [gid for gid, _, _ in items if gid is not None]
    deleted = [
        r["id"]
        for r in await conn.fetch(
            _Q["delete_geofences_except"],
            merchant_id,
            None if scope is None else sorted(scope),
            keep,
        )
    ]
    upd_cols: list[list[Any]] = [[] for _ in range(9)]
    for gid, store_id, feature in items:
        if gid is not None:
            for target, value in zip(upd_cols, (gid, store_id, *_columns(feature)), strict=True):
                target.append(value)
    created = await insert_geofences(
        conn,
        merchant_id=merchant_id,
        items=[(store_id, feature) for gid, store_id, feature in items if gid is None],
    )
    if upd_cols[0]:
        await conn.execute(_Q["update_geofences"], merchant_id, *upd_cols)
    return ReplaceResult(created=created, updated=keep, deleted=deleted)


async def insert_geofences(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    items: Sequence[tuple[int, FenceFeature]],
) -> list[int]:
    """Insert many (store id, feature) in one statement; returns the new ids in order."""
    if not items:
        return []
    cols: list[list[Any]] = [[] for _ in range(8)]
    for store_id, feature in items:
        for target, value in zip(cols, (store_id, *_columns(feature)), strict=True):
            target.append(value)
    rows = await conn.fetch(_Q["insert_geofences"], merchant_id, *cols)
    return [r["id"] for r in rows]


async def index_rows(conn: asyncpg.Connection) -> tuple[int, list[Fence]]:
    """(change counter, every geofence) for building an index snapshot.

    The counter is read first: a change committed while the rows load bumps it
    again, so the snapshot is never taken as newer than it is.
    """
    version = int(await conn.fetchval(_Q["index_version"]))
    rows = await conn.fetch(_Q["index_rows"])
    geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else []
    fences = [
        Fence(
            id=r["id"],
            merchant_id=r["merchant_id"],
            store_id=r["store_id"],
            kind=r["kind"],
            geometry=g,
            radius_m=r["radius_m"],
        )
        for r, g in zip(rows, geoms, strict=True)
    ]
    return version, fences


async def index_version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(_Q["index_version"]))


# -- shoppers' visit state ----------------------------------------------------------------


def _visits_from_json(data: Sequence[Mapping[str, Any]]) -> dict[int, FenceState]:
    out = {}
    for v in data:
        state = FenceState(
            fence_id=int(v["f"]),
            entered_at=dt.datetime.fromisoformat(v["e"]),
            last_inside_at=dt.datetime.fromisoformat(v["l"]),
            dwell_fired=bool(v["d"]),
            out_count=int(v["o"]),
        )
        out[state.fence_id] = state
    return out


def visits_to_json(visits: Mapping[int, FenceState]) -> list[dict[str, Any]]:
    # Short keys: this is the one value written on every state change.
    return [
        {
            "f": s.fence_id,
            "e": s.entered_at.isoformat(),
            "l": s.last_inside_at.isoformat(),
            "d": s.dwell_fired,
            "o": s.out_count,
        }
        for s in sorted(visits.values(), key=lambda s: s.fence_id)
    ]


def _shopper_geo(row: asyncpg.Record | None) -> ShopperGeo:
    if row is None:
        return ShopperGeo(visits={}, last_fix=None, version=None)
    fix = None
    if row["last_ts"] is not None:
        fix = Fix(
            lon=row["last_lon"],
            lat=row["last_lat"],
            at=row["last_ts"],
            accuracy_m=float(row["last_accuracy_m"]),
        )
    return ShopperGeo(
        visits=_visits_from_json(row["visits"]), last_fix=fix, version=int(row["version"])
    )


def shopper_geo_from_row(row: asyncpg.Record) -> ShopperGeo:
    """The state from a row carrying get_shopper_geo's columns (NULL ones: no state yet)."""
    return _shopper_geo(row if row["version"] is not None else None)


async def get_shopper_geo(conn: asyncpg.Connection, shopper_id: int) -> ShopperGeo:
    return _shopper_geo(await conn.fetchrow(_Q["get_shopper_geo"], shopper_id))


async def lock_shopper_geo(
    conn: asyncpg.Connection, shopper_id: int, merchant_id: int
) -> ShopperGeo:
    """The shopper's state, locked until the transaction ends (created if missing)."""
    await conn.execute(_Q["ensure_shopper_geo"], shopper_id, merchant_id)
    return _shopper_geo(await conn.fetchrow(_Q["lock_shopper_geo"], shopper_id))


VISITS_CHANNEL = "shopper_geo_changed"


async def cas_visits(
    conn: asyncpg.Connection,
    *,
    shopper_id: int,
    merchant_id: int,
    expected_version: int | None,
    visits: Mapping[int, FenceState],
    transitions: Sequence[Transition],
    origin: str = "",
) -> int | None:
    """Write visits computed from ``expected_version``; the new version, or None if stale."""
    row = await conn.fetchrow(
        _Q["cas_visits"],
        shopper_id,
        merchant_id,
        visits_to_json(visits),
        expected_version,
        [t.fence_id for t in transitions],
        [t.event for t in transitions],
        [t.at for t in transitions],
        f"{origin}:{shopper_id}",
    )
    return None if row is None else int(row["version"])


async def save_visits(
    conn: asyncpg.Connection,
    *,
    shopper_id: int,
    merchant_id: int,
    visits: Mapping[int, FenceState],
    transitions: Sequence[Transition],
    origin: str = "",
) -> None:
    """Write the visits and events; announce the change on ``VISITS_CHANNEL``.

    The payload is ``<origin>:<shopper id>`` so the writer can skip its own news.
    """
    await conn.execute(_Q["save_visits"], shopper_id, visits_to_json(visits))
    await conn.execute(_Q["notify_visits"], f"{origin}:{shopper_id}")
    if transitions:
        await conn.execute(
            _Q["insert_events"],
            merchant_id,
            shopper_id,
            [t.fence_id for t in transitions],
            [t.event for t in transitions],
            [t.at for t in transitions],
        )


# -- ping log ---------------------------------------------------------------------------


class PingRecord(NamedTuple):
    """One row of the ping log; a tuple so a batch transposes into columns cheaply."""

    merchant_id: int
    shopper_id: int
    ts: dt.datetime
    received_at: dt.datetime
    lat: float
    lon: float
    accuracy_m: float
    speed_mps: float | None
    weather_condition: str | None
    temp_c: float | None
    verdict: str
    transitions: int


async def write_pings(
    conn: asyncpg.Connection,
    pings: Sequence[PingRecord],
    *,
    spool: str | None = None,
    spooled_to: int = 0,
    shared: bool = False,
) -> None:
    """Append a batch to the ping log and move each shopper's travel baseline forward.

    ``shared``: called in a transaction that took `share_ping_log` first; no savepoint
    and no second lock call. With ``spool``, the same statement records that this spool
    file is in the database up to byte ``spooled_to``. Pings of erased shoppers are
    dropped: the shared lock makes an erasure (which takes it exclusively, see
    `lock_out_ping_log`) wait for this batch and delete its rows, or this batch wait
    for the erasure and see it.
    """
    if not pings:
        return
    columns = [list(column) for column in zip(*pings, strict=True)]
    if shared:  # the caller's transaction holds the shared lock already (share_ping_log)
        await conn.execute(_Q["log_pings"], *columns, spool, spooled_to)
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", locks.PING_LOG)
        await conn.execute(_Q["log_pings"], *columns, spool, spooled_to)


async def share_ping_log(conn: asyncpg.Connection) -> None:
    """Take the ping log's shared lock for this transaction, before any row lock, as an
    erasure takes it exclusively before the shopper's rows (`lock_out_ping_log`)."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", locks.PING_LOG)


async def lock_out_ping_log(conn: asyncpg.Connection) -> None:
    """Wait for ping log batches in flight and hold new ones off until this transaction
    ends: an erasure takes this before deleting a shopper's pings."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", locks.PING_LOG)


async def spool_mark(conn: asyncpg.Connection, spool: str) -> int:
    """How far into this spool file the database has its records (0: nothing yet)."""
    mark: int | None = await conn.fetchval(_Q["spool_mark"], spool)
    return mark or 0


async def drop_spool_mark(conn: asyncpg.Connection, spool: str) -> None:
    await conn.execute(_Q["drop_spool_mark"], spool)


async def purge_spool_marks(conn: asyncpg.Connection, older_than: dt.datetime) -> None:
    await conn.execute(_Q["purge_spool_marks"], older_than)


async def purge_pings(
    conn: asyncpg.Connection, older_than: dt.datetime, batch: int = 10_000
) -> int:
    """Delete one slice of pings received before ``older_than``; returns how many."""
    status: str = await conn.execute(_Q["purge_pings"], older_than, batch)
    return int(status.split()[-1])


# -- resends ----------------------------------------------------------------------------


async def seen_pings(
    conn: asyncpg.Connection, shopper_id: int, client_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Any]:
    """The recorded answer of each of these client ids the shopper's pings already used."""
    rows = await conn.fetch(_Q["seen_pings"], shopper_id, list(client_ids))
    return {r["client_id"]: r["answer"] for r in rows}


async def record_receipts(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    received_at: dt.datetime,
    answers: Mapping[uuid.UUID, Any],
) -> None:
    """Record each client id with its answer; `DuplicatePing` if one is recorded already."""
    try:
        await conn.execute(
            _Q["insert_receipts"],
            shopper_id,
            merchant_id,
            received_at,
            list(answers),
            list(answers.values()),
        )
    except asyncpg.UniqueViolationError as exc:
        raise errors.DuplicatePing(str(exc)) from None


async def purge_receipts(
    conn: asyncpg.Connection, older_than: dt.datetime, batch: int = 10_000
) -> int:
    """Delete one slice of receipts older than ``older_than``; returns how many."""
    status: str = await conn.execute(_Q["purge_receipts"], older_than, batch)
    return int(status.split()[-1])
