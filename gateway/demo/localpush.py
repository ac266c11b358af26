"""A local Web Push service speaking the real protocols, for the demo and the tests.

It plays the browser vendor's push service (RFC 8030): it hands out subscriptions
like a browser would (a P-256 key pair and an auth secret per subscriber), and on
each push it requires TTL, verifies the VAPID JWT (RFC 8292: ES256 signature by the
key in ``k``, ``aud`` = this service's origin, ``exp`` in the future and at most 24 h
ahead, ``sub`` present) and decrypts the aes128gcm body (RFC 8291/8188) with the
subscriber's private key, as a browser does (`decrypt` here: written from the RFCs
apart from the gateway's encryption, and checked against http_ece by the tests).
Faults can be injected per endpoint: any status (with Retry-After for 429), or a hang.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import json
import os
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAX_BODY = 4096


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decrypt(
    body: bytes,
    private_key: ec.EllipticCurvePrivateKey,
    auth_secret: bytes,
    receiver: bytes | None = None,
) -> bytes:
    """What the subscriber reads from an aes128gcm push body (RFC 8291 and RFC 8188).

    `receiver` is the subscriber's public point, if the caller has it at hand. Raises
    ValueError when the body is malformed, does not authenticate or is not padded as the
    RFC says.
    """
    if len(body) < 21:
        raise ValueError("shorter than the aes128gcm header")
    salt = body[:16]
    rs, idlen = struct.unpack("!IB", body[16:21])
    keyid, records = body[21 : 21 + idlen], body[21 + idlen :]
    if rs < 18:
        raise ValueError(f"record size {rs} is below 18")
    try:
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), keyid)
    except ValueError:
        raise ValueError("the key id is not a P-256 point") from None
    if receiver is None:
        receiver = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    ecdh = private_key.exchange(ec.ECDH(), sender)
    prk_key = hmac.digest(auth_secret, ecdh, "sha256")
    ikm = hmac.digest(prk_key, b"WebPush: info\x00" + receiver + keyid + b"\x01", "sha256")
    prk = hmac.digest(salt, ikm, "sha256")
    cek = hmac.digest(prk, b"Content-Encoding: aes128gcm\x00\x01", "sha256")[:16]
    base_nonce = hmac.digest(prk, b"Content-Encoding: nonce\x00\x01", "sha256")[:12]
    aead = AESGCM(cek)
    out = []
    chunks = [records[i : i + rs] for i in range(0, len(records), rs)] or [b""]
    for seq, chunk in enumerate(chunks):
        nonce = (int.from_bytes(base_nonce, "big") ^ seq).to_bytes(12, "big")
        try:
            plain = aead.decrypt(nonce, chunk, None)
        except InvalidTag:
            raise ValueError(f"record {seq} does not authenticate") from None
        plain = plain.rstrip(b"\x00")
        last = seq == len(chunks) - 1
        if not plain or plain[-1:] != (b"\x02" if last else b"\x01"):
            raise ValueError(f"record {seq} has the wrong padding delimiter")
        out.append(plain[:-1])
    return b"".join(out)


@dataclass
class Subscriber:
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    application_server_key: str | None = None

    @functools.cached_property
    def point(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def p256dh(self) -> str:
        return b64url(self.point)

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)

    def subscription_info(self) -> dict[str, Any]:
        """What the browser's PushSubscription.toJSON() gives the app."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
        }


@dataclass
class Received:
    endpoint: str
    payload: bytes
    headers: dict[str, str]
    claims: dict[str, Any]
    at: float
    wall: float = 0.0

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class _Fault:
    status: int | None  # None: hang
    times: int | None
    retry_after: int | None = None


