"""The shopper's inbox and live feed, Web Push subscriptions, and the dead-letter view."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Annotated, Any

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.delivery import inbox, outbox, webpush
from gateway.delivery.inbox import INBOX_HUB
from gateway.delivery.webpush import VAPID
from gateway.http import api, errors, paging
from gateway.http.api import Endpoint, Reply
from gateway.settings import SETTINGS
from offers import codes

SHOPPER = frozenset({Role.SHOPPER})
HEARTBEAT_SECONDS = 15.0


class InboxCoupon(api.Out):
    id: str
    code: str
    expires_at: dt.datetime
    redeemed: bool


class InboxItem(api.Out):
    delivery_id: str
    offer_id: str
    title: str
    body: str
    image_url: str | None
    coupon: InboxCoupon
    created_at: dt.datetime
    opened_at: dt.datetime | None

    @classmethod
    def of(cls, r: Any) -> InboxItem:
        coupon = InboxCoupon.model_construct(
            id=str(r["coupon_id"]),
            code=codes.display(r["code"]),
            expires_at=r["expires_at"],
            redeemed=r["redeemed"],
        )
        return cls.model_construct(
            delivery_id=str(r["delivery_id"]),
            offer_id=str(r["offer_id"]),
            title=r["title"],
            body=r["body"],
            image_url=r["image_url"],
            coupon=coupon,
            created_at=r["created_at"],
            opened_at=r["opened_at"],
        )


class InboxPage(api.Out):
    items: list[InboxItem]
    next_cursor: str | None


def _parse_cursor(raw: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    if raw is None:
        return None
    stamp, _, ident = raw.partition("_")
    try:
        micros = int(stamp) if stamp.isascii() and stamp.isdigit() else -1
        at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
        if micros < 0:
            raise ValueError(stamp)
        return at, uuid.UUID(ident)
    except (ValueError, OverflowError):
        raise errors.ValidationFailed(
            "bad query parameter", fields={"cursor": "not a cursor"}
        ) from None


async def _delivered(conn: Any, items: list[Any], now: dt.datetime) -> None:
    for r in items:
        await outbox.record_event(conn, r["delivery_id"], "inbox", "delivered", now)


async def get_inbox(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    limit = paging.limit(request, 50, 200)
    before = _parse_cursor(request.query.get("cursor"))
    now = request.app[CLOCK].now()
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        rows = await inbox.page(conn, p.shopper_id, now, before=before, limit=limit)
        await _delivered(conn, rows, now)
    last = rows[-1] if len(rows) == limit else None
    cursor = None
    if last is not None:
        # URL-safe as it stands: microseconds since the epoch, then the delivery id.
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        micros = (last["created_at"] - epoch) // dt.timedelta(microseconds=1)
        cursor = f"{micros}_{last['delivery_id']}"
    items = [InboxItem.of(r) for r in rows]
    return api.json(InboxPage.model_construct(items=items, next_cursor=cursor))


async def inbox_stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: each new coupon as an event named `coupon`, id = delivery id."""
    p = api.principal(request)
    assert p.shopper_id is not None
    app = request.app
    hub = app[INBOX_HUB]
    wake = hub.open(p.shopper_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: stream, do not buffer
        }
    )
    try:
        # What arrives from now on (the inbox itself lists what came before).
        after = app[CLOCK].now() - dt.timedelta(seconds=1)
        sent: set[Any] = set()
        if not await api.prepare_stream(request, response):
            return response
        await response.write(b": connected\n\n")
        while True:
            try:
                await asyncio.wait_for(wake.wait(), HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            wake.clear()
            now = app[CLOCK].now()
            try:
                async with db.acquire(app[POOL]) as conn, conn.transaction():
                    rows = [
                        r
                        for r in await inbox.since(conn, p.shopper_id, now, after)
                        if r["delivery_id"] not in sent
                    ]
                    await _delivered(conn, rows, now)
            except Exception as exc:
                if not db.is_unavailable(exc):
                    raise
                # The stream is open: no error answer is possible. Look again shortly.
                await asyncio.sleep(1.0)
                wake.set()
                continue
            for r in rows:
                sent.add(r["delivery_id"])
                data = api.dumps(InboxItem.of(r))
                await response.write(
                    b"event: coupon\nid: "
                    + str(r["delivery_id"]).encode()
                    + b"\ndata: "
                    + data
                    + b"\n\n"
                )
    except ConnectionResetError:
        pass  # the app went away; a cancellation (shutdown) propagates
    finally:
        hub.close(p.shopper_id, wake)
    return response


async def _track(request: web.Request, kind: str) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    try:
        delivery_id = uuid.UUID(request.match_info["delivery_id"])
    except ValueError:
        raise errors.NotFound("no such delivery") from None
    now = request.app[CLOCK].now()
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        found = await inbox.delivery_of(conn, delivery_id, p.shopper_id)
        if found is None:
            raise errors.NotFound("no such delivery")
        channel = "inbox" if "inbox" in found["channels"] else found["channels"][0]
        await outbox.record_event(conn, delivery_id, channel, kind, now)
        row = await inbox.tracked(conn, delivery_id)
    assert row is not None
    return api.json(
        {
            "delivery_id": str(delivery_id),
            "opened_at": row["opened_at"].isoformat() if row["opened_at"] else None,
            "dismissed_at": row["dismissed_at"].isoformat() if row["dismissed_at"] else None,
        }
    )


async def open_delivery(request: web.Request) -> web.Response:
    return await _track(request, "opened")


async def dismiss_delivery(request: web.Request) -> web.Response:
    return await _track(request, "dismissed")


class TrackOut(api.Out):
    delivery_id: str
    opened_at: dt.datetime | None
    dismissed_at: dt.datetime | None


Key = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)]


