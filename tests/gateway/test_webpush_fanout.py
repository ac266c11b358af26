"""Fan-out through the batched path (claims of many rows, lanes, pooled kept-alive
connections) against the local push service: every delivery arrives once, is accounted
for once, and retries still happen."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson

from gateway import db
from gateway.delivery import outbox
from gateway.delivery.outbox import WORKER
from gateway.demo.localpush import PushService
from tests.support.shop import Shop, enrol


async def test_two_running_workers_deliver_a_backlog_exactly_once(
    shop: Shop, conn: asyncpg.Connection, database_url: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(outbox, "BASE_BACKOFF", 0.1)
    shop.app[WORKER]._task.cancel()  # type: ignore[union-attr]
    sender = shop.app[WORKER].sender
    assert sender is not None
    await shop.offer(channels=["webpush"])
    async with PushService() as push:
        subs = []
        for i in range(60):
            token = await enrol(conn, shop.tenant, f"fan{i}")
            sub = push.subscribe()
            subs.append(sub)
            r = await shop.api.post(
                "/v1/push-subscriptions", token=token, json=sub.subscription_info()
            )
            assert r.status == 201, r.body
            await shop.walk_in(token=token)
        # One in ten fails once (a 503), to be retried through the same batched path.
        for sub in subs[::10]:
            push.fail(sub.endpoint, 503, times=1)
        pools = [await db.create_pool(database_url, min_size=1, max_size=4) for _ in range(2)]
        workers = [
            outbox.Worker(
                p,
                sender=sender,
                public_url="http://gw",
                batch=8,
                poll_seconds=0.1,
                clock_=shop.clock,
            )
            for p in pools
        ]
        try:
            for w in workers:
                w.start()
                w.wake()
            deadline = asyncio.get_running_loop().time() + 30
            while await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'"):
                assert asyncio.get_running_loop().time() < deadline, "outbox rows stuck"
                await asyncio.sleep(0.05)
        finally:
            for w in workers:
                await w.stop()
            for p in pools:
                await p.close()
        got = [orjson.loads(r.payload)["delivery_id"] for r in push.received]
        ids = {str(r["id"]) for r in await conn.fetch("SELECT id FROM deliveries")}
        assert len(got) == 60 and set(got) == ids  # each once, none lost
        assert sorted(s for _, s in push.requests).count(503) == 6
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'done'") == 60
        retried = await conn.fetchval("SELECT count(*) FROM outbox WHERE attempts = 2")
        assert retried == 6
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM delivery_events WHERE channel = 'webpush' "
                "AND kind = 'delivered'"
            )
            == 60
        )
        assert sum(w.sent for w in workers) == 60 and all(w.sent > 0 for w in workers)
        # Kept alive and pooled: far fewer connections than pushes.
        assert sender.connects < len(push.requests)
