"""One LISTEN connection per process, shared by everything that follows database changes.

Subscribers name a channel and a callback. When the connection drops, every
``on_lost`` hook runs (caches must assume they missed something) and the
connection is re-made by the listener's own retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from gateway import db

log = logging.getLogger(__name__)


class Listener:
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: asyncpg.Connection | None = None
        self._channels: dict[str, list[Callable[[str], None]]] = {}
        self._on_lost: list[Callable[[], None]] = []
        self._was_up = False
        self._closing = False
        self._retry: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        self._channels.setdefault(channel, []).append(callback)

    async def subscribe_now(self, channel: str, callback: Callable[[str], None]) -> None:
        """Subscribe, and start listening at once if the connection is already up."""
        new = channel not in self._channels
        self.subscribe(channel, callback)
        if new and self._conn is not None and not self._conn.is_closed():
            await self._conn.add_listener(channel, self._dispatch)

    def on_lost(self, hook: Callable[[], None]) -> None:
        self._on_lost.append(hook)

    async def ensure(self) -> bool:
        """Connect and listen if not already; returns whether the listener is up."""
        if self.alive:
            return True
        try:
            conn = await db.connect(self._url)
            for channel in self._channels:
                await conn.add_listener(channel, self._dispatch)
        except Exception as exc:
            if not db.is_unavailable(exc):
                raise
            log.warning("change listener unavailable; will retry")
            self._was_up = True  # a gap to cover once it connects
            return False
        conn.add_termination_listener(self._lost)
        self._conn = conn
        if self._was_up:
            # Whatever happened while nobody listened is unknown: treat it as changed.
            # (Not on the first connect: the caches were just loaded from the database.)
            self._notify_lost()
        self._was_up = True
        return True

    async def start(self, retry_seconds: float = 5.0) -> None:
        """Connect now, and keep reconnecting in the background whenever the link drops."""
        await self.ensure()
        self._retry = asyncio.create_task(self._keep_up(retry_seconds), name="listener-retry")

    async def _keep_up(self, retry_seconds: float) -> None:
        while True:
            await asyncio.sleep(retry_seconds)
            try:
                await self.ensure()
            except Exception:
                log.warning("change listener reconnect failed", exc_info=True)

    async def close(self) -> None:
        self._closing = True
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
        self._conn = None

    def _dispatch(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        for callback in self._channels.get(channel, ()):
            callback(str(payload))

    def _lost(self, conn: Any) -> None:
        if self._closing:
            return
        log.warning("change listener connection lost")
        self._conn = None
        self._notify_lost()

    def _notify_lost(self) -> None:
        for hook in self._on_lost:
            hook()


LISTENER = web.AppKey("listener", Listener)
