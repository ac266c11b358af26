"""Offers on the ping path: each process's book of live offers, and the commit of decisions.

The book of a merchant (active offers by geofence and by store, store time zones and
opening hours, program rules) is loaded on first use and dropped when the database announces a
change (NOTIFY offers_changed), so a ping only reads it from memory.

`commit` runs inside the transaction that wrote the shopper's new visit state. That
write holds the shopper's row lock, so concurrent pings of one shopper, on any
replica, decide one after the other and each sees the caps the previous one used.
Its sends are handed to the delivery outbox in that same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from gateway import db, listen, metrics
from gateway.delivery import outbox
from geo.models import Transition
from offers import codes, decide
from offers import store as offers_store
from offers.models import Candidate, Context, Decision, Exposure, Offer, Program, ShopperState

log = logging.getLogger(__name__)

CHANNEL = "offers_changed"
DAY = 86_400
# A store created after the book was loaded: UTC and no hours until the book reloads.
_UNKNOWN_STORE = offers_store.StoreHours(timezone="UTC", opening_hours=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Book:
    by_fence: Mapping[int, tuple[Offer, ...]]
    by_store: Mapping[int, tuple[Offer, ...]]
    stores: Mapping[int, offers_store.StoreHours]
    program: Program
    # The longest cap window among the offers: how much history a decision needs.
    history_seconds: int = DAY

    @classmethod
    def build(
        cls,
        offers: Sequence[Offer],
        stores: Mapping[int, offers_store.StoreHours],
        program: Program,
    ) -> Book:
        by_fence: dict[int, list[Offer]] = defaultdict(list)
        by_store: dict[int, list[Offer]] = defaultdict(list)
        longest = DAY
        for offer in offers:
            for fence_id in offer.geofence_ids:
                by_fence[fence_id].append(offer)
            for store_id in offer.store_ids:
                by_store[store_id].append(offer)
            for cap in offer.caps:
                longest = max(longest, cap.seconds)
        return cls(
            by_fence={k: tuple(v) for k, v in by_fence.items()},
            by_store={k: tuple(v) for k, v in by_store.items()},
            stores=dict(stores),
            program=program,
            history_seconds=longest,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """A send as the ping's answer shows it."""

    offer_id: int
    delivery_id: uuid.UUID
    coupon_id: int
    code: str
    expires_at: dt.datetime

    @classmethod
    def of(cls, send: offers_store.Send, code: str) -> Sent:
        return cls(
            offer_id=send.offer_id,
            delivery_id=send.delivery_id,
            coupon_id=send.coupon_id,
            code=code,
            expires_at=send.expires_at,
        )

    def as_json(self) -> dict[str, object]:
        return {
            "offer_id": str(self.offer_id),
            "delivery_id": str(self.delivery_id),
            "coupon": {
                "id": str(self.coupon_id),
                "code": codes.display(self.code),
                "expires_at": self.expires_at.isoformat(),
            },
        }


@dataclass(slots=True, kw_only=True)
class Moment:
    """One ping's triggers: its decision context and the offers its transitions made
    candidates; once committed, what was decided and sent (the ping is `owner`, as the
    caller counts). A moment that no ping caused (a survey's invitation, a service
    recovery) names its `trigger` for the decision log instead of the offer's."""

    context: Context
    candidates: list[Candidate] = field(default_factory=list)
    owner: int = -1
    sent: list[Sent] = field(default_factory=list)
    trigger: str | None = None
    decided: list[Decision] = field(default_factory=list)


