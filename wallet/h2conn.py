"""A small HTTP/2 client for many tiny requests to one origin: a pool of TLS connections,
each carrying up to `max_streams` concurrent streams (APNs allows about 1,000), driven
by the h2 state machine in an asyncio protocol.

A request ends in an `Answer` or in one of the `Lost` reasons, so the caller decides what
to resend: `UNPROCESSED` (after the server's GOAWAY named an earlier last stream, so the
server never saw it), `CUT` (the connection closed with no answer: it may have been
processed), `TIMEOUT`, `NO_CONNECTION`. Writes are coalesced: a loop turn's streams go
out in one write.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

_CONFIG = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
)


def _integer(value: int, prefix_bits: int, flags: int) -> bytes:
    """An HPACK integer (RFC 7541, 5.1) with `flags` in the first byte's high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = bytearray([flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: bytes, value: bytes) -> bytes:
    """A header as a literal without indexing (RFC 7541, 6.2.2), no Huffman coding: it
    never touches the dynamic table, so one encoding serves every stream."""
    index = _STATIC_NAMES.get(name)
    head = _integer(index, 4, 0) if index else b"\x00" + _integer(len(name), 7, 0) + name
    return head + _integer(len(value), 7, 0) + value


# Names of the HPACK static table (RFC 7541, Appendix A) a request here uses.
_STATIC_NAMES = {b":authority": 1, b":method": 2, b":path": 4, b":scheme": 6}
_STATIC_NAMES |= {b"content-type": 31, b"authorization": 23}


class BlockEncoder:
    """Stands in for h2's HPACK encoder: a message's headers are a shared block plus one
    last header (a request's :path), so the block is encoded once and a stream costs
    only its last header. Searching
    the dynamic table and Huffman-coding every header was most of a push's CPU."""

    header_table_size = 4096  # h2 sets it from the peer's settings; literals ignore it

    def __init__(self) -> None:
        self._blocks: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        *shared, (name, path) = headers
        key = tuple(shared)
        block = self._blocks.get(key)
        if block is None:
            block = b"".join(_literal(bytes(n), bytes(v)) for n, v in shared)
            if len(self._blocks) > 64:
                self._blocks.clear()
            self._blocks[key] = block
        return block + _literal(bytes(name), bytes(path))


class _H2(h2.connection.H2Connection):
    """h2's connection with two costs taken out of the per-stream path: HPACK (above) and
    counting open streams, which h2 does by walking every stream on each new one."""

    def __init__(self) -> None:
        super().__init__(config=_CONFIG)
        self.encoder = BlockEncoder()  # type: ignore[assignment]
        self.in_flight = 0
        self._opened = 0

    @property
    def open_outbound_streams(self) -> int:
        self._opened += 1
        if self._opened % 256 == 0:
            super().open_outbound_streams  # noqa: B018 - walks and forgets closed streams
        return self.in_flight


class Lost(enum.Enum):
    UNPROCESSED = "GOAWAY"
    CUT = "ConnectionClosed"
    TIMEOUT = "Timeout"
    NO_CONNECTION = "ConnectError"


UNPROCESSED, CUT, TIMEOUT, NO_CONNECTION = Lost


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes = b""


@dataclass(slots=True)
class _Stream:
    future: asyncio.Future[Answer | Lost]
    deadline: float
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


