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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from gateway import clock, db, listen, sql, webpush
from offers import codes

log = logging.getLogger(__name__)
_Q = sql.load("gateway", "delivery.sql")

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
            valid_minutes=int(r["coupon_spec"]["valid_minutes"]),
        )


def push_payload(c: Claim, public_url: str) -> bytes:
    """The documented Web Push payload; the delivery id lets the app dedupe."""
    return orjson.dumps(
        {
            "delivery_id": str(c.delivery_id),
            "offer_id": str(c.offer_id),
            "title": c.title,
            "body": c.body,
            "coupon": {"code": codes.display(c.code), "expires_at": c.expires_at.isoformat()},
            "open_url": f"{public_url}/v1/inbox/{c.delivery_id}/open",
        }
    )


async def record_event(
    conn: asyncpg.Connection,
    delivery_id: Any,
    channel: str,
    kind: str,
    at: dt.datetime,
    detail: str | None = None,
) -> None:
    await conn.execute(_Q["record_event"], delivery_id, channel, kind, detail, at)


class Worker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        sender: webpush.Sender | None,
        public_url: str,
        clock_: clock.Clock | None = None,
        batch: int = 200,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        concurrency: int = 128,
    ) -> None:
        self.pool = pool
        self.sender = sender
        self.public_url = public_url.rstrip("/")
        self.clock = clock_ or clock.SystemClock()
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0

    def attach(self, listener: listen.Listener) -> None:
        listener.subscribe(CHANNEL, lambda _payload: self._wake.set())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                claimed = await self.run_once()
            except Exception:
                log.warning("outbox worker: claim failed; retrying", exc_info=True)
                claimed = 0
                await asyncio.sleep(self.poll_seconds)
            if claimed >= self.batch:
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many rows were claimed."""
        async with db.acquire(self.pool) as conn:
            rows = await conn.fetch(_Q["claim"], self.batch, self.lease_seconds)
        claims = [Claim.from_row(r) for r in rows]
        if claims:
            await asyncio.gather(*(self._guarded(c) for c in claims))
        return len(claims)

    async def _guarded(self, c: Claim) -> None:
        async with self._limit:
            try:
                await self._deliver(c)
            except Exception:
                # The lease runs out and another attempt picks the row up.
                log.warning("outbox delivery failed", exc_info=True, extra={"outbox_id": c.id})

    async def _deliver(self, c: Claim) -> None:
        now = self.clock.now()
        if c.channel == "wallet":
            async with db.acquire(self.pool) as conn, conn.transaction():
                await conn.execute(_Q["mark_pass"], c.merchant_id, c.shopper_id, c.delivery_id)
                await self._finish(conn, c, "done", None, ())
            return
        if c.channel != "webpush" or self.sender is None:
            async with db.acquire(self.pool) as conn:
                await self._finish(conn, c, "dead", f"no sender for channel {c.channel}", ())
            return
        if now >= c.expires_at:
            async with db.acquire(self.pool) as conn, conn.transaction():
                await self._finish(conn, c, "dead", "expired before delivery", c.done_targets)
                await record_event(conn, c.delivery_id, "webpush", "failed", now, "expired")
            return
        await self._push(c, now)

    async def _push(self, c: Claim, now: dt.datetime) -> None:
        assert self.sender is not None
        async with db.acquire(self.pool) as conn:
            subs = await conn.fetch(_Q["subscriptions_of"], c.shopper_id)
        targets = [
            (r["id"], webpush.Target(endpoint=r["endpoint"], p256dh=r["p256dh"], auth=r["auth"]))
            for r in subs
            if r["endpoint"] not in c.done_targets
        ]
        if not targets and not c.done_targets:
            # Not a failure of ours to retry: the shopper never allowed notifications.
            async with db.acquire(self.pool) as conn, conn.transaction():
                await self._finish(conn, c, "done", "no push subscription", ())
                await record_event(
                    conn, c.delivery_id, "webpush", "failed", now, "no push subscription"
                )
            return
        payload = push_payload(c, self.public_url)
        remaining = c.expires_at - now
        ttl = int(remaining.total_seconds())
        # Only good now: a coupon that expires within the hour should wake the phone.
        urgency = "high" if c.valid_minutes <= 60 else "normal"
        topic = f"offer-{c.offer_id}"
        results: Sequence[webpush.Result | BaseException] = []
        if targets:
            results = await asyncio.gather(
                *(
                    self.sender.send(t, payload, ttl=ttl, urgency=urgency, topic=topic)
                    for _, t in targets
                ),
                return_exceptions=True,
            )
        done = list(c.done_targets)
        retry_after: float | None = None
        retryable = False
        problems: list[str] = []
        prune: list[int] = []
        for (sub_id, target), result in zip(targets, results, strict=True):
            if isinstance(result, webpush.PayloadTooLarge):
                problems.append(str(result))
                continue
            if isinstance(result, webpush.BadSubscription):
                prune.append(sub_id)  # keys that can never work
                problems.append(f"unusable subscription keys: {result}")
                continue
            if isinstance(result, BaseException):
                retryable = True
                problems.append(f"{type(result).__name__}: {result}")
                continue
            status = result.status
            if status in (200, 201, 202):
                done.append(target.endpoint)
            elif status in (404, 410):
                prune.append(sub_id)  # the browser unsubscribed
                problems.append(f"{status}: subscription gone")
            elif status == 429:
                retryable = True
                retry_after = max(retry_after or 0.0, result.retry_after or 1.0)
                problems.append("429: rate limited")
            elif status == 0 or status >= 500:
                retryable = True
                problems.append(f"{status or 'no answer'}: {result.message[:200]}")
            else:
                # 400, 401, 403, 413...: our request is wrong; retrying blindly won't help.
                log.error(
                    "push service refused the message",
                    extra={"status": status, "answer": result.message, "outbox_id": c.id},
                )
                problems.append(f"{status}: {result.message[:200]}")
        delivered_now = len(done) > len(c.done_targets)
        error = "; ".join(problems) or None
        async with db.acquire(self.pool) as conn, conn.transaction():
            for sub_id in prune:
                await conn.execute(_Q["prune_subscription"], sub_id)
            if delivered_now:
                await record_event(conn, c.delivery_id, "webpush", "delivered", self.clock.now())
            if retryable:
                delay = retry_after if retry_after is not None else backoff(c.attempts)
                if now + dt.timedelta(seconds=delay) < c.expires_at:
                    await conn.execute(_Q["retry_later"], c.id, c.attempts, delay, error, done)
                    return
                error = f"gave up at the coupon's expiry after {c.attempts} attempts: {error}"
            if done:
                await self._finish(conn, c, "done", error, done)
                self.sent += 1
            else:
                reason = error or "the shopper has no push subscription"
                await self._finish(conn, c, "dead", reason, done)
                await record_event(
                    conn, c.delivery_id, "webpush", "failed", self.clock.now(), reason[:500]
                )
                self.failed += 1

    async def _finish(
        self,
        conn: asyncpg.Connection,
        c: Claim,
        status: str,
        error: str | None,
        done: Sequence[str],
    ) -> None:
        settled = await conn.fetchval(_Q["finish"], c.id, c.attempts, status, error, list(done))
        if settled is None:
            log.info("outbox row was taken over by another worker", extra={"outbox_id": c.id})
