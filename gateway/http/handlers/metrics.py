"""GET /metrics: the Prometheus text format, on the main port or on a port of its own.

No API token: Prometheus scrapes it. GATEWAY_METRICS_ALLOW limits it to some addresses
and GATEWAY_METRICS_TOKEN to a bearer token. Besides the process's own metrics (all the
workers' in multiprocess mode, see gateway/metrics.py), each scrape reads what only the
database knows: the delivery queues, the geofence change counter, pending migrations,
and whether the database answers at all. Every replica reports these same figures: add
up the processes' metrics across replicas, but take the max of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from gateway import db, metrics, migrate
from gateway.db import POOL
from gateway.delivery import backlog
from gateway.http import errors, instrument
from gateway.http.api import Endpoint, Reply
from gateway.settings import SETTINGS, Settings, allowed_networks
from geo import store as geo_store

log = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT = 2.0


def _check_access(request: web.Request, settings: Settings) -> None:
    networks = allowed_networks(settings.metrics_allow)
    if networks:
        try:
            peer = ipaddress.ip_address(request.remote or "")
        except ValueError:
            peer = None
        if peer is None or not any(peer in n for n in networks):
            raise errors.Forbidden("this address may not read the metrics")
    if settings.metrics_token is not None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expected = settings.metrics_token.reveal()
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.encode()
        ):
            raise errors.Unauthorized("the metrics need 'Authorization: Bearer <metrics token>'")


async def _answer(request: web.Request, app: web.Application) -> web.Response:
    _check_access(request, app[SETTINGS])
    instrument.sample(app)
    figures = await _database_figures(app)
    body = metrics.exposition(figures)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def get_metrics(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not settings.metrics or settings.metrics_port is not None:
        where = "are off" if not settings.metrics else f"are on port {settings.metrics_port}"
        raise errors.NotFound(f"no route for /metrics here: the metrics {where}")
    return await _answer(request, request.app)


class _Figures:
    """Metric families read once, for one scrape."""

    def __init__(self, families: Iterable[Any]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Any]:
        return self._families


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


async def _database_figures(app: web.Application) -> CollectorRegistry:
    """The database's figures, and gateway_database_up 0 if it did not answer in time."""
    up = 1.0
    families: list[Any] = []
    try:
        async with asyncio.timeout(SNAPSHOT_TIMEOUT), db.acquire(app[POOL]) as conn:
            queues = await backlog.read(conn)
            fences_version = await geo_store.index_version(conn)
            applied = await migrate.current_version(conn)
    except Exception as exc:
        if not (db.is_unavailable(exc) or isinstance(exc, TimeoutError)):
            raise
        log.warning("metrics: the database did not answer", extra={"error": type(exc).__name__})
        up = 0.0
    else:
        families = _queue_families(queues)
        families += [
            _gauge("gateway_outbox_dead_rows", "Outbox rows dead-lettered, all time", queues.dead),
            _gauge(
                "gateway_geofences_version",
                "The database's geofence change counter (compare gateway_index_version)",
                fences_version,
            ),
            _gauge(
                "gateway_migrations_pending",
                "Migrations this gateway has that the database lacks",
                max(0, migrate.latest_version() - applied),
            ),
        ]
    families.append(
        _gauge("gateway_database_up", "1 if the database answered this scrape, else 0", up)
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(families))
    return registry


def _queue_families(found: backlog.Backlog) -> list[GaugeMetricFamily]:
    pending = {
        "outbox": GaugeMetricFamily(
            "gateway_outbox_pending", "Outbox rows waiting, by channel", labels=["channel"]
        ),
        "pass_updates": GaugeMetricFamily(
            "gateway_pass_updates_pending",
            "Wallet pass updates waiting, by wallet",
            labels=["wallet"],
        ),
    }
    oldest = {
        "outbox": GaugeMetricFamily(
            "gateway_outbox_oldest_due_age_seconds",
            "How long the oldest due outbox row has waited, by channel",
            labels=["channel"],
        ),
        "pass_updates": GaugeMetricFamily(
            "gateway_pass_updates_oldest_due_age_seconds",
            "How long the oldest due pass update has waited, by wallet",
            labels=["wallet"],
        ),
    }
    for q in found.queues:
        pending[q.queue].add_metric([q.kind], q.pending)
        oldest[q.queue].add_metric([q.kind], q.oldest_due_seconds)
    return [*pending.values(), *oldest.values()]


async def port_ctx(app: web.Application) -> AsyncIterator[None]:
    """GATEWAY_METRICS_PORT: /metrics alone on a port of its own (cleanup_ctx).

    SO_REUSEPORT, so every `serve` worker listens on it too; any one answers for all.
    """
    settings = app[SETTINGS]
    if not settings.metrics or settings.metrics_port is None:
        yield
        return

    async def handler(request: web.Request) -> web.Response:
        try:
            return await _answer(request, app)
        except errors.ApiError as exc:
            body = errors.error_body(exc.code, exc.message)
            return web.json_response(body, status=exc.status, headers=exc.headers)

    side = web.Application()
    side.router.add_get("/metrics", handler)
    runner = web.AppRunner(side, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.metrics_port, reuse_port=True)
    await site.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()


ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/metrics",
        handler=get_metrics,
        tag="system",
        summary="Prometheus metrics (text format 0.0.4)",
        description="The gateway's metrics for Prometheus: no API token, but "
        "GATEWAY_METRICS_ALLOW and GATEWAY_METRICS_TOKEN can restrict it. 404 when "
        "GATEWAY_METRICS is 0 or GATEWAY_METRICS_PORT serves it elsewhere. The metrics are "
        "listed in deploy/OPERATIONS.md.",
        roles=None,
        uses_db=False,
        errors=(401, 403, 404),
        replies={
            200: Reply(
                description="The metrics",
                schema={"type": "string"},
                content_type="text/plain",
            )
        },
    ),
]
