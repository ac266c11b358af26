"""Delivery workers: drain the transactional outbox to Web Push and the wallet.

Every `gateway serve` process runs a worker (and `gateway worker` runs one alone).
Workers claim due rows with FOR UPDATE SKIP LOCKED under a lease, wake on NOTIFY
and poll as a fallback, so any number of replicas share the work without sending
anything twice. A worker that dies holding rows loses its lease; another worker
takes them over. Delivery to a channel is at least once; the delivery id in the
payload lets the app show each coupon once.

Retries back off exponentially with full jitter and stop when the coupon's validity
ends; a row that gives up is dead-lettered with its reason (`gateway outbox dead`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from gateway import clock, db, listen, metrics
from gateway.delivery import webpush
from geo import sql
from offers import codes
from offers import store as offers_store

log = logging.getLogger(__name__)
_Q = sql.load("gateway.delivery")

CHANNEL = "outbox"
MAX_BACKOFF = 300.0
BASE_BACKOFF = 1.0


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^(attempts-1))], at least 0.1 s."""
    ceiling = min(MAX_BACKOFF, BASE_BACKOFF * 2.0 ** max(0, attempts - 1))
    return max(0.1, float(rng()) * ceiling)


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    id: int
    delivery_id: Any
    channel: str
    attempts: int
    expires_at: dt.datetime
    done_targets: tuple[str, ...]
    merchant_id: int
    shopper_id: int
    offer_id: int
    coupon_id: int
    code: str
    title: str
    body: str
    image_url: str | None
    valid_minutes: int
    created_at: dt.datetime | None = None  # when the decision queued it
    # (subscription id, target) of the shopper's push subscriptions.
    subscriptions: tuple[tuple[int, webpush.Target], ...] = ()

    @classmethod
    def from_row(cls, r: Any) -> Claim:
        return cls(
            id=r["id"],
            delivery_id=r["delivery_id"],
            channel=r["channel"],
            attempts=r["attempts"],
            expires_at=r["expires_at"],
            done_targets=tuple(r["done_targets"]),
            merchant_id=r["merchant_id"],
            shopper_id=r["shopper_id"],
            offer_id=r["offer_id"],
            coupon_id=r["coupon_id"],
            code=r["code"],
            title=r["title"],
            body=r["body"],
            image_url=r["image_url"],
            valid_minutes=r["valid_minutes"],
            created_at=r["created_at"],
            subscriptions=tuple(
                (sid, webpush.Target(endpoint=e, p256dh=k, auth=a))
                for sid, e, k, a in r["subscriptions"]
            ),
        )


@dataclass(slots=True, kw_only=True)
class Outcome:
    """What to write back for one claimed row."""

    claim: Claim
    status: str = "done"  # or "dead"
    error: str | None = None
    done: list[str] = field(default_factory=list)
    delay: float | None = None  # retry after this many seconds
    prune: list[int] = field(default_factory=list)
    event: str | None = None  # delivered / failed, on the row's channel
    detail: str | None = None
    pass_update: bool = False


def push_payload(c: Claim, public_url: str) -> bytes:
    """The documented Web Push payload; the delivery id lets the app dedupe."""
    return orjson.dumps(
        {
            "delivery_id": str(c.delivery_id),
            "offer_id": str(c.offer_id),
            "title": c.title,
            "body": c.body,
            "image_url": c.image_url,
            "coupon": {"code": codes.display(c.code), "expires_at": c.expires_at.isoformat()},
            "open_url": f"{public_url}/v1/inbox/{c.delivery_id}/open",
        }
    )


async def dead_letters(
    conn: asyncpg.Connection, merchant_id: int, *, after: int, limit: int
) -> list[asyncpg.Record]:
    """A page of the merchant's deliveries that gave up, by id."""
    return list(await conn.fetch(_Q["dead_letters"], merchant_id, after, limit))


async def enqueue(conn: asyncpg.Connection, sends: Sequence[offers_store.Send]) -> None:
    """Queue the delivery of coupons just issued, in the caller's transaction.

    That must be the transaction that issued them (offers' `record_decisions`), so a
    coupon is delivered if and only if it exists: exactly once to the shopper.
    """
    if not sends:
        return
    await conn.execute(
        _Q["enqueue"],
        [s.delivery_id for s in sends],
        [s.merchant_id for s in sends],
        [s.shopper_id for s in sends],
        [s.offer_id for s in sends],
        [s.coupon_id for s in sends],
        [s.decision_id for s in sends],
        [s.store_id for s in sends],
        [",".join(s.channels) for s in sends],
        [s.at for s in sends],
        [s.expires_at for s in sends],
    )


