"""The raw ping log, written in batches off the request path.

Handlers append records to an in-memory buffer; a background task writes them
with one UNNEST insert per batch. If the database is away the buffer is kept
(up to a bound) and retried, and a clean shutdown flushes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from gateway import db
from geo import store as geo_store

log = logging.getLogger(__name__)


class PingLog:
    def __init__(
        self,
        *,
        flush_seconds: float = 0.2,
        batch_size: int = 5000,
        max_buffer: int = 500_000,
    ) -> None:
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._buffer: list[geo_store.PingRecord] = []
        self._wake = asyncio.Event()
        # One flush at a time, so a batch that failed and went back to the front of the
        # buffer is written before anything that came after it.
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pool: asyncpg.Pool | None = None
        self.written = 0
        self.dropped = 0

    def add(self, record: geo_store.PingRecord) -> None:
        if len(self._buffer) >= self._max_buffer:
            # Only when the database has been away for long: keep the newest.
            del self._buffer[: self._batch_size]
            self.dropped += self._batch_size
            log.error("ping log buffer full; oldest pings dropped", extra={"dropped": self.dropped})
        self._buffer.append(record)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._task = asyncio.create_task(self._run(), name="ping-log")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _ in range(3):
            if not self._buffer:
                break
            try:
                await self.flush()
            except Exception:
                log.warning("ping log flush at shutdown failed", exc_info=True)
                await asyncio.sleep(0.5)
        if self._buffer:
            log.error("ping log: pings not written at shutdown", extra={"count": len(self._buffer)})

    async def flush(self) -> int:
        """Write everything buffered now; returns how many were written."""
        assert self._pool is not None
        total = 0
        async with self._flushing:
            while self._buffer:
                # Taken out while in flight, so add() trimming a full buffer meanwhile
                # cannot shift what gets dropped after the write.
                batch = self._buffer[: self._batch_size]
                del self._buffer[: len(batch)]
                try:
                    async with db.acquire(self._pool) as conn, conn.transaction():
                        await geo_store.write_pings(conn, batch)
                except BaseException:
                    self._buffer[:0] = batch  # not written: first in line again
                    raise
                total += len(batch)
                self.written += len(batch)
        return total

    async def _run(self) -> None:
        backoff = self._flush_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
                backoff = self._flush_seconds
            except Exception:
                log.warning("ping log flush failed; retrying", exc_info=True)
                backoff = min(backoff * 2, 5.0)
                await asyncio.sleep(backoff)
