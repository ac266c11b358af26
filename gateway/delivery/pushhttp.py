"""A small HTTP/1.1 client for push services: POSTs on kept-alive connections, pooled per
origin (scheme, host, port), one request at a time on each connection.

A push is one short POST answered by a status line, a few headers and a short body, and
a fan-out sends thousands a second to the same few origins. aiohttp's client spent more
CPU per request than the message's encryption; this sends pre-built header bytes and
reads the answer in a protocol callback. Answers are parsed with Content-Length or
chunked framing; a connection that says `Connection: close`, breaks a rule, times out
or is cut is dropped, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

MAX_HEAD = 16384
MAX_BODY = 65536


class ProtocolError(Exception):
    """The push service's answer is not HTTP/1.1 we can read."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; the last of repeated headers
    body: bytes


class _Connection(asyncio.Protocol):
    """One kept-alive connection; `request()` may only be called when it is idle."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self.keep_alive = True
        self.answered_bytes = False  # a byte of the current request's answer arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the stream cannot be trusted
            return
        self._buf += data
        self.answered_bytes = True
        try:
            answer = self._parse()
        except ProtocolError as exc:
            self._waiter.set_exception(exc)
            self.close()
            return
        if answer is not None:
            self._waiter.set_result(answer)

    def _parse(self) -> Answer | None:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise ProtocolError("response head too large")
            return None
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError("bad header line")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parsed = _chunked(self._buf, start)
            if parsed is None:
                return None
            body, used = parsed
        else:
            length = headers.get("content-length", "0")
            if not length.isdigit() or int(length) > MAX_BODY:
                raise ProtocolError(f"bad content-length {length[:20]!r}")
            used = start + int(length)
            if len(self._buf) < used:
                return None
            body = bytes(self._buf[start:used])
        if len(self._buf) > used:
            raise ProtocolError("more bytes than one answer")
        self._buf.clear()
        if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            self.keep_alive = False
        return Answer(status=int(code), headers=headers, body=body)

    async def request(self, data: bytes) -> Answer:
        assert self.transport is not None and self._waiter is None
        self.answered_bytes = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def fail(self, exc: BaseException) -> None:
        """End the request in flight with `exc`, and the connection with it."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """(body, end offset) of a complete chunked body starting at `pos`, or None if partial."""
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        if size == 0:
            # Trailers (usually none) end with an empty line.
            end = buf.find(b"\r\n\r\n", eol)
            if end < 0:
                return None
            return bytes(body), end + 4
        start = eol + 2
        if len(buf) < start + size + 2:
            return None
        body += buf[start : start + size]
        if len(body) > MAX_BODY:
            raise ProtocolError("chunked body too large")
        pos = start + size + 2


class Origin:
    """The idle connections to one origin, and the bytes every request to it starts with."""

    def __init__(self, scheme: str, host: str, port: int, limit: int) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        default = 443 if scheme == "https" else 80
        self.host_header = host if port == default else f"{host}:{port}"
        self.idle: deque[_Connection] = deque()
        self.slots = asyncio.Semaphore(limit)


class Client:
    """POST to push services on pooled, kept-alive HTTP/1.1 connections."""

    def __init__(self, *, per_origin: int = 64, ssl_context: ssl.SSLContext | None = None) -> None:
        self.per_origin = per_origin
        self._ssl = ssl_context
        self._origins: dict[tuple[str, str, int], Origin] = {}
        self._by_base: dict[str, Origin] = {}  # "scheme://netloc" -> its origin
        # Requests in flight, checked against their deadlines by one sweeper task: a
        # timer per request would cost more than the rest of the request.
        self._busy: dict[_Connection, float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._tick = 1.0
        self.connects = 0  # connections opened, for tests and benchmarks

    def origin(self, base: str) -> Origin:
        """The pool of `base` ("scheme://host[:port]")."""
        found = self._by_base.get(base)
        if found is not None:
            return found
        parts = urlsplit(base)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, host, port)
        found = self._origins.get(key)
        if found is None:
            found = self._origins[key] = Origin(parts.scheme, host, port, self.per_origin)
        self._by_base[base] = found
        return found

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        within: float = 30.0,
    ) -> Answer:
        """POST `body` to `url`, answered within `within` seconds of getting a connection
        of the pool (give or take a fifth).

        Raises TimeoutError, OSError (ConnectionError) or ProtocolError; the connection
        of a request that failed is closed, not reused.
        """
        start = url.find("//") + 2
        cut = url.find("/", start)
        base, target = (url, "/") if cut < 0 else (url[:cut], url[cut:])
        origin = self.origin(base)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        data = (
            f"POST {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1") + body
        async with origin.slots:
            # Counted from here: waiting for one of our own connections is not the push
            # service's slowness, and a push it timed out might be sent twice.
            deadline = asyncio.get_running_loop().time() + within
            conn, reused = await self._take(origin, within)
            try:
                answer = await self._request(conn, data, deadline, within)
            except ConnectionError:
                conn.close()
                if not reused or conn.answered_bytes:
                    raise
                # The service closed a connection that sat idle (its keep-alive timeout)
                # before reading our request: nothing was delivered, send it once more.
                conn, _ = await self._take(origin, within, fresh=True)
                try:
                    answer = await self._request(conn, data, deadline, within)
                except BaseException:
                    conn.close()
                    raise
            except BaseException:
                conn.close()
                raise
        if conn.keep_alive and not conn.closed:
            origin.idle.append(conn)
        else:
            conn.close()
        return answer

    async def _request(
        self, conn: _Connection, data: bytes, deadline: float, within: float
    ) -> Answer:
        self._busy[conn] = deadline
        if within / 5 < self._tick:
            self._tick = max(0.02, within / 5)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="push-timeouts")
        try:
            return await conn.request(data)
        finally:
            self._busy.pop(conn, None)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._busy:
            await asyncio.sleep(self._tick)
            now = loop.time()
            for conn, deadline in list(self._busy.items()):
                if deadline <= now:
                    conn.fail(TimeoutError("the push service did not answer in time"))

    async def _take(
        self, origin: Origin, within: float, *, fresh: bool = False
    ) -> tuple[_Connection, bool]:
        """An idle connection to the origin (and True), else a new one (and False)."""
        while origin.idle and not fresh:
            conn = origin.idle.pop()
            if not conn.closed:
                return conn, True
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if origin.scheme == "https":
            context = self._ssl or ssl.create_default_context()
        async with asyncio.timeout(within):
            _, conn = await loop.create_connection(
                _Connection, origin.host, origin.port, ssl=context
            )
        self.connects += 1
        return conn, False

    async def close(self) -> None:
        for origin in self._origins.values():
            while origin.idle:
                origin.idle.pop().close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
