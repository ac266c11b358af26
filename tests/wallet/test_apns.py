"""APNs pass-update pushes against a local HTTP/2 stand-in that checks the path, the
headers and the provider JWT: concurrent pushes on one connection, JWT reuse, and the
error answers that drop a registration or call for a retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.apns_peer import ApnsStandIn
from tests.support.proc import free_port
from wallet import apns

TOPIC = "pass.com.example.loyalty"


@pytest.fixture
def p8() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def stand_in(tmp_path: Path, p8: ec.EllipticCurvePrivateKey) -> AsyncIterator[ApnsStandIn]:
    peer = ApnsStandIn(
        directory=tmp_path,
        topic=TOPIC,
        key_id="KEY1234567",
        team_id="TEAM123456",
        public_key=p8.public_key(),
    )
    await peer.start(free_port())
    try:
        yield peer
    finally:
        await peer.close()


def _auth(p8: ec.EllipticCurvePrivateKey, key_id: str = "KEY1234567") -> apns.TokenAuth:
    pem = p8.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return apns.TokenAuth(pem, key_id, "TEAM123456")


async def test_pushes_fan_out_over_http2_with_one_jwt(
    stand_in: ApnsStandIn, p8: ec.EllipticCurvePrivateKey
) -> None:
    auth = _auth(p8)
    client = apns.Client(
        base_url=stand_in.base_url, token_auth=auth, verify=str(stand_in.cert_path)
    )
    try:
        tokens = [f"{i:064x}" for i in range(200)]
        outcomes = await client.push_all(tokens, TOPIC)
    finally:
        await client.close()
    assert {o.status for o in outcomes} == {200}
    assert sorted(p.token for p in stand_in.pushes) == sorted(tokens)
    assert {p.http_version for p in stand_in.pushes} == {"2"}
    assert {p.body for p in stand_in.pushes} == {b"{}"}
    assert auth.signed == 1


async def test_errors_say_whether_to_drop_or_retry(
    stand_in: ApnsStandIn, p8: ec.EllipticCurvePrivateKey
) -> None:
    stand_in.fail("a" * 64, 410, "Unregistered")
    stand_in.fail("b" * 64, 400, "BadDeviceToken")
    stand_in.fail("c" * 64, 429, "TooManyRequests", retry_after=3)
    stand_in.fail("d" * 64, 503, "ServiceUnavailable")
    client = apns.Client(
        base_url=stand_in.base_url, token_auth=_auth(p8), verify=str(stand_in.cert_path)
    )
    try:
        out = {
            o.push_token[0]: o
            for o in await client.push_all(
                ["a" * 64, "b" * 64, "c" * 64, "d" * 64, "e" * 64], TOPIC
            )
        }
        wrong_topic = await client.push("f" * 64, "pass.other")
    finally:
        await client.close()
    assert out["a"].drop_registration and not out["a"].retry
    assert out["b"].drop_registration and out["b"].reason == "BadDeviceToken"
    assert out["c"].retry and out["c"].retry_after == 3 and not out["c"].drop_registration
    assert out["d"].retry
    assert out["e"].status == 200
    assert (wrong_topic.status, wrong_topic.reason) == (400, "TopicDisallowed")


async def test_a_jwt_from_another_key_is_refused(
    stand_in: ApnsStandIn,
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    client = apns.Client(
        base_url=stand_in.base_url, token_auth=_auth(other), verify=str(stand_in.cert_path)
    )
    try:
        outcome = await client.push("0" * 64, TOPIC)
    finally:
        await client.close()
    assert (outcome.status, outcome.reason) == (403, "InvalidProviderToken")
    assert stand_in.pushes == []


def test_the_jwt_is_reused_for_50_minutes(p8: ec.EllipticCurvePrivateKey) -> None:
    auth = _auth(p8)
    first = auth.header(now=1_000_000.0)
    assert auth.header(now=1_000_000.0 + 49 * 60) == first
    assert auth.header(now=1_000_000.0 + 51 * 60) != first
    assert auth.signed == 2


async def test_streams_cut_by_a_goaway_are_sent_again_once_and_never_doubled(
    tmp_path: Path, p8: ec.EllipticCurvePrivateKey
) -> None:
    peer = ApnsStandIn(
        directory=tmp_path,
        topic=TOPIC,
        key_id="KEY1234567",
        team_id="TEAM123456",
        public_key=p8.public_key(),
        goaway_after=25,  # a GOAWAY after every 25 requests on a connection
    )
    await peer.start(free_port())
    client = apns.Client(
        base_url=peer.base_url, token_auth=_auth(p8), verify=str(peer.cert_path), connections=2
    )
    try:
        tokens = [f"{i:064x}" for i in range(300)]
        outcomes = await client.push_all(tokens, TOPIC)
    finally:
        await client.close()
        await peer.close()
    assert {o.status for o in outcomes} == {200}
    # Each device once: the streams after a GOAWAY's last stream were never processed,
    # so sending them again doubles nothing, and none was resent as a lost answer.
    assert sorted(p.token for p in peer.pushes) == tokens
    assert peer.goaways >= 10 and client.cut > 0
    assert client.reconnects == 0
