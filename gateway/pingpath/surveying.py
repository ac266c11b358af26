"""Survey invitations and service recovery: offers decided outside a ping, through the
same decision engine, caps, holdout, decision log and delivery outbox.

An exit or a redemption schedules invitations (triggers in offers/functions.sql); the
survey job sends those that came due. A detractor's answer decides the survey's
recovery offer. Both decide under the shopper's visit-state row lock, the one the
ping path decides under, so caps hold against concurrent pings on any replica.
"""

from __future__ import annotations

import datetime as dt
import logging

import asyncpg

from gateway import db
from gateway.pingpath import offering
from geo import locks
from geo import store as geo_store
from offers import store as offers_store
from offers import survey_store
from offers.models import Candidate, Context, Offer

log = logging.getLogger(__name__)

# The survey job's advisory lock: one replica at a time sends the invitations.
LOCK = locks.SURVEYS


async def fresh_book(conn: asyncpg.Connection, merchant_id: int) -> offering.Book:
    """The merchant's program, stores and offers as they stand (not a cached book): a
    decision outside the ping path is rare, and must see a survey created a moment ago."""
    return offering.Book.build(
        await offers_store.active_offers(conn, merchant_id),
        await offers_store.store_hours(conn, merchant_id),
        await offers_store.get_program(conn, merchant_id),
    )


async def decide_one(
    conn: asyncpg.Connection,
    books: offering.OfferBooks,
    *,
    offer: Offer,
    shopper_id: int,
    store_id: int,
    fence_id: int | None,
    trigger: str,
    now: dt.datetime,
) -> offering.Moment:
    """Decide one offer for one shopper at a store now, and commit it (decision, coupon,
    outbox) in the caller's transaction, which must hold the shopper's visit-state lock."""
    book = await fresh_book(conn, offer.merchant_id)
    store = book.stores.get(store_id) or offers_store.StoreHours(timezone="UTC", opening_hours=None)
    moment = offering.Moment(
        context=Context(now=now),
        candidates=[
            Candidate(
                offer=offer,
                # Decisions name a fence; 0 when no fence was involved (a redemption).
                fence_id=fence_id or 0,
                store_id=store_id,
                store_timezone=store.timezone,
                store_hours=store.opening_hours,
            )
        ],
        trigger=trigger,
    )
    await books.commit(
        conn, book, merchant_id=offer.merchant_id, shopper_id=shopper_id, moments=[moment], now=now
    )
    return moment


def outcome_of(moment: offering.Moment) -> survey_store.Closed:
    """How a decided moment ended: sent (with its coupon), suppressed with its reason, or
    stopped when the offer was no candidate any more (paused or archived meanwhile)."""
    if moment.sent:
        sent = moment.sent[0]
        return survey_store.Closed(
            outcome="sent", coupon_id=sent.coupon_id, expires_at=sent.expires_at
        )
    if moment.decided:
        return survey_store.Closed(outcome="suppressed", reason=moment.decided[0].reason)
    return survey_store.Closed(outcome="stopped")


async def _invite(
    conn: asyncpg.Connection,
    books: offering.OfferBooks,
    due: survey_store.DueInvitation,
    now: dt.datetime,
) -> survey_store.Closed:
    if due.answered:
        return survey_store.Closed(outcome="answered")
    rec = await offers_store.get_offer(conn, due.merchant_id, due.offer_id)
    if not due.survey_live or rec is None or rec.offer.status != "active":
        return survey_store.Closed(outcome="stopped")
    # The ping path's lock: decisions of one shopper happen one at a time.
    await geo_store.lock_shopper_geo(conn, due.shopper_id, due.merchant_id)
    moment = await decide_one(
        conn,
        books,
        offer=rec.offer,
        shopper_id=due.shopper_id,
        store_id=due.store_id,
        fence_id=due.geofence_id,
        trigger=due.source,
        now=now,
    )
    return outcome_of(moment)


async def invite_due(
    pool: asyncpg.Pool, books: offering.OfferBooks, now: dt.datetime, *, most: int = 500
) -> int:
    """Decide up to `most` invitations that came due, each in its own transaction; how
    many were closed. Run by one replica at a time (the job's advisory lock)."""
    done = 0
    while done < most:
        async with db.acquire(pool) as conn, conn.transaction():
            due = await survey_store.due_invitations(conn, now, 1)
            if not due:
                break
            closed = await _invite(conn, books, due[0], now)
            await survey_store.close_invitation(conn, due[0].id, now, closed)
        done += 1
    if done:
        log.info("survey invitations decided", extra={"count": done})
    return done
