"""The raw ping log, written to PostgreSQL in batches by one background writer.

Three modes, chosen per process (``GATEWAY_PING_LOG``):

- **spool** (the default): each ping's record is appended to a local spool file
  (gateway/spool.py) before the ping is answered, one ``write`` call, and goes to
  the database with the next batch (every ``flush_seconds``). A process that dies,
  even by ``kill -9``, leaves its spool behind; a process sharing the directory
  (the restarted container, or another worker) replays what the database does
  not have yet, exactly once. Nothing answered is lost, and the ping path gains no
  database round trip.
- **sync**: a ping is answered only once its log row is committed. Handlers queue
  their records and wait; the writer writes whatever queued up meanwhile as one
  statement (group commit). No local file, at the price of latency: every ping
  waits for a database write. A write that fails fails the pings waiting on it
  (503; the app sends them again).
- **memory**: records wait in memory for the next batch. A process killed without
  a clean shutdown loses up to ``flush_seconds`` of answered pings.

In spool and memory mode pings are still taken from the caches while the database
is away; the batches wait (up to a bound) and are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from gateway import db
from gateway.pingpath import spool
from gateway.settings import PING_LOG_MODES, PingLogMode
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
        mode: PingLogMode = "spool",
        spool_dir: Path | None = None,
        flush_seconds: float = 0.2,
        batch_size: int = 5000,
        max_buffer: int = 500_000,
        scan_seconds: float = 5.0,
        rotate_bytes: int = 16 * 1024 * 1024,
        rotate_seconds: float = 600.0,
    ) -> None:
        if mode not in PING_LOG_MODES:
            raise ValueError(
                f"ping log mode must be one of {', '.join(PING_LOG_MODES)}, not {mode!r}"
            )
        if mode == "spool" and spool_dir is None:
            raise ValueError("the spool mode needs a spool directory")
        self.mode = mode
        self.spool_dir = spool_dir
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._scan_seconds = scan_seconds
        self._rotate_bytes = rotate_bytes
        self._rotate_seconds = rotate_seconds
        self._buffer: list[geo_store.PingRecord] = []
        # Parallel to _buffer in sync mode: who waits for each record (None: no one).
        self._owners: list[_Waiter | None] = []
        # Parallel to _buffer in spool mode: the spool offset just after each record.
        self._ends: list[int] = []
        self._spool: spool.Spool | None = None
        self._spool_opened = 0.0
        self._wake = asyncio.Event()
        # One flush at a time, so a batch that failed and went back to the front of the
        # buffer is written before anything that came after it.
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pool: asyncpg.Pool | None = None
        self.written = 0
        self.replayed = 0
        self.dropped = 0
        self.failed = 0
        self.batches = 0

    @property
    def sync(self) -> bool:
        return self.mode == "sync"

    @property
    def spool_id(self) -> str | None:
        return self._spool.id if self._spool is not None else None

    # --- taking pings ------------------------------------------------------------

    async def record(self, records: Sequence[geo_store.PingRecord]) -> None:
        """Log these pings: once this returns, they are safe (as the mode promises)."""
        if not records:
            return
        if self._spool is not None:
            try:
                ends = self._spool.append(records)
            except OSError as exc:
                # A full or broken disk: refuse the ping (503) rather than lose it.
                raise db.Unavailable(f"the ping spool cannot be written: {exc}") from exc
            self._buffer.extend(records)
            self._ends.extend(ends)
            if len(self._buffer) >= self._batch_size:
                self._wake.set()
            return
        if not self.sync or self._task is None or self._task.done():
            # Memory mode, or no writer running (not started, or shutting down): buffer
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
        """Buffer one ping in memory for the next flush, without waiting for it."""
        if self._spool is not None:
            raise RuntimeError("a spooled ping log takes pings through record()")
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

    @property
    def oldest_pending_at(self) -> dt.datetime | None:
        """When the oldest ping not yet written was received (None: all written)."""
        return self._buffer[0].received_at if self._buffer else None

    @property
    def spool_bytes(self) -> int:
        return self._spool.size if self._spool is not None else 0

    # --- running -------------------------------------------------------------------

    def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        if self.mode == "spool":
            self._open_spool()
            assert self._spool is not None
            # Taken before the start: spooled now, so every buffered record has its offset.
            self._ends = self._spool.append(self._buffer) if self._buffer else []
        self._task = asyncio.create_task(self._run(), name="ping-log")
        if self._buffer:
            self._wake.set()

    def _open_spool(self) -> None:
        assert self.spool_dir is not None
        self._spool = spool.Spool(self.spool_dir)
        self._spool_opened = time.monotonic()

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
        if self._spool is not None:
            if self._buffer:
                # Left in the spool for the next process here to replay.
                log.warning(
                    "ping log: pings left in the spool at shutdown",
                    extra={"count": len(self._buffer), "spool": self._spool.id},
                )
                self._spool.release()
            else:
                await self._retire_flushed_spool()
            self._spool = None
        elif self._buffer:
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
                ends = self._ends[: len(batch)] if self._spool is not None else []
                del self._buffer[: len(batch)]
                del self._owners[: len(owners)]
                del self._ends[: len(ends)]
                try:
                    await self._write(batch, ends[-1] if ends else 0)
                except Exception as exc:
                    if not self.sync:
                        self._buffer[:0] = batch  # not written: first in line again
                        self._ends[:0] = ends
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
                    self._ends[:0] = ends
                    raise
                total += len(batch)
                self.written += len(batch)
                self.batches += 1
                for waiter in owners:
                    if waiter is not None:
                        waiter.remaining -= 1
                        if not waiter.remaining and not waiter.future.done():
                            waiter.future.set_result(None)
            if self._spool is not None and (
                self._spool.size >= self._rotate_bytes
                or time.monotonic() - self._spool_opened >= self._rotate_seconds
            ):
                # All of it is in the database: start a new file, so that none grows
                # without end and no raw location stays on local disk for long.
                await self._retire_flushed_spool(reopen=True)
        return total

    async def _write(self, batch: list[geo_store.PingRecord], spooled_to: int) -> None:
        assert self._pool is not None
        spool_id = self.spool_id if spooled_to else None
        for attempt in (1, 2):
            try:
                async with db.acquire(self._pool) as conn:
                    await geo_store.write_pings(conn, batch, spool=spool_id, spooled_to=spooled_to)
                return
            except asyncpg.exceptions.DeadlockDetectedError:
                # Two replicas moving the same shoppers' baselines: once more is enough.
                if attempt == 2:
                    raise

    async def _retire_flushed_spool(self, *, reopen: bool = False) -> None:
        """Delete the current spool file, whose every record is in the database."""
        old = self._spool
        assert old is not None and not self._buffer
        if reopen:
            self._open_spool()  # before any await: new pings go to the new file
        old.remove()
        if self._pool is not None and old.size:
            # A mark without its file is harmless; failing to drop one is no error.
            with contextlib.suppress(Exception):
                async with db.acquire(self._pool) as conn:
                    await geo_store.drop_spool_mark(conn, old.id)

    @staticmethod
    def _fail(owners: Sequence[_Waiter | None], exc: BaseException) -> None:
        for waiter in owners:
            if waiter is not None and not waiter.future.done():
                waiter.future.set_exception(exc)

    # --- spools left behind -----------------------------------------------------------

    async def replay_orphans(self) -> int:
        """Write what spool files of dead processes hold beyond their marks, then delete
        them; returns how many pings were replayed."""
        assert self._pool is not None
        if self.spool_dir is None or not self.spool_dir.is_dir():
            return 0
        total = 0
        for orphan in spool.orphans(self.spool_dir, own=self.spool_id):
            count = 0
            try:
                async with db.acquire(self._pool) as conn:
                    mark = await geo_store.spool_mark(conn, orphan.id)
                    for batch, end in orphan.batches(mark, self._batch_size):
                        await geo_store.write_pings(conn, batch, spool=orphan.id, spooled_to=end)
                        count += len(batch)
                    # Deleted before the mark goes: a file without a mark would replay
                    # from 0.
                    orphan.remove()
                    await geo_store.drop_spool_mark(conn, orphan.id)
            finally:
                orphan.release()
            total += count
            self.replayed += count
            log.info(
                "replayed a spool left by another process",
                extra={"spool": orphan.id, "pings": count, "from_byte": mark},
            )
        return total

    async def _run(self) -> None:
        backoff = self._flush_seconds
        scanned = -self._scan_seconds
        while True:
            if time.monotonic() - scanned >= self._scan_seconds and self.spool_dir is not None:
                try:
                    async with self._flushing:
                        await self.replay_orphans()
                    scanned = time.monotonic()
                except Exception:
                    log.warning("spool replay failed; retrying", exc_info=True)
                    scanned = time.monotonic()
            # Sync (group commit) writes as soon as anything waits, and what arrives
            # during a write goes in the next one; the others write on the timer.
            timeout = self._scan_seconds if self.sync else self._flush_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
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
                if self._spool is not None and len(self._buffer) > self._max_buffer:
                    # The database has been away for long: the spool keeps these, and
                    # its replay writes them once the database is back.
                    async with self._flushing:
                        self._spool.release()
                        log.warning(
                            "ping log: buffer full; the spool keeps it for replay",
                            extra={"count": len(self._buffer), "spool": self._spool.id},
                        )
                        self._buffer.clear()
                        self._ends.clear()
                        self._open_spool()
                backoff = min(backoff * 2, 5.0)
                await asyncio.sleep(backoff)
