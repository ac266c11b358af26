"""The lifecycle journeys' scheduler: find the occurrences that came due, decide each
through `offers.decide()`, and hand the sends to the delivery outbox.

Every replica runs :func:`job`; its advisory lock (`geo.locks.JOURNEYS`) lets one at a
time work. Finding reads indexed time ranges after each journey's watermark and records
one run per journey, shopper and occurrence (a unique key), moving the watermark in the
same transaction; deciding claims one pending run at a time, and its decision, coupon,
outbox row and the run's end commit together. So a restart at any point, or a second
scheduler that got past the lock, finds and sends nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field

import asyncpg

from gateway import metrics
from gateway.delivery import outbox
from gateway.jobs import periodic
from geo import locks
from offers import codes, decide, journeys
from offers import journey_store as store
from offers import store as offers_store
from offers.journeys import Journey
from offers.models import Context, Decision, Offer, Program

log = logging.getLogger(__name__)

# Runs decided per query of the due ones; a round goes on until none is left.
BATCH = 500
DAY = 86_400


@dataclass(slots=True)
class Summary:
    """What one round did: occurrences found, and the runs decided by their outcome."""

    found: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


@dataclass(slots=True)
class _Books:
    """What deciding reads once per round: journeys, offers, programs, store time zones."""

    journeys: dict[int, Journey]
    offers: dict[int, Offer | None] = field(default_factory=dict)
    programs: dict[int, Program] = field(default_factory=dict)
    zones: dict[int, dict[int, str]] = field(default_factory=dict)

    async def offer(self, conn: asyncpg.Connection, journey: Journey) -> Offer | None:
        if journey.offer_id not in self.offers:
            rec = await offers_store.get_offer(conn, journey.merchant_id, journey.offer_id)
            live = rec is not None and rec.offer.status == "active"
            self.offers[journey.offer_id] = rec.offer if rec is not None and live else None
        return self.offers[journey.offer_id]

    async def program(self, conn: asyncpg.Connection, merchant_id: int) -> Program:
        if merchant_id not in self.programs:
            self.programs[merchant_id] = await offers_store.get_program(conn, merchant_id)
        return self.programs[merchant_id]

    async def zone(self, conn: asyncpg.Connection, merchant_id: int, store_id: int) -> str:
        if merchant_id not in self.zones:
            hours = await offers_store.store_hours(conn, merchant_id)
            self.zones[merchant_id] = {k: v.timezone for k, v in hours.items()}
        return self.zones[merchant_id].get(store_id, "UTC")


async def run(conn: asyncpg.Connection, now: dt.datetime, *, batch: int = BATCH) -> Summary:
    """One round: find what came due up to ``now``, then decide every due run."""
    summary = Summary()
    active = await store.active_journeys(conn)
    rules: dict[int, store.MerchantRules] = {}
    for journey in active:
        if journey.merchant_id not in rules:
            rules[journey.merchant_id] = await store.merchant_rules(conn, journey.merchant_id)
        async with conn.transaction():
            summary.found += await store.find_occurrences(
                conn, journey, rules[journey.merchant_id], now
            )
    books = _Books(journeys={j.id: j for j in active})
    while True:
        due = await store.due_runs(conn, now, batch)
        for run_id in due:
            async with conn.transaction():
                summary.count(await _decide_run(conn, run_id, now, books))
        if len(due) < batch:
            break
    if summary.found or summary.outcomes:
        log.info("journeys ran", extra={"found": summary.found, "outcomes": summary.outcomes})
    return summary


async def _decide_run(
    conn: asyncpg.Connection, run_id: int, now: dt.datetime, books: _Books
) -> str:
    """Decide one run in the caller's transaction; what became of it."""
    claimed = await store.claim_run(conn, run_id)
    if claimed is None:
        return "skipped"
    journey = books.journeys.get(claimed.journey_id)
    offer = None if journey is None else await books.offer(conn, journey)
    if journey is None or offer is None:
        return await _end(conn, claimed.id, "cancelled", "journey_stopped", None, now)
    if claimed.superseded:
        return await _end(conn, claimed.id, "cancelled", "superseded", None, now)
    await store.lock_shopper(conn, claimed.shopper_id, claimed.merchant_id)
    history = max([DAY, *(c.seconds for c in offer.caps)])
    since = now - dt.timedelta(seconds=history)
    shopper = await offers_store.shopper_state(conn, claimed.shopper_id, since)
    if shopper is None:
        return await _end(conn, claimed.id, "cancelled", "no_shopper", None, now)
    store_id = journeys.home_store(offer)
    zone = await books.zone(conn, journey.merchant_id, store_id)
    program = await books.program(conn, journey.merchant_id)
    candidate = journeys.candidate(
        offer, store_id=store_id, store_timezone=zone, due_by=claimed.occurs_at + journey.grace
    )
    verdict = decide.decide(Context(now=now), shopper, [candidate], program)[0]
    if verdict.reason == "quiet_hours":
        until = journeys.quiet_until(program, now, shopper.timezone or zone)
        if until is not None:
            await store.defer_run(conn, claimed.id, until)
            return "deferred"
    if verdict.send and not await offers_store.reserve_issue(conn, offer):
        if offer.budget_issued is None:  # paused or archived since the round began
            return await _end(conn, claimed.id, "cancelled", "journey_stopped", None, now)
        verdict = Decision(
            offer_id=offer.id, fence_id=0, store_id=store_id, send=False, reason="budget_exhausted"
        )
    decision_id = await _record(conn, offer, verdict, shopper_id=claimed.shopper_id, now=now)
    return await _end(conn, claimed.id, "done", verdict.reason or "sent", decision_id, now)


async def _record(
    conn: asyncpg.Connection, offer: Offer, verdict: Decision, *, shopper_id: int, now: dt.datetime
) -> int | None:
    """Log the decision; for a send, issue the coupon and queue its delivery. The send's
    decision id."""
    exposed = verdict.send or verdict.held_out
    valid = dt.timedelta(minutes=offer.coupon.valid_minutes)
    row = offers_store.DecisionRow(
        offer_id=offer.id,
        store_id=verdict.store_id,
        fence_id=None,
        trigger="journey",
        reason=verdict.reason,
        attributable_until=now + valid if exposed else None,
    )
    coupon = None
    if verdict.send:
        coupon = offers_store.NewCoupon(
            code=codes.new_code(),
            store_ids=offer.scope_store_ids,
            expires_at=now + valid,
            delivery_id=uuid.uuid4(),
            channels=offer.channels,
        )
    send = await offers_store.record_decisions(
        conn,
        merchant_id=offer.merchant_id,
        shopper_id=shopper_id,
        at=now,
        rows=[row],
        coupon=coupon,
    )
    metrics.decided([verdict.reason], send.channels if send else ())
    if send is None:
        return None
    await outbox.enqueue(conn, [send])
    return send.decision_id


async def _end(
    conn: asyncpg.Connection,
    run_id: int,
    state: str,
    outcome: str,
    decision_id: int | None,
    now: dt.datetime,
) -> str:
    await store.finish_run(
        conn, run_id, state=state, outcome=outcome, decision_id=decision_id, at=now
    )
    return outcome


def job(*, every_seconds: float) -> periodic.Job:
    """Evaluate the journeys every ``every_seconds``."""

    async def round_(r: periodic.Round) -> None:
        await run(r.conn, r.now)

    return periodic.Job(
        name="journeys", every_seconds=every_seconds, lock=locks.JOURNEYS, round=round_
    )