class _Connection(asyncio.Protocol):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.h2 = _H2()
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.streams: dict[int, _Stream] = {}
        self.reserved = 0  # streams promised to callers, sent or about to be
        self.capacity = pool.max_streams
        self.closing = False  # a GOAWAY came, or the connection is gone
        self._flush_soon = False

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.h2.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._abort()
            return
        for event in events:
            self._event(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before its settings"))
        for stream in self.streams.values():
            if not stream.future.done():
                stream.future.set_result(CUT)
        self.streams.clear()
        self.pool.live.discard(self)
        self.pool.forget(self)

    # -- events -----------------------------------------------------------------------

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                for name, value in event.headers or ():
                    if name == b":status":
                        stream.status = int(value)
                    else:
                        stream.headers[bytes(name)] = bytes(value)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None and event.data:
                stream.body += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self._settle(event.stream_id, None)
        elif isinstance(event, h2.events.StreamReset):
            # REFUSED_STREAM means the server did not process it (RFC 9113, 8.7).
            refused = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
            self._settle(event.stream_id, UNPROCESSED if refused else CUT)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            limit = self.h2.remote_settings.max_concurrent_streams
            self.capacity = max(1, min(self.pool.max_streams, limit))
            if not self.ready.done():
                self.ready.set_result(None)
            self.pool.wake(everyone=True)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._goaway(event.last_stream_id or 0)

    def _settle(self, stream_id: int, lost: Lost | None) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        self.h2.in_flight = len(self.streams)
        self.reserved -= 1
        if not stream.future.done():
            answer = Answer(stream.status, stream.headers, bytes(stream.body))
            stream.future.set_result(answer if lost is None else lost)
        if self.closing and not self.streams:
            self._abort()
        else:
            self.pool.wake()

    def _goaway(self, last_stream_id: int) -> None:
        """Streams after the last one the server took were never processed."""
        self.closing = True
        self.pool.forget(self)
        for stream_id in [s for s in self.streams if s > last_stream_id]:
            self._settle(stream_id, UNPROCESSED)
        if not self.streams:
            self._abort()

    def _abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    # -- sending ----------------------------------------------------------------------

    def send(
        self, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> asyncio.Future[Answer | Lost]:
        """Open a stream (the caller reserved it); its answer comes as the future's result."""
        future: asyncio.Future[Answer | Lost] = asyncio.get_running_loop().create_future()
        if self.closing:
            self.reserved -= 1
            future.set_result(UNPROCESSED)
            return future
        try:
            stream_id = self.h2.get_next_available_stream_id()
            self.h2.send_headers(stream_id, [*headers, (b":path", path)], end_stream=not body)
            if body:
                self.h2.send_data(stream_id, body, end_stream=True)
        except h2.exceptions.H2Error:  # the state machine refused: nothing went out
            self.reserved -= 1
            self._abort()
            future.set_result(UNPROCESSED)
            return future
        self.streams[stream_id] = _Stream(future, time.monotonic() + self.pool.timeout)
        self.h2.in_flight = len(self.streams)
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_soon = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def expire(self, now: float) -> None:
        for stream_id in [s for s, st in self.streams.items() if st.deadline < now]:
            with contextlib.suppress(h2.exceptions.H2Error):
                self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            self._settle(stream_id, TIMEOUT)
        self._flush()


class Pool:
    """Up to `connections` HTTP/2 connections to one origin; a request takes a stream on
    the least busy one, opening another while every open one is busy."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        context: ssl.SSLContext,
        connections: int = 8,
        max_streams: int = 1000,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.context = host, port, context
        self.connections = connections
        self.max_streams = max_streams
        self.timeout = timeout
        self._open: list[_Connection] = []  # taking new streams
        self.live: set[_Connection] = set()  # every connection not yet closed
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._reaper: asyncio.Task[None] | None = None
        self.opened = 0

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for conn in list(self.live):
            conn._abort()
        self._open.clear()

    def forget(self, conn: _Connection) -> None:
        """The connection takes no new streams: every waiter looks again."""
        with contextlib.suppress(ValueError):
            self._open.remove(conn)
        self.wake(everyone=True)

    def wake(self, *, everyone: bool = False) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    return

    async def request(
        self, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer | Lost:
        conn = await self._reserve()
        if conn is None:
            return NO_CONNECTION
        try:
            await conn.ready
        except (OSError, ssl.SSLError, ConnectionError):
            conn.reserved -= 1
            return NO_CONNECTION
        return await conn.send(path, headers, body)

    async def _reserve(self) -> _Connection | None:
        """A connection with a free stream (reserved for the caller); waits for one."""
        while True:
            best = min(self._open, key=lambda c: c.reserved, default=None)
            # Spread a burst: another connection once the least busy has some streams.
            if len(self._open) < self.connections and (best is None or best.reserved >= 64):
                best = self._connect()
            if best is not None and best.reserved < best.capacity:
                best.reserved += 1
                return best
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _connect(self) -> _Connection:
        conn = _Connection(self)
        self._open.append(conn)
        self.live.add(conn)
        self.opened += 1
        asyncio.get_running_loop().create_task(self._dial(conn))
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())
        return conn

    async def _dial(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: conn, self.host, self.port, ssl=self.context, server_hostname=self.host
                ),
                self.timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.live.discard(conn)
            self.forget(conn)
            if not conn.ready.done():
                conn.ready.set_exception(ConnectionError(str(exc)))
                conn.ready.exception()  # retrieved: callers may all have gone

    async def _reap(self) -> None:
        """Streams past their deadline end as TIMEOUT (one timer for all of them)."""
        while True:
            await asyncio.sleep(min(1.0, self.timeout / 4))
            now = time.monotonic()
            for conn in list(self.live):
                conn.expire(now)