class SubscriptionKeys(api.Model):
    p256dh: Key
    auth: Key


class SubscriptionIn(api.Model):
    """The browser's PushSubscription.toJSON()."""

    model_config = pydantic.ConfigDict(extra="ignore", strict=True, frozen=True)

    endpoint: Annotated[str, pydantic.StringConstraints(min_length=8, max_length=2000)]
    keys: SubscriptionKeys
    expirationTime: int | float | None = None


class UnsubscribeIn(api.Model):
    endpoint: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=2000)]


class SubscriptionOut(api.Out):
    id: str
    endpoint: str


async def subscribe(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    req = await api.body(request, SubscriptionIn)
    settings = request.app[SETTINGS]
    webpush.check_subscription(
        req.endpoint, req.keys.p256dh, req.keys.auth, allow_http=settings.webpush_allow_http
    )
    async with db.acquire(request.app[POOL]) as conn:
        subscription_id, created = await webpush.add_subscription(
            conn,
            merchant_id=p.merchant_id,
            shopper_id=p.shopper_id,
            endpoint=req.endpoint,
            p256dh=req.keys.p256dh,
            auth=req.keys.auth,
        )
    status = 201 if created else 200
    return api.json({"id": str(subscription_id), "endpoint": req.endpoint}, status=status)


async def unsubscribe(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    req = await api.body(request, UnsubscribeIn)
    async with db.acquire(request.app[POOL]) as conn:
        gone = await webpush.remove_subscription(conn, p.shopper_id, req.endpoint)
    if not gone:
        raise errors.NotFound("no such subscription")
    return web.Response(status=204)


class VapidOut(api.Out):
    public_key: str = pydantic.Field(
        description="base64url of the P-256 public key: the app's applicationServerKey"
    )


async def vapid_public_key(request: web.Request) -> web.Response:
    key = request.app[VAPID]
    return api.json({"public_key": key.public_key})


class DeadLetter(api.Out):
    id: str
    delivery_id: str
    channel: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    shopper_id: str
    offer_id: str

    @classmethod
    def of(cls, r: Any) -> DeadLetter:
        return cls.model_construct(
            id=str(r["id"]),
            delivery_id=str(r["delivery_id"]),
            channel=r["channel"],
            attempts=r["attempts"],
            last_error=r["last_error"],
            created_at=r["created_at"],
            expires_at=r["expires_at"],
            shopper_id=str(r["shopper_id"]),
            offer_id=str(r["offer_id"]),
        )


class DeadLetters(api.Out):
    items: list[DeadLetter]
    next_cursor: str | None


async def dead_letters(request: web.Request) -> web.Response:
    p = api.principal(request)
    limit = paging.limit(request, 100, 1000)
    async with db.acquire(request.app[POOL]) as conn:
        rows = await outbox.dead_letters(
            conn, p.merchant_id, after=paging.cursor(request), limit=limit
        )
    items = [
        {
            "id": str(r["id"]),
            "delivery_id": str(r["delivery_id"]),
            "channel": r["channel"],
            "attempts": r["attempts"],
            "last_error": r["last_error"],
            "created_at": r["created_at"].isoformat(),
            "expires_at": r["expires_at"].isoformat(),
            "shopper_id": str(r["shopper_id"]),
            "offer_id": str(r["offer_id"]),
        }
        for r in rows
    ]
    return api.json(
        {"items": items, "next_cursor": paging.next_cursor([i["id"] for i in items], limit)}
    )


ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/inbox",
        handler=get_inbox,
        tag="delivery",
        summary="The shopper's live coupons, newest first (cursor-paged)",
        description="Live: not expired and not dismissed. Serving an item records it as "
        "delivered on the inbox channel.",
        roles=SHOPPER,
        replies={200: Reply(description="A page of the inbox", model=InboxPage)},
        errors=(422,),
        parameters=paging.PAGING,
    ),
    Endpoint(
        method="GET",
        path="/v1/inbox/stream",
        handler=inbox_stream,
        tag="delivery",
        summary="Live feed of new coupons (Server-Sent Events)",
        description="Each new coupon is an event `coupon` whose id is the delivery id and "
        "whose data is an inbox item; a comment line every 15 s keeps proxies from "
        "closing the stream. Coupons arrive within a second of the decision, from any "
        "replica.",
        roles=SHOPPER,
        replies={
            200: Reply(
                description="An event stream",
                content_type="text/event-stream",
                schema={"type": "string"},
            )
        },
    ),
    Endpoint(
        method="POST",
        path="/v1/inbox/{delivery_id}/open",
        handler=open_delivery,
        tag="delivery",
        summary="Record that the shopper opened a coupon (idempotent)",
        roles=SHOPPER,
        replies={200: Reply(description="When it was opened and dismissed", model=TrackOut)},
        errors=(404,),
    ),
    Endpoint(
        method="POST",
        path="/v1/inbox/{delivery_id}/dismiss",
        handler=dismiss_delivery,
        tag="delivery",
        summary="Record that the shopper dismissed a coupon (idempotent)",
        roles=SHOPPER,
        replies={200: Reply(description="When it was opened and dismissed", model=TrackOut)},
        errors=(404,),
    ),
    Endpoint(
        method="POST",
        path="/v1/push-subscriptions",
        handler=subscribe,
        tag="delivery",
        summary="Register the browser's PushSubscription for Web Push",
        description="The body is PushSubscription.toJSON(): {endpoint, keys: {p256dh, auth}}. "
        "p256dh must be an uncompressed P-256 point and auth 16 bytes (base64url). 201 "
        "for a new subscription, 200 when it was already registered (keys refreshed).",
        roles=SHOPPER,
        body=SubscriptionIn,
        replies={
            201: Reply(description="Registered", model=SubscriptionOut),
            200: Reply(description="Already registered", model=SubscriptionOut),
        },
    ),
    Endpoint(
        method="DELETE",
        path="/v1/push-subscriptions",
        handler=unsubscribe,
        tag="delivery",
        summary='Remove a push subscription ({"endpoint"} in the body)',
        roles=SHOPPER,
        body=UnsubscribeIn,
        replies={204: Reply(description="Removed", content_type="")},
        errors=(404,),
    ),
    Endpoint(
        method="GET",
        path="/v1/push/vapid-public-key",
        handler=vapid_public_key,
        tag="delivery",
        summary="The VAPID public key (applicationServerKey for pushManager.subscribe)",
        roles=None,
        uses_db=False,
        replies={200: Reply(description="The key", model=VapidOut)},
    ),
    Endpoint(
        method="GET",
        path="/v1/outbox/dead",
        handler=dead_letters,
        tag="delivery",
        summary="Deliveries that gave up, with the reason (dead letters)",
        roles=frozenset({Role.ADMIN}),
        replies={200: Reply(description="A page of dead letters", model=DeadLetters)},
        errors=(422,),
        parameters=paging.PAGING,
    ),
]
