"""A local HTTP/2 stand-in for APNs, for tests and benchmarks.

It serves HTTP/2 over TLS (the h2 state machine in an asyncio protocol) and checks what
APNs checks for pass updates: POST to `/3/device/<hex push token>`, HTTP/2, `apns-topic`
equal to the expected pass type id, a JSON body, and a provider JWT (ES256, `kid` and
`iss` as configured, `iat` within the last hour) signed by the configured key; like
APNs, a JWT it has verified once is not verified again. With `client_ca` set it stands
in for certificate auth instead: the TLS handshake requires a client certificate issued
by that CA, and no JWT is needed. It allows `max_streams` concurrent streams per
connection (APNs: about 1,000) and, like APNs, sends a GOAWAY now and then: after
`goaway_after` requests on a connection it answers what it took, names the last stream
it processed, drops the streams after it unprocessed and closes. Faults can be set per
token, for a number of times or for good.

Run alone (in its own process, for the benchmarks), it writes its address to --ready and
its counts to --stats (JSON, rewritten while they change):
python -m tests.support.apns_peer --dir DIR --topic T --key-id K --team-id T
--public-key KEY.pem --port P --ready FILE --stats FILE
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import json
import os
import re
import signal
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from hyperframe.frame import GoAwayFrame

_PATH = re.compile(r"^/3/device/([0-9a-fA-F]{8,200})$")
_CONFIG = h2.config.H2Configuration(
    client_side=False, header_encoding=None, validate_inbound_headers=False
)


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
    wall: float = 0.0


@dataclass
class Fault:
    status: int
    reason: str
    retry_after: int | None
    times: int | None  # None: every time


@dataclass
class ApnsStandIn:
    directory: Path
    topic: str
    key_id: str
    team_id: str
    public_key: ec.EllipticCurvePublicKey | None = None
    client_ca: Path | None = None
    max_streams: int = 1000
    goaway_after: int | None = 1000
    pushes: list[Push] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    faults: dict[str, Fault] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cert_path, self.key_path = self_signed(self.directory)
        self._server: asyncio.Server | None = None
        self._jwts: dict[str, tuple[str | None, int]] = {}
        self.base_url = ""
        self.connections = 0
        self.goaways = 0
        self.dropped = 0  # streams after a GOAWAY's last stream, never processed
        self.new_round()

    def new_round(self) -> None:
        """Start counting a benchmark round's pushes afresh (SIGUSR1 when run alone)."""
        self.round = getattr(self, "round", -1) + 1
        self.round_pushes = 0
        self.round_tokens: set[str] = set()
        self.round_first: float | None = None
        self.round_last: float | None = None

    async def start(self, port: int) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        context.set_alpn_protocols(["h2"])
        if self.client_ca is not None:
            context.load_verify_locations(cafile=str(self.client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), "127.0.0.1", port, ssl=context
        )
        self.base_url = f"https://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def fail(
        self,
        token: str,
        status: int,
        reason: str,
        retry_after: int | None = None,
        *,
        times: int | None = None,
    ) -> None:
        """Answer `token` with this error, `times` times (None: always), then accept it."""
        self.faults[token] = Fault(status, reason, retry_after, times)

    def _check_jwt(self, header: str) -> str | None:
        if self.client_ca is not None and not header:
            return None  # certificate auth: the TLS handshake checked the client
        cached = self._jwts.get(header)
        if cached is None:
            cached = self._verify(header)
            self._jwts[header] = cached
        problem, iat = cached
        if problem is None and time.time() - iat > 3600:
            return "ExpiredProviderToken"
        return problem

    def _verify(self, header: str) -> tuple[str | None, int]:
        if self.public_key is None:
            return "InvalidProviderToken", 0
        scheme, _, jwt = header.partition(" ")
        if scheme.lower() != "bearer":
            return "MissingProviderToken", 0
        try:
            head_b64, claims_b64, sig_b64 = jwt.split(".")
            head, claims = json.loads(_b64d(head_b64)), json.loads(_b64d(claims_b64))
            sig = _b64d(sig_b64)
        except ValueError:
            return "InvalidProviderToken", 0
        if head.get("alg") != "ES256" or head.get("kid") != self.key_id or len(sig) != 64:
            return "InvalidProviderToken", 0
        if claims.get("iss") != self.team_id or not isinstance(claims.get("iat"), int):
            return "InvalidProviderToken", 0
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            self.public_key.verify(
                der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            return "InvalidProviderToken", 0
        return None, claims["iat"]

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        """(status, reason, retry-after) for one request, recording what was taken."""
        status, reason, retry = 200, "", None
        match = _PATH.match(path)
        if method != "POST":
            status, reason = 405, "MethodNotAllowed"
        elif match is None:
            status, reason = 400, "BadPath"
        elif headers.get("apns-topic") != self.topic:
            status, reason = 400, "TopicDisallowed"
        elif (problem := self._check_jwt(headers.get("authorization", ""))) is not None:
            status, reason = 403, problem
        elif not _json_object(body):
            status, reason = 400, "PayloadEmpty"
        elif (fault := self.faults.get(match.group(1))) is not None:
            status, reason, retry = fault.status, fault.reason, fault.retry_after
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[match.group(1)]
        token = match.group(1) if match else path
        if status == 200:
            wall = time.time()
            self.pushes.append(
                Push(
                    token=token, topic=headers["apns-topic"], http_version="2", body=body, wall=wall
                )
            )
            self.round_pushes += 1
            self.round_tokens.add(token)
            self.round_first = self.round_first or wall
            self.round_last = wall
        else:
            self.refused.append((token, reason))
        return status, reason, retry

    def stats(self) -> dict[str, Any]:
        walls = [p.wall for p in self.pushes]
        return {
            "pushes": len(self.pushes),
            "distinct": len({p.token for p in self.pushes}),
            "refused": len(self.refused),
            "first": min(walls, default=None),
            "last": max(walls, default=None),
            "round": self.round,
            "round_pushes": self.round_pushes,
            "round_devices": len(self.round_tokens),
            "round_first": self.round_first,
            "round_last": self.round_last,
            "connections": self.connections,
            "goaways": self.goaways,
            "dropped": self.dropped,
        }


def _json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


class _H2(h2.connection.H2Connection):
    """h2's server connection without counting open streams by walking them all on each
    new one (see wallet.h2conn._H2). Answers keep h2's HPACK encoder, as APNs would
    index them: a client then decodes a 200 from its dynamic table."""

    def __init__(self) -> None:
        super().__init__(config=_CONFIG)
        self.in_flight = 0
        self._opened = 0

    @property
    def open_inbound_streams(self) -> int:
        self._opened += 1
        if self._opened % 256 == 0:
            super().open_inbound_streams  # noqa: B018 - walks and forgets closed streams
        return self.in_flight


class _Connection(asyncio.Protocol):
    def __init__(self, peer: ApnsStandIn) -> None:
        self.peer = peer
        self.h2 = _H2()
        self.transport: asyncio.Transport | None = None
        self.requests: dict[int, tuple[list[tuple[bytes, bytes]], bytearray]] = {}
        self.taken = 0
        self.last: int | None = None  # the last stream processed, once going away

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.peer.connections += 1
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.peer.max_streams},
        )
        self.h2.initiate_connection()
        self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self.requests[event.stream_id] = (list(event.headers or ()), bytearray())
            elif isinstance(event, h2.events.DataReceived):
                got = self.requests.get(event.stream_id)
                if got is not None:
                    got[1].extend(event.data or b"")
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._request(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.requests.pop(event.stream_id, None)
            self.h2.in_flight = len(self.requests)
        out = self.h2.data_to_send()
        if self.last is not None:
            # Everything up to the last stream is answered: say so, and go.
            goaway = GoAwayFrame(stream_id=0, last_stream_id=self.last, error_code=0)
            out += goaway.serialize()
            self.peer.dropped += len(self.requests)
            self.transport.write(out)
            self.transport.close()
            return
        if out:
            self.transport.write(out)

    def _request(self, stream_id: int) -> None:
        got = self.requests.pop(stream_id, None)
        if got is None or self.last is not None:
            if got is not None:
                self.peer.dropped += 1
            return
        raw, body = got
        headers = {k.decode().lower(): v.decode() for k, v in raw}
        status, reason, retry = self.peer.answer(
            headers.get(":method", ""), headers.get(":path", ""), headers, bytes(body)
        )
        out = [(b":status", str(status).encode()), (b"apns-id", b"00000000-0000-0000-0000-1")]
        if retry is not None:
            out.append((b"retry-after", str(retry).encode()))
        payload = b"" if status == 200 else json.dumps({"reason": reason}).encode()
        if payload:
            out.append((b"content-type", b"application/json"))
        try:
            self.h2.send_headers(stream_id, out, end_stream=not payload)
            if payload:
                self.h2.send_data(stream_id, payload, end_stream=True)
        except h2.exceptions.StreamClosedError:
            return  # the client gave up on it (reset) meanwhile
        self.taken += 1
        if self.peer.goaway_after is not None and self.taken >= self.peer.goaway_after:
            self.last = stream_id
            self.peer.goaways += 1


async def _serve(args: argparse.Namespace) -> None:
    public = serialization.load_pem_public_key(Path(args.public_key).read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    peer = ApnsStandIn(
        directory=Path(args.dir),
        topic=args.topic,
        key_id=args.key_id,
        team_id=args.team_id,
        public_key=public,
    )
    await peer.start(args.port)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, peer.new_round)
    Path(args.ready).write_text(
        json.dumps({"base_url": peer.base_url, "cert": str(peer.cert_path)})
    )
    written: dict[str, Any] = {}
    while True:
        now = peer.stats()
        if now != written:
            tmp = Path(args.stats + ".tmp")
            tmp.write_text(json.dumps(now))
            os.replace(tmp, args.stats)
            written = now
        await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description="a local APNs stand-in")
    for name in ("dir", "topic", "key-id", "team-id", "public-key", "ready", "stats"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(_serve(args))
    except ImportError:
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
