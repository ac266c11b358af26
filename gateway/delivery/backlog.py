"""What waits to be delivered: the depth and age of the outbox and the pass-update queue,
as /metrics reports them (gateway/http/handlers/metrics.py)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from geo import sql

_Q = sql.load("gateway.delivery")
# Every queue and kind is reported, at 0 when nothing waits, so an alert never sees a gap.
KINDS = {"outbox": ("inbox", "webpush", "wallet"), "pass_updates": ("apple", "google")}


@dataclass(frozen=True, slots=True, kw_only=True)
class Queue:
    queue: str  # outbox, pass_updates
    kind: str  # the outbox row's channel, or the pass update's wallet (apple, google)
    pending: int
    oldest_due_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Backlog:
    queues: tuple[Queue, ...]
    dead: int  # outbox rows dead-lettered, all time


async def read(conn: asyncpg.Connection) -> Backlog:
    found = {(r["queue"], r["kind"]): r for r in await conn.fetch(_Q["backlog"])}
    queues = []
    for queue, kinds in KINDS.items():
        for kind in kinds:
            r = found.get((queue, kind))
            queues.append(
                Queue(
                    queue=queue,
                    kind=kind,
                    pending=0 if r is None else int(r["pending"]),
                    oldest_due_seconds=0.0
                    if r is None
                    else max(0.0, float(r["oldest_due_seconds"])),
                )
            )
    return Backlog(queues=tuple(queues), dead=int(await conn.fetchval(_Q["dead_rows"])))
