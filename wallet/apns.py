"""APNs pass-update pushes: an empty JSON payload over HTTP/2 to `/3/device/<pushToken>`
with `apns-topic` = the pass type id, telling the device to fetch the pass again.

Token auth signs an ES256 JWT (iss = team id, kid = key id) and reuses it for up to 50
minutes, as Apple asks; certificate auth presents the pass certificate in TLS. All
pushes go concurrently over one HTTP/2 connection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

PRODUCTION = "https://api.push.apple.com"
JWT_REUSE_SECONDS = 50 * 60


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


class Client:
    """One HTTP/2 connection to APNs (or a stand-in), shared by every push."""

    def __init__(
        self,
        *,
        base_url: str = PRODUCTION,
        token_auth: TokenAuth | None = None,
        client_cert: tuple[str, str] | None = None,
        verify: ssl.SSLContext | str | bool = True,
        timeout: float = 10.0,
        max_streams: int = 100,
        connection_attempts: int = 3,
    ) -> None:
        if token_auth is None and client_cert is None:
            raise ValueError("APNs needs token auth or a client certificate")
        # `verify` may name a CA file (a stand-in's certificate in tests).
        context: ssl.SSLContext | bool
        context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        if client_cert is not None:
            if not isinstance(context, ssl.SSLContext):
                context = ssl.create_default_context()
            context.load_cert_chain(*client_cert)
        self.token_auth = token_auth
        self.connection_attempts = connection_attempts
        self.reconnects = 0
        # Servers cap concurrent HTTP/2 streams (APNs and hypercorn: 100s); more in flight
        # only queue and time out.
        self._streams = asyncio.Semaphore(max_streams)
        self._http = httpx.AsyncClient(
            base_url=base_url, http2=True, http1=False, verify=context, timeout=timeout
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def push(self, push_token: str, topic: str) -> Outcome:
        headers = {"apns-topic": topic, "apns-priority": "5", "content-type": "application/json"}
        if self.token_auth is not None:
            headers["authorization"] = self.token_auth.header()
        # A connection can go away under a push: APNs (like any HTTP/2 server) may close
        # it at any time (GOAWAY, or after so many requests). A push that got no answer
        # is sent again on a fresh connection. A device may then get it twice, which is
        # harmless: a pass-update push only makes it ask which passes changed.
        attempt = 0
        while True:
            try:
                async with self._streams:
                    resp = await self._http.post(
                        f"/3/device/{push_token}", content=b"{}", headers=headers
                    )
                break
            except httpx.TransportError as exc:
                attempt += 1
                if attempt >= self.connection_attempts or isinstance(exc, httpx.TimeoutException):
                    return Outcome(push_token=push_token, status=0, reason=type(exc).__name__)
                self.reconnects += 1
                await asyncio.sleep(0.05 * attempt)
            except httpx.HTTPError as exc:
                return Outcome(push_token=push_token, status=0, reason=type(exc).__name__)
        reason = None
        if resp.status_code != 200:
            try:
                reason = resp.json().get("reason")
            except ValueError:
                reason = None
        retry = resp.headers.get("retry-after")
        return Outcome(
            push_token=push_token,
            status=resp.status_code,
            reason=reason,
            retry_after=float(retry) if retry and retry.isdigit() else None,
        )

    async def push_all(self, push_tokens: Sequence[str], topic: str) -> list[Outcome]:
        """Every device at once, multiplexed over the one connection."""
        return list(await asyncio.gather(*(self.push(t, topic) for t in push_tokens)))
