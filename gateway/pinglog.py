"""The raw ping log, written in batches by one background writer.

Two modes, chosen per process (``GATEWAY_PING_LOG_SYNC``):

- **sync** (the default): a ping is answered only once its log row is committed.
  Handlers hand their records to the writer and wait; the writer takes whatever
  has queued up meanwhile and writes it as one statement (group commit). Under
  load batches grow by themselves, so the cost per ping falls as the rate rises;
  no timer adds latency. A write that fails fails every ping waiting on it (the
  caller answers 503 and the app sends the ping again), so an answered ping is
  never lost, even to ``kill -9``.
- **buffered**: handlers append and go on; the writer flushes every
  ``flush_seconds``. Cheaper per ping, and pings are taken from the caches while
  the database is away (kept, up to a bound, and retried), but a process killed
  without a clean shutdown loses up to ``flush_seconds`` of pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import asyncpg

from gateway import db
from geo import store as geo_store

log = logging.getLogger(__name__)


class _Waiter:
    """A handler waiting for its records; resolved once the last of them is written."""

    __slots__ = ("future", "remaining")

    def __init__(self, future: asyncio.Future[None], remaining: int) -> None:
        self.future = future
        self.remaining = remaining


class PingLog:
    def __init__(
        self,
        *,
        sync: bool = True,
        flush_seconds: float = 0.2,
        batch_size: int = 5000,
        max_buffer: int = 500_000,
    ) -> None:
        self.sync = sync
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._buffer: list[geo_store.PingRecord] = []
        # Parallel to _buffer in sync mode: who waits for each record (None: no one).
        self._owners: list[_Waiter | None] = []
        self._wake = asyncio.Event()
        # One flush at a time, so a batch that failed and went back to the front of the
        # buffer is written before anything that came after it.
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pool: asyncpg.Pool | None = None
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.batches = 0

    async def record(self, records: Sequence[geo_store.PingRecord]) -> None:
        """Log these pings; in sync mode, return once they are committed (or raise)."""
        if not records:
            return
        if not self.sync or self._task is None or self._task.done():
            # Buffered mode, or no writer running (not started, or shutting down): buffer
            # them for the next flush.
            for r in records:
                self.add(r)
            return
        waiter = _Waiter(asyncio.get_running_loop().create_future(), len(records))
        self._buffer.extend(records)
        self._owners.extend([waiter] * len(records))
        self._wake.set()
        await waiter.future

    def add(self, record: geo_store.PingRecord) -> None:
        """Buffer one ping for the next flush, without waiting for it to be written."""
        if len(self._buffer) >= self._max_buffer:
            # Only when the database has been away for long: keep the newest.
            del self._buffer[: self._batch_size]
            self._fail(self._owners[: self._batch_size], db.Unavailable("the ping log is full"))
            del self._owners[: self._batch_size]
            self.dropped += self._batch_size
            log.error("ping log buffer full; oldest pings dropped", extra={"dropped": self.dropped})
        self._buffer.append(record)
        if self.sync:
            self._owners.append(None)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._task = asyncio.create_task(self._run(), name="ping-log")
        if self._buffer:
            self._wake.set()

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
            self._fail(self._owners, db.Unavailable("the ping log could not be written"))
            self._owners.clear()

    async def flush(self) -> int:
        """Write everything queued now; returns how many were written."""
        assert self._pool is not None
        total = 0
        async with self._flushing:
            while self._buffer:
                # Taken out while in flight, so add() trimming a full buffer meanwhile
                # cannot shift what gets dropped after the write.
                batch = self._buffer[: self._batch_size]
                owners = self._owners[: len(batch)] if self.sync else []
                del self._buffer[: len(batch)]
                del self._owners[: len(owners)]
                try:
                    await self._write(batch)
                except Exception as exc:
                    if not self.sync:
                        self._buffer[:0] = batch  # not written: first in line again
                        raise
                    # Sync: the waiting handlers answer with the error (503 when the
                    # database is away) and their apps send the pings again. Pings
                    # no one waits for go back in line.
                    unowned = [r for r, o in zip(batch, owners, strict=True) if o is None]
                    self._buffer[:0] = unowned
                    self._owners[:0] = [None] * len(unowned)
                    self.failed += len(batch) - len(unowned)
                    self._fail(owners, exc)
                    raise
                except BaseException:
                    # Cancelled (shutdown): back in line for stop() to write.
                    self._buffer[:0] = batch
                    self._owners[:0] = owners
                    raise
                total += len(batch)
                self.written += len(batch)
                self.batches += 1
                for waiter in owners:
                    if waiter is not None:
                        waiter.remaining -= 1
                        if not waiter.remaining and not waiter.future.done():
                            waiter.future.set_result(None)
        return total

    async def _write(self, batch: list[geo_store.PingRecord]) -> None:
        assert self._pool is not None
        for attempt in (1, 2):
            try:
                async with db.acquire(self._pool) as conn:
                    await geo_store.write_pings(conn, batch)
                return
            except asyncpg.exceptions.DeadlockDetectedError:
                # Two replicas moving the same shoppers' baselines: once more is enough.
                if attempt == 2:
                    raise

    @staticmethod
    def _fail(owners: Sequence[_Waiter | None], exc: BaseException) -> None:
        for waiter in owners:
            if waiter is not None and not waiter.future.done():
                waiter.future.set_exception(exc)

    async def _run(self) -> None:
        backoff = self._flush_seconds
        while True:
            if self.sync:
                # Group commit: write as soon as anything waits; what arrives during a
                # write goes in the next one.
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
                backoff = self._flush_seconds
            except Exception:
                if self.sync and any(o is not None for o in self._owners):
                    # Those waiting on the failed batch have been told; whoever queued
                    # behind it gets an attempt of their own now.
                    log.warning("ping log write failed", exc_info=True)
                    self._wake.set()
                    continue
                log.warning("ping log flush failed; retrying", exc_info=True)
                backoff = min(backoff * 2, 5.0)
                await asyncio.sleep(backoff)
