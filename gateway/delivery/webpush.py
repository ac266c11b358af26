"""Web Push to browsers: RFC 8030 delivery, RFC 8291 aes128gcm payloads, RFC 8292 VAPID.

Payloads are encrypted with `cryptography` directly (ece.py: the bytes pywebpush
would send), and requests go out on kept-alive connections pooled per push-service
origin (pushhttp.py). The VAPID JWT is signed once per push-service origin and reused
until shortly before it expires. The key pair is made once per deployment and kept in
the database, so every replica signs with the key the apps subscribed with.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import time
from urllib.parse import urlsplit

import asyncpg
import py_vapid
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.delivery import ece, pushhttp
from geo import sql

log = logging.getLogger(__name__)
_Q = sql.load("gateway.delivery")

# RFC 8291 leaves 4096 - 86 (header) - 16 (tag) - 1 (padding delimiter) bytes for us.
MAX_PAYLOAD = 3993
JWT_LIFETIME = 12 * 3600
# Re-sign this long before the JWT expires, so a push never carries a stale one.
JWT_MARGIN = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SubscriptionInvalid(ValueError):
    """A PushSubscription whose keys cannot be used; the message says which and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_subscription(endpoint: str, p256dh: str, auth: str, *, allow_http: bool) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise SubscriptionInvalid("endpoint", "the push endpoint must be an https URL")
    if not parts.hostname:
        raise SubscriptionInvalid("endpoint", "the push endpoint has no host")
    try:
        key = b64url_decode(p256dh)
    except (binascii.Error, ValueError):
        raise SubscriptionInvalid("keys.p256dh", "not base64url") from None
    if len(key) != 65 or key[0] != 4:
        raise SubscriptionInvalid(
            "keys.p256dh", "must be an uncompressed P-256 point (65 bytes, starting 0x04)"
        )
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    except ValueError:
        raise SubscriptionInvalid("keys.p256dh", "not a point on the P-256 curve") from None
    try:
        secret = b64url_decode(auth)
    except (binascii.Error, ValueError):
        raise SubscriptionInvalid("keys.auth", "not base64url") from None
    if len(secret) != 16:
        raise SubscriptionInvalid("keys.auth", "the auth secret must be 16 bytes")


async def add_subscription(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    endpoint: str,
    p256dh: str,
    auth: str,
) -> tuple[int, bool]:
    """Register (or refresh the keys of) a shopper's subscription: its id, and whether it is new."""
    row = await conn.fetchrow(
        _Q["add_subscription"], merchant_id, shopper_id, endpoint, p256dh, auth
    )
    assert row is not None
    return int(row["id"]), bool(row["created"])


async def remove_subscription(conn: asyncpg.Connection, shopper_id: int, endpoint: str) -> bool:
    """Drop a shopper's subscription; False when there was none."""
    return await conn.fetchval(_Q["remove_subscription"], shopper_id, endpoint) is not None


@dataclasses.dataclass(frozen=True, slots=True)
class VapidKey:
    vapid: py_vapid.Vapid02
    public_key: str  # base64url of the uncompressed point: the app's applicationServerKey

    def __repr__(self) -> str:
        return f"VapidKey(public_key={self.public_key!r})"


