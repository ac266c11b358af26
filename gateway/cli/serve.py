"""``gateway serve``: the HTTP API, in one process or several sharing the port."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
from typing import Any

from aiohttp import abc, web

from gateway import db, logs, metrics, settings
from gateway.cli import common

log = logging.getLogger("gateway")


class AccessLogger(abc.AbstractAccessLogger):
    """One line per request, carrying the request id the response was given.

    Lines go through ``logs.ACCESS`` (formatted directly, written in batches) once
    logging is configured; before that, through ``logging`` as any other record.
    """

    @property
    def enabled(self) -> bool:
        # aiohttp skips log() entirely when this is False: no cost at WARNING level.
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        ms = round(time * 1000, 2)
        rid = response.headers.get("X-Request-Id", "-")
        remote = request.remote or "-"
        if logs.ACCESS.add(
            self.logger.name, request.method, request.path, response.status, ms, rid, remote
        ):
            return
        self.logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={"ms": ms, "rid": rid, "remote": remote},
        )


def serve_one(cfg: settings.Settings, url: str, reuse_port: bool) -> None:
    from gateway.app import create_app

    if reuse_port:  # a spawned worker: set up its own logging
        logs.configure(cfg.log_level, cfg.log_format)
    if not cfg.metrics:
        metrics.switch_off()
    app = create_app(cfg, db_url=url)
    app.on_startup.append(_freeze_heap)
    web.run_app(
        app,
        host=cfg.host,
        port=cfg.port,
        reuse_port=reuse_port or None,
        access_log_class=AccessLogger,
        print=None,
        shutdown_timeout=10,
        loop=common.new_loop(),
    )
    # The last access lines: a spawned worker ends with os._exit, skipping atexit hooks.
    logs.ACCESS.flush()


async def _freeze_heap(app: web.Application) -> None:
    """Run last at start: what start built lives as long as the process.

    The geofence index, the caches and the imported modules are hundreds of thousands of
    objects that the cyclic collector would otherwise walk again and again; frozen, its
    collections only walk what requests allocate.
    """
    gc.collect()
    gc.freeze()


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = common.load_settings(args)
    url = db.resolve_url(cfg)
    log.info("starting", extra={"settings": cfg.describe()})
    if cfg.migrate_on_start:  # under a session advisory lock: past any pooler
        asyncio.run(common.migrate_url(db.resolve_direct_url(cfg)))
    sys.stderr.write(
        f"gateway listening on http://{cfg.host}:{cfg.port} ({cfg.workers} worker(s))\n"
    )
    if cfg.workers == 1:
        if metrics.multiprocess_dir():  # the operator's choice; stale values must go
            metrics.reset_multiprocess_dir(metrics.multiprocess_dir() or "", keep=os.getpid())
        serve_one(cfg, url, reuse_port=False)
        return 0
    own_dir = _metrics_dir() if cfg.metrics else None
    try:
        return _serve_workers(cfg, url)
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _metrics_dir() -> str | None:
    """The multiprocess mode's directory, emptied, in the environment the workers inherit.

    PROMETHEUS_MULTIPROC_DIR if the operator set one (returns None: theirs to keep), else
    a new temporary directory (returned, to be removed at the end).
    """
    given = metrics.multiprocess_dir()
    if given is not None:
        metrics.reset_multiprocess_dir(given, keep=os.getpid())
        # This process serves nothing: its (empty) live gauges must not count, a 0 of
        # its own would be the least of every livemin gauge.
        metrics.worker_gone(os.getpid(), given)
        return None
    made = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[metrics.MULTIPROC_ENV] = made
    return made


def _serve_workers(cfg: settings.Settings, url: str) -> int:
    # Several processes share the port through SO_REUSEPORT; the kernel spreads connections.
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=serve_one, args=(cfg, url, True), name=f"gateway-worker-{i}")
        for i in range(cfg.workers)
    ]
    for p in procs:
        p.start()

    def stop(signum: int, frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                p.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    running = {p.sentinel: p for p in procs}
    while running:
        for sentinel in multiprocess_wait(list(running)):
            gone = running.pop(sentinel)
            gone.join()
            directory = metrics.multiprocess_dir()
            if directory is not None and gone.pid is not None:
                metrics.worker_gone(gone.pid, directory)
    return max((p.exitcode or 0) for p in procs)


def multiprocess_wait(sentinels: list[int]) -> list[int]:
    """The sentinels of the workers that have exited, once at least one has."""
    return [s for s in multiprocessing.connection.wait(sentinels) if isinstance(s, int)]


def add_parser(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the HTTP API",
        description="Run the HTTP API. Applies pending migrations first unless --no-migrate.",
    )
    common.add_setting_flags(serve, "host", "port", "workers", "migrate_on_start")
    serve.set_defaults(func=cmd_serve)
