"""APNs pass-update pushes: an empty JSON payload over HTTP/2 to `/3/device/<pushToken>`
with `apns-topic` = the pass type id, telling the device to fetch the pass again.

Token auth signs an ES256 JWT (iss = team id, kid = key id) and reuses it for 50 minutes
(Apple wants it refreshed after 20 and before 60); certificate auth presents the pass
certificate in TLS. Pushes go over several HTTP/2 connections at once, each carrying many
concurrent streams (`h2conn.Connection`); the header block of a topic is made once per
JWT, so a push costs one stream and its answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from wallet import h2conn

PRODUCTION = "https://api.push.apple.com"
JWT_REUSE_SECONDS = 50 * 60
# A push cut by a GOAWAY was never processed: resent at once, without counting as a
# try, up to this many times (a server that sends nothing but GOAWAYs must not loop us).
MAX_GOAWAY_RESENDS = 10


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenAuth:
    """Provider-token auth from a .p8 key; the JWT is reused for up to 50 minutes."""

    def __init__(self, key_pem: bytes, key_id: str, team_id: str) -> None:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("an APNs auth key is a P-256 EC key (.p8)")
        self._key = key
        self.key_id = key_id
        self.team_id = team_id
        self._jwt: tuple[str, float] | None = None
        self.signed = 0

    def header(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if self._jwt is not None and now - self._jwt[1] < JWT_REUSE_SECONDS:
            return self._jwt[0]
        head = _b64(json.dumps({"alg": "ES256", "kid": self.key_id}).encode())
        claims = _b64(json.dumps({"iss": self.team_id, "iat": int(now)}).encode())
        der = self._key.sign(f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        token = f"{head}.{claims}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        self._jwt = (f"bearer {token}", now)
        self.signed += 1
        return self._jwt[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    push_token: str
    status: int  # 0: no answer
    reason: str | None = None
    retry_after: float | None = None

    @property
    def drop_registration(self) -> bool:
        """The device is gone: 410, or a token APNs says is not a device."""
        return self.status == 410 or self.reason in ("BadDeviceToken", "Unregistered")

    @property
    def retry(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


def _outcome(push_token: str, answer: h2conn.Answer) -> Outcome:
    if answer.status == 200:
        return Outcome(push_token=push_token, status=200)
    reason = None
    try:
        found = json.loads(answer.body).get("reason") if answer.body else None
        reason = found if isinstance(found, str) else None
    except (ValueError, AttributeError):
        reason = None
    retry = answer.headers.get(b"retry-after", b"")
    return Outcome(
        push_token=push_token,
        status=answer.status,
        reason=reason,
        retry_after=float(retry) if retry.isdigit() else None,
    )


class Client:
    """A few HTTP/2 connections to APNs (or a stand-in), shared by every push."""

    def __init__(
        self,
        *,
        base_url: str = PRODUCTION,
        token_auth: TokenAuth | None = None,
        client_cert: tuple[str, str] | None = None,
        verify: ssl.SSLContext | str | bool = True,
        timeout: float = 10.0,
        connections: int = 8,
        max_streams: int = 1000,
        connection_attempts: int = 3,
    ) -> None:
        if token_auth is None and client_cert is None:
            raise ValueError("APNs needs token auth or a client certificate")
        url = urllib.parse.urlsplit(base_url)
        self.host = url.hostname or "localhost"
        self.port = url.port or 443
        # `verify` may name a CA file (a stand-in's certificate in tests).
        if isinstance(verify, ssl.SSLContext):
            context = verify
        elif isinstance(verify, str):
            context = ssl.create_default_context(cafile=verify)
        else:
            context = ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        if client_cert is not None:
            context.load_cert_chain(*client_cert)
        context.set_alpn_protocols(["h2"])
        self.token_auth = token_auth
        self.connection_attempts = connection_attempts
        self.pool = h2conn.Pool(
            host=self.host,
            port=self.port,
            context=context,
            connections=connections,
            max_streams=max_streams,
            timeout=timeout,
        )
        self._headers: dict[str, tuple[str, list[tuple[bytes, bytes]]]] = {}
        self.reconnects = 0  # pushes sent again after a connection closed unanswered
        self.cut = 0  # pushes cut by a GOAWAY (never processed), each counted once

    async def close(self) -> None:
        await self.pool.close()

    def _header_block(self, topic: str) -> list[tuple[bytes, bytes]]:
        """The headers every push of a topic shares; remade only with a new JWT."""
        jwt = self.token_auth.header() if self.token_auth is not None else ""
        cached = self._headers.get(topic)
        if cached is not None and cached[0] == jwt:
            return cached[1]
        block = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", f"{self.host}:{self.port}".encode()),
            (b"apns-topic", topic.encode()),
            (b"apns-priority", b"5"),
            (b"content-type", b"application/json"),
        ]
        if jwt:
            block.append((b"authorization", jwt.encode()))
        self._headers[topic] = (jwt, block)
        return block

    async def push(self, push_token: str, topic: str) -> Outcome:
        headers = self._header_block(topic)
        path = f"/3/device/{push_token}".encode()
        # A connection can go away under a push. A GOAWAY names the last stream the
        # server took; a push after it was never processed and is sent again at once,
        # counted once as cut. A push that got no answer otherwise (the connection
        # closed under it) may have been processed: it is sent again on a fresh
        # connection up to `connection_attempts` times, so the device may hear twice,
        # which is harmless: a pass-update push only makes it ask which passes changed.
        attempt = cut = 0
        while True:
            answer = await self.pool.request(path, headers, b"{}")
            if isinstance(answer, h2conn.Answer):
                return _outcome(push_token, answer)
            if answer is h2conn.UNPROCESSED and cut < MAX_GOAWAY_RESENDS:
                cut += 1
                self.cut += 1
                continue
            attempt += 1
            if attempt >= self.connection_attempts or answer is h2conn.TIMEOUT:
                return Outcome(push_token=push_token, status=0, reason=answer.name)
            self.reconnects += 1
            await asyncio.sleep(0.05 * attempt)

    async def push_all(self, push_tokens: Sequence[str], topic: str) -> list[Outcome]:
        """Every device at once, multiplexed over the connections."""
        if len(push_tokens) == 1:  # most shoppers have one device: no task to gather
            return [await self.push(push_tokens[0], topic)]
        return list(await asyncio.gather(*(self.push(t, topic) for t in push_tokens)))