def _new_key() -> tuple[str, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return pem, b64url(public)


async def load_key(conn: asyncpg.Connection, configured_pem: str | None = None) -> VapidKey:
    """The deployment's key: configured, else stored, else made now and stored."""
    if configured_pem:
        pem = configured_pem
    else:
        row = await conn.fetchrow(_Q["get_vapid"])
        if row is None:
            new_pem, new_public = _new_key()
            # Two replicas starting at once: one insert wins, both read the winner.
            await conn.execute(_Q["put_vapid"], new_pem, new_public)
            row = await conn.fetchrow(_Q["get_vapid"])
            assert row is not None
        pem = row["private_pem"]
    vapid = py_vapid.Vapid02.from_pem(pem.encode())
    public = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return VapidKey(vapid=vapid, public_key=b64url(public))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    endpoint: str
    p256dh: str
    auth: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    status: int  # 0: no answer (timeout, connection error)
    retry_after: float | None = None
    message: str = ""


class PayloadTooLarge(ValueError):
    pass


class BadSubscription(ValueError):
    """Stored keys that cannot encrypt anything: retrying will not help."""


class Sender:
    def __init__(self, key: VapidKey, *, subject: str, timeout: float = 10.0) -> None:
        self.key = key
        self.subject = subject
        self.timeout = timeout  # seconds for one push: connecting, sending, the answer
        self._client: pushhttp.Client | None = None
        self._jwts: dict[str, tuple[str, float]] = {}
        self.signed = 0
        # Answers by status (0: no answer), for metrics and benchmarks.
        self.answers: dict[int, int] = {}

    async def start(self) -> None:
        self._client = pushhttp.Client(per_origin=64)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    @property
    def connects(self) -> int:
        """Connections opened to push services so far (kept alive and reused)."""
        return self._client.connects if self._client is not None else 0

    def authorization(self, endpoint: str, now: float | None = None) -> str:
        """The VAPID header for the endpoint's origin, signed once per origin and lifetime."""
        # scheme://host[:port], cut without urlsplit: this runs for every push.
        cut = endpoint.find("/", endpoint.find("//") + 2)
        origin = endpoint if cut < 0 else endpoint[:cut]
        now = time.time() if now is None else now
        cached = self._jwts.get(origin)
        if cached is not None and cached[1] - JWT_MARGIN > now:
            return cached[0]
        expires = int(now) + JWT_LIFETIME
        claims = {"aud": origin, "exp": expires, "sub": self.subject}
        header = str(self.key.vapid.sign(claims)["Authorization"])
        self._jwts[origin] = (header, float(expires))
        self.signed += 1
        return header

    @staticmethod
    def recipient(target: Target) -> ece.Recipient:
        try:
            return ece.Recipient(b64url_decode(target.p256dh), b64url_decode(target.auth))
        except (ValueError, binascii.Error) as exc:
            raise BadSubscription(f"p256dh or auth unusable: {exc}") from None

    @staticmethod
    def encrypt(target: Target, payload: bytes) -> bytes:
        """The aes128gcm body for the target (RFC 8291), with a fresh key and salt."""
        if len(payload) > MAX_PAYLOAD:
            raise PayloadTooLarge(f"payload of {len(payload)} bytes; at most {MAX_PAYLOAD}")
        return ece.encrypt(Sender.recipient(target), payload)

    async def send(
        self,
        target: Target,
        payload: bytes,
        *,
        ttl: int,
        urgency: str = "normal",
        topic: str | None = None,
    ) -> Result:
        assert self._client is not None, "start() the sender first"
        body = self.encrypt(target, payload)
        headers: dict[str, str] = {
            "TTL": str(max(0, ttl)),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Urgency": urgency,
            "Authorization": self.authorization(target.endpoint),
        }
        if topic:
            headers["Topic"] = topic
        try:
            answer = await self._client.post(target.endpoint, body, headers, within=self.timeout)
        except TimeoutError:
            self.answers[0] = self.answers.get(0, 0) + 1
            return Result(status=0, message="timed out")
        except (OSError, pushhttp.ProtocolError) as exc:  # ConnectionError is an OSError
            self.answers[0] = self.answers.get(0, 0) + 1
            return Result(status=0, message=f"{type(exc).__name__}: {exc}")
        self.answers[answer.status] = self.answers.get(answer.status, 0) + 1
        return Result(
            status=answer.status,
            retry_after=_retry_after(answer.headers.get("retry-after")),
            message=answer.body[:500].decode(errors="replace"),
        )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


VAPID = web.AppKey("vapid", VapidKey)
