"""Who may call what: every protected endpoint against every role, tenant and store scope."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest
from aiohttp import test_utils

from gateway import app as app_mod
from gateway.accounts import auth, tenancy
from gateway.db import POOL
from gateway.settings import Settings
from tests.support import rewards
from tests.support.client import ApiClient
from tests.support.openapi_check import SpecChecker
from tests.support.surveys import add_survey
from tests.support.tenants import Tenant, add_journey, make_tenant

ROLES = ["admin", "manager", "reviewer", "pos", "app", "shopper"]
STAFF = {"admin", "manager", "reviewer"}
REFERRAL_MATRIX = [
    ("GET", "/v1/me/referral", {"shopper"}, 200),
    ("GET", "/v1/referrals/rules", STAFF, 200),
    ("PUT", "/v1/referrals/rules", {"admin", "manager"}, 200),
    ("GET", "/v1/reports/referrals", STAFF, 200),
]

# (method, path template, roles allowed, success status). The path template is
# filled from the tenant; the allowed roles are spelled out here on purpose
# rather than read from the code, and a test below checks the code agrees.
WRITERS = {"admin", "manager"}
MATRIX = [
    ("GET", "/v1/auth/whoami", set(ROLES), 200),
    ("GET", "/v1/merchants/{merchant_id}", STAFF, 200),
    ("POST", "/v1/keys", {"admin"}, 201),
    ("GET", "/v1/keys", {"admin"}, 200),
    ("DELETE", "/v1/keys/{key_id}", {"admin"}, 204),
    ("GET", "/v1/origins", {"admin", "manager"}, 200),
    ("POST", "/v1/origins", {"admin"}, 201),
    ("DELETE", "/v1/origins/{origin_id}", {"admin"}, 204),
    ("POST", "/v1/shoppers", {"app"}, 201),
    ("GET", "/v1/shoppers/{shopper_id}", STAFF, 200),
    ("GET", "/v1/me", {"shopper"}, 200),
    ("PATCH", "/v1/me", {"shopper"}, 200),
    ("GET", "/v1/me/export", {"shopper"}, 200),
    ("DELETE", "/v1/me", {"shopper"}, 200),
    ("PATCH", "/v1/shoppers/{shopper_id}", WRITERS, 200),
    ("POST", "/v1/stores", WRITERS, 201),
    ("GET", "/v1/stores", STAFF, 200),
    ("GET", "/v1/stores/{store_id}", STAFF, 200),
    ("PATCH", "/v1/stores/{store_id}", WRITERS, 200),
    ("DELETE", "/v1/stores/{store_id}", WRITERS, 204),
    ("POST", "/v1/geofences", WRITERS, 201),
    ("GET", "/v1/geofences", STAFF, 200),
    ("PUT", "/v1/geofences", WRITERS, 200),
    ("GET", "/v1/geofences/{geofence_id}", STAFF, 200),
    ("PATCH", "/v1/geofences/{geofence_id}", WRITERS, 200),
    ("DELETE", "/v1/geofences/{geofence_id}", WRITERS, 204),
    ("POST", "/v1/pings", {"shopper"}, 200),
    ("POST", "/v1/pings/batch", {"shopper"}, 200),
    ("POST", "/v1/offers", WRITERS, 201),
    ("GET", "/v1/offers", STAFF, 200),
    ("GET", "/v1/offers/{offer_id}", STAFF, 200),
    ("PATCH", "/v1/offers/{offer_id}", WRITERS, 200),
    ("POST", "/v1/offers/{offer_id}/pause", WRITERS, 200),
    ("POST", "/v1/offers/{offer_id}/resume", WRITERS, 200),
    ("DELETE", "/v1/offers/{offer_id}", WRITERS, 204),
    ("POST", "/v1/offers/preview", STAFF, 200),
    ("GET", "/v1/program", STAFF, 200),
    ("PUT", "/v1/program", WRITERS, 200),
    ("POST", "/v1/redemptions", {"pos"}, 201),
    ("POST", "/v1/redemptions/{redemption_id}/void", {"pos", "manager", "admin"}, 200),
    ("GET", "/v1/reports/offers/{offer_id}", STAFF, 200),
    ("GET", "/v1/logs/redemptions", STAFF, 200),
    ("GET", "/v1/logs/decisions", STAFF, 200),
    ("GET", "/v1/inbox", {"shopper"}, 200),
    ("GET", "/v1/inbox/stream", {"shopper"}, 200),
    ("POST", "/v1/inbox/{delivery_id}/open", {"shopper"}, 200),
    ("POST", "/v1/inbox/{delivery_id}/dismiss", {"shopper"}, 200),
    ("POST", "/v1/push-subscriptions", {"shopper"}, 201),
    ("DELETE", "/v1/push-subscriptions", {"shopper"}, 204),
    ("GET", "/v1/outbox/dead", {"admin"}, 200),
    ("GET", "/v1/loyalty", STAFF, 200),
    ("PUT", "/v1/loyalty", WRITERS, 200),
    ("POST", "/v1/purchases", {"pos"}, 201),
    ("POST", "/v1/shoppers/{shopper_id}/actions", {"app", "admin", "manager"}, 201),
    ("POST", "/v1/shoppers/{shopper_id}/points", WRITERS, 201),
    ("GET", "/v1/shoppers/{shopper_id}/points", STAFF, 200),
    ("GET", "/v1/me/points", {"shopper"}, 200),
    ("GET", "/v1/passes/loyalty", {"shopper"}, 200),
    ("GET", "/v1/passes/coupons/{coupon_id}", {"shopper"}, 200),
    # The tenant has no Google Wallet issuer: a clear 409, not a 500.
    ("GET", "/v1/passes/google/loyalty", {"shopper"}, 409),
    ("GET", "/v1/passes/google/coupons/{coupon_id}", {"shopper"}, 409),
    ("POST", "/v1/catalog/rewards", WRITERS, 201),
    ("GET", "/v1/catalog/rewards", STAFF, 200),
    ("GET", "/v1/catalog/rewards/{reward_id}", STAFF, 200),
    ("PATCH", "/v1/catalog/rewards/{reward_id}", WRITERS, 200),
    ("DELETE", "/v1/catalog/rewards/{reward_id}", WRITERS, 204),
    # A free coffee has no code pool: a clear 409 for those allowed to try.
    ("POST", "/v1/catalog/rewards/{reward_id}/codes", WRITERS, 409),
    ("GET", "/v1/rewards", {"shopper"}, 200),
    ("POST", "/v1/rewards/{reward_id}/redeem", {"shopper"}, 201),
    ("GET", "/v1/me/rewards", {"shopper"}, 200),
    ("GET", "/v1/till/member?code={member}", {"pos"}, 200),
    ("POST", "/v1/till/payments", {"pos"}, 201),
    ("POST", "/v1/till/payments/{payment_id}/void", {"pos", "manager", "admin"}, 200),
    ("GET", "/v1/reports/points", STAFF, 200),
    *REFERRAL_MATRIX,
    ("POST", "/v1/surveys", WRITERS, 201),
    ("GET", "/v1/surveys", STAFF, 200),
    ("GET", "/v1/surveys/{survey_id}", STAFF, 200),
    ("PATCH", "/v1/surveys/{survey_id}", WRITERS, 200),
    ("DELETE", "/v1/surveys/{survey_id}", WRITERS, 204),
    ("GET", "/v1/surveys/{survey_id}/form", {"shopper"}, 200),
    ("GET", "/v1/me/surveys", {"shopper"}, 200),
    ("POST", "/v1/surveys/{survey_id}/responses", {"shopper"}, 201),
    ("GET", "/v1/reports/nps", STAFF, 200),
    ("GET", "/v1/reports/surveys/{survey_id}/answers", STAFF, 200),
    ("POST", "/v1/journeys", WRITERS, 201),
    ("GET", "/v1/journeys", STAFF, 200),
    ("GET", "/v1/journeys/{journey_id}", STAFF, 200),
    ("PATCH", "/v1/journeys/{journey_id}", WRITERS, 200),
    ("DELETE", "/v1/journeys/{journey_id}", WRITERS, 204),
    ("GET", "/v1/reports/journeys", STAFF, 200),
    ("GET", "/v1/reports/journeys/{journey_id}", STAFF, 200),
]
# Endpoints that answer with a stream that does not end: only the head is checked.
STREAMS = {"/v1/inbox/stream"}


def _bodies(tenant: Tenant) -> dict[tuple[str, str], object]:
    store = str(tenant.store_ids[0])
    circle = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
        "properties": {"store_id": store, "name": "entrance", "radius_m": 40},
    }
    now = dt.datetime.now(dt.UTC).isoformat()
    ping = {"lat": 48.85, "lon": 2.35, "accuracy_m": 10, "ts": now}
    return {
        ("POST", "/v1/keys"): {"role": "reviewer", "label": "matrix"},
        ("POST", "/v1/origins"): {"origin": "https://matrix.example"},
        ("POST", "/v1/shoppers"): {"marketing_consent": False},
        ("POST", "/v1/stores"): {"name": "Kiosk", "lat": 48.0, "lon": 2.0, "timezone": "UTC"},
        ("PATCH", "/v1/stores/{store_id}"): {"name": "Renamed"},
        ("POST", "/v1/geofences"): circle,
        ("PUT", "/v1/geofences"): {"type": "FeatureCollection", "features": [circle]},
        ("PATCH", "/v1/geofences/{geofence_id}"): {"properties": {"name": "renamed"}},
        ("POST", "/v1/pings"): ping,
        ("POST", "/v1/pings/batch"): {"pings": [ping]},
        ("POST", "/v1/offers"): {
            "name": "matrix",
            "title": "Hello",
            "body": "Hi",
            "store_ids": [store],
            "trigger": "enter",
            "channels": ["inbox"],
            "coupon": {"discount": "10%", "valid_minutes": 30},
        },
        ("PATCH", "/v1/offers/{offer_id}"): {"priority": 5},
        ("POST", "/v1/offers/preview"): {"lat": 48.8566, "lon": 2.3522, "at": now},
        ("PATCH", "/v1/me"): {"marketing_consent": False},
        ("PATCH", "/v1/shoppers/{shopper_id}"): {"tags": ["coffee"]},
        ("PUT", "/v1/program"): {
            "daily_offer_cap": 2,
            "quiet_hours": {"start": "22:00", "end": "07:00"},
        },
        ("POST", "/v1/redemptions"): {"code": tenant.coupon_code, "store_id": store},
        ("POST", "/v1/push-subscriptions"): {
            "endpoint": "https://push.example.net/new",
            "keys": {
                "p256dh": "BJethcsWfXhO2VsUpCXltz9p_r7TvpacqWo1X3Du2QpVebDEozCDtZajldeMs"
                "csSJn0P5sdbZCy62Vadw_qjLjY",
                "auth": "BTBZMqHH6r4Tts7J_aSIgg",
            },
        },
        ("DELETE", "/v1/push-subscriptions"): {"endpoint": tenant.push_endpoint},
        ("PUT", "/v1/loyalty"): {
            "point_value": 0.01,
            "earn_rate": 1,
            "tiers": [{"name": "Member", "threshold": 0}, {"name": "VIP", "threshold": 100}],
            "tier_window_days": 365,
            "actions": {"signup": {"points": 50, "limit": 1, "days": 3660}},
        },
        ("POST", "/v1/purchases"): {
            "shopper_id": str(tenant.shopper_id),
            "store_id": store,
            "amount": 12.5,
        },
        ("POST", "/v1/shoppers/{shopper_id}/actions"): {"action": "signup"},
        ("PUT", "/v1/referrals/rules"): {
            "qualify": "first_purchase",
            "referrer_points": 200,
            "referee_points": 100,
            "cap_limit": 5,
            "cap_days": 30,
        },
        ("POST", "/v1/shoppers/{shopper_id}/points"): {
            "kind": "adjust",
            "points": 10,
            "reason": "goodwill",
        },
        ("POST", "/v1/catalog/rewards"): {
            "kind": "free_item",
            "name": "Tea",
            "title": "A tea on us",
            "body": "Any tea",
            "points": 80,
            "store_ids": [store],
            "coupon": {"discount": "Free tea", "valid_minutes": 60},
        },
        ("PATCH", "/v1/catalog/rewards/{reward_id}"): {"points": 90},
        ("POST", "/v1/catalog/rewards/{reward_id}/codes"): {"codes": ["PARTNER-1"]},
        ("POST", "/v1/till/payments"): {"member": tenant.member, "store_id": store, "amount": 1},
        ("POST", "/v1/surveys"): {
            "name": "matrix",
            "trigger": "exit",
            "store_ids": [store],
            "invitation": {"title": "Tell us", "body": "How was it?"},
        },
        ("PATCH", "/v1/surveys/{survey_id}"): {"points": 5},
        ("POST", "/v1/surveys/{survey_id}/responses"): {"score": 9, "answers": {"speed": "yes"}},
        ("POST", "/v1/journeys"): {
            "name": "Welcome",
            "kind": "welcome",
            "offer_id": str(tenant.journey_offer_id),
        },
        ("PATCH", "/v1/journeys/{journey_id}"): {"inactive_days": 45},
    }


HEADERS = {
    ("POST", "/v1/redemptions"): {"Idempotency-Key": "matrix-1"},
    ("POST", "/v1/purchases"): {"Idempotency-Key": "matrix-2"},
    ("POST", "/v1/rewards/{reward_id}/redeem"): {"Idempotency-Key": "matrix-3"},
    ("POST", "/v1/till/payments"): {"Idempotency-Key": "matrix-4"},
    ("POST", "/v1/surveys/{survey_id}/responses"): {"Idempotency-Key": "matrix-5"},
}


def test_matrix_covers_every_protected_endpoint_with_its_declared_roles() -> None:
    declared = {
        (ep.method, ep.path): {r.value for r in ep.roles}
        for ep in app_mod.all_endpoints()
        if ep.roles is not None
    }
    assert {(m, p.split("?")[0]): roles for m, p, roles, _ in MATRIX} == declared


async def _spare_key(conn: asyncpg.Connection, tenant: Tenant) -> int:
    key_id, _ = await tenancy.create_key(conn, merchant_id=tenant.merchant_id, role=auth.Role.POS)
    return key_id


def _fill(path: str, tenant: Tenant, spare_key: int) -> str:
    return path.format(
        merchant_id=tenant.merchant_id,
        key_id=spare_key,
        shopper_id=tenant.shopper_id,
        store_id=tenant.store_ids[0],
        geofence_id=tenant.geofence_ids[0],
        offer_id=tenant.offer_id,
        redemption_id=tenant.redemption_id,
        delivery_id=tenant.delivery_id,
        coupon_id=tenant.coupon_id,
        origin_id=tenant.origin_id,
        reward_id=tenant.reward_id,
        payment_id=tenant.payment_id,
        member=tenant.member,
        survey_id=tenant.survey_id,
        journey_id=tenant.journey_id,
    )


async def _tenant(conn: asyncpg.Connection, name: str) -> Tenant:
    """A tenant with one of everything the paths name: a reward, a survey, a journey."""
    tenant = await rewards.stock(conn, await make_tenant(conn, name))
    await add_survey(conn, tenant)
    await add_journey(conn, tenant)
    return tenant


@pytest.mark.parametrize(("method", "path", "allowed", "ok"), MATRIX)
async def test_role_matrix(
    api: ApiClient,
    conn: asyncpg.Connection,
    method: str,
    path: str,
    allowed: set[str],
    ok: int,
) -> None:
    """Each role against the endpoint: the roles that may not call it share one tenant
    (a refusal changes nothing); each role that may gets a fresh tenant of its own."""
    refused = await _tenant(conn, "Refused Roasters")
    for role in ROLES:
        if role in allowed:
            continue
        url = _fill(path, refused, await _spare_key(conn, refused))
        body = _bodies(refused).get((method, path))
        r = await api.request(
            method, url, token=refused.tokens[role], json=body, headers=HEADERS.get((method, path))
        )
        assert (r.status, r.error_code) == (403, "wrong_role"), (role, r.body)
    for role in sorted(allowed):
        tenant = await _tenant(conn, f"Allowed {role}")
        url = _fill(path, tenant, await _spare_key(conn, tenant))
        body = _bodies(tenant).get((method, path))
        if path in STREAMS:
            auth_header = {"Authorization": f"Bearer {tenant.tokens[role]}"}
            async with api.raw.request(method, url, headers=auth_header) as resp:
                assert resp.status == ok
                assert resp.headers["Content-Type"].startswith("text/event-stream")
            continue
        r = await api.request(
            method, url, token=tenant.tokens[role], json=body, headers=HEADERS.get((method, path))
        )
        assert r.status == ok, (role, r.body)


async def test_no_token_and_bad_tokens_get_401(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    spare = await _spare_key(conn, tenant_a)
    for method, path, allowed, _ in MATRIX:
        url = _fill(path, tenant_a, spare)
        body = _bodies(tenant_a).get((method, path))
        good = tenant_a.tokens[sorted(allowed)[0]]
        public_id = good.split("_")[2]
        forged = f"gw_admin_{public_id}_{'A' * 43}"  # right key id, wrong secret
        for headers in (
            {},
            {"Authorization": "Bearer"},
            {"Authorization": f"Basic {good}"},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": f"Bearer {forged}"},
            {"Authorization": f"Bearer gw_admin_{'0' * 16}_{'A' * 43}"},
        ):
            r = await api.request(method, url, headers=headers, json=body)
            assert r.status == 401, (method, path, headers, r.body)
            assert r.headers["WWW-Authenticate"].startswith("Bearer")


# Another merchant's resources answer 404, exactly like ids that do not exist.
FOREIGN = [
    ("GET", "/v1/merchants/{merchant_id}", "manager"),
    ("GET", "/v1/merchants/{merchant_id}", "admin"),
    ("GET", "/v1/shoppers/{shopper_id}", "reviewer"),
    ("GET", "/v1/shoppers/{shopper_id}", "admin"),
    ("PATCH", "/v1/shoppers/{shopper_id}", "manager"),
    ("GET", "/v1/shoppers/{shopper_id}/points", "reviewer"),
    ("POST", "/v1/shoppers/{shopper_id}/points", "manager"),
    ("POST", "/v1/shoppers/{shopper_id}/actions", "admin"),
    ("DELETE", "/v1/keys/{key_id}", "admin"),
    ("DELETE", "/v1/origins/{origin_id}", "admin"),
    ("GET", "/v1/stores/{store_id}", "reviewer"),
    ("PATCH", "/v1/stores/{store_id}", "manager"),
    ("DELETE", "/v1/stores/{store_id}", "manager"),
    ("GET", "/v1/geofences/{geofence_id}", "reviewer"),
    ("PATCH", "/v1/geofences/{geofence_id}", "manager"),
    ("DELETE", "/v1/geofences/{geofence_id}", "admin"),
    ("GET", "/v1/offers/{offer_id}", "reviewer"),
    ("PATCH", "/v1/offers/{offer_id}", "manager"),
    ("POST", "/v1/offers/{offer_id}/pause", "manager"),
    ("DELETE", "/v1/offers/{offer_id}", "admin"),
    ("GET", "/v1/reports/offers/{offer_id}", "reviewer"),
    ("POST", "/v1/redemptions/{redemption_id}/void", "pos"),
    ("GET", "/v1/catalog/rewards/{reward_id}", "reviewer"),
    ("PATCH", "/v1/catalog/rewards/{reward_id}", "manager"),
    ("DELETE", "/v1/catalog/rewards/{reward_id}", "admin"),
    ("POST", "/v1/catalog/rewards/{reward_id}/codes", "manager"),
    ("POST", "/v1/till/payments/{payment_id}/void", "pos"),
    ("GET", "/v1/surveys/{survey_id}", "reviewer"),
    ("PATCH", "/v1/surveys/{survey_id}", "manager"),
    ("DELETE", "/v1/surveys/{survey_id}", "admin"),
    ("GET", "/v1/reports/surveys/{survey_id}/answers", "reviewer"),
    ("GET", "/v1/surveys/{survey_id}/form", "shopper"),
    ("POST", "/v1/surveys/{survey_id}/responses", "shopper"),
    ("GET", "/v1/journeys/{journey_id}", "reviewer"),
    ("PATCH", "/v1/journeys/{journey_id}", "manager"),
    ("DELETE", "/v1/journeys/{journey_id}", "admin"),
    ("GET", "/v1/reports/journeys/{journey_id}", "reviewer"),
]


@pytest.mark.parametrize(("method", "path", "role"), FOREIGN)
async def test_other_merchants_resources_are_invisible(
    api: ApiClient,
    conn: asyncpg.Connection,
    tenant_a: Tenant,
    tenant_b: Tenant,
    method: str,
    path: str,
    role: str,
) -> None:
    spare_b = await _spare_key(conn, tenant_b)
    await rewards.stock(conn, tenant_a)
    await rewards.stock(conn, tenant_b)
    await add_survey(conn, tenant_b)
    await add_journey(conn, tenant_b)
    foreign = _fill(path, tenant_b, spare_b)
    body = _bodies(tenant_a).get((method, path))
    r = await api.request(method, foreign, token=tenant_a.tokens[role], json=body)
    assert r.status == 404, r.body
    big = 10**12
    missing = path.format(
        merchant_id=big,
        key_id=big,
        shopper_id=big,
        store_id=big,
        geofence_id=big,
        offer_id=big,
        redemption_id=big,
        delivery_id="00000000-0000-0000-0000-000000000000",
        origin_id=big,
        reward_id=big,
        payment_id=big,
        survey_id=big,
        journey_id=big,
    )
    r2 = await api.request(method, missing, token=tenant_a.tokens[role], json=body)
    assert (r2.status, r2.json["error"]["code"], r2.json["error"]["message"]) == (
        r.status,
        r.json["error"]["code"],
        r.json["error"]["message"],
    )
    # and nothing of B's was changed by A's attempt
    revoked = await conn.fetchval("SELECT revoked_at FROM api_keys WHERE id = $1", spare_b)
    assert revoked is None
    stores = await conn.fetch(
        "SELECT name FROM stores WHERE merchant_id = $1", tenant_b.merchant_id
    )
    assert all(r["name"].startswith("Beta") for r in stores)
    assert len(stores) == len(tenant_b.store_ids)
    fences = await conn.fetch(
        "SELECT name FROM geofences WHERE merchant_id = $1", tenant_b.merchant_id
    )
    assert sorted(r["name"] for r in fences) == ["door 0", "door 1"]


async def test_shopper_token_is_bound_to_its_merchant(
    api: ApiClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    r = await api.get("/v1/me", token=tenant_b.tokens["shopper"])
    assert r.status == 200
    assert r.json["id"] == str(tenant_b.shopper_id)
    r = await api.get("/v1/auth/whoami", token=tenant_a.tokens["app"])
    assert r.json["merchant_id"] == str(tenant_a.merchant_id)
    # an app token enrols shoppers into its own merchant only
    r = await api.post(
        "/v1/shoppers", token=tenant_a.tokens["app"], json={"marketing_consent": True}
    )
    who = await api.get("/v1/auth/whoami", token=r.json["token"])
    assert who.json["merchant_id"] == str(tenant_a.merchant_id)
    assert who.json["shopper_id"] == r.json["id"]


class TestStoreScope:
    async def test_scoped_admin_can_grant_within_its_stores(
        self, api: ApiClient, tenant_a: Tenant
    ) -> None:
        store0 = str(tenant_a.store_ids[0])
        r = await api.post(
            "/v1/keys",
            token=tenant_a.tokens["admin@store0"],
            json={"role": "pos", "store_ids": [store0]},
        )
        assert r.status == 201, r.body
        who = await api.get("/v1/auth/whoami", token=r.json["token"])
        assert who.json["store_ids"] == [store0]

    @pytest.mark.parametrize("stores", [None, "other", "both"])
    async def test_scoped_admin_cannot_grant_beyond_its_stores(
        self, api: ApiClient, tenant_a: Tenant, stores: str | None
    ) -> None:
        body: dict[str, object] = {"role": "manager"}
        if stores == "other":
            body["store_ids"] = [str(tenant_a.store_ids[1])]
        elif stores == "both":
            body["store_ids"] = [str(s) for s in tenant_a.store_ids]
        r = await api.post("/v1/keys", token=tenant_a.tokens["admin@store0"], json=body)
        assert r.status == 403, r.body
        assert r.error_code == "out_of_scope"

    async def test_scoped_admin_cannot_revoke_wider_keys(
        self, api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
    ) -> None:
        wide = await _spare_key(conn, tenant_a)
        r = await api.delete(f"/v1/keys/{wide}", token=tenant_a.tokens["admin@store0"])
        assert r.status == 403
        assert await conn.fetchval("SELECT revoked_at FROM api_keys WHERE id = $1", wide) is None

    async def test_scoped_admin_lists_only_keys_within_scope(
        self, api: ApiClient, tenant_a: Tenant
    ) -> None:
        r = await api.get("/v1/keys", token=tenant_a.tokens["admin@store0"])
        assert r.status == 200
        assert r.json["items"], "the store0-scoped keys should be listed"
        for item in r.json["items"]:
            assert item["store_ids"] == [str(tenant_a.store_ids[0])]
        everything = await api.get("/v1/keys", token=tenant_a.tokens["admin"])
        assert len(everything.json["items"]) > len(r.json["items"])

    async def test_keys_cannot_reach_another_merchants_store(
        self, api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
    ) -> None:
        before = await conn.fetchval("SELECT count(*) FROM api_keys")
        r = await api.post(
            "/v1/keys",
            token=tenant_a.tokens["admin"],
            json={"role": "pos", "store_ids": [str(tenant_b.store_ids[0])]},
        )
        assert r.status == 422, r.body
        assert "store_ids" in r.json["error"]["fields"]
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == before
        # the schema itself refuses it too, whatever the code does
        key_id, _ = await tenancy.create_key(
            conn, merchant_id=tenant_a.merchant_id, role=auth.Role.POS
        )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO api_key_stores (key_id, merchant_id, store_id) VALUES ($1, $2, $3)",
                key_id,
                tenant_a.merchant_id,
                tenant_b.store_ids[0],
            )

    async def test_deleting_a_keys_only_store_leaves_it_reaching_nothing(
        self, api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
    ) -> None:
        await conn.execute("DELETE FROM stores WHERE id = $1", tenant_a.store_ids[0])
        _, token = await tenancy.create_key(
            conn,
            merchant_id=tenant_a.merchant_id,
            role=auth.Role.MANAGER,
            store_ids=frozenset({tenant_a.store_ids[1]}),
        )
        await conn.execute("DELETE FROM stores WHERE id = $1", tenant_a.store_ids[1])
        who = await api.get("/v1/auth/whoami", token=token)
        assert who.json["store_ids"] == []


class TestTokens:
    async def test_tokens_are_random_and_stored_only_hashed(
        self, conn: asyncpg.Connection, tenant_a: Tenant
    ) -> None:
        token = tenant_a.tokens["manager"]
        _, public_id, secret = token.split("_", 3)[1:]
        assert len(secret) >= 43  # 32 random bytes, base64url: 256 bits
        row = await conn.fetchrow("SELECT * FROM api_keys WHERE public_id = $1", public_id)
        assert row is not None
        stored = " ".join(str(v) for v in row.values())
        assert secret not in stored and token not in stored
        assert bytes(row["secret_hash"]) == auth.hash_secret(secret)
        tokens = {auth.mint(auth.Role.APP).token for _ in range(1000)}
        assert len(tokens) == 1000

    async def test_revoked_token_stops_working(self, api: ApiClient, tenant_a: Tenant) -> None:
        made = await api.post("/v1/keys", token=tenant_a.tokens["admin"], json={"role": "reviewer"})
        token = made.json["token"]
        assert (await api.get("/v1/auth/whoami", token=token)).status == 200
        r = await api.delete(f"/v1/keys/{made.json['id']}", token=tenant_a.tokens["admin"])
        assert r.status == 204
        r = await api.get("/v1/auth/whoami", token=token)
        assert r.status == 401
        assert r.error_code == "invalid_token"
        # revoking twice is harmless
        r = await api.delete(f"/v1/keys/{made.json['id']}", token=tenant_a.tokens["admin"])
        assert r.status == 204

    async def test_shopper_role_cannot_be_minted_by_key_creation(
        self, api: ApiClient, tenant_a: Tenant
    ) -> None:
        r = await api.post("/v1/keys", token=tenant_a.tokens["admin"], json={"role": "shopper"})
        assert r.status == 422
        assert "role" in r.json["error"]["fields"]


async def test_revocation_reaches_another_replica_at_once(
    api: ApiClient, database_url: str, settings: Settings, spec: SpecChecker, tenant_a: Tenant
) -> None:
    """Replica B has the token cached; revoking it through replica A locks it out of B too."""
    other = app_mod.create_app(settings, db_url=database_url)
    async with test_utils.TestClient(test_utils.TestServer(other)) as client:
        b = ApiClient(client, spec)
        made = await api.post("/v1/keys", token=tenant_a.tokens["admin"], json={"role": "pos"})
        token = made.json["token"]
        assert (await b.get("/v1/auth/whoami", token=token)).status == 200  # now cached on B
        r = await api.delete(f"/v1/keys/{made.json['id']}", token=tenant_a.tokens["admin"])
        assert r.status == 204
        for _ in range(50):
            if (await b.get("/v1/auth/whoami", token=token)).status == 401:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("replica B still accepts a revoked token after 1 s")
        # and a shopper erased from the database is locked out the same way
        shopper = tenant_a.tokens["shopper"]
        assert (await b.get("/v1/me", token=shopper)).status == 200
        await client.app[POOL].execute("DELETE FROM shoppers WHERE id = $1", tenant_a.shopper_id)
        for _ in range(50):
            if (await b.get("/v1/me", token=shopper)).status == 401:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("replica B still accepts a deleted shopper's token")


def _addressed_operations() -> list[tuple[str, str, frozenset[str]]]:
    """Every bearer-token operation of the OpenAPI document whose path names a resource."""
    from gateway.http import openapi
    from gateway.http.handlers import system

    document = openapi.build(app_mod.all_endpoints(), version=system.version())
    found = []
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if "{" in path and op.get("x-roles"):
                found.append((method.upper(), path, frozenset(op["x-roles"])))
    return sorted(found)


async def _fingerprint(conn: asyncpg.Connection, tenant: Tenant) -> str:
    """A digest of what a foreign caller could change: stores, geofences, offers, keys,
    redemptions and points."""
    digest: str = await conn.fetchval(
        "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM ("
        "SELECT name FROM stores WHERE merchant_id = $1 UNION ALL "
        "SELECT name FROM geofences WHERE merchant_id = $1 UNION ALL "
        "SELECT status FROM offers WHERE merchant_id = $1 UNION ALL "
        "SELECT coalesce(revoked_at::text, 'live') FROM api_keys WHERE merchant_id = $1 UNION ALL "
        "SELECT coalesce(voided_at::text, 'kept') FROM redemptions WHERE merchant_id = $1 "
        "UNION ALL SELECT points::text FROM shoppers WHERE merchant_id = $1) t",
        tenant.merchant_id,
    )
    return digest


@pytest.mark.parametrize("role", ROLES)
async def test_every_addressed_operation_hides_another_merchants_resources(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant, role: str
) -> None:
    """Generated from the OpenAPI document: with each role's token of merchant A, every
    operation on one of merchant B's resources answers 403 (a role that may not call it)
    or 404 (exactly like an id that does not exist); nothing of B's changes."""
    operations = _addressed_operations()
    assert len(operations) >= 20
    spare_b = await _spare_key(conn, tenant_b)
    before = await _fingerprint(conn, tenant_b)
    for method, path, allowed in operations:
        url = _fill(path, tenant_b, spare_b)
        body = _bodies(tenant_a).get((method, path))
        headers = HEADERS.get((method, path))
        r = await api.request(method, url, token=tenant_a.tokens[role], json=body, headers=headers)
        want = 404 if role in allowed else 403
        assert r.status == want, (method, path, r.status, r.body)
    after = await _fingerprint(conn, tenant_b)
    assert after == before


