"""Pass-update pushes: drain the `pass_updates` queue to APNs for every registered device.

Rows are queued in the transactions that change a pass (a purchase, a redemption or
void, a coupon issued to the wallet channel), so nothing is lost across a crash; they
are claimed with SKIP LOCKED under a lease, like the outbox, a batch at a time in
several lanes. One statement claims a batch with its devices' push tokens, every push
of the batch goes out at once over the client's HTTP/2 connections, and one transaction
settles the batch. 410 and BadDeviceToken drop the registration; 429, 5xx and no answer
retry the row with backoff, for the devices that did not take it only.
"""

from __future__ import annotations

import asyncio
import collections
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
        batch: int = 500,
        lanes: int = 4,
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
        # Lanes share one client per merchant: the first to need it makes it.
        self._making = asyncio.Lock()
        # Several lanes, so one batch's database round trips and slowest push overlap
        # the next batch's pushes.
        self._loops = [drain.Loop(f"pass-pusher-{i}", self) for i in range(lanes)]
        self._tmp = tempfile.TemporaryDirectory(prefix="gateway-apns-")
        self.pushed = 0

    @property
    def cut(self) -> int:
        """Pushes a GOAWAY cut before the server took them, each sent again once."""
        return sum(client.cut for _, client in self._clients.values())

    def start(self) -> None:
        for loop in self._loops:
            loop.start()

    async def stop(self) -> None:
        for loop in self._loops:
            await loop.stop()
        for _, client in self._clients.values():
            await client.close()
        self._tmp.cleanup()

    async def _client(self, conn: asyncpg.Connection, merchant_id: int) -> tuple[apns.Client, str]:
        async with self._making:
            return await self._made_client(conn, merchant_id)

    async def _made_client(
        self, conn: asyncpg.Connection, merchant_id: int
    ) -> tuple[apns.Client, str]:
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
            claimed = await pass_store.claim_apple_updates(conn, self.batch, self.lease_seconds)
            if not claimed:
                return 0
            clients = {}
            for merchant_id in {u.merchant_id for u in claimed if u.tokens}:
                clients[merchant_id] = await self._client(conn, merchant_id)
        settled = await asyncio.gather(*(self._push(u, clients) for u in claimed))
        gone = [o.push_token for _, outcomes in settled for o in outcomes if o.drop_registration]
        async with db.acquire(self.pool) as conn, conn.transaction():
            await pass_store.settle_apple_updates(conn, [s for s, _ in settled], gone)
        return len(claimed)

    async def _push(
        self,
        update: pass_store.AppleUpdate,
        clients: dict[int, tuple[apns.Client, str]],
    ) -> tuple[pass_store.AppleSettlement, list[apns.Outcome]]:
        if not update.tokens:
            return pass_store.AppleSettlement(update=update, error=None), []
        client, topic = clients[update.merchant_id]
        outcomes = await client.push_all(update.tokens, topic)
        metrics.apns_pushed(outcomes)
        self.pushed += sum(1 for o in outcomes if o.status == 200)
        problems = collections.Counter(
            f"{o.status} {o.reason or ''}".strip() for o in outcomes if o.status != 200
        )
        error = "; ".join(problems) or None
        retry = [o for o in outcomes if o.retry]
        if not retry:
            return pass_store.AppleSettlement(update=update, error=error), outcomes
        delay = max([o.retry_after or 0.0 for o in retry] + [outbox.backoff(update.attempts)])
        settlement = pass_store.AppleSettlement(
            update=update,
            error=error,
            retry=tuple(o.push_token for o in retry),
            delay=delay,
        )
        return settlement, outcomes


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.write_text(text)


PASS_PUSHER = web.AppKey("pass_pusher", PassPusher)
