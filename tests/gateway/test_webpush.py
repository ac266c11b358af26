"""Web Push end to end against a local push service that checks VAPID and decrypts: a ping
leads to a decrypted payload, and every failure mode of the push service is handled."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from gateway.delivery import outbox, webpush
from gateway.delivery.outbox import WORKER
from gateway.demo.localpush import PushService, Subscriber
from gateway.settings import SETTINGS
from tests.support.shop import Shop


@pytest.fixture
async def push() -> AsyncIterator[PushService]:
    async with PushService() as service:
        yield service


async def _subscribe(shop: Shop, sub: Subscriber, token: str | None = None) -> None:
    r = await shop.api.post(
        "/v1/push-subscriptions",
        token=token or shop.token("shopper"),
        json=sub.subscription_info(),
    )
    assert r.status == 201, r.body


async def _outbox(conn: asyncpg.Connection, wanted: str, timeout: float = 5.0) -> Any:
    """Wait until the (only) webpush outbox row reaches status `wanted`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await conn.fetchrow(
            "SELECT status, attempts, last_error, available_at FROM outbox "
            "WHERE channel = 'webpush' ORDER BY id DESC LIMIT 1"
        )
        if row is not None and row["status"] == wanted:
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"outbox row is {row and dict(row)}, not {wanted}")
        await asyncio.sleep(0.02)


class TestDelivery:
    async def test_a_ping_ends_as_a_decrypted_payload_at_the_push_service(
        self, shop: Shop, push: PushService, conn: asyncpg.Connection
    ) -> None:
        sub = push.subscribe()
        await _subscribe(shop, sub)
        oid = await shop.offer(channels=["webpush"], coupon={"discount": "x", "valid_minutes": 30})
        r = await shop.walk_in()
        [sent] = r.json["offers"]
        [got] = await push.wait_for(1)
        payload = orjson.loads(got.payload)
        assert payload == {
            "delivery_id": sent["delivery_id"],
            "offer_id": oid,
            "title": "20% off a hot coffee",
            "body": "Warm up with us",
            "image_url": None,
            "coupon": {"code": sent["coupon"]["code"], "expires_at": sent["coupon"]["expires_at"]},
            "open_url": f"{shop.app[SETTINGS].base_url}/v1/inbox/{sent['delivery_id']}/open",
        }
        # TTL is what is left of the coupon's validity; it is only good now.
        assert 0 < int(got.headers["TTL"]) <= 30 * 60
        assert got.headers["Urgency"] == "high"
        assert got.headers["Topic"] == f"offer-{oid}"
        await _outbox(conn, "done")
        events = await conn.fetch("SELECT channel, kind FROM delivery_events ORDER BY channel")
        # In the app (the ping's answer carried the coupon), then at the push service.
        assert [(e["channel"], e["kind"]) for e in events] == [
            ("inbox", "delivered"),
            ("webpush", "delivered"),
        ]

    async def test_the_vapid_jwt_is_signed_once_per_origin(
        self, shop: Shop, push: PushService, conn: asyncpg.Connection
    ) -> None:
        subs = [push.subscribe() for _ in range(3)]
        for sub in subs:
            await _subscribe(shop, sub)
        await shop.offer(channels=["webpush"])
        await shop.walk_in()
        got = await push.wait_for(3)
        assert {g.endpoint for g in got} == {s.endpoint for s in subs}
        sender = shop.app[WORKER].sender
        assert sender is not None and sender.signed == 1
        assert len({g.headers["Authorization"] for g in got}) == 1


