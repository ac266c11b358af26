"""Bad input gets the documented JSON error shape and a 4xx, and writes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from tests.support import proc
from tests.support.client import ApiClient
from tests.support.pg import PgServer
from tests.support.tenants import Tenant


async def _shopper_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM shoppers"))


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"marketing_consent": true,}',
        b"{'marketing_consent': true}",
        b"\xff\xfe",
        b"   ",
        b"",
        b'{"marketing_consent": tru}',
    ],
)
async def test_malformed_json_is_400(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, raw: bytes
) -> None:
    before = await _shopper_count(conn)
    r = await api.post(
        "/v1/shoppers",
        token=tenant_a.tokens["app"],
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 400, r.body
    assert r.error_code == "invalid_json"
    assert r.json["error"]["message"]
    assert await _shopper_count(conn) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "(body)"),
        ("yes", "(body)"),
        ({}, "marketing_consent"),
        ({"marketing_consent": "true"}, "marketing_consent"),
        ({"marketing_consent": 1}, "marketing_consent"),
        ({"marketing_consent": True, "timezone": "Mars/Olympus"}, "timezone"),
        ({"marketing_consent": True, "email": "not-an-email"}, "email"),
        ({"marketing_consent": True, "name": ""}, "name"),
        ({"marketing_consent": True, "name": "x" * 201}, "name"),
        ({"marketing_consent": True, "surprise": 1}, "surprise"),
    ],
)
async def test_invalid_fields_are_422_and_named(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, body: object, field: str
) -> None:
    before = await _shopper_count(conn)
    r = await api.post("/v1/shoppers", token=tenant_a.tokens["app"], json=body)
    assert r.status == 422, r.body
    assert r.error_code == "validation_failed"
    assert field in r.json["error"]["fields"], r.json
    assert await _shopper_count(conn) == before


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_wrong_content_type_is_415(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = await api.post(
        "/v1/shoppers",
        token=tenant_a.tokens["app"],
        data=b'{"marketing_consent": true}',
        headers=headers,
    )
    assert r.status == 415, r.body
    assert r.error_code == "unsupported_media_type"
    assert await _shopper_count(conn) == 1  # the tenant fixture's own shopper only


async def test_json_with_charset_is_accepted(api: ApiClient, tenant_a: Tenant) -> None:
    r = await api.post(
        "/v1/shoppers",
        token=tenant_a.tokens["app"],
        data=b'{"marketing_consent": true}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status == 201


async def test_oversized_body_is_413_before_reading(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    # The test app allows 64 KiB.
    big = b'{"marketing_consent": true, "name": "' + b"x" * (70 * 1024) + b'"}'
    r = await api.post(
        "/v1/shoppers",
        token=tenant_a.tokens["app"],
        data=big,
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 413, r.body
    assert r.error_code == "payload_too_large"
    assert await _shopper_count(conn) == 1


async def test_oversized_chunked_body_is_413(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"marketing_consent": true, "name": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    async with api.raw.post(
        "/v1/shoppers",
        data=chunks(),
        headers={
            "Authorization": f"Bearer {tenant_a.tokens['app']}",
            "Content-Type": "application/json",
        },
    ) as resp:
        assert resp.status == 413
        body = await resp.json()
    assert body["error"]["code"] == "payload_too_large"
    assert await _shopper_count(conn) == 1


async def test_unknown_route_and_method_are_json(api: ApiClient, tenant_a: Tenant) -> None:
    r = await api.get("/v1/nothing-here")
    assert r.status == 404 and r.error_code == "not_found"
    r = await api.request("PUT", "/v1/shoppers", token=tenant_a.tokens["app"])
    assert r.status == 405 and r.error_code == "method_not_allowed"
    assert "POST" in r.headers["Allow"]


async def test_malformed_path_id_is_404(api: ApiClient, tenant_a: Tenant) -> None:
    for bad in ("abc", "-1", "1.5", "9" * 30):
        r = await api.get(f"/v1/shoppers/{bad}", token=tenant_a.tokens["manager"])
        assert r.status == 404, (bad, r.body)


async def test_request_id_is_echoed_or_made(api: ApiClient, tenant_a: Tenant) -> None:
    r = await api.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    r = await api.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert r.headers["X-Request-Id"] != "bad id with spaces"
    r = await api.post("/v1/shoppers", token=tenant_a.tokens["app"], json={})
    assert r.json["error"]["request_id"] == r.headers["X-Request-Id"]


async def test_duplicate_email_is_409_and_keeps_the_first(
    api: ApiClient, conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    body = {"marketing_consent": True, "email": "ada@example.org"}
    first = await api.post("/v1/shoppers", token=tenant_a.tokens["app"], json=body)
    assert first.status == 201
    again = await api.post(
        "/v1/shoppers",
        token=tenant_a.tokens["app"],
        json={**body, "email": "ADA@example.org"},
    )
    assert again.status == 409 and again.error_code == "email_taken"
    # the first enrolment is intact and its token still works
    me = await api.get("/v1/me", token=first.json["token"])
    assert me.status == 200 and me.json["email"] == "ada@example.org"
    # another program may enrol the same person
    other = await api.post("/v1/shoppers", token=tenant_b.tokens["app"], json=body)
    assert other.status == 201
    # no orphan key was written for the refused enrolment
    keys = await conn.fetchval("SELECT count(*) FROM api_keys WHERE role = 'shopper'")
    assert keys == 2 + 2  # one per tenant fixture, plus the two accepted enrolments


async def test_database_down_is_503_with_retry_after(
    api: ApiClient, pg: PgServer, database_url: str, tenant_a: Tenant
) -> None:
    # Drop every pool connection from the server side and refuse new ones.
    name = urlsplit(database_url).path.lstrip("/")
    conn = await pg.admin()
    await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        r = await api.get("/readyz")
        assert r.status == 503 and r.headers["Retry-After"]
        r = await api.post(
            "/v1/shoppers", token=tenant_a.tokens["app"], json={"marketing_consent": True}
        )
        assert r.status == 503, r.body
        assert r.headers["Retry-After"]
    finally:
        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await conn.close()
    r = await api.get("/readyz")
    assert r.status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/stores/%C2%B2",  # "²": str.isdigit() says yes, int() says no
        "/v1/stores?cursor=%C2%B2",
        "/v1/geofences?limit=%C2%B2",
        "/v1/geofences?store_id=%D9%A3",  # Arabic-Indic digit three
    ],
)
async def test_non_ascii_digits_in_ids_are_4xx_not_500(
    api: ApiClient, tenant_a: Tenant, path: str
) -> None:
    r = await api.get(path, token=tenant_a.tokens["manager"])
    assert r.status in (404, 422), r.body


async def test_a_client_gone_mid_body_is_no_error(
    database_url: str, tenant_a: Tenant, tmp_path: Path
) -> None:
    # A real `gateway serve`: aiohttp's test server cancels handlers of lost clients,
    # where run_app (handler_cancellation off) lets the body read raise instead.
    served = proc.Served(proc.free_port(), proc.env(database_url, tmp_path))
    await served.start()
    try:
        await served.wait_ready()
        # A phone losing its connection halfway through a ping: the body never completes.
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        head = (
            "POST /v1/pings HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            f"Authorization: Bearer {tenant_a.tokens['shopper']}\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: 200\r\n\r\n"
        )
        writer.write(head.encode() + b'{"lat": 48.85')
        await writer.drain()
        await asyncio.sleep(0.5)  # the handler is now waiting for the rest of the body
        writer.close()
        await writer.wait_closed()
        assert await reader.read() == b""  # nothing was answered on the dead connection
        # The server carries on.
        async with aiohttp.ClientSession() as http, http.get(f"{served.url}/healthz") as resp:
            assert resp.status == 200
        await asyncio.sleep(0.2)
    finally:
        await served.stop()
    assert "Traceback" not in served.log and "ERROR" not in served.log, served.log
    assert "POST /v1/pings 499" in served.log, served.log  # the access log says what happened
