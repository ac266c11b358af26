"""Google Wallet object updates: drain the Google rows of the `pass_updates` queue.

The queue is the one the APNs pusher drains: the transaction that changes a pass queues
its Apple row, and a trigger queues the Google row beside it (gateway/delivery/
functions.sql). Rows are claimed with SKIP LOCKED under a lease. One row brings the
shopper's Google objects in step with the database: each coupon (an OfferObject, made
when a coupon reaches the `wallet` channel) and then the loyalty card that links them.
An object Google already has as it should be is not sent again (a digest of the body
last accepted), and an object the shopper deleted is never sent.

429 and 5xx retry with backoff (Retry-After honoured) until MAX_ATTEMPTS, then the row is
dead-lettered; other refusals dead-letter at once. Points, a new tier and a new coupon
notify the shopper while the pass's quota (3 in 24 hours) lasts; past it the update goes
through silently, and `google_wallet_notifications` says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging

import asyncpg
from aiohttp import web

from gateway import clock, db, metrics
from gateway.delivery import drain, googleapi, outbox
from wallet.google import objects, quota
from wallet.store import google as google_store
from wallet.store import passes as pass_store

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
DEV_SKIPPED = "not sent: a development service account, which Google does not know"
# Where Google posts a merchant's save and delete callbacks (gateway/http/handlers/
# wallet_callbacks.py); classes name it as their callbackOptions.url.
CALLBACK_PATH = "/v1/wallet/google/callback/{merchant_id}"


def callback_url(public_url: str | None, merchant_id: int) -> str | None:
    """The merchant's callback URL under the gateway's public URL; None unless it is HTTPS,
    the only kind Google calls."""
    if public_url is None or not public_url.startswith("https://"):
        return None
    return public_url.rstrip("/") + CALLBACK_PATH.format(merchant_id=merchant_id)


@dataclasses.dataclass(slots=True)
class _Issuer:
    updated_at: dt.datetime
    client: googleapi.Client
    classes: dict[str, str] = dataclasses.field(default_factory=dict)  # id -> digest sent


class GooglePusher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        base_url: str = googleapi.PRODUCTION,
        token_uri: str | None = None,
        public_url: str | None = None,
        clock_: clock.Clock | None = None,
        batch: int = 50,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.pool = pool
        self.base_url = base_url
        self.token_uri = token_uri
        self.public_url = public_url
        self.clock = clock_ or clock.SystemClock()
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._issuers: dict[int, _Issuer] = {}
        self._loop = drain.Loop("google-pusher", self)
        self.sent = 0

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        for issuer in self._issuers.values():
            await issuer.client.close()
        self._issuers.clear()

    async def run_once(self) -> int:
        async with db.acquire(self.pool) as conn:
            rows = await pass_store.claim_pass_updates(
                conn, self.batch, self.lease_seconds, "google"
            )
        for row in rows:
            await self._one(row)
        return len(rows)

    def _issuer(self, config: google_store.GoogleConfig) -> _Issuer:
        merchant_id = config.program.merchant_id
        cached = self._issuers.get(merchant_id)
        if cached is not None and cached.updated_at == config.updated_at:
            return cached
        if cached is not None:
            # Replaced configuration: the old client closes in the background.
            asyncio.get_running_loop().create_task(cached.client.close())
        client = googleapi.Client(
            config.service_account, base_url=self.base_url, token_uri=self.token_uri
        )
        self._issuers[merchant_id] = _Issuer(updated_at=config.updated_at, client=client)
        return self._issuers[merchant_id]

    async def _one(self, row: asyncpg.Record) -> None:
        update_id, attempts = row["id"], row["attempts"]
        async with db.acquire(self.pool) as conn:
            config = await google_store.config(conn, row["merchant_id"])
            if config is None or (config.dev and self.base_url == googleapi.PRODUCTION):
                why = "no Google Wallet configuration" if config is None else DEV_SKIPPED
                await pass_store.pass_update_done(conn, update_id, attempts, why)
                metrics.WALLET_UPDATES["google", "skipped"].inc()
                return
            if row["delivery_id"] is not None:
                await self._adopt_coupon(conn, config, row)
        issuer = self._issuer(config)
        try:
            await Sync(self, issuer, config, row).run()
        except googleapi.Failure as exc:
            await self._failed(row, exc)
            return
        async with db.acquire(self.pool) as conn:
            await pass_store.pass_update_done(conn, update_id, attempts, None)
        metrics.WALLET_UPDATES["google", "ok"].inc()

    async def _adopt_coupon(
        self, conn: asyncpg.Connection, config: google_store.GoogleConfig, row: asyncpg.Record
    ) -> None:
        """A coupon sent to the wallet channel becomes an OfferObject on the card."""
        coupon_id = await google_store.delivery_coupon(conn, row["delivery_id"])
        if coupon_id is not None:
            await google_store.ensure_offer_card(
                conn,
                config.program,
                row["shopper_id"],
                coupon_id,
                self.clock.now(),
                live_only=False,
            )

    async def _failed(self, row: asyncpg.Record, exc: googleapi.Failure) -> None:
        attempts = row["attempts"]
        error = str(exc)[:500]
        async with db.acquire(self.pool) as conn:
            if exc.retry and attempts < MAX_ATTEMPTS:
                delay = max(exc.retry_after or 0.0, outbox.backoff(attempts))
                await pass_store.pass_update_retry(conn, row["id"], attempts, error, delay)
                metrics.WALLET_UPDATES["google", "retry"].inc()
                return
            if exc.retry:
                error = f"gave up after {attempts} attempts: {error}"
            log.warning("google wallet update dead-lettered", extra={"pass_update_id": row["id"]})
            await pass_store.pass_update_dead(conn, row["id"], attempts, error)
        metrics.WALLET_UPDATES["google", "dead"].inc()


class Sync:
    """One queue row: the shopper's coupons, then the card that links them."""

    def __init__(
        self,
        pusher: GooglePusher,
        issuer: _Issuer,
        config: google_store.GoogleConfig,
        row: asyncpg.Record,
    ) -> None:
        self.pusher = pusher
        self.issuer = issuer
        self.program = config.program
        self.callback_url = callback_url(pusher.public_url, config.program.merchant_id)
        self.shopper_id: int = row["shopper_id"]
        self.reason: str = row["reason"]
        self.now = pusher.clock.now()

    async def run(self) -> None:
        async with db.acquire(self.pusher.pool) as conn:
            offers = await google_store.offer_cards(conn, self.shopper_id)
            card = await google_store.loyalty_card(conn, self.program, self.shopper_id)
        new = [o for o in offers if not o.deleted and await self._offer(o)]
        if card is not None and not card.deleted:
            await self._loyalty(card, new)

    async def _class(self, resource: str, body: dict[str, object]) -> None:
        digest = objects.digest(body)
        class_id = str(body["id"])
        if self.issuer.classes.get(class_id) != digest:
            await self.issuer.client.put_class(resource, body)
            self.issuer.classes[class_id] = digest

    async def _offer(self, offer: google_store.OfferRow) -> bool:
        """Bring one coupon in step; True if Google had not had it yet."""
        await self._class(
            "offerClass",
            objects.offer_class(
                self.program,
                offer_id=offer.offer_id,
                title=offer.title,
                details=offer.details,
                callback_url=self.callback_url,
            ),
        )
        body = objects.offer_object(offer.card, self.now)
        digest = objects.digest(body)
        if digest == offer.synced_hash:
            return False
        await self.issuer.client.put_object("offerObject", body)
        async with db.acquire(self.pusher.pool) as conn:
            await google_store.mark_synced(conn, offer.id, digest, body["state"], self.now)
        self.pusher.sent += 1
        return offer.synced_hash is None

    async def _loyalty(
        self, card: google_store.LoyaltyRow, new: list[google_store.OfferRow]
    ) -> None:
        await self._class("loyaltyClass", objects.loyalty_class(self.program, self.callback_url))
        body = objects.loyalty_object(card.card)
        digest = objects.digest(body)
        if digest == card.synced_hash:
            return
        wanted = quota.wants_notification(self.reason)
        async with db.acquire(self.pusher.pool) as conn:
            sent = await google_store.notified_since(conn, card.id, quota.window_start(self.now))
        notify = wanted and quota.may_notify(sent)
        silent_reason = None if notify or not wanted else "quota"
        client = self.issuer.client
        message = _message(new)
        try:
            # A new coupon is told as a message; points and tier as the fields' own update.
            await client.put_object("loyaltyObject", body, notify=notify and message is None)
            if message is not None:
                kind = "TEXT_AND_NOTIFY" if notify else "TEXT"
                await client.add_message(
                    "loyaltyObject", card.card.object_id, {**message, "messageType": kind}
                )
        except googleapi.QuotaExceeded:
            # Google counted notifications we did not send (another system, a reset):
            # the update still goes through, silently.
            notify, silent_reason = False, "google_quota"
            await client.put_object("loyaltyObject", body)
            if message is not None:
                await client.add_message(
                    "loyaltyObject", card.card.object_id, {**message, "messageType": "TEXT"}
                )
        async with db.acquire(self.pusher.pool) as conn, conn.transaction():
            await google_store.mark_synced(conn, card.id, digest, "ACTIVE", self.now)
            if wanted:
                await google_store.record_notification(
                    conn,
                    card.id,
                    notified=notify,
                    silent_reason=silent_reason,
                    reason=self.reason,
                    at=self.now,
                )
        self.pusher.sent += 1


def _message(new: list[google_store.OfferRow]) -> dict[str, str] | None:
    """The card's message about coupons Google did not have yet."""
    if not new:
        return None
    return {
        "id": f"coupon-{new[0].coupon_id}",
        "header": "A new offer for you",
        "body": "; ".join(f"{o.title}: {o.details}" for o in new)[:500],
    }


GOOGLE_PUSHER = web.AppKey("google_pusher", GooglePusher)
