"""The in-app inbox: the shopper's live coupons, and the wake-ups of the live feed.

A decision that sends to the inbox announces it (NOTIFY inbox, payload the shopper
id) in the transaction that issues the coupon; every replica hears it, and the live
feeds of that shopper open on that replica read what is new.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from typing import Any

import asyncpg
from aiohttp import web

from gateway import listen
from geo import sql

_Q = sql.load("gateway.delivery")
CHANNEL = "inbox"


def _load() -> dict[str, str]:
    cols = _Q["inbox_columns"]
    return {k: v.replace("{inbox_columns}", cols) for k, v in _Q.items()}


Q = _load()


async def page(
    conn: asyncpg.Connection,
    shopper_id: int,
    now: dt.datetime,
    *,
    before: tuple[dt.datetime, Any] | None,
    limit: int,
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            Q["inbox"],
            shopper_id,
            now,
            before[0] if before else None,
            before[1] if before else None,
            limit,
        )
    )


async def since(
    conn: asyncpg.Connection, shopper_id: int, now: dt.datetime, after: dt.datetime
) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q["inbox_since"], shopper_id, now, after))


async def delivery_of(conn: asyncpg.Connection, delivery_id: Any, shopper_id: int) -> Any:
    return await conn.fetchrow(Q["delivery_of"], delivery_id, shopper_id)


async def tracked(conn: asyncpg.Connection, delivery_id: Any) -> asyncpg.Record | None:
    """When a delivery was opened and dismissed."""
    return await conn.fetchrow(Q["delivery_times"], delivery_id)


class Hub:
    """Wakes the live feeds of a shopper open in this process."""

    def __init__(self) -> None:
        self._feeds: dict[int, set[asyncio.Event]] = defaultdict(set)

    def attach(self, listener: listen.Listener) -> None:
        listener.subscribe(CHANNEL, self._on_notify)
        # After a lost connection, wake everyone: they re-read what they missed.
        listener.on_lost(self._wake_all)

    def _on_notify(self, payload: str) -> None:
        if payload.isascii() and payload.isdigit():
            for event in self._feeds.get(int(payload), ()):
                event.set()

    def _wake_all(self) -> None:
        for events in self._feeds.values():
            for event in events:
                event.set()

    def open(self, shopper_id: int) -> asyncio.Event:
        event = asyncio.Event()
        self._feeds[shopper_id].add(event)
        return event

    def close(self, shopper_id: int, event: asyncio.Event) -> None:
        feeds = self._feeds.get(shopper_id)
        if feeds is not None:
            feeds.discard(event)
            if not feeds:
                del self._feeds[shopper_id]

    @property
    def open_feeds(self) -> int:
        return sum(len(v) for v in self._feeds.values())


INBOX_HUB = web.AppKey("inbox_hub", Hub)