class TestFailures:
    @pytest.mark.parametrize("status", [404, 410])
    async def test_gone_subscriptions_are_pruned(
        self, shop: Shop, push: PushService, conn: asyncpg.Connection, status: int
    ) -> None:
        sub = push.subscribe()
        await _subscribe(shop, sub)
        push.fail(sub.endpoint, status)
        await shop.offer(channels=["webpush"])
        await shop.walk_in()
        row = await _outbox(conn, "dead")
        assert str(status) in row["last_error"]
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM push_subscriptions WHERE endpoint = $1", sub.endpoint
            )
            == 0
        )
        assert row["attempts"] == 1

    async def test_429_waits_for_retry_after_then_delivers(
        self, shop: Shop, push: PushService, conn: asyncpg.Connection
    ) -> None:
        sub = push.subscribe()
        await _subscribe(shop, sub)
        push.fail(sub.endpoint, 429, times=1, retry_after=1)
        await shop.offer(channels=["webpush"])
        await shop.walk_in()
        await push.wait_for(1, within=5)
        row = await _outbox(conn, "done")
        assert row["attempts"] == 2
        assert [s for _, s in push.requests] == [429, 201]
        # The retry came no sooner than Retry-After said: it did not hammer the service.
        assert push.arrivals[1] - push.arrivals[0] >= 0.95

    async def test_5xx_and_hangs_back_off_and_retry(
        self, shop: Shop, push: PushService, conn: asyncpg.Connection, monkeypatch: Any
    ) -> None:
        # Keep the test short: the first backoffs are fractions of a second.
        monkeypatch.setattr(outbox, "BASE_BACKOFF", 0.2)
        sender = shop.app[WORKER].sender
        assert sender is not None
        sender.timeout = 0.5
        sub = push.subscribe()
        await _subscribe(shop, sub)
        push.fail(sub.endpoint, 500, times=2)
        await shop.offer(channels=["webpush"])
        await shop.walk_in()
        await push.wait_for(1, within=10)
        row = await _outbox(conn, "done")
        assert row["attempts"] == 3
        push.clear_faults()
        push.hang(sub.endpoint, times=1)
        await shop.walk_out()
        shop.clock.advance(minutes=1)
        second = await shop.walk_in()
        assert len(second.json["offers"]) == 1
        await push.wait_for(2, within=10)
        row = await _outbox(conn, "done")
        assert row["attempts"] == 2  # the hung attempt timed out, the retry got through
        assert [s for _, s in push.requests] == [500, 500, 201, 201]

    @pytest.mark.parametrize("status", [400, 401, 403, 413])
    async def test_our_mistakes_are_logged_not_retried(
        self,
        shop: Shop,
        push: PushService,
        conn: asyncpg.Connection,
        status: int,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        sub = push.subscribe()
        await _subscribe(shop, sub)
        push.fail(sub.endpoint, status)
        await shop.offer(channels=["webpush"])
        await shop.walk_in()
        row = await _outbox(conn, "dead")
        assert row["attempts"] == 1 and str(status) in row["last_error"]
        assert any("refused" in rec.message for rec in caplog.records)
        # The subscription stays: the fault is ours, not the browser's.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM push_subscriptions WHERE endpoint = $1", sub.endpoint
            )
            == 1
        )

    async def test_retries_stop_at_the_coupons_expiry(
        self, shop: Shop, push: PushService, conn: asyncpg.Connection, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(outbox, "BASE_BACKOFF", 0.05)
        sub = push.subscribe()
        await _subscribe(shop, sub)
        push.fail(sub.endpoint, 503)
        await shop.offer(channels=["webpush"], coupon={"discount": "x", "valid_minutes": 1})
        await shop.walk_in()
        await _outbox(conn, "pending")
        shop.clock.advance(minutes=2)  # the coupon has expired
        row = await _outbox(conn, "dead", timeout=10)
        assert "expired" in row["last_error"] or "gave up" in row["last_error"]
        assert (
            await conn.fetchval("SELECT kind FROM delivery_events WHERE channel = 'webpush'")
            == "failed"
        )


def test_payloads_over_3993_bytes_are_refused_before_sending() -> None:
    target = webpush.Target(endpoint="https://push.example/x", p256dh="x", auth="y")
    with pytest.raises(webpush.PayloadTooLarge):
        webpush.Sender.encrypt(target, b"x" * 3994)


def test_jwt_is_reused_until_an_hour_before_it_expires() -> None:
    import py_vapid

    key = webpush.VapidKey(vapid=py_vapid.Vapid02(), public_key="k")
    key.vapid.generate_keys()
    sender = webpush.Sender(key, subject="mailto:ops@example.com")
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    first = sender.authorization("https://push.example/a", now=t0)
    assert sender.authorization("https://push.example/b", now=t0 + 10 * 3600) == first
    assert sender.authorization("https://other.example/a", now=t0) != first
    assert sender.authorization("https://push.example/a", now=t0 + 11.5 * 3600) != first
    assert sender.signed == 3


class TestWorkerCrash:
    async def test_killing_a_worker_mid_batch_loses_nothing_and_duplicates_nothing(
        self,
        database_url: str,
        conn: asyncpg.Connection,
        tenant_a: Any,
        push: PushService,
        tmp_path: Any,
        spec: Any,
    ) -> None:
        from aiohttp import test_utils

        from gateway import app as app_mod
        from gateway import clock
        from tests.support import proc
        from tests.support.client import ApiClient
        from tests.support.fences import LAT, LON, add_fence, circle_feature
        from tests.support.shop import Shop, enrol, make_settings

        # The API runs here without a worker; `gateway worker` processes do the pushing.
        fence = await add_fence(conn, tenant_a, circle_feature(LAT, LON, 100))
        await conn.execute("UPDATE offers SET status = 'paused'")
        await conn.execute("DELETE FROM push_subscriptions")
        await conn.execute("DELETE FROM deliveries")
        await conn.execute("UPDATE decisions SET decided_at = decided_at - interval '2 years'")
        # The worker process keeps real time, so the coupons must be issued now; and at
        # any hour the suite runs: no quiet hours.
        await conn.execute("UPDATE merchants SET quiet_start = 0, quiet_end = 0")
        fixed = clock.FixedClock(dt.datetime.now(dt.UTC))
        settings = make_settings(tmp_path, outbox_worker=False)
        application = app_mod.create_app(settings, db_url=database_url, clock_=fixed)
        environ = proc.env(
            database_url, tmp_path, GATEWAY_OUTBOX_LEASE_SECONDS="2", GATEWAY_LOG_LEVEL="WARNING"
        )
        async with test_utils.TestClient(test_utils.TestServer(application)) as client:
            shop = Shop(
                api=ApiClient(client, spec),
                app=application,
                clock=fixed,
                tenant=tenant_a,
                fence=fence,
            )
            await shop.offer(channels=["webpush", "inbox"])
            tokens = [await enrol(conn, tenant_a, f"k{i}") for i in range(30)]
            for token in tokens:
                await _subscribe(shop, push.subscribe(), token)
            # The first pushes hang: the worker is in the middle of its batch when killed.
            push.hang(None, times=10)
            first = await asyncio.create_subprocess_exec(*proc.GATEWAY, "worker", env=environ)
            for token in tokens:
                await shop.walk_in(token=token)
            deliveries = await conn.fetchval("SELECT count(*) FROM deliveries")
            assert deliveries == 30
            deadline = asyncio.get_running_loop().time() + 20
            while (
                await conn.fetchval("SELECT count(*) FROM outbox WHERE leased_until > now()") == 0
            ):
                assert asyncio.get_running_loop().time() < deadline, "the worker claimed nothing"
                await asyncio.sleep(0.05)
            first.kill()  # kill -9, in the middle of the batch
            await first.wait()
            push.clear_faults()
            second = await asyncio.create_subprocess_exec(*proc.GATEWAY, "worker", env=environ)
            try:
                deadline = asyncio.get_running_loop().time() + 30
                while await conn.fetchval("SELECT count(*) FROM outbox WHERE status <> 'done'"):
                    assert asyncio.get_running_loop().time() < deadline, await conn.fetch(
                        "SELECT status, attempts, last_error FROM outbox WHERE status <> 'done'"
                    )
                    await asyncio.sleep(0.1)
            finally:
                second.terminate()
                assert await second.wait() == 0
            # Every delivery reached the push service; at least once, and the app sees
            # each once: one delivery id per coupon, one inbox entry per delivery.
            got = {orjson.loads(r.payload)["delivery_id"] for r in push.received}
            assert len(got) == 30
            ids = {str(r["id"]) for r in await conn.fetch("SELECT id FROM deliveries")}
            assert got == ids
            for token in tokens:
                items = (await shop.api.get("/v1/inbox", token=token)).json["items"]
                assert len(items) == 1
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM delivery_events WHERE channel = 'webpush' "
                    "AND kind = 'delivered'"
                )
                == 30
            )
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE status = 'pending' AND leased_until < now()"
                )
                == 0
            )


