"""The decision preview: what a ping entering at a point would decide, with nothing written.

It runs the ping path's own steps on a hypothetical shopper: the fence index lookup
(`PingService.near`), the enter/dwell state machine from no open visit
(`PingService.step`), the offer book's candidates (`OfferBooks.moments`) and the one
decision loop (`offering.decide_moment`). What differs is only what a preview cannot
have or must not touch:

- the shopper has the profile given and no history, so per-shopper caps and the daily
  cap count zero sends;
- budgets are read as they are now (the cached book's counters may lag) and nothing is
  reserved;
- holdout is not drawn: which shoppers are held out depends on who they are, so a
  passing offer is reported as firing, with its holdout percentage beside it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg

from gateway import db
from gateway.pingpath import offering, pings
from geo import fences
from geo.index import FenceIndex
from geo.models import FenceState, Observation
from offers import store as offers_store
from offers.models import Candidate, Decision, Offer, ShopperState

# No shopper has this id: the hypothetical shopper of a preview.
NOBODY = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """The hypothetical shopper: who they are, with no history."""

    tier: str | None = None
    points: int = 0
    tags: frozenset[str] = frozenset()
    marketing_consent: bool = True
    timezone: str | None = None

    def state(self) -> ShopperState:
        return ShopperState(
            shopper_id=NOBODY,
            marketing_consent=self.marketing_consent,
            timezone=self.timezone,
            tier=self.tier,
            points=self.points,
            tags=self.tags,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NearFence:
    fence_id: int
    store_id: int
    distance_m: float
    # Whether a ping there opens a visit (within its accuracy), not only keeps one open.
    enters: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """One candidate offer at one fence, and what the decision would be."""

    offer: Offer
    decision: Decision
    # The offer's holdout, not drawn for a hypothetical shopper (see the module docstring).
    holdout_pct: float

    @property
    def fires(self) -> bool:
        return self.decision.send


@dataclass(frozen=True, slots=True, kw_only=True)
class Preview:
    status: Literal["accepted", "ignored"]
    reason: str | None
    fences: list[NearFence]
    verdicts: list[Verdict]


async def preview(
    pool: asyncpg.Pool,
    index: FenceIndex,
    service: pings.PingService,
    *,
    merchant_id: int,
    ping: pings.Ping,
    profile: Profile,
    trigger: Literal["enter", "dwell"] = "enter",
) -> Preview:
    """What `ping`, taken at `ping.ts` and decided then, would decide for `profile`.

    `trigger` "enter" previews the ping that opens a visit; "dwell" the ping that
    completes a dwell (the shopper entered GATEWAY_DWELL_SECONDS earlier).
    """
    config = service.fence_config
    if not ping.accuracy_m <= config.max_accuracy_m:
        return Preview(status="ignored", reason="poor_accuracy", fences=[], verdicts=[])
    near = service.near(index, merchant_id, ping)
    acc = fences.effective_accuracy_m(ping.accuracy_m, config)
    found = [
        NearFence(fence_id=f, store_id=_store_of(index, f), distance_m=d, enters=d <= acc)
        for f, d in sorted(near.items(), key=lambda kv: (kv[1], kv[0]))
    ]
    visits = _dwelling(near, ping.ts, config.dwell_seconds) if trigger == "dwell" else {}
    observation = Observation(at=ping.ts, accuracy_m=ping.accuracy_m, near=near)
    step = service.step(index, visits, [observation])
    wanted = [t for t in step.transitions if t.event == trigger]
    book = await service.offers.book(pool, merchant_id)
    moments = service.offers.moments(book, [(pings.context(ping, ping.ts), wanted)], ping.ts)
    verdicts: list[Verdict] = []
    for moment in moments:
        holdouts = {c.offer.id: c.offer.holdout_pct for c in moment.candidates}
        moment.candidates = await _as_now(pool, moment.candidates)
        decisions, by_id = await offering.decide_moment(
            moment, profile.state(), book, _nothing_to_reserve
        )
        verdicts.extend(
            Verdict(offer=by_id[d.offer_id], decision=d, holdout_pct=holdouts[d.offer_id])
            for d in decisions
        )
    return Preview(status="accepted", reason=None, fences=found, verdicts=verdicts)


def _store_of(index: FenceIndex, fence_id: int) -> int:
    fence = index.get(fence_id)
    assert fence is not None  # the index just matched it
    return fence.store_id


def _dwelling(
    near: Mapping[int, float], at: dt.datetime, dwell_seconds: float
) -> dict[int, FenceState]:
    """Open visits to every fence in reach, entered one dwell time ago and seen inside now."""
    entered = at - dt.timedelta(seconds=dwell_seconds)
    return {
        f: FenceState(fence_id=f, entered_at=entered, last_inside_at=at, dwell_fired=False)
        for f in near
    }


async def _as_now(pool: asyncpg.Pool, candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates with their budgets' counters as they are now, without holdout.

    Offers stopped since the book was loaded are no candidates.
    """
    ids = sorted({c.offer.id for c in candidates})
    async with db.acquire(pool) as conn:
        counts = await offers_store.live_counts(conn, ids)
    out = []
    for c in candidates:
        if c.offer.id not in counts:
            continue
        issued, redeemed = counts[c.offer.id]
        offer = dataclasses.replace(
            c.offer, issued_count=issued, redeemed_count=redeemed, holdout_pct=0.0
        )
        out.append(dataclasses.replace(c, offer=offer))
    return out


async def _nothing_to_reserve(offer: Offer) -> bool:
    # The counters were read just now (see _as_now) and a preview takes nothing from them.
    return True
