"""Google Wallet callbacks' ECv2SigningOnly checks against a sender that signs as Google does:
what is believed, every way a message is refused, and root keys fetched, cached and
fetched again when Google rotates them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.google_callbacks import GoogleSender
from wallet import errors
from wallet.google import callback, rootkeys

NOW = dt.datetime(2026, 1, 12, 7, 30, tzinfo=dt.UTC)
ISSUER = "3388000000022211111"
OBJECT = f"{ISSUER}.coupon-5f0c9d2e"


@pytest.fixture
def google() -> GoogleSender:
    return GoogleSender(now=NOW)


def ring(google: GoogleSender) -> rootkeys.KeyRing:
    return rootkeys.KeyRing(fixed=callback.parse_root_keys(google.root_keys()))


async def check(keys: rootkeys.KeyRing, body: dict[str, object]) -> callback.CallbackEvent:
    return await keys.verify(json.dumps(body).encode(), recipient_id=ISSUER, now=NOW)


async def test_a_message_signed_as_google_signs_is_believed(google: GoogleSender) -> None:
    body = google.callback(issuer_id=ISSUER, object_id=OBJECT, event="del", nonce="n-1")
    event = await check(ring(google), body)
    assert (event.object_id, event.event_type, event.nonce) == (OBJECT, "del", "n-1")
    assert event.class_id == f"{ISSUER}.offers"
    assert event.expires_at == NOW + dt.timedelta(minutes=5)


async def test_refusals_say_why(google: GoogleSender) -> None:
    keys = ring(google)
    message = google.message(issuer_id=ISSUER, object_id=OBJECT)
    stranger = ec.generate_private_key(ec.SECP256R1())
    cases: list[tuple[dict[str, object], type[errors.CallbackRefused]]] = [
        # Signed by a root key Google does not have.
        (google.envelope(message, recipient_id=ISSUER, root=stranger), errors.SignatureInvalid),
        # The message signed by another key than the intermediate one.
        (google.envelope(message, recipient_id=ISSUER, signer=stranger), errors.SignatureInvalid),
        # Signed for another issuer (the recipient is part of what is signed).
        (google.envelope(message, recipient_id="1234"), errors.SignatureInvalid),
        (
            google.envelope(message, recipient_id=ISSUER, key_expires_in=dt.timedelta(0)),
            errors.SigningKeyExpired,
        ),
        (
            google.callback(issuer_id=ISSUER, object_id=OBJECT, expires_in=-dt.timedelta(1)),
            errors.CallbackExpired,
        ),
        (
            {"protocolVersion": "ECv2SigningOnly", "signedMessage": json.dumps(message)},
            errors.CallbackUnsigned,
        ),
        (
            {**google.envelope(message, recipient_id=ISSUER), "protocolVersion": "ECv2"},
            errors.CallbackMalformed,
        ),
        (
            google.callback(issuer_id=ISSUER, object_id=OBJECT, event="update"),
            errors.CallbackMalformed,
        ),
    ]
    for body, refused in cases:
        with pytest.raises(refused):
            await check(keys, body)
    # A tampered message: the object id changed after signing.
    body = google.envelope(message, recipient_id=ISSUER)
    body["signedMessage"] = json.dumps({**message, "objectId": f"{ISSUER}.coupon-other"})
    with pytest.raises(errors.SignatureInvalid):
        await check(keys, body)
    with pytest.raises(errors.CallbackMalformed):
        await keys.verify(b"[1, 2]", recipient_id=ISSUER, now=NOW)


async def test_an_expired_root_key_signs_nothing(google: GoogleSender) -> None:
    google.root_expires = -dt.timedelta(seconds=1)
    with pytest.raises(errors.SignatureInvalid):
        await check(ring(google), google.callback(issuer_id=ISSUER, object_id=OBJECT))


def test_the_signed_bytes_are_length_prefixed_little_endian() -> None:
    assert callback.signed_bytes("ab", "é") == b"\x02\x00\x00\x00ab\x02\x00\x00\x00\xc3\xa9"


@pytest.fixture
async def key_server(google: GoogleSender) -> AsyncIterator[tuple[TestServer, list[str]]]:
    """Google's keys URL: serves the current list (the test may rotate it), max-age 3600."""
    served = [google.root_keys()]

    async def keys(_: web.Request) -> web.Response:
        return web.Response(
            text=served[0],
            content_type="application/json",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    app = web.Application()
    app.router.add_get("/gp/m/issuer/keys", keys)
    server = TestServer(app)
    await server.start_server()
    try:
        yield server, served
    finally:
        await server.close()


async def test_fetched_keys_are_cached_and_fetched_again_after_a_rotation(
    google: GoogleSender, key_server: tuple[TestServer, list[str]]
) -> None:
    server, served = key_server
    clock = [0.0]
    keys = rootkeys.KeyRing(
        url=str(server.make_url("/gp/m/issuer/keys")), monotonic=lambda: clock[0]
    )
    for _ in range(3):
        await check(keys, google.callback(issuer_id=ISSUER, object_id=OBJECT))
    assert keys.fetches == 1  # not per request
    clock[0] += rootkeys.MIN_REFETCH_SECONDS
    # Google rotates: a new root key signs from now on. The first callback signed by it
    # finds no cached key that verifies, and the list is fetched again.
    rotated = GoogleSender(now=NOW)
    served[0] = rotated.root_keys()
    await check(keys, rotated.callback(issuer_id=ISSUER, object_id=OBJECT))
    assert keys.fetches == 2
    # Forgeries cannot make it fetch on every request: at most once a minute.
    forged = GoogleSender(now=NOW)
    for _ in range(3):
        with pytest.raises(errors.SignatureInvalid):
            await check(keys, forged.callback(issuer_id=ISSUER, object_id=OBJECT))
    assert keys.fetches == 2
    # The cache lasts the answer's max-age, then the list is fetched again.
    clock[0] += 3600
    await check(keys, rotated.callback(issuer_id=ISSUER, object_id=OBJECT))
    assert keys.fetches == 3


async def test_unreachable_keys_answer_unavailable(google: GoogleSender) -> None:
    keys = rootkeys.KeyRing(url="http://127.0.0.1:9/keys", timeout=2)
    with pytest.raises(errors.RootKeysUnavailable):
        await check(keys, google.callback(issuer_id=ISSUER, object_id=OBJECT))


def test_a_fixed_key_list_may_be_a_file(google: GoogleSender, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(google.root_keys())
    assert len(rootkeys.fixed_keys(str(path))) == 1  # the ECv1 key is left out
    assert len(rootkeys.fixed_keys(google.root_keys())) == 1
    with pytest.raises(ValueError, match="keyValue"):
        callback.parse_root_keys('{"keys": [{"protocolVersion": "ECv2SigningOnly"}]}')
