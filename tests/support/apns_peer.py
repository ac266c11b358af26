"""A local HTTP/2 stand-in for APNs, for tests.

It serves HTTP/2 over TLS (hypercorn) and checks what APNs checks for pass updates:
POST to `/3/device/<hex push token>`, HTTP/2, `apns-topic` equal to the expected pass
type id, a JSON body, and a provider JWT (ES256, `kid` and `iss` as configured, `iat`
within the last hour) signed by the configured key. With `client_ca` set it stands in for
certificate auth instead: the TLS handshake requires a client certificate issued by that
CA, and no JWT is needed. Like APNs, it closes a connection now and then (hypercorn's
default of 1000 requests per connection), so clients must reconnect. Faults can be set
per token.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from hypercorn.asyncio import serve
from hypercorn.config import Config

_PATH = re.compile(r"^/3/device/([0-9a-fA-F]{8,200})$")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "apns.crt", directory / "apns.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Push:
    token: str
    topic: str
    http_version: str
    body: bytes


@dataclass
class ApnsStandIn:
    directory: Path
    topic: str
    key_id: str
    team_id: str
    public_key: ec.EllipticCurvePublicKey | None = None
    client_ca: Path | None = None
    pushes: list[Push] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    faults: dict[str, tuple[int, str, int | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cert_path, self.key_path = self_signed(self.directory)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""

    async def start(self, port: int) -> None:
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.certfile = str(self.cert_path)
        config.keyfile = str(self.key_path)
        config.alpn_protocols = ["h2"]
        if self.client_ca is not None:
            config.ca_certs = str(self.client_ca)
            config.verify_mode = ssl.CERT_REQUIRED
        config.accesslog = None
        config.errorlog = None
        self._task = asyncio.create_task(
            serve(self._app, config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]
        )
        self.base_url = f"https://127.0.0.1:{port}"
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def fail(self, token: str, status: int, reason: str, retry_after: int | None = None) -> None:
        self.faults[token] = (status, reason, retry_after)

    def _check_jwt(self, header: str) -> str | None:
        if self.client_ca is not None and not header:
            return None  # certificate auth: the TLS handshake checked the client
        if self.public_key is None:
            return "InvalidProviderToken"
        scheme, _, jwt = header.partition(" ")
        if scheme.lower() != "bearer":
            return "MissingProviderToken"
        try:
            head_b64, claims_b64, sig_b64 = jwt.split(".")
            head, claims = json.loads(_b64d(head_b64)), json.loads(_b64d(claims_b64))
            sig = _b64d(sig_b64)
        except ValueError:
            return "InvalidProviderToken"
        if head.get("alg") != "ES256" or head.get("kid") != self.key_id or len(sig) != 64:
            return "InvalidProviderToken"
        if claims.get("iss") != self.team_id:
            return "InvalidProviderToken"
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            self.public_key.verify(
                der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            return "InvalidProviderToken"
        if not isinstance(claims.get("iat"), int) or time.time() - claims["iat"] > 3600:
            return "ExpiredProviderToken"
        return None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, reason, retry = 200, "", None
        match = _PATH.match(scope["path"])
        if scope["method"] != "POST":
            status, reason = 405, "MethodNotAllowed"
        elif match is None:
            status, reason = 400, "BadPath"
        elif headers.get("apns-topic") != self.topic:
            status, reason = 400, "TopicDisallowed"
        elif (problem := self._check_jwt(headers.get("authorization", ""))) is not None:
            status, reason = 403, problem
        elif body and not isinstance(json.loads(body), dict):
            status, reason = 400, "PayloadEmpty"
        elif match.group(1) in self.faults:
            status, reason, retry = self.faults[match.group(1)]
        token = match.group(1) if match else scope["path"]
        if status == 200:
            self.pushes.append(
                Push(
                    token=token,
                    topic=headers["apns-topic"],
                    http_version=scope["http_version"],
                    body=body,
                )
            )
        else:
            self.refused.append((token, reason))
        out_headers = [(b"apns-id", b"00000000-0000-0000-0000-000000000001")]
        if retry is not None:
            out_headers.append((b"retry-after", str(retry).encode()))
        payload = b"" if status == 200 else json.dumps({"reason": reason}).encode()
        if payload:
            out_headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": payload})