@dataclass
class PushService:
    host: str = "127.0.0.1"
    received: list[Received] = field(default_factory=list)
    # (endpoint, status) of every answered request, and when each request arrived.
    requests: list[tuple[str, int]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._subs: dict[str, Subscriber] = {}
        self._faults: dict[str | None, _Fault] = {}
        # (count, future) of wait_for() calls: resolved once that many pushes arrived.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._hanging: list[asyncio.Event] = []
        # Verified (header -> claims, key): senders reuse one JWT per origin, and like
        # real push services this one checks the signature once and the expiry always.
        self._verified: dict[str, tuple[dict[str, Any], str]] = {}

    async def __aenter__(self) -> PushService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY * 4)
        app.router.add_post("/push/{token}", self._push)
        app.router.add_get("/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{self.host}:{port}"

    async def close(self) -> None:
        for event in self._hanging:
            event.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- subscriptions and faults ----------------------------------------------------------

    def subscribe(self, application_server_key: str | None = None) -> Subscriber:
        token = secrets.token_urlsafe(16)
        sub = Subscriber(
            endpoint=f"{self.base_url}/push/{token}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth_secret=os.urandom(16),
            application_server_key=application_server_key,
        )
        self._subs[token] = sub
        return sub

    def fail(
        self,
        endpoint: str | None,
        status: int,
        *,
        times: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer ``status`` to pushes to ``endpoint`` (None: all) ``times`` times (None: all)."""
        self._faults[endpoint] = _Fault(status=status, times=times, retry_after=retry_after)

    def hang(self, endpoint: str | None, *, times: int | None = None) -> None:
        """Never answer pushes to ``endpoint`` (the client has to give up)."""
        self._faults[endpoint] = _Fault(status=None, times=times)

    def clear_faults(self) -> None:
        self._faults.clear()

    async def wait_for(self, n: int, within: float = 5.0) -> list[Received]:
        if len(self.received) < n:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((n, waiter))
            try:
                await asyncio.wait_for(waiter, within)
            finally:
                self._waiters = [w for w in self._waiters if w[1] is not waiter]
        return list(self.received)

    async def _stats(self, request: web.Request) -> web.Response:
        """For benchmarks in other processes: what arrived, and when (wall clock)."""
        since = int(request.query.get("since", "0"))
        items = [
            {"payload": r.payload.decode(errors="replace"), "wall": r.wall}
            for r in self.received[since:]
        ]
        return web.json_response({"received": len(self.received), "items": items})

    # -- the protocol ----------------------------------------------------------------------

    def _fault_for(self, endpoint: str) -> _Fault | None:
        for key in (endpoint, None):
            fault = self._faults.get(key)
            if fault is None:
                continue
            if fault.times is not None:
                if fault.times <= 0:
                    continue
                fault.times -= 1
            return fault
        return None

    async def _push(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        endpoint = f"{self.base_url}/push/{token}"
        arrived = time.monotonic()
        response = await self._answer(request, token, endpoint)
        self.arrivals.append(arrived)
        self.requests.append((endpoint, response.status))
        return response

    async def _answer(self, request: web.Request, token: str, endpoint: str) -> web.Response:
        fault = self._fault_for(endpoint)
        if fault is not None and fault.status is None:
            release = asyncio.Event()
            self._hanging.append(release)
            await release.wait()
            return web.Response(status=503, text="released at shutdown")
        if fault is not None:
            assert fault.status is not None
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            return web.Response(status=fault.status, text="injected fault", headers=headers)
        sub = self._subs.get(token)
        if sub is None:
            return web.Response(status=404, text="no such subscription")
        ttl = request.headers.get("TTL", "")
        if not ttl.isdigit():
            return web.Response(status=400, text="TTL header required")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return web.Response(status=415, text="Content-Encoding must be aes128gcm")
        body = await request.read()
        if len(body) > MAX_BODY:
            return web.Response(status=413, text="payload too large")
        try:
            claims, key = self._verify_vapid(request.headers.get("Authorization", ""))
        except ValueError as exc:
            return web.Response(status=401, text=f"VAPID: {exc}")
        if sub.application_server_key is not None and key != sub.application_server_key:
            return web.Response(status=403, text="VAPID key is not the subscription's")
        try:
            payload = decrypt(body, sub.private_key, sub.auth_secret, sub.point)
        except ValueError as exc:
            return web.Response(status=400, text=f"cannot decrypt: {exc}")
        self.received.append(
            Received(
                endpoint=endpoint,
                payload=payload,
                headers=dict(request.headers),
                claims=claims,
                at=time.monotonic(),
                wall=time.time(),
            )
        )
        if self._waiters:
            for n, waiter in self._waiters:
                if n <= len(self.received) and not waiter.done():
                    waiter.set_result(None)
        return web.Response(
            status=201, headers={"Location": f"{self.base_url}/message/{secrets.token_hex(8)}"}
        )

    def _verify_vapid(self, header: str) -> tuple[dict[str, Any], str]:
        cached = self._verified.get(header)
        if cached is not None:
            exp = cached[0].get("exp")
            if isinstance(exp, int) and exp > time.time():
                return cached
            raise ValueError("the JWT has expired")
        claims, key = self._verify_signature(header)
        self._verified[header] = (claims, key)
        return claims, key

    def _verify_signature(self, header: str) -> tuple[dict[str, Any], str]:
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError("Authorization must use the vapid scheme")
        parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        jwt, key = parts.get("t", ""), parts.get("k", "")
        try:
            head_b64, claims_b64, sig_b64 = jwt.split(".")
            head = json.loads(b64url_decode(head_b64))
            claims = json.loads(b64url_decode(claims_b64))
            signature = b64url_decode(sig_b64)
            point = b64url_decode(key)
        except (ValueError, binascii.Error) as exc:
            raise ValueError(f"malformed JWT or key ({exc})") from None
        if head.get("alg") != "ES256":
            raise ValueError("the JWT must be ES256")
        if len(signature) != 64:
            raise ValueError("an ES256 signature is 64 bytes (r || s)")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError:
            raise ValueError("k is not a P-256 point") from None
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise ValueError("bad signature for the key in k") from None
        if claims.get("aud") != self.base_url:
            raise ValueError(f"aud must be {self.base_url}, not {claims.get('aud')!r}")
        exp = claims.get("exp")
        now = time.time()
        if not isinstance(exp, int) or exp <= now:
            raise ValueError("the JWT has expired")
        if exp > now + 24 * 3600:
            raise ValueError("exp is more than 24 hours ahead")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError("sub must be a mailto: or https: contact")
        return claims, key
