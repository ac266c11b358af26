"""The delivery side of a process, wired once for ``serve`` and ``worker``: the VAPID key,
the Web Push sender, the outbox worker, the APNs pass pusher and the Google Wallet updater,
started and stopped together.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

import asyncpg

from gateway import clock, db, listen, settings
from gateway.delivery import googlepush, outbox, passpush, webpush


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What :func:`running` built; the worker and pusher exist even when not started."""

    key: webpush.VapidKey
    sender: webpush.Sender
    worker: outbox.Worker
    pusher: passpush.PassPusher
    google: googlepush.GooglePusher


@contextlib.asynccontextmanager
async def running(
    pool: asyncpg.Pool,
    cfg: settings.Settings,
    listener: listen.Listener,
    *,
    clock_: clock.Clock | None = None,
    outbox_worker: bool,
    pass_pusher: bool,
) -> AsyncIterator[Delivery]:
    """Load the VAPID key, start the sender, and run the outbox worker (woken by `listener`)
    and the pass pushers if asked; everything is stopped on the way out."""
    configured = cfg.vapid_private_key.reveal() if cfg.vapid_private_key else None
    async with db.acquire(pool) as conn:
        key = await webpush.load_key(conn, configured)
    sender = webpush.Sender(key, subject=cfg.vapid_subject)
    await sender.start()
    worker = outbox.Worker(
        pool,
        sender=sender,
        public_url=cfg.base_url,
        clock_=clock_,
        lease_seconds=cfg.outbox_lease_seconds,
    )
    pusher = passpush.PassPusher(pool, base_url=cfg.apns_url, ca_file=cfg.apns_ca_file)
    google = googlepush.GooglePusher(
        pool,
        base_url=cfg.google_wallet_url,
        token_uri=cfg.google_token_uri,
        public_url=cfg.base_url,
        clock_=clock_,
    )
    try:
        if outbox_worker:
            await worker.attach(listener)
            worker.start()
        if pass_pusher:
            pusher.start()
            google.start()
        yield Delivery(key=key, sender=sender, worker=worker, pusher=pusher, google=google)
    finally:
        await google.stop()
        await pusher.stop()
        await worker.stop()
        await sender.close()
