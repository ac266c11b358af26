"""Each process's geofence index snapshot, kept current through LISTEN/NOTIFY.

A rebuild loads every geofence, builds a new immutable :class:`geo.index.FenceIndex`
in a worker thread and swaps the reference in one assignment, so a ping always
sees either the old index or the new one, never half of one. Notifications
trigger rebuilds; a poll of the change counter covers a lost listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

from gateway import db
from geo import store as geo_store
from geo.index import FenceIndex

log = logging.getLogger(__name__)

CHANNEL = "geofences_changed"


class IndexHolder:
    def __init__(self, *, poll_seconds: float = 5.0) -> None:
        self.index: FenceIndex = FenceIndex.build([])
        self.version = -1
        self.built_at = 0.0
        self.last_build_seconds = 0.0
        self.rebuilds = 0
        self._poll_seconds = poll_seconds
        self._wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        self._url = ""

    @property
    def ready(self) -> bool:
        return self.version >= 0

    async def start(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self._url = url
        await self._listen()
        await self.rebuild()
        self._tasks = [
            asyncio.create_task(self._rebuild_loop(), name="geoindex-rebuild"),
            asyncio.create_task(self._poll_loop(), name="geoindex-poll"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()

    def request_rebuild(self) -> None:
        self._wanted.set()

    async def rebuild(self) -> None:
        assert self._pool is not None
        started = time.perf_counter()
        async with db.acquire(self._pool) as conn:
            version, fences = await geo_store.index_rows(conn)
        index = await asyncio.to_thread(FenceIndex.build, fences)
        # The swap: one reference assignment, atomic for every reader on this loop.
        self.index = index
        self.version = version
        self.built_at = time.time()
        self.last_build_seconds = time.perf_counter() - started
        self.rebuilds += 1
        log.info(
            "geofence index built",
            extra={
                "fences": len(index),
                "version": version,
                "seconds": round(self.last_build_seconds, 3),
            },
        )

    def _on_notify(self, *args: Any) -> None:
        self._wanted.set()

    async def _listen(self) -> None:

        try:
            conn = await db.connect(self._url)
            await conn.add_listener(CHANNEL, self._on_notify)
            conn.add_termination_listener(lambda _c: self._wanted.set())
        except Exception as exc:
            if not db.is_unavailable(exc):
                raise
            log.warning("geofence change listener unavailable; polling only")
            return
        self._listener = conn

    async def _rebuild_loop(self) -> None:
        while True:
            await self._wanted.wait()
            # Let a burst of changes (a bulk import, several edits) settle into one rebuild.
            await asyncio.sleep(0.05)
            self._wanted.clear()
            try:
                if self._listener is None or self._listener.is_closed():
                    await self._listen()
                await self.rebuild()
            except Exception:
                log.warning("geofence index rebuild failed; will retry", exc_info=True)
                await asyncio.sleep(1)
                self._wanted.set()

    async def _poll_loop(self) -> None:
        assert self._pool is not None
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                async with db.acquire(self._pool) as conn:
                    current = await geo_store.index_version(conn)
            except Exception:
                log.warning("geofence change poll failed", exc_info=True)
                continue
            if current != self.version or self._listener is None or self._listener.is_closed():
                self._wanted.set()
