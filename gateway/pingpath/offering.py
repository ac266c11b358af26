"""Offers on the ping path: each process's book of live offers, and the commit of decisions.

The book of a merchant (active offers by geofence and by store, store time zones,
program rules) is loaded on first use and dropped when the database announces a
change (NOTIFY offers_changed), so a ping only reads it from memory.

`commit` runs inside the transaction that wrote the shopper's new visit state. That
write holds the shopper's row lock, so concurrent pings of one shopper, on any
replica, decide one after the other and each sees the caps the previous one used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from gateway import db, listen
from geo.index import FenceIndex
from geo.models import Transition
from offers import codes, decide
from offers import store as offers_store
from offers.models import Candidate, Context, Exposure, Offer, Program

log = logging.getLogger(__name__)

CHANNEL = "offers_changed"
DAY = 86_400


@dataclass(frozen=True, slots=True, kw_only=True)
class Book:
    by_fence: Mapping[int, tuple[Offer, ...]]
    by_store: Mapping[int, tuple[Offer, ...]]
    timezones: Mapping[int, str]
    program: Program
    # The longest cap window among the offers: how much history a decision needs.
    history_seconds: int = DAY

    @classmethod
    def build(cls, offers: Sequence[Offer], timezones: Mapping[int, str], program: Program) -> Book:
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
            timezones=dict(timezones),
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
    """One ping's triggers: its weather and the offers its transitions made candidates."""

    weather_condition: str | None
    temp_c: float | None
    candidates: list[Candidate] = field(default_factory=list)


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
            timezones = await offers_store.store_timezones(conn, merchant_id)
            program = await offers_store.get_program(conn, merchant_id)
        book = Book.build(offers, timezones, program)
        # A change announced while loading may not be in what was read: use it once,
        # but do not keep it.
        if generation == self._generation[merchant_id] and epoch == self._epoch:
            self._books[merchant_id] = book
        return book

    def moments(
        self,
        book: Book,
        index: FenceIndex,
        transitions: Sequence[Transition],
        weather: Mapping[dt.datetime, tuple[str | None, float | None]],
        now: dt.datetime,
    ) -> list[Moment]:
        """Group the candidate offers by the ping whose transitions triggered them."""
        by_ping: dict[dt.datetime, Moment] = {}
        for t in transitions:
            if t.event == "exit" or now - t.at > self.max_delay:
                continue
            fence = index.get(t.fence_id)
            if fence is None:
                continue
            offers = book.by_fence.get(t.fence_id, ()) + book.by_store.get(fence.store_id, ())
            for offer in offers:
                if offer.trigger != t.event:
                    continue
                moment = by_ping.get(t.at)
                if moment is None:
                    condition, temp = weather.get(t.at, (None, None))
                    moment = by_ping[t.at] = Moment(weather_condition=condition, temp_c=temp)
                moment.candidates.append(
                    Candidate(
                        offer=offer,
                        fence_id=t.fence_id,
                        store_id=fence.store_id,
                        store_timezone=book.timezones.get(fence.store_id, "UTC"),
                    )
                )
        return [by_ping[k] for k in sorted(by_ping)]

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
        """Decide and record each moment's offers in the caller's transaction."""
        since = now - dt.timedelta(seconds=book.history_seconds)
        shopper = await offers_store.shopper_state(conn, shopper_id, since)
        if shopper is None:
            return []
        sent: list[Sent] = []
        for moment in moments:
            context = Context(
                now=now, weather_condition=moment.weather_condition, temp_c=moment.temp_c
            )
            candidates = list(moment.candidates)
            # A budget found spent at reservation time is spent for this decision too:
            # decide again without it, so the next best offer can go out.
            while True:
                decisions = decide.decide(context, shopper, candidates, book.program)
                winner = next((d for d in decisions if d.send), None)
                if winner is None:
                    break
                offer = next(c.offer for c in candidates if c.offer.id == winner.offer_id)
                if await offers_store.reserve_issue(conn, offer):
                    break
                spent = dataclasses.replace(offer, issued_count=offer.budget_issued or 0)
                candidates = [
                    dataclasses.replace(c, offer=spent) if c.offer.id == offer.id else c
                    for c in candidates
                ]
            offers_by_id = {c.offer.id: c.offer for c in candidates}
            rows = []
            new_history: list[Exposure] = []
            for d in decisions:
                offer = offers_by_id[d.offer_id]
                counts = d.send or d.held_out
                rows.append(
                    offers_store.DecisionRow(
                        offer_id=d.offer_id,
                        store_id=d.store_id,
                        fence_id=d.fence_id,
                        trigger=offer.trigger,
                        reason=d.reason,
                        attributable_until=(
                            now + dt.timedelta(minutes=offer.coupon.valid_minutes)
                            if counts
                            else None
                        ),
                    )
                )
                if counts:
                    new_history.append(Exposure(offer_id=d.offer_id, at=now, held_out=d.held_out))
            coupon = None
            if winner is not None:
                offer = offers_by_id[winner.offer_id]
                coupon = offers_store.NewCoupon(
                    code=codes.new_code(),
                    store_ids=offer.scope_store_ids,
                    expires_at=now + dt.timedelta(minutes=offer.coupon.valid_minutes),
                    delivery_id=uuid.uuid4(),
                    channels=offer.channels,
                )
            coupon_id = await offers_store.record_decisions(
                conn,
                merchant_id=merchant_id,
                shopper_id=shopper_id,
                at=now,
                rows=rows,
                coupon=coupon,
            )
            if coupon is not None and winner is not None and coupon_id is not None:
                sent.append(
                    Sent(
                        offer_id=winner.offer_id,
                        delivery_id=coupon.delivery_id,
                        coupon_id=coupon_id,
                        code=coupon.code,
                        expires_at=coupon.expires_at,
                    )
                )
            if new_history:
                shopper = dataclasses.replace(shopper, history=shopper.history + tuple(new_history))
        return sent


OFFERS = web.AppKey("offers", OfferBooks)
