"""CORS for merchants' web pages: each merchant's allowed origins (API and CLI), preflights
answered from memory, and the Access-Control headers on answers, errors included.

The tenant fixture allows ``https://shop-<merchant id>.example`` (tests/support/tenants.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import test_utils

from gateway import app as app_mod
from gateway.accounts.origins import ORIGINS
from gateway.db import POOL
from gateway.settings import Settings
from tests.support import proc
from tests.support.client import ApiClient, Reply
from tests.support.openapi_check import SpecChecker
from tests.support.tenants import Tenant

ACAO = "Access-Control-Allow-Origin"


def origin_of(tenant: Tenant) -> str:
    return f"https://shop-{tenant.merchant_id}.example"


async def preflight(
    api: ApiClient, path: str, origin: str, method: str = "POST", headers: str = ""
) -> Reply:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return await api.request("OPTIONS", path, headers=asked, check=False)


def ping() -> dict[str, Any]:
    return {"lat": 48.85, "lon": 2.35, "accuracy_m": 10, "ts": dt.datetime.now(dt.UTC).isoformat()}


async def _knows(client: ApiClient, *tenants: Tenant) -> None:
    """Wait until the app's lists have the tenants' origins: the fixtures may write them
    after the app loaded its lists, and they then arrive by NOTIFY."""
    lists = client.raw.server.app[ORIGINS]

    async def loaded() -> bool:
        return all(t.merchant_id in lists.merchants(origin_of(t)) for t in tenants)

    await _until(loaded, "the tenants' origins in the app's lists")


@pytest.fixture
async def ready(api: ApiClient, tenant_a: Tenant, tenant_b: Tenant) -> ApiClient:
    await _knows(api, tenant_a, tenant_b)
    return api


async def test_a_preflight_from_an_allowed_origin_allows_post_and_its_headers(
    api: ApiClient, ready: ApiClient, tenant_a: Tenant
) -> None:
    origin = origin_of(tenant_a)
    r = await preflight(
        api, "/v1/push-subscriptions", origin, headers="authorization, content-type"
    )
    assert r.status in (200, 204), r.body
    assert r.headers[ACAO] == origin
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip() for h in r.headers["Access-Control-Allow-Headers"].lower().split(",")}
    assert {"authorization", "content-type"} <= allowed
    # Browsers keep the answer this long instead of asking before every request.
    assert int(r.headers["Access-Control-Max-Age"]) >= 60
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert "Origin" in r.headers["Vary"]


async def test_a_foreign_origin_gets_no_cors_headers(
    api: ApiClient, ready: ApiClient, tenant_a: Tenant
) -> None:
    foreign = "https://evil.example"
    r = await preflight(api, "/v1/push-subscriptions", foreign)
    assert ACAO not in r.headers
    assert r.status == 405  # as for any OPTIONS: the browser refuses the call
    got = await api.get("/v1/inbox", token=tenant_a.tokens["shopper"], headers={"Origin": foreign})
    assert got.status == 200
    assert ACAO not in got.headers


async def test_a_merchants_origin_with_another_merchants_token_gets_no_cors_headers(
    api: ApiClient, ready: ApiClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    # A's page may ask (the preflight names no merchant) ...
    r = await preflight(api, "/v1/inbox", origin_of(tenant_a), method="GET")
    assert r.headers[ACAO] == origin_of(tenant_a)
    # ... but an answer for B's shopper is not for A's page to read.
    got = await api.get(
        "/v1/inbox", token=tenant_b.tokens["shopper"], headers={"Origin": origin_of(tenant_a)}
    )
    assert got.status == 200
    assert ACAO not in got.headers
    own = await api.get(
        "/v1/inbox", token=tenant_b.tokens["shopper"], headers={"Origin": origin_of(tenant_b)}
    )
    assert own.headers[ACAO] == origin_of(tenant_b)
    assert "x-request-id" in own.headers["Access-Control-Expose-Headers"].lower()
    # Enrolment with the app token: the app key's merchant decides.
    enrol = await api.post(
        "/v1/shoppers",
        token=tenant_a.tokens["app"],
        json={"marketing_consent": True},
        headers={"Origin": origin_of(tenant_a)},
    )
    assert enrol.status == 201 and enrol.headers[ACAO] == origin_of(tenant_a)


async def test_staff_endpoints_and_tokens_get_no_cors_headers(
    api: ApiClient, ready: ApiClient, tenant_a: Tenant
) -> None:
    origin = origin_of(tenant_a)
    r = await preflight(api, "/v1/offers", origin)
    assert ACAO not in r.headers
    got = await api.get("/v1/offers", token=tenant_a.tokens["manager"], headers={"Origin": origin})
    assert got.status == 200 and ACAO not in got.headers
    # whoami is open to every role, shoppers included; a manager's token reads it bare.
    who = await api.get(
        "/v1/auth/whoami", token=tenant_a.tokens["manager"], headers={"Origin": origin}
    )
    assert who.status == 200 and ACAO not in who.headers
    no_origin = await api.get("/v1/inbox", token=tenant_a.tokens["shopper"])
    assert ACAO not in no_origin.headers


async def test_error_answers_carry_the_cors_headers(
    api: ApiClient, ready: ApiClient, tenant_a: Tenant
) -> None:
    origin = origin_of(tenant_a)
    headers = {"Origin": origin}
    unauthorised = await api.post("/v1/pings", json=ping(), headers=headers)
    assert unauthorised.status == 401 and unauthorised.headers[ACAO] == origin
    invalid = await api.post(
        "/v1/pings", token=tenant_a.tokens["shopper"], json={"lat": 100}, headers=headers
    )
    assert invalid.status == 422 and invalid.headers[ACAO] == origin
    public = await api.get("/v1/push/vapid-public-key", headers=headers)
    assert public.status == 200 and public.headers[ACAO] == origin


@pytest.fixture
async def strict(database_url: str, tmp_path: Path, spec: SpecChecker) -> AsyncIterator[ApiClient]:
    """An app whose shoppers may send one ping request in a burst."""
    cfg = Settings(data_dir=tmp_path, db_pool_min=1, db_pool_max=2, ping_rate=0.01, ping_burst=1)
    application = app_mod.create_app(cfg, db_url=database_url)
    async with test_utils.TestClient(test_utils.TestServer(application)) as client:
        yield ApiClient(client, spec)


async def test_a_429_carries_the_cors_headers_and_exposes_retry_after(
    strict: ApiClient, tenant_a: Tenant
) -> None:
    await _knows(strict, tenant_a)
    origin = origin_of(tenant_a)
    token = tenant_a.tokens["shopper"]
    first = await strict.post("/v1/pings", token=token, json=ping(), headers={"Origin": origin})
    assert first.status == 200
    limited = await strict.post("/v1/pings", token=token, json=ping(), headers={"Origin": origin})
    assert limited.status == 429
    assert limited.headers[ACAO] == origin
    assert "retry-after" in limited.headers["Access-Control-Expose-Headers"].lower()
    assert limited.headers["Retry-After"]


async def test_a_preflight_needs_no_database(strict: ApiClient, tenant_a: Tenant) -> None:
    """With every pooled connection taken, a preflight is still answered (from memory)."""
    await _knows(strict, tenant_a)
    pool = strict.raw.server.app[POOL]
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        r = await asyncio.wait_for(
            preflight(strict, "/v1/pings/batch", origin_of(tenant_a)), timeout=10
        )
        assert r.status == 204 and r.headers[ACAO] == origin_of(tenant_a)
    finally:
        for conn in held:
            await pool.release(conn)


async def _until(check: Any, what: str) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_admins_manage_origins_and_every_process_follows_at_once(
    api: ApiClient, ready: ApiClient, tenant_a: Tenant
) -> None:
    admin = tenant_a.tokens["admin"]
    new = "https://Shop.Example.COM:443/"
    added = await api.post("/v1/origins", token=admin, json={"origin": new})
    assert added.status == 201, added.body
    assert added.json["origin"] == "https://shop.example.com"
    again = await api.post("/v1/origins", token=admin, json={"origin": "https://shop.example.com"})
    assert (again.status, again.json["id"]) == (200, added.json["id"])
    listed = await api.get("/v1/origins", token=tenant_a.tokens["manager"])
    assert {o["origin"] for o in listed.json["items"]} == {
        origin_of(tenant_a),
        "https://shop.example.com",
    }

    async def allowed() -> bool:
        r = await preflight(api, "/v1/pings", "https://shop.example.com")
        return r.headers.get(ACAO) == "https://shop.example.com"

    await _until(allowed, "the new origin to be allowed")
    gone = await api.delete(f"/v1/origins/{added.json['id']}", token=admin)
    assert gone.status == 204

    async def refused() -> bool:
        return not await allowed()

    await _until(refused, "the removed origin to be refused")
    # A store-scoped admin cannot change a merchant-wide list.
    scoped = await api.post(
        "/v1/origins", token=tenant_a.tokens["admin@store0"], json={"origin": "https://x.example"}
    )
    assert (scoped.status, scoped.error_code) == (403, "out_of_scope")


@pytest.mark.parametrize(
    "bad",
    [
        "shop.example.com",
        "ftp://shop.example.com",
        "https://shop.example.com/path",
        "https://shop.example.com?q=1",
        "https://user@shop.example.com",
        "https://*.example.com",
        "null",
        "https://",
    ],
)
async def test_a_bad_origin_is_422(
    api: ApiClient, ready: ApiClient, tenant_a: Tenant, bad: str
) -> None:
    r = await api.post("/v1/origins", token=tenant_a.tokens["admin"], json={"origin": bad})
    assert (r.status, r.error_code) == (422, "validation_failed"), r.body
    assert "origin" in r.json["error"]["fields"]


async def test_origins_from_the_command_line_reach_a_running_gateway(
    api: ApiClient,
    ready: ApiClient,
    conn: asyncpg.Connection,
    tenant_a: Tenant,
    database_url: str,
    tmp_path: Path,
) -> None:
    environ = proc.env(database_url, tmp_path)
    merchant = str(tenant_a.merchant_id)
    origin = "http://localhost:5173"
    code, out, err = await proc.run(
        "origins", "add", "--merchant", merchant, origin, environ=environ
    )
    assert code == 0, err
    assert '"origin": "http://localhost:5173"' in out

    async def allowed() -> bool:
        r = await preflight(api, "/v1/push-subscriptions", origin)
        return r.headers.get(ACAO) == origin

    await _until(allowed, "the origin added by the CLI to be allowed")
    code, out, err = await proc.run("origins", "list", "--merchant", merchant, environ=environ)
    assert code == 0 and origin in out and origin_of(tenant_a) in out, err
    code, out, err = await proc.run(
        "origins", "remove", "--merchant", merchant, origin, environ=environ
    )
    assert code == 0, err
    code, _, err = await proc.run(
        "origins", "remove", "--merchant", merchant, origin, environ=environ
    )
    assert code == 2 and "does not allow" in err
    code, _, err = await proc.run(
        "origins", "add", "--merchant", merchant, "https://a.example/x", environ=environ
    )
    assert code == 2 and "no path" in err
    rows = await conn.fetchval(
        "SELECT count(*) FROM merchant_origins WHERE merchant_id = $1", tenant_a.merchant_id
    )
    assert rows == 1