class OfferBooks:
    def __init__(self, *, max_delay_seconds: float = 300.0) -> None:
        # Triggers from buffered pings older than this are past the moment an offer
        # was for; they update visits but decide nothing.
        self.max_delay = dt.timedelta(seconds=max_delay_seconds)
        self._books: dict[int, Book] = {}
        self._generation: dict[int, int] = defaultdict(int)
        self._epoch = 0

    def attach(self, listener: listen.Listener) -> None:
        listener.subscribe(CHANNEL, self._on_changed)
        listener.on_lost(self._forget_all)

    def _on_changed(self, payload: str) -> None:
        if payload.isascii() and payload.isdigit():
            merchant_id = int(payload)
            self._generation[merchant_id] += 1
            self._books.pop(merchant_id, None)

    def _forget_all(self) -> None:
        self._epoch += 1
        self._books.clear()

    async def book(self, pool: asyncpg.Pool, merchant_id: int) -> Book:
        found = self._books.get(merchant_id)
        if found is not None:
            return found
        generation, epoch = self._generation[merchant_id], self._epoch
        async with db.acquire(pool) as conn:
            offers = await offers_store.active_offers(conn, merchant_id)
            stores = await offers_store.store_hours(conn, merchant_id)
            program = await offers_store.get_program(conn, merchant_id)
        book = Book.build(offers, stores, program)
        # A change announced while loading may not be in what was read: use it once,
        # but do not keep it.
        if generation == self._generation[merchant_id] and epoch == self._epoch:
            self._books[merchant_id] = book
        return book

    def moments(
        self,
        book: Book,
        caused: Sequence[tuple[Context, Sequence[Transition]]],
        now: dt.datetime,
        owners: Sequence[int] = (),
    ) -> list[Moment]:
        """The candidate offers of each ping (its context and the transitions it caused).

        One moment per ping with candidates, in the order given: pings that share a
        timestamp keep their own weather and decisions.
        """
        moments = []
        for k, (context, transitions) in enumerate(caused):
            moment = Moment(context=context, owner=owners[k] if owners else k)
            for t in transitions:
                if t.event == "exit" or t.store_id is None or now - t.at > self.max_delay:
                    continue
                offers = book.by_fence.get(t.fence_id, ()) + book.by_store.get(t.store_id, ())
                store = book.stores.get(t.store_id, _UNKNOWN_STORE)
                moment.candidates.extend(
                    Candidate(
                        offer=offer,
                        fence_id=t.fence_id,
                        store_id=t.store_id,
                        store_timezone=store.timezone,
                        store_hours=store.opening_hours,
                    )
                    for offer in offers
                    if offer.trigger == t.event
                )
            if moment.candidates:
                moments.append(moment)
        return moments

    async def commit(
        self,
        conn: asyncpg.Connection,
        book: Book,
        *,
        merchant_id: int,
        shopper_id: int,
        moments: Sequence[Moment],
        now: dt.datetime,
    ) -> list[Sent]:
        """Decide, record and enqueue each moment's offers in the caller's transaction."""
        since = now - dt.timedelta(seconds=book.history_seconds)
        shopper = await offers_store.shopper_state(conn, shopper_id, since)
        if shopper is None:
            return []
        sends: list[offers_store.Send] = []
        sent: list[Sent] = []
        for moment in moments:
            decisions, offers_by_id = await decide_moment(
                moment, shopper, book, functools.partial(offers_store.reserve_issue, conn)
            )
            winner = next((d for d in decisions if d.send), None)
            coupon = None if winner is None else _coupon(offers_by_id[winner.offer_id], now)
            send = await offers_store.record_decisions(
                conn,
                merchant_id=merchant_id,
                shopper_id=shopper_id,
                at=now,
                rows=[_row(d, offers_by_id[d.offer_id], now, moment.trigger) for d in decisions],
                coupon=coupon,
            )
            metrics.decided([d.reason for d in decisions], send.channels if send else ())
            moment.decided.extend(decisions)
            if send is not None and coupon is not None:
                sends.append(send)
                sent.append(Sent.of(send, coupon.code))
                moment.sent.append(sent[-1])
            exposures = tuple(
                Exposure(offer_id=d.offer_id, at=now, held_out=d.held_out)
                for d in decisions
                if d.send or d.held_out
            )
            if exposures:
                shopper = dataclasses.replace(shopper, history=shopper.history + exposures)
        await outbox.enqueue(conn, sends)
        await outbox.delivered_in_app(conn, sends, now)
        return sent


Reserve = Callable[[Offer], Awaitable[bool]]


async def decide_moment(
    moment: Moment, shopper: ShopperState, book: Book, reserve: Reserve
) -> tuple[list[Decision], dict[int, Offer]]:
    """Decide the moment's candidates, reserving the winner's budget; also the offers by id.

    `reserve` takes one coupon from the winner's budget (the ping path) or only says
    whether it could (the decision preview): both decide through this one function.
    """
    candidates = list(moment.candidates)
    while True:
        decisions = decide.decide(moment.context, shopper, candidates, book.program)
        winner = next((d for d in decisions if d.send), None)
        if winner is None:
            break
        offer = next(c.offer for c in candidates if c.offer.id == winner.offer_id)
        if await reserve(offer):
            break
        if offer.budget_issued is None:
            # No budget to be spent: the offer stopped (paused, archived) since the book
            # was loaded. It is no candidate any more; deciding it again would loop.
            candidates = [c for c in candidates if c.offer.id != offer.id]
            continue
        # A budget found spent at reservation time is spent for this decision too:
        # decide again without it, so the next best offer can go out.
        spent = dataclasses.replace(offer, issued_count=offer.budget_issued)
        candidates = [
            dataclasses.replace(c, offer=spent) if c.offer.id == offer.id else c for c in candidates
        ]
    return decisions, {c.offer.id: c.offer for c in candidates}


def _row(
    d: Decision, offer: Offer, now: dt.datetime, trigger: str | None = None
) -> offers_store.DecisionRow:
    # A send or a holdout is exposed: a conversion until the coupon expires is its effect.
    exposed = d.send or d.held_out
    return offers_store.DecisionRow(
        offer_id=d.offer_id,
        store_id=d.store_id,
        fence_id=d.fence_id,
        trigger=trigger or offer.trigger,
        reason=d.reason,
        attributable_until=(
            now + dt.timedelta(minutes=offer.coupon.valid_minutes) if exposed else None
        ),
    )


def _coupon(offer: Offer, now: dt.datetime) -> offers_store.NewCoupon:
    return offers_store.NewCoupon(
        code=codes.new_code(),
        store_ids=offer.scope_store_ids,
        expires_at=now + dt.timedelta(minutes=offer.coupon.valid_minutes),
        delivery_id=uuid.uuid4(),
        channels=offer.channels,
    )


OFFERS = web.AppKey("offers", OfferBooks)
