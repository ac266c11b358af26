"""``gateway worker``: the delivery side alone (no HTTP), wired as ``serve`` wires it."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from gateway import db, listen, settings
from gateway.cli import common
from gateway.delivery import wiring


async def run_worker(cfg: settings.Settings, url: str, direct_url: str | None = None) -> None:
    direct = direct_url or url
    pool = await db.create_pool(url, min_size=1, max_size=cfg.db_pool_max, pooled=direct != url)
    listener = listen.Listener(direct)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        # This process exists to deliver: its outbox worker runs even where
        # GATEWAY_OUTBOX_WORKER=0 turns off the workers of the `serve` processes.
        async with wiring.running(
            pool, cfg, listener, outbox_worker=True, pass_pusher=cfg.pass_pusher
        ) as delivery:
            await listener.start(cfg.index_poll_seconds)
            sys.stderr.write("gateway worker: delivering the outbox (Ctrl-C to stop)\n")
            await stop.wait()
        sys.stderr.write(f"gateway worker: stopped after {delivery.worker.sent} pushes\n")
    finally:
        await listener.close()
        await pool.close()


def cmd_worker(args: argparse.Namespace) -> int:
    cfg = common.load_settings(args)
    url = db.resolve_url(cfg)
    direct = db.resolve_direct_url(cfg)
    if cfg.migrate_on_start:
        asyncio.run(common.migrate_url(direct))
    loop = common.new_loop()
    try:
        loop.run_until_complete(run_worker(cfg, url, direct))
    finally:
        loop.close()
    return 0


def add_parser(sub: Any) -> None:
    wk = sub.add_parser(
        "worker",
        help="run the delivery workers alone (no HTTP)",
        description="Drain the outbox to Web Push and the wallet. serve runs the same "
        "worker in every process; run this to scale delivery apart from the API.",
    )
    common.add_setting_flags(wk, "migrate_on_start")
    wk.set_defaults(func=cmd_worker)