@pytest.mark.parametrize(
    ("role", "named"),
    [("app", "an app token"), ("admin", "an admin token"), ("pos", "a POS token")],
)
async def test_a_refusal_names_the_role_with_its_article(
    api: ApiClient, tenant_a: Tenant, role: str, named: str
) -> None:
    """The message is built from the role's name: "an app token", never "a app token"."""
    path = "/v1/me" if role != "app" else "/v1/keys"
    r = await api.get(path, token=tenant_a.tokens[role])
    assert (r.status, r.error_code) == (403, "wrong_role"), r.body
    message = r.json["error"]["message"]
    assert message.startswith(f"{named} cannot call this endpoint"), message


async def test_google_wallet_callbacks_take_no_token_only_a_signature(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    """POST /v1/wallet/google/callback/{merchant_id} is Google's: no role may call it, and a
    token neither is needed nor helps. The message's signature is what is checked."""
    from tests.support import gwallet

    await gwallet.configure(conn, tenant_a.merchant_id)
    url = f"/v1/wallet/google/callback/{tenant_a.merchant_id}"
    unsigned = {"protocolVersion": "ECv2SigningOnly", "signedMessage": "{}"}
    for token in (None, tenant_a.tokens["admin"]):
        r = await api.post(url, token=token, json=unsigned)
        assert (r.status, r.error_code) == (401, "callback_unsigned"), r.body
    assert await conn.fetchval("SELECT count(*) FROM google_wallet_events") == 0
