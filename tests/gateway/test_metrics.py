"""GET /metrics: a scripted flow moves every counter by exactly what it did, the funnel's
counters agree with the report, no label carries an id, and the endpoint's settings (off,
a port of its own, allowed addresses, a token) do what they say."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import test_utils
from prometheus_client import CollectorRegistry, Histogram, mmap_dict, parser

from gateway import app as app_mod
from gateway import metrics
from gateway.demo.localpush import PushService
from gateway.secret import Secret
from tests.support import proc
from tests.support.client import ApiClient
from tests.support.openapi_check import SpecChecker
from tests.support.shop import Shop, enrol, make_settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# Every label the gateway's metrics use: none of them can hold an id.
LABELS = {"route", "method", "status", "reason", "channel", "event", "result", "wallet"}
LABELS |= {"job", "outcome", "le", "table"}  # table: one of the partitioned event tables


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels, read by prometheus_client's parser."""
    out: Samples = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Delta:
    """What moved between two scrapes."""

    def __init__(self, before: Samples, after: Samples) -> None:
        self.before, self.after = before, after

    def __call__(self, name: str, **labels: str) -> float:
        return value(self.after, name, **labels) - value(self.before, name, **labels)


async def scrape(api: ApiClient, **kw: Any) -> Samples:
    r = await api.get("/metrics", **kw)
    assert r.status == 200, r.body
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(r.body.decode())


@pytest.fixture
async def push() -> AsyncIterator[PushService]:
    async with PushService() as service:
        yield service


