"""Pass-update pushes: drain the `pass_updates` queue to APNs for every registered device.

Rows are queued in the transactions that change a pass (a purchase, a redemption or
void, a coupon issued to the wallet channel), so nothing is lost across a crash; they
are claimed with SKIP LOCKED under a lease, like the outbox. 410 and BadDeviceToken
drop the registration; 429, 5xx and no answer retry with backoff.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import asyncpg
from aiohttp import web

from gateway import db, metrics
from gateway.delivery import drain, outbox
from wallet import apns
from wallet.store import passes as pass_store


class PassPusher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        base_url: str = apns.PRODUCTION,
        ca_file: str | None = None,
        batch: int = 100,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.pool = pool
        self.base_url = base_url
        self.ca_file = ca_file
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._clients: dict[int, tuple[object, apns.Client]] = {}
        self._loop = drain.Loop("pass-pusher", self)
        self._tmp = tempfile.TemporaryDirectory(prefix="gateway-apns-")
        self.pushed = 0

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        for _, client in self._clients.values():
            await client.close()
        self._tmp.cleanup()

    async def _client(self, conn: asyncpg.Connection, merchant_id: int) -> tuple[apns.Client, str]:
        config = await pass_store.wallet_config(conn, merchant_id)
        cached = self._clients.get(merchant_id)
        if cached is not None and cached[0] == config.updated_at:
            return cached[1], config.pass_type_id
        if cached is not None:
            await cached[1].close()
        verify: str | bool = self.ca_file or True
        if config.apns_key_pem and config.apns_key_id:
            auth = apns.TokenAuth(config.apns_key_pem.encode(), config.apns_key_id, config.team_id)
            client = apns.Client(base_url=self.base_url, token_auth=auth, verify=verify)
        else:
            # Wallet passes may push with the pass certificate itself.
            cert = Path(self._tmp.name, f"{merchant_id}.pem")
            # ssl loads a client certificate only from a file; a private temp file.
            await asyncio.to_thread(_write_private, cert, config.cert_pem + config.key_pem)
            client = apns.Client(
                base_url=self.base_url, client_cert=(str(cert), str(cert)), verify=verify
            )
        self._clients[merchant_id] = (config.updated_at, client)
        return client, config.pass_type_id

    async def run_once(self) -> int:
        async with db.acquire(self.pool) as conn:
            rows = await pass_store.claim_pass_updates(conn, self.batch, self.lease_seconds)
        for row in rows:
            await self._one(row)
        return len(rows)

    async def _one(self, row: asyncpg.Record) -> None:
        async with db.acquire(self.pool) as conn:
            tokens = await pass_store.shopper_registrations(conn, row["shopper_id"])
            if not tokens:
                await pass_store.pass_update_done(conn, row["id"], row["attempts"], None)
                return
            client, topic = await self._client(conn, row["merchant_id"])
        outcomes = await client.push_all(tokens, topic)
        metrics.apns_pushed(outcomes)
        gone = [o.push_token for o in outcomes if o.drop_registration]
        retry = [o for o in outcomes if o.retry]
        problems = [f"{o.status} {o.reason or ''}".strip() for o in outcomes if o.status != 200]
        self.pushed += sum(1 for o in outcomes if o.status == 200)
        async with db.acquire(self.pool) as conn, conn.transaction():
            if gone:
                await pass_store.drop_registrations(conn, gone)
            error = "; ".join(problems) or None
            if retry:
                delay = max(
                    [o.retry_after or 0.0 for o in retry] + [outbox.backoff(row["attempts"])]
                )
                await pass_store.pass_update_retry(
                    conn, row["id"], row["attempts"], error or "retry", delay
                )
            else:
                await pass_store.pass_update_done(conn, row["id"], row["attempts"], error)


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.write_text(text)


PASS_PUSHER = web.AppKey("pass_pusher", PassPusher)
