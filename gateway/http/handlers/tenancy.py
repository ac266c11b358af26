"""Tenancy endpoints: who am I, merchants, API keys, shopper enrolment."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts import privacy, tenancy
from gateway.accounts.auth import VERIFIER, Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors
from gateway.http.api import Endpoint, Reply
from offers import referrals

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def _check_email(value: str) -> str:
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("not an e-mail address")
    return value


Email = Annotated[str, pydantic.AfterValidator(_check_email)]
Name = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)]
ReferralCode = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=64)]


class WhoAmI(api.Out):
    key_id: str
    role: Role
    merchant_id: str
    store_ids: list[str] | None
    shopper_id: str | None


class MerchantOut(api.Out):
    id: str
    name: str
    created_at: dt.datetime


class KeyCreate(api.Model):
    role: Role
    store_ids: list[api.Id] | None = pydantic.Field(
        default=None,
        description="Scope the key to these stores; omit for every store of the merchant.",
        max_length=1000,
    )
    label: Annotated[str, pydantic.StringConstraints(max_length=200)] | None = None


class KeyCreated(api.Out):
    id: str
    token: str = pydantic.Field(description="Shown once; only its hash is stored.")
    role: Role
    store_ids: list[str] | None


class KeyOut(api.Out):
    id: str
    role: Role
    store_ids: list[str] | None
    label: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class KeyList(api.Out):
    items: list[KeyOut]


def _check_birthday(value: dt.date) -> dt.date:
    if not dt.date(1900, 1, 1) <= value <= dt.datetime.now(dt.UTC).date():
        raise ValueError("must be a date from 1900-01-01 to today")
    return value


Birthday = Annotated[
    dt.date,
    pydantic.AfterValidator(_check_birthday),
    pydantic.Field(description="YYYY-MM-DD; birthday journeys use it (optional)."),
]


class ShopperCreate(api.Model):
    name: Name | None = None
    email: Email | None = None
    marketing_consent: bool
    timezone: api.TimeZone | None = None
    referral_code: ReferralCode | None = pydantic.Field(
        default=None,
        description="A friend's referral code (GET /v1/me/referral): unknown, mistyped "
        "or the shopper's own code is 422 with fields.referral_code",
    )
    birthday: Birthday | None = None


class ShopperCreated(api.Out):
    id: str
    token: str = pydantic.Field(description="The shopper's own token; shown once.")


class ShopperOut(api.Out):
    id: str
    name: str | None
    email: str | None
    marketing_consent: bool
    timezone: str | None
    tier: str | None
    points: int
    tags: list[str]
    created_at: dt.datetime
    birthday: dt.date | None = None

    @classmethod
    def of(cls, s: tenancy.Shopper) -> ShopperOut:
        return cls.model_construct(
            id=str(s.id),
            name=s.name,
            email=s.email,
            marketing_consent=s.marketing_consent,
            timezone=s.timezone,
            tier=s.tier,
            points=s.points,
            tags=list(s.tags),
            created_at=s.created_at,
            birthday=s.birthday,
        )


Tag = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=64)]


class ShopperPatch(api.Model):
    tags: Annotated[list[Tag], pydantic.Field(max_length=100)]


class ExportOut(api.Out):
    exported_at: dt.datetime
    profile: dict[str, Any]
    location: dict[str, Any]
    offers: dict[str, Any]
    loyalty: dict[str, Any]
    devices: dict[str, Any]
    api_keys: list[dict[str, Any]]


class ErasedOut(api.Out):
    erased: bool
    removed: dict[str, int]


class MePatch(api.Model):
    marketing_consent: bool | None = None
    timezone: api.TimeZone | None = None
    birthday: Birthday | None = None


def _ids(values: frozenset[int] | tuple[int, ...] | None) -> list[str] | None:
    return None if values is None else [str(v) for v in sorted(values)]


async def whoami(request: web.Request) -> web.Response:
    p = api.principal(request)
    return api.json(
        {
            "key_id": str(p.key_id),
            "role": p.role.value,
            "merchant_id": str(p.merchant_id),
            "store_ids": _ids(p.store_ids),
            "shopper_id": api.ident(p.shopper_id),
        }
    )


async def get_merchant(request: web.Request) -> web.Response:
    p = api.principal(request)
    merchant_id = api.path_id(request, "merchant_id")
    # Another merchant's id answers exactly like a missing one: existence must not leak.
    if merchant_id != p.merchant_id:
        raise errors.NotFound("no such merchant")
    async with db.acquire(request.app[POOL]) as conn:
        merchant = await tenancy.get_merchant(conn, merchant_id)
    if merchant is None:
        raise errors.NotFound("no such merchant")
    return api.json(
        MerchantOut.model_construct(
            id=str(merchant.id), name=merchant.name, created_at=merchant.created_at
        )
    )


async def create_key(request: web.Request) -> web.Response:
    p = api.principal(request)
    req = await api.body(request, KeyCreate)
    stores = frozenset(req.store_ids) if req.store_ids is not None else None
    # A store-scoped admin can only hand out keys within its own stores.
    if p.store_ids is not None and (stores is None or not p.can_reach_stores(stores)):
        raise errors.Forbidden(
            "this key is scoped to some stores and cannot grant access beyond them",
            code="out_of_scope",
        )
    async with db.acquire(request.app[POOL]) as conn:
        key_id, token = await tenancy.create_key(
            conn, merchant_id=p.merchant_id, role=req.role, store_ids=stores, label=req.label
        )
    return api.json(
        {"id": str(key_id), "token": token, "role": req.role.value, "store_ids": _ids(stores)},
        status=201,
    )


async def list_keys(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn:
        keys = await tenancy.list_keys(conn, p.merchant_id)
    items = [
        KeyOut.model_construct(
            id=str(k.id),
            role=k.role,
            store_ids=_ids(k.store_ids),
            label=k.label,
            created_at=k.created_at,
            revoked_at=k.revoked_at,
        )
        for k in keys
        if p.store_ids is None or (k.store_ids is not None and p.can_reach_stores(set(k.store_ids)))
    ]
    return api.json(KeyList.model_construct(items=items))


async def revoke_key(request: web.Request) -> web.Response:
    p = api.principal(request)
    key_id = api.path_id(request, "key_id")
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        scope = await tenancy.key_scope(conn, key_id, p.merchant_id)
        if scope is None:
            raise errors.NotFound("no such key")
        public_id, stores = scope
        if p.store_ids is not None and (stores is None or not p.can_reach_stores(stores)):
            raise errors.Forbidden(
                "this key reaches stores outside your scope", code="out_of_scope"
            )
        await tenancy.revoke_key(conn, key_id, p.merchant_id)
    request.app[VERIFIER].forget(public_id)
    return web.Response(status=204)


async def enrol_shopper(request: web.Request) -> web.Response:
    p = api.principal(request)
    req = await api.body(request, ShopperCreate)
    now = request.app[CLOCK].now()
    async with db.acquire(request.app[POOL]) as conn:
        referrer = None
        if req.referral_code is not None:
            # Before the enrolment's transaction: a self-referral's refusal is recorded.
            referrer = await referrals.referrer_for(
                conn, p.merchant_id, req.referral_code, email=req.email, at=now
            )
        async with conn.transaction():
            shopper, token = await tenancy.enrol_shopper(
                conn,
                merchant_id=p.merchant_id,
                name=req.name,
                email=req.email,
                marketing_consent=req.marketing_consent,
                timezone=req.timezone,
                birthday=req.birthday,
            )
            # The code exists from the start, for the wallet cards that show it.
            await referrals.code_for(conn, p.merchant_id, shopper.id, now)
            if referrer is not None:
                await referrals.create(conn, p.merchant_id, referrer, shopper.id, now)
    return api.json({"id": str(shopper.id), "token": token}, status=201)


async def get_shopper(request: web.Request) -> web.Response:
    p = api.principal(request)
    shopper_id = api.path_id(request, "shopper_id")
    async with db.acquire(request.app[POOL]) as conn:
        shopper = await tenancy.get_shopper(conn, shopper_id, p.merchant_id)
    if shopper is None:
        raise errors.NotFound("no such shopper")
    return api.json(ShopperOut.of(shopper))


async def patch_shopper(request: web.Request) -> web.Response:
    p = api.principal(request)
    req = await api.body(request, ShopperPatch)
    async with db.acquire(request.app[POOL]) as conn:
        shopper = await tenancy.update_shopper(
            conn, api.path_id(request, "shopper_id"), p.merchant_id, tags=req.tags
        )
    if shopper is None:
        raise errors.NotFound("no such shopper")
    return api.json(ShopperOut.of(shopper))


async def patch_me(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    req = await api.body(request, MePatch)
    if "marketing_consent" in req.model_fields_set and req.marketing_consent is None:
        raise errors.ValidationFailed("bad field", fields={"marketing_consent": "cannot be null"})
    async with db.acquire(request.app[POOL]) as conn:
        shopper = await tenancy.update_shopper(
            conn,
            p.shopper_id,
            p.merchant_id,
            marketing_consent=req.marketing_consent,
            timezone=req.timezone,
            set_timezone="timezone" in req.model_fields_set,
            birthday=req.birthday,
            set_birthday="birthday" in req.model_fields_set,
        )
    if shopper is None:  # erased between token check and write
        raise errors.NotFound("no such shopper")
    return api.json(ShopperOut.of(shopper))


async def export_me(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    async with db.acquire(request.app[POOL]) as conn:
        data = await privacy.export(conn, p.shopper_id, p.merchant_id)
    if data is None:
        raise errors.NotFound("no such shopper")
    return api.json(
        {"exported_at": request.app[CLOCK].now().isoformat(), **data},
        headers={"Content-Disposition": 'attachment; filename="my-data.json"'},
    )


async def erase_me(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    async with db.acquire(request.app[POOL]) as conn:
        removed = await privacy.erase(conn, p.shopper_id, p.merchant_id, request.app[CLOCK].now())
    if removed is None:
        raise errors.NotFound("no such shopper")
    return api.json({"erased": True, "removed": removed})


async def get_me(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    async with db.acquire(request.app[POOL]) as conn:
        shopper = await tenancy.get_shopper(conn, p.shopper_id, p.merchant_id)
    if shopper is None:  # erased between token check and read
        raise errors.NotFound("no such shopper")
    return api.json(ShopperOut.of(shopper))


_STAFF = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})

ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/auth/whoami",
        handler=whoami,
        tag="auth",
        summary="Describe the calling token: role, merchant and scope",
        roles=api.ALL_ROLES,
        replies={200: Reply(description="The token's principal", model=WhoAmI)},
    ),
    Endpoint(
        method="GET",
        path="/v1/merchants/{merchant_id}",
        handler=get_merchant,
        tag="tenancy",
        summary="Read the caller's own merchant",
        description="Any other merchant id answers 404, so ids of other tenants do not leak.",
        roles=_STAFF,
        replies={200: Reply(description="The merchant", model=MerchantOut)},
        errors=(404,),
    ),
    Endpoint(
        method="POST",
        path="/v1/keys",
        handler=create_key,
        tag="tenancy",
        summary="Create an API key for the caller's merchant",
        description="The token is returned once. A store-scoped admin can only create keys "
        "scoped within its own stores.",
        roles=frozenset({Role.ADMIN}),
        body=KeyCreate,
        replies={201: Reply(description="The new key and its token", model=KeyCreated)},
        errors=(404,),
    ),
    Endpoint(
        method="GET",
        path="/v1/keys",
        handler=list_keys,
        tag="tenancy",
        summary="List the merchant's operator keys (never their tokens)",
        roles=frozenset({Role.ADMIN}),
        replies={200: Reply(description="Keys within the caller's scope", model=KeyList)},
    ),
    Endpoint(
        method="DELETE",
        path="/v1/keys/{key_id}",
        handler=revoke_key,
        tag="tenancy",
        summary="Revoke an API key",
        description="Takes effect at once on every replica: the database announces it "
        "(LISTEN/NOTIFY) and each drops the key from its token cache.",
        roles=frozenset({Role.ADMIN}),
        replies={204: Reply(description="Revoked", content_type="")},
        errors=(404,),
    ),
    Endpoint(
        method="POST",
        path="/v1/shoppers",
        handler=enrol_shopper,
        tag="shoppers",
        summary="Enrol a shopper and mint the shopper's own token",
        description="With referral_code, the shopper is the code owner's referral: both "
        "are rewarded when the new shopper qualifies (see /v1/referrals/rules).",
        roles=frozenset({Role.APP}),
        body=ShopperCreate,
        replies={201: Reply(description="The shopper id and token", model=ShopperCreated)},
        errors=(409,),
    ),
    Endpoint(
        method="GET",
        path="/v1/shoppers/{shopper_id}",
        handler=get_shopper,
        tag="shoppers",
        summary="Read a shopper of the caller's merchant",
        roles=_STAFF,
        replies={200: Reply(description="The shopper", model=ShopperOut)},
        errors=(404,),
    ),
    Endpoint(
        method="GET",
        path="/v1/me",
        handler=get_me,
        tag="shoppers",
        summary="Read the calling shopper's own profile",
        roles=frozenset({Role.SHOPPER}),
        replies={200: Reply(description="The shopper", model=ShopperOut)},
        errors=(404,),
    ),
    Endpoint(
        method="PATCH",
        path="/v1/me",
        handler=patch_me,
        tag="shoppers",
        summary="Change the calling shopper's marketing consent, time zone or birthday",
        description="Withdrawing consent stops offers at once: every decision reads it. "
        "The time zone decides quiet hours (null: the store's zone). The birthday "
        "(YYYY-MM-DD, optional, null to remove) lets birthday journeys reach the shopper.",
        roles=frozenset({Role.SHOPPER}),
        body=MePatch,
        replies={200: Reply(description="The shopper", model=ShopperOut)},
        errors=(404,),
    ),
    Endpoint(
        method="GET",
        path="/v1/me/export",
        handler=export_me,
        tag="shoppers",
        summary="Everything held about the calling shopper, as one JSON document",
        description="Profile, location (last position, visit state, raw pings still within "
        "the retention period, geofence events), offer decisions, coupons, deliveries, "
        "redemptions, the points ledger, purchases, tier changes, push subscriptions "
        "(endpoints), wallet passes and API keys (ids). Secrets are left out.",
        roles=frozenset({Role.SHOPPER}),
        replies={200: Reply(description="The shopper's data", model=ExportOut)},
        errors=(404,),
    ),
    Endpoint(
        method="DELETE",
        path="/v1/me",
        handler=erase_me,
        tag="shoppers",
        summary="Erase the calling shopper's personal data and location history",
        description="Deletes raw pings, geofence events, the visit state and last position, "
        "push subscriptions, wallet passes and pending deliveries; clears name, e-mail, time "
        "zone, tags and consent; revokes the shopper's tokens (this one included). The "
        "shopper's id stays, identifying no one, on purchases, the points ledger and offer "
        "history, so accounting and campaign reports (aggregates) are unchanged.",
        roles=frozenset({Role.SHOPPER}),
        replies={200: Reply(description="What was removed", model=ErasedOut)},
        errors=(404,),
    ),
    Endpoint(
        method="PATCH",
        path="/v1/shoppers/{shopper_id}",
        handler=patch_shopper,
        tag="shoppers",
        summary="Set a shopper's segment tags (what offer audiences match)",
        description="Tier and points come from the loyalty ledger, not from here.",
        roles=frozenset({Role.ADMIN, Role.MANAGER}),
        body=ShopperPatch,
        replies={200: Reply(description="The shopper", model=ShopperOut)},
        errors=(404,),
    ),
]
