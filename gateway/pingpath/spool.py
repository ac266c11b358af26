"""A local append-only file of ping log records, written before a ping is answered.

The ping log goes to PostgreSQL in batches, off the request path. The spool is
what makes that safe: each answered ping's record is first appended to this
process's spool file with one ``write`` (no fsync: the kernel keeps it if the
process dies, even by ``kill -9``). Each batch written to the database records,
in the same statement, how far into the file it reached (``ping_spools``).

A spool file whose process is gone (its ``flock`` is free) is an orphan. Any
process sharing the directory replays the orphan's unwritten tail, from the
recorded offset, then deletes it, so each record reaches the database exactly
once. A line cut short by the crash was never answered and is skipped.

Format: one JSON array per line, the fields of ``PingRecord`` in order.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from geo.store import PingRecord

log = logging.getLogger(__name__)

SUFFIX = ".spool"


def directory(data_dir: Path, database: str) -> Path:
    """The spool directory for one database under the data directory.

    ``database`` names it (its URL without the password): spools are only ever replayed
    into the database their pings were taken for, even when one data directory serves
    several (a developer switching DATABASE_URL, say).
    """
    return data_dir / "spool" / hashlib.sha256(database.encode()).hexdigest()[:16]


class _Held:
    """A spool file open and flock-ed by this process."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.id = path.name.removesuffix(SUFFIX)
        self._fd = fd

    def release(self) -> None:
        """Close the file and free its lock."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        """Delete the file (everything in it is in the database), then free the lock: a
        scanner waiting on it finds it gone."""
        self.path.unlink(missing_ok=True)
        self.release()


class Spool(_Held):
    """This process's spool file; once released it is an orphan to replay."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{secrets.token_hex(8)}{SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        super().__init__(path, os.open(path, flags, 0o600))
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = 0

    def append(self, records: Sequence[PingRecord]) -> list[int]:
        """Append records; returns the file offset just after each one."""
        lines = [orjson.dumps(tuple(r)) + b"\n" for r in records]
        view = memoryview(b"".join(lines))
        while view:
            view = view[os.write(self._fd, view) :]
        ends = []
        for line in lines:
            self.size += len(line)
            ends.append(self.size)
        return ends


class Orphan(_Held):
    """A spool file no live process holds, locked by us while we replay it."""

    def batches(self, start: int, size: int) -> Iterator[tuple[list[PingRecord], int]]:
        """Complete records after byte ``start``, in batches, each with its end offset."""
        with os.fdopen(os.dup(self._fd), "rb") as f:
            f.seek(start)
            data = f.read()
        batch: list[PingRecord] = []
        offset = start
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # cut short by the crash: that ping was never answered
            offset += len(line)
            try:
                batch.append(_record(orjson.loads(line)))
            except (ValueError, TypeError) as exc:
                log.warning(
                    "spool: unreadable line skipped",
                    extra={"spool": self.id, "offset": offset, "error": str(exc)},
                )
                continue
            if len(batch) >= size:
                yield batch, offset
                batch = []
        if batch:
            yield batch, offset


def orphans(directory: Path, *, own: str | None) -> Iterator[Orphan]:
    """Lock and yield each orphaned spool file in the directory (not ours, not held)."""
    try:
        entries = sorted(directory.glob(f"*{SUFFIX}"))
    except OSError:
        return
    for path in entries:
        if path.name == f"{own}{SUFFIX}":
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # replayed and deleted by another process meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live process's spool, or another process replaying it
            continue
        if os.fstat(fd).st_nlink == 0:
            os.close(fd)  # replayed and deleted while we waited for the lock
            continue
        yield Orphan(path, fd)


def _record(row: list[object]) -> PingRecord:
    if not isinstance(row, list) or len(row) != len(PingRecord._fields):
        raise ValueError("not a ping record")
    values = list(row)
    for k in (2, 3):  # ts, received_at
        text = values[k]
        if not isinstance(text, str):
            raise ValueError("timestamp expected")
        values[k] = dt.datetime.fromisoformat(text)
    return PingRecord(*values)  # type: ignore[arg-type]
