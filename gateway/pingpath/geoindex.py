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

import asyncpg
from aiohttp import web

from gateway import db, listen, metrics
from geo import store as geo_store
from geo.index import FenceIndex
from geo.models import MatchKernel

log = logging.getLogger(__name__)

CHANNEL = "geofences_changed"


class IndexHolder:
    def __init__(self, *, poll_seconds: float = 5.0, match_kernel: MatchKernel = "auto") -> None:
        self.index: FenceIndex = FenceIndex.build([])
        self._match_kernel: MatchKernel = match_kernel
        self.version = -1
        self.rebuilds = 0
        self._poll_seconds = poll_seconds
        self._wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: asyncpg.Pool | None = None
        # One rebuild at a time, so a newer snapshot is never replaced by an older one
        # that was loading alongside it. Rebuilds are numbered as they begin; `_built` is
        # the number of the last one that succeeded.
        self._lock = asyncio.Lock()
        self._started = 0
        self._built = 0

    @property
    def ready(self) -> bool:
        return self.version >= 0

    def attach(self, listener: listen.Listener) -> None:
        """Follow geofence changes through the process's listener (call before it connects)."""
        listener.subscribe(CHANNEL, lambda _payload: self._wanted.set())
        listener.on_lost(self._wanted.set)

    async def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
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

    async def refresh(self) -> None:
        """Bring this process's index up to every change committed before the call.

        A write's handler awaits this before answering, so whoever changed a geofence
        sees the change in their next ping through this replica (read your own writes);
        other replicas follow by NOTIFY as before. A rebuild that began after the call
        (its load then saw the commit) is as good as one of our own.
        """
        asked = self._started
        async with self._lock:
            if self._built > asked:
                return
            try:
                await self._rebuild_locked()
            except Exception:
                # The write is committed: answer it, and let the loop catch up as before.
                log.warning("geofence index refresh failed; will retry", exc_info=True)
                self._wanted.set()

    async def rebuild(self) -> None:
        async with self._lock:
            await self._rebuild_locked()

    async def _rebuild_locked(self) -> None:
        assert self._pool is not None
        self._started += 1
        number = self._started
        started = time.perf_counter()
        async with db.acquire(self._pool) as conn:
            version, fences = await geo_store.index_rows(conn)
        # In a thread: the first build also compiles (or loads) the match kernel.
        index = await asyncio.to_thread(FenceIndex.build, fences, self._match_kernel)
        # The swap: one reference assignment, atomic for every reader on this loop.
        self.index = index
        self.version = version
        self.rebuilds += 1
        self._built = number
        metrics.index_rebuilt(len(index), version, time.perf_counter() - started, time.time())
        log.info(
            "geofence index built",
            extra={
                "fences": len(index),
                "version": version,
                "match_kernel": index.match_kernel,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    async def _rebuild_loop(self) -> None:
        while True:
            await self._wanted.wait()
            # Let a burst of changes (a bulk import, several edits) settle into one rebuild.
            await asyncio.sleep(0.05)
            self._wanted.clear()
            try:
                # A write through this process already brought the index up to date before
                # answering (refresh): its own NOTIFY then finds nothing new to build.
                if await self.stale():
                    await self.rebuild()
            except Exception:
                log.warning("geofence index rebuild failed; will retry", exc_info=True)
                await asyncio.sleep(1)
                self._wanted.set()

    async def stale(self) -> bool:
        """Whether a geofence change was committed since the index's snapshot."""
        assert self._pool is not None
        async with db.acquire(self._pool) as conn:
            return await geo_store.index_version(conn) != self.version

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                stale = await self.stale()
            except Exception:
                log.warning("geofence change poll failed", exc_info=True)
                continue
            if stale:
                self._wanted.set()


GEO_INDEX = web.AppKey("geo_index", IndexHolder)