async def test_a_worker_started_after_the_listener_still_wakes_on_notify(
    shop: Shop, push: PushService, conn: asyncpg.Connection
) -> None:
    # The in-app worker subscribes after the shared listener connected; a push must
    # not wait for the fallback poll. With the poll set to a minute, only NOTIFY can
    # deliver within the five seconds of wait_for.
    worker = shop.app[WORKER]
    worker.poll_seconds = 60.0
    worker.wake_all()  # let every loop pick up the new poll interval
    await asyncio.sleep(0.05)
    sub = push.subscribe()
    await _subscribe(shop, sub)
    await shop.offer(channels=["webpush"])
    await shop.walk_in()
    await push.wait_for(1, within=5)


async def test_two_workers_share_a_backlog_without_sending_twice(
    shop: Shop, push: PushService, conn: asyncpg.Connection, database_url: str
) -> None:
    from gateway import db
    from tests.support.shop import enrol

    shop.app[WORKER]._task.cancel()  # type: ignore[union-attr]
    await shop.offer(channels=["webpush"])
    tokens = [await enrol(conn, shop.tenant, f"b{i}") for i in range(40)]
    for token in tokens:
        await _subscribe(shop, push.subscribe(), token)
        await shop.walk_in(token=token)
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'") == 40
    sender = shop.app[WORKER].sender
    pools = [await db.create_pool(database_url, min_size=1, max_size=4) for _ in range(2)]
    workers = [
        outbox.Worker(p, sender=sender, public_url="http://gw", batch=7, clock_=shop.clock)
        for p in pools
    ]
    try:
        while await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'"):
            claimed = await asyncio.gather(*(w.run_once() for w in workers for _ in range(2)))
            assert sum(claimed) > 0
    finally:
        for p in pools:
            await p.close()
    got = [orjson.loads(r.payload)["delivery_id"] for r in push.received]
    assert len(got) == 40 and len(set(got)) == 40
    assert all(w.sent > 0 for w in workers)


