"""Two-sided referrals: the shopper's own code, the program's referral rules, the report."""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors
from gateway.http.api import Endpoint, Reply
from offers import referrals

STAFF = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})
WRITERS = frozenset({Role.ADMIN, Role.MANAGER})

Points = Annotated[int, pydantic.Field(ge=0, le=10**6)]


class MyReferral(api.Out):
    code: str = pydantic.Field(description="The shopper's shareable code, XXXX-XXXX-XX")
    invited: int = pydantic.Field(description="Shoppers who enrolled with the code")
    rewarded: int = pydantic.Field(description="Of them, referrals rewarded")
    points_earned: int = pydantic.Field(description="Points the code has earned its owner")


class RulesIn(api.Model):
    qualify: Literal["first_purchase", "first_redemption", "points_threshold"] = pydantic.Field(
        description="What the referred shopper must do: a first purchase, a first coupon "
        "redemption, or a balance of threshold_points after a purchase"
    )
    threshold_points: Annotated[int, pydantic.Field(ge=1, le=10**9)] | None = None
    referrer_points: Points
    referee_points: Points
    referrer_offer_id: api.Id | None = pydantic.Field(
        default=None,
        description="A coupon of this offer for the referrer too (the offer may be paused: "
        "a reward kept off the geofences; it needs a geofence of its own or of its stores)",
    )
    referee_offer_id: api.Id | None = pydantic.Field(
        default=None, description="A coupon of this offer for the referred shopper too"
    )
    cap_limit: Annotated[int, pydantic.Field(ge=1, le=100_000)] = pydantic.Field(
        description="At most this many rewarded referrals per referrer in cap_days days"
    )
    cap_days: Annotated[int, pydantic.Field(ge=1, le=3660)]


class RulesOut(api.Out):
    qualify: str
    threshold_points: int | None
    referrer_points: int
    referee_points: int
    referrer_offer_id: str | None
    referee_offer_id: str | None
    cap_limit: int
    cap_days: int

    @classmethod
    def of(cls, r: referrals.Rules) -> RulesOut:
        return cls.model_construct(
            qualify=r.qualify,
            threshold_points=r.threshold_points,
            referrer_points=r.referrer_points,
            referee_points=r.referee_points,
            referrer_offer_id=api.ident(r.referrer_offer_id),
            referee_offer_id=api.ident(r.referee_offer_id),
            cap_limit=r.cap_limit,
            cap_days=r.cap_days,
        )


class Refused(api.Out):
    self_referral: int
    shared_device: int
    cap_reached: int


class ReferralReport(api.Out):
    invitations_used: int = pydantic.Field(description="Shoppers enrolled with a valid code")
    pending: int = pydantic.Field(description="Of them, not qualified yet")
    qualified: int = pydantic.Field(description="Of them, who completed the qualifying action")
    rewarded: int = pydantic.Field(description="Referrals whose rewards were paid")
    refused: Refused = pydantic.Field(
        description="Refusals by reason (self_referral at "
        "enrolment; shared_device and cap_reached when the referral qualified)"
    )
    refused_total: int
    points_paid: int = pydantic.Field(description="Points paid to both sides")
    coupons_issued: int


async def my_referral(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    async with db.acquire(request.app[POOL]) as conn:
        code = await referrals.code_for(conn, p.merchant_id, p.shopper_id, request.app[CLOCK].now())
        if code is None:  # erased between token check and read
            raise errors.NotFound("no such shopper")
        summary = await referrals.shopper_summary(conn, p.merchant_id, p.shopper_id)
    return api.json(
        MyReferral.model_construct(
            code=referrals.display(code),
            invited=summary["invited"],
            rewarded=summary["rewarded"],
            points_earned=summary["points"],
        )
    )


async def get_rules(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn:
        rules = await referrals.rules(conn, p.merchant_id)
    return api.json(RulesOut.of(rules))


async def put_rules(request: web.Request) -> web.Response:
    p = api.principal(request)
    api.require_merchant_wide(p, "referral rules")
    req = await api.body(request, RulesIn)
    if (req.qualify == "points_threshold") != (req.threshold_points is not None):
        raise errors.ValidationFailed(
            "bad field",
            fields={"threshold_points": "required with points_threshold, and only with it"},
        )
    new = referrals.Rules(**req.model_dump())
    async with db.acquire(request.app[POOL]) as conn:
        saved = await referrals.set_rules(conn, p.merchant_id, new, request.app[CLOCK].now())
    return api.json(RulesOut.of(saved))


async def referral_report(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn:
        counts = await referrals.report(conn, p.merchant_id, None, None)
    return api.json(counts)


ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/me/referral",
        handler=my_referral,
        tag="referrals",
        summary="The calling shopper's shareable referral code, and what it has earned",
        description="The code is made on first use and never changes. A friend enrols "
        "with it (POST /v1/shoppers, referral_code); when the friend qualifies, both "
        "earn the program's referral rewards.",
        roles=frozenset({Role.SHOPPER}),
        replies={200: Reply(description="The code", model=MyReferral)},
        errors=(404,),
    ),
    Endpoint(
        method="GET",
        path="/v1/referrals/rules",
        handler=get_rules,
        tag="referrals",
        summary="The program's referral rules (defaults until a manager sets them)",
        roles=STAFF,
        replies={200: Reply(description="The rules", model=RulesOut)},
    ),
    Endpoint(
        method="PUT",
        path="/v1/referrals/rules",
        handler=put_rules,
        tag="referrals",
        summary="Set the program's referral rules: what qualifies, the rewards, the cap",
        description="Each side earns its points (0: none) and, when an offer is named, "
        "a coupon of it. At most cap_limit referrals of one referrer are rewarded in any "
        "cap_days days; later ones are refused (cap_reached).",
        roles=WRITERS,
        body=RulesIn,
        replies={200: Reply(description="The rules", model=RulesOut)},
    ),
    Endpoint(
        method="GET",
        path="/v1/reports/referrals",
        handler=referral_report,
        tag="reports",
        summary="Referral counts: invitations used, qualified, rewarded, refused by reason, "
        "points paid",
        roles=STAFF,
        replies={200: Reply(description="The counts", model=ReferralReport)},
    ),
]