async def _settled(conn: asyncpg.Connection, n: int, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await conn.fetchval("SELECT count(*) FROM outbox WHERE status <> 'pending'") < n:
        assert asyncio.get_running_loop().time() < deadline, "the outbox did not settle"
        await asyncio.sleep(0.05)


async def test_a_scripted_flow_moves_each_counter_by_exactly_what_it_did(
    shop: Shop, push: PushService, conn: asyncpg.Connection
) -> None:
    before = await scrape(shop.api)
    oid = await shop.offer(channels=["inbox", "webpush"])
    good, gone = push.subscribe(), push.subscribe()
    push.fail(gone.endpoint, 410)
    second = await enrol(conn, shop.tenant, "Second shopper")
    for token, sub in ((shop.token("shopper"), good), (second, gone)):
        r = await shop.api.post("/v1/push-subscriptions", token=token, json=sub.subscription_info())
        assert r.status == 201, r.body
    # Two shoppers walk in (two pings each, one enter each): two decisions, two coupons.
    codes = []
    for token in (shop.token("shopper"), second):
        [sent] = (await shop.walk_in(token=token)).json["offers"]
        codes.append(sent["coupon"]["code"])
    # A ping too inaccurate to trigger anything, and a batch with one ping too old.
    shop.clock.advance(seconds=20)
    r = await shop.api.post(
        "/v1/pings",
        token=shop.token("shopper"),
        json={"lat": 48.0, "lon": 2.0, "accuracy_m": 5000, "ts": shop.clock.now().isoformat()},
    )
    assert r.json["status"] == "ignored"
    old = (shop.clock.now() - dt.timedelta(days=3)).isoformat()
    batch = [{"lat": 48.0, "lon": 2.0, "accuracy_m": 9000, "ts": t} for t in (old, old)]
    batch[1]["ts"] = shop.clock.now().isoformat()
    r = await shop.api.post("/v1/pings/batch", token=second, json={"pings": batch})
    assert [p["status"] for p in r.json["results"]] == ["rejected", "ignored"]
    # One push reaches the push service; the other's subscription is gone (410): dead letter.
    await push.wait_for(1)
    await _settled(conn, 2)
    # The till: one redemption, the same code again, and a code that does not exist.
    statuses = [
        (await shop.redeem(codes[0], key="m-1")).status,
        (await shop.redeem(codes[0], key="m-2")).status,
        (await shop.redeem("NOT-A-CODE", key="m-3")).status,
    ]
    assert statuses == [201, 409, 404]
    after = await scrape(shop.api)
    d = Delta(before, after)

    assert d("gateway_pings_total", status="accepted") == 4
    assert d("gateway_pings_total", status="ignored") == 2
    assert d("gateway_pings_total", status="rejected") == 1
    assert d("gateway_pings_total", status="flagged") == 0
    assert d("gateway_fence_transitions_total", event="enter") == 2
    assert d("gateway_ping_batch_size_count") == 1
    assert d("gateway_ping_batch_size_sum") == 2
    assert d("gateway_offer_decisions_total", reason="sent") == 2
    assert d("gateway_offer_sends_total", channel="webpush") == 2
    assert d("gateway_offer_sends_total", channel="inbox") == 2
    assert d("gateway_webpush_attempts_total", result="accepted") == 1
    assert d("gateway_webpush_attempts_total", result="gone") == 1
    assert d("gateway_outbox_dead_letters_total") == 1
    assert d("gateway_delivery_latency_seconds_count") == 1
    for status in ("201", "409", "404"):
        assert d("gateway_redemptions_total", status=status) == 1
    pings = {"route": "/v1/pings", "method": "POST"}
    assert d("gateway_http_requests_total", **pings, status="2xx") == 5
    assert d("gateway_http_request_duration_seconds_count", **pings) == 5
    redemptions = {"route": "/v1/redemptions", "method": "POST"}
    assert d("gateway_http_requests_total", **redemptions, status="4xx") == 2
    # What only the database knows, read at the scrape.
    assert value(after, "gateway_database_up") == 1
    assert value(after, "gateway_outbox_dead_rows") == 1
    assert value(after, "gateway_outbox_pending", channel="webpush") == 0
    assert value(after, "gateway_migrations_pending") == 0
    assert value(after, "gateway_index_version") == value(after, "gateway_geofences_version")
    assert value(after, "gateway_index_fences") >= 1

    # The funnel's counters are the report's figures for the same period.
    r = await shop.api.get(f"/v1/reports/offers/{oid}", token=shop.token("reviewer"))
    funnel = r.json["funnel"]
    decisions = {
        dict(labels)["reason"]: v - before.get((name, labels), 0.0)
        for (name, labels), v in after.items()
        if name == "gateway_offer_decisions_total"
    }
    assert funnel["candidates"] == sum(decisions.values()) == 2
    assert funnel["sent"] == decisions["sent"]
    for reason, n in funnel["suppressed"]["by_reason"].items():
        assert n == decisions.get(reason, 0), reason
    assert funnel["redeemed"] == d("gateway_redemptions_total", status="201")

    # No label carries an id, a code or an address: only known labels, route templates.
    assert {k for _, labels in after for k, _ in labels} <= LABELS
    values = {v for _, labels in after for _, v in labels}
    for secret in (*codes, good.endpoint, gone.endpoint, *shop.tenant.tokens.values()):
        assert not any(secret in v for v in values), secret
    routes = {v for _, labels in after for k, v in labels if k == "route"}
    assert all(r == "unmatched" or not re.search(r"/\d", r) for r in routes), routes


async def test_the_gauges_follow_the_process(shop: Shop) -> None:
    samples = await scrape(shop.api)
    assert value(samples, "gateway_db_pool_connections_max") == 8
    assert value(samples, "gateway_db_pool_connections") >= 1
    # The scrape itself is in flight while the gauges are sampled.
    assert value(samples, "gateway_http_requests_in_flight") == 1
    assert value(samples, "gateway_ping_spool_age_seconds") == 0
    assert value(samples, "gateway_index_last_rebuild_timestamp_seconds") > 0


async def _client(
    database_url: str, spec: SpecChecker, tmp_path: Any, **settings: Any
) -> test_utils.TestClient[Any, Any]:
    application = app_mod.create_app(make_settings(tmp_path, **settings), db_url=database_url)
    return test_utils.TestClient(test_utils.TestServer(application))


async def test_off_answers_404_and_records_no_request(
    database_url: str, spec: SpecChecker, tmp_path: Any
) -> None:
    async with await _client(database_url, spec, tmp_path, metrics=False) as client:
        r = await ApiClient(client, spec).get("/metrics")
        assert (r.status, r.error_code) == (404, "not_found")
        names = [m.__name__ for m in client.app.middlewares]
        assert names == ["gateway_middleware"], names


async def test_a_token_and_allowed_addresses_restrict_it(
    database_url: str, spec: SpecChecker, tmp_path: Any
) -> None:
    secret = Secret("metrics-scraper-secret")
    async with await _client(database_url, spec, tmp_path, metrics_token=secret) as client:
        api = ApiClient(client, spec)
        assert (await api.get("/metrics")).status == 401
        assert (await api.get("/metrics", token="wrong")).status == 401
        await scrape(api, token="metrics-scraper-secret")
    async with await _client(
        database_url, spec, tmp_path, metrics_allow="10.0.0.0/8, 192.0.2.1"
    ) as client:
        assert (await ApiClient(client, spec).get("/metrics")).status == 403
    async with await _client(database_url, spec, tmp_path, metrics_allow="127.0.0.0/8") as client:
        await scrape(ApiClient(client, spec))


async def test_a_port_of_its_own(database_url: str, spec: SpecChecker, tmp_path: Any) -> None:
    port = proc.free_port()
    async with await _client(database_url, spec, tmp_path, metrics_port=port) as client:
        r = await ApiClient(client, spec).get("/metrics")
        assert (r.status, r.error_code) == (404, "not_found")
        async with client.session.get(f"http://127.0.0.1:{port}/metrics") as side:
            assert side.status == 200
            samples = parse(await side.text())
        assert value(samples, "gateway_database_up") == 1
        async with client.session.get(f"http://127.0.0.1:{port}/v1/auth/whoami") as other:
            assert other.status == 404  # nothing but /metrics there


async def test_several_workers_add_up_in_one_scrape(database_url: str, tmp_path: Path) -> None:
    """`serve --workers 2`: every scrape, whichever worker answers it, counts the requests
    both workers answered; stale files are cleared at start, and dead workers' gauges go."""
    directory = tmp_path / "prom"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left by an earlier run, unreadable")
    environ = proc.env(database_url, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(directory))
    server = proc.Served(proc.free_port(), environ, "--workers", "2")
    url, sent = server.url, 0
    await server.start()
    try:
        await server.wait_ready()
        deadline = asyncio.get_running_loop().time() + 60
        while len(_healthz_by_worker(directory)) < 2:
            assert asyncio.get_running_loop().time() < deadline, server.log
            # A new connection each time: the kernel spreads them over the workers.
            async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as r:
                assert r.status == 200
                sent += 1
        # Each worker adds its requests to its file within a second.
        while sum(_healthz_by_worker(directory).values()) < sent:
            assert asyncio.get_running_loop().time() < deadline, server.log
            await asyncio.sleep(0.1)
        for _ in range(6):
            async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as r:
                assert r.status == 200
                samples = parse(await r.text())
            route = {"route": "/healthz", "method": "GET"}
            assert value(samples, "gateway_http_requests_total", **route, status="2xx") == sent
        # Gauges taken across the workers: the stalest index, both pools added up.
        assert value(samples, "gateway_index_version") == value(
            samples, "gateway_geofences_version"
        )
        assert value(samples, "gateway_db_pool_connections_max") == 2 * 10
    finally:
        code = await server.stop()
    assert code == 0, server.log
    assert not list(directory.glob("gauge_live*.db")), "the workers' live gauges stayed"
    assert not (directory / "counter_1.db").exists()


def _healthz_by_worker(directory: Path) -> dict[str, float]:
    """GET /healthz answers counted in each worker's file."""
    out: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        for key, value_, *_ in mmap_dict.MmapedDict.read_all_values_from_file(str(path)):
            if '"gateway_http_requests_total"' in key and '"/healthz"' in key and value_:
                out[path.name] = out.get(path.name, 0.0) + value_
    return out


def test_a_timing_flushes_what_observe_would_have_written() -> None:
    """Timing keeps observations as bucket counts and adds them to the histogram's own
    buckets and sum at the flush (prometheus-client's internals: this checks they hold)."""
    registry = CollectorRegistry()
    bounds = (0.01, 0.1, 1.0)
    kept = Histogram("kept_seconds", "kept", ["route"], buckets=bounds, registry=registry)
    direct = Histogram("direct_seconds", "direct", ["route"], buckets=bounds, registry=registry)
    timing = metrics.Timing(kept, "/x")
    for v in (0.0, 0.01, 0.010001, 0.5, 1.0, 7.0, 0.05):
        timing.observe(v)
        direct.labels("/x").observe(v)
    assert registry.get_sample_value("kept_seconds_count", {"route": "/x"}) == 0
    metrics.flush()
    for suffix in ("_count", "_sum"):
        got = registry.get_sample_value("kept_seconds" + suffix, {"route": "/x"})
        assert got == registry.get_sample_value("direct_seconds" + suffix, {"route": "/x"})
    for le in ("0.01", "0.1", "1.0", "+Inf"):
        labels = {"route": "/x", "le": le}
        got = registry.get_sample_value("kept_seconds_bucket", labels)
        assert got == registry.get_sample_value("direct_seconds_bucket", labels), le