async def test_push_faults_under_load_prune_retry_boundedly_and_leave_nothing_stuck(
    shop: Shop, push: PushService, conn: asyncpg.Connection, monkeypatch: Any
) -> None:
    """40 pushes at once against a push service that answers a quarter 410, a quarter
    429 (twice), a quarter 503 (twice) and hangs on a quarter (once)."""
    from tests.support.shop import enrol

    monkeypatch.setattr(outbox, "BASE_BACKOFF", 0.2)
    worker = shop.app[WORKER]
    assert worker.sender is not None
    worker.sender.timeout = 0.5
    await shop.offer(channels=["webpush"])
    kinds: dict[str, str] = {}
    for i in range(40):
        token = await enrol(conn, shop.tenant, f"f{i}")
        sub = push.subscribe()
        kind = ("gone", "limited", "failing", "hanging")[i % 4]
        kinds[sub.endpoint] = kind
        if kind == "gone":
            push.fail(sub.endpoint, 410)
        elif kind == "limited":
            push.fail(sub.endpoint, 429, times=2, retry_after=1)
        elif kind == "failing":
            push.fail(sub.endpoint, 503, times=2)
        else:
            push.hang(sub.endpoint, times=1)
        await _subscribe(shop, sub, token)
        await shop.walk_in(token=token)

    deadline = asyncio.get_running_loop().time() + 30
    while await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'"):
        assert asyncio.get_running_loop().time() < deadline, "outbox rows stuck"
        await asyncio.sleep(0.1)
    rows = await conn.fetch(
        "SELECT o.status, o.attempts, s.endpoint FROM outbox o "
        "JOIN deliveries d ON d.id = o.delivery_id "
        "LEFT JOIN push_subscriptions s ON s.shopper_id = d.shopper_id "
        "WHERE o.channel = 'webpush'"
    )
    assert len(rows) == 40
    gone = [r for r in rows if r["endpoint"] is None]
    # The 410s: subscription pruned, the row dead-lettered after one attempt.
    assert len(gone) == 10 and {(r["status"], r["attempts"]) for r in gone} == {("dead", 1)}
    kept = [r for r in rows if r["endpoint"] is not None]
    assert {kinds[r["endpoint"]] for r in kept} == {"limited", "failing", "hanging"}
    assert {r["status"] for r in kept} == {"done"}
    # Retries are bounded: exactly as many as the faults, and no more.
    most = {"limited": 3, "failing": 3, "hanging": 2}
    assert all(r["attempts"] == most[kinds[r["endpoint"]]] for r in kept)
    delivered = [r.endpoint for r in push.received]
    assert sorted(delivered) == sorted(r["endpoint"] for r in kept)  # once each