async def delivered_in_app(
    conn: asyncpg.Connection, sends: Sequence[offers_store.Send], at: dt.datetime
) -> None:
    """The coupons go back in the ping's answer: that is an in-app (inbox) delivery.

    Recorded in the transaction that issued them, once per coupon whatever the
    resends (the events are idempotent), so the funnel's delivered counts them.
    """
    if not sends:
        return
    n = len(sends)
    await conn.execute(
        _Q["record_events"],
        [s.delivery_id for s in sends],
        ["inbox"] * n,
        ["delivered"] * n,
        [None] * n,
        [at] * n,
    )


async def record_event(
    conn: asyncpg.Connection,
    delivery_id: Any,
    channel: str,
    kind: str,
    at: dt.datetime,
    detail: str | None = None,
) -> None:
    await conn.execute(_Q["record_events"], [delivery_id], [channel], [kind], [detail], [at])


class Worker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        sender: webpush.Sender | None,
        public_url: str,
        clock_: clock.Clock | None = None,
        batch: int = 100,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        concurrency: int = 256,
        lanes: int = 4,
    ) -> None:
        self.pool = pool
        self.sender = sender
        self.public_url = public_url.rstrip("/")
        self.clock = clock_ or clock.SystemClock()
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._limit = asyncio.Semaphore(concurrency)
        # Several claim loops, so one batch's slowest push does not hold up the next
        # batch; each has its own wake-up. A NOTIFY wakes one idle lane, not all of them
        # (a decision's single row needs one claim, not one per lane); a lane that
        # claims a full batch wakes another, so a backlog soon has every lane on it.
        self._wakes = [asyncio.Event() for _ in range(lanes)]
        self._idle: list[asyncio.Event] = []
        self._missed = False  # woken while every lane was busy
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0

    async def attach(self, listener: listen.Listener) -> None:
        await listener.subscribe_now(CHANNEL, lambda _payload: self.wake())

    def wake(self) -> None:
        """Rows may be due: one idle lane claims (or, all busy, the next to finish)."""
        if self._idle:
            self._idle.pop().set()
        else:
            self._missed = True

    def wake_all(self) -> None:
        for event in self._wakes:
            event.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await asyncio.gather(*(self._lane(event) for event in self._wakes))

    async def _lane(self, wake: asyncio.Event) -> None:
        while True:
            try:
                claimed = await self.run_once()
            except Exception:
                log.warning("outbox worker: claim failed; retrying", exc_info=True)
                claimed = 0
                await asyncio.sleep(self.poll_seconds)
            if claimed >= self.batch:
                self.wake()  # more may be waiting: bring in another lane
                continue
            if self._missed:
                self._missed = False
                continue
            self._idle.append(wake)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_seconds)
            finally:
                if wake in self._idle:
                    self._idle.remove(wake)
            wake.clear()

    async def run_once(self) -> int:
        """Claim one batch, deliver it, and settle it; returns how many rows were claimed.

        The database work is per batch, not per push: one claim (which brings the
        subscriptions along) and one transaction that settles every row.
        """
        async with db.acquire(self.pool) as conn:
            rows = await conn.fetch(_Q["claim"], self.batch, self.lease_seconds)
        if not rows:
            return 0
        claims = [Claim.from_row(r) for r in rows]
        outcomes = await asyncio.gather(*(self._guarded(c) for c in claims))
        settled = [o for o in outcomes if o is not None]
        if settled:
            await self._settle(settled)
        return len(claims)

    async def _guarded(self, c: Claim) -> Outcome | None:
        async with self._limit:
            try:
                return await self._deliver(c)
            except Exception:
                # Nothing is settled: the lease runs out and another attempt picks it up.
                log.warning("outbox delivery failed", exc_info=True, extra={"outbox_id": c.id})
                return None

    async def _deliver(self, c: Claim) -> Outcome:
        now = self.clock.now()
        if c.channel == "wallet":
            return Outcome(claim=c, pass_update=True)
        if c.channel != "webpush" or self.sender is None:
            return Outcome(claim=c, status="dead", error=f"no sender for channel {c.channel}")
        if now >= c.expires_at:
            return Outcome(
                claim=c,
                status="dead",
                error="expired before delivery",
                done=list(c.done_targets),
                event="failed",
                detail="expired",
            )
        return await self._push(c, now)

    async def _push(self, c: Claim, now: dt.datetime) -> Outcome:
        assert self.sender is not None
        targets = [(sid, t) for sid, t in c.subscriptions if t.endpoint not in c.done_targets]
        if not targets and not c.done_targets:
            # Not a failure of ours to retry: the shopper never allowed notifications.
            return Outcome(
                claim=c,
                error="no push subscription",
                event="failed",
                detail="no push subscription",
            )
        payload = push_payload(c, self.public_url)
        ttl = int((c.expires_at - now).total_seconds())
        # Only good now: a coupon that expires within the hour should wake the phone.
        urgency = "high" if c.valid_minutes <= 60 else "normal"
        results = await self._send_all(
            [t for _, t in targets], payload, ttl=ttl, urgency=urgency, topic=f"offer-{c.offer_id}"
        )
        out = Outcome(claim=c, done=list(c.done_targets))
        retry_after: float | None = None
        retryable = False
        problems: list[str] = []
        for (sub_id, target), result in zip(targets, results, strict=True):
            metrics.WEBPUSH[_answer_class(result)].inc()
            if isinstance(result, webpush.PayloadTooLarge):
                problems.append(str(result))
            elif isinstance(result, webpush.BadSubscription):
                out.prune.append(sub_id)  # keys that can never work
                problems.append(f"unusable subscription keys: {result}")
            elif isinstance(result, BaseException):
                retryable = True
                problems.append(f"{type(result).__name__}: {result}")
            elif result.status in (200, 201, 202):
                out.done.append(target.endpoint)
            elif result.status in (404, 410):
                out.prune.append(sub_id)  # the browser unsubscribed
                problems.append(f"{result.status}: subscription gone")
            elif result.status == 429:
                retryable = True
                retry_after = max(retry_after or 0.0, result.retry_after or 1.0)
                problems.append("429: rate limited")
            elif result.status == 0 or result.status >= 500:
                retryable = True
                problems.append(f"{result.status or 'no answer'}: {result.message[:200]}")
            else:
                # 400, 401, 403, 413...: our request is wrong; retrying blindly won't help.
                log.error(
                    "push service refused the message",
                    extra={"status": result.status, "answer": result.message, "outbox_id": c.id},
                )
                problems.append(f"{result.status}: {result.message[:200]}")
        out.error = "; ".join(problems) or None
        if len(out.done) > len(c.done_targets):
            out.event = "delivered"
            if not c.done_targets and c.created_at is not None:  # the first acceptance
                # Wall time against the database's: elapsed for real, whatever the clock.
                elapsed = time.time() - c.created_at.timestamp()
                metrics.DELIVERY_LATENCY.observe(max(0.0, elapsed))
        if retryable:
            delay = retry_after if retry_after is not None else backoff(c.attempts)
            if now + dt.timedelta(seconds=delay) < c.expires_at:
                out.delay = delay
                return out
            out.error = f"gave up at the coupon's expiry after {c.attempts} attempts: {out.error}"
        if not out.done:
            out.status = "dead"
            out.event = "failed"
            out.detail = (out.error or "")[:500]
        return out

    async def _send_all(
        self, targets: Sequence[webpush.Target], payload: bytes, **options: Any
    ) -> Sequence[webpush.Result | BaseException]:
        """Each target's answer, or what was raised instead."""
        assert self.sender is not None
        if len(targets) == 1:  # the usual case: no task and no gather per push
            try:
                return [await self.sender.send(targets[0], payload, **options)]
            except Exception as exc:
                return [exc]
        return await asyncio.gather(
            *(self.sender.send(t, payload, **options) for t in targets),
            return_exceptions=True,
        )

    async def _settle(self, outcomes: Sequence[Outcome]) -> None:
        now = self.clock.now()
        events = [o for o in outcomes if o.event is not None]
        passes = [o.claim for o in outcomes if o.pass_update]
        prune = [sid for o in outcomes for sid in o.prune]
        async with db.acquire(self.pool) as conn, conn.transaction():
            if prune:
                await conn.execute(_Q["prune_subscriptions"], prune)
            if passes:
                await conn.execute(
                    _Q["mark_passes"],
                    [c.merchant_id for c in passes],
                    [c.shopper_id for c in passes],
                    [c.delivery_id for c in passes],
                )
            if events:
                await conn.execute(
                    _Q["record_events"],
                    [o.claim.delivery_id for o in events],
                    [o.claim.channel for o in events],
                    [o.event for o in events],
                    [o.detail for o in events],
                    [now] * len(events),
                )
            settled = await conn.fetch(
                _Q["settle"],
                [o.claim.id for o in outcomes],
                [o.claim.attempts for o in outcomes],
                [o.status for o in outcomes],
                [o.error for o in outcomes],
                [orjson.dumps(o.done).decode() for o in outcomes],
                [o.delay for o in outcomes],
            )
        if len(settled) < len(outcomes):
            log.info(
                "outbox rows were taken over by another worker",
                extra={"count": len(outcomes) - len(settled)},
            )
        for o in outcomes:
            if o.delay is None:
                if o.status == "done" and o.event == "delivered":
                    self.sent += 1
                elif o.status == "dead":
                    self.failed += 1
                    metrics.DEAD_LETTERS.inc()


def _answer_class(result: webpush.Result | BaseException) -> str:
    """The push service's answer, in the classes gateway_webpush_attempts_total counts."""
    if isinstance(result, webpush.PayloadTooLarge | webpush.BadSubscription):
        return "unusable"
    if isinstance(result, BaseException):
        return "no_answer"
    return metrics.webpush_result(result.status)


WORKER = web.AppKey("worker", Worker)
