"""The push services' HTTP/1.1 client against a raw HTTP server that answers as told: kept-alive
connections are reused, chunked and Content-Length answers are read, and connections that
close, hang or break the protocol are never reused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.delivery import pushhttp

Answerer = Callable[[int, bytes], bytes | None]  # (request number, request) -> reply bytes


class RawServer:
    """Reads whole requests (head and Content-Length body) and writes what `answer` says;
    None closes the connection without a word."""

    def __init__(self, answer: Answerer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                reply = self.answer(len(self.requests), request)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Start = Callable[[Answerer], Awaitable[RawServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Start]:
    servers: list[RawServer] = []

    async def start(answer: Answerer) -> RawServer:
        server = RawServer(answer)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


CREATED = b"HTTP/1.1 201 Created\r\nLocation: /m/1\r\nContent-Length: 0\r\n\r\n"


async def test_connections_are_kept_alive_and_reused(serve: Start) -> None:
    server = await serve(lambda _n, _r: CREATED)
    client = pushhttp.Client(per_origin=4)
    for _ in range(3):  # one after the other: one connection
        answer = await client.post(f"{server.url}/push/a", b"body", {"TTL": "60"})
        assert answer.status == 201 and answer.headers["location"] == "/m/1"
    answers = await asyncio.gather(
        *(client.post(f"{server.url}/push/b", b"x" * 100, {"TTL": "60"}) for _ in range(20))
    )
    assert {a.status for a in answers} == {201}
    assert client.connects == server.connections <= 4  # never more than the pool's size
    assert len(server.requests) == 23
    first = server.requests[0]
    assert first.startswith(b"POST /push/a HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nTTL: 60\r\n" in first and first.endswith(b"Content-Length: 4\r\n\r\nbody")
    await client.close()


async def test_chunked_answers_and_retry_after_are_read(serve: Start) -> None:
    reply = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nslow \r\n5;x=y\r\ndown!\r\n0\r\n\r\n"
    )
    server = await serve(lambda _n, _r: reply)
    client = pushhttp.Client()
    for _ in range(2):
        answer = await client.post(f"{server.url}/p", b"", {})
        assert (answer.status, answer.headers["retry-after"], answer.body) == (
            429,
            "7",
            b"slow down!",
        )
    assert server.connections == 1
    await client.close()


async def test_connection_close_is_honoured(serve: Start) -> None:
    reply = b"HTTP/1.1 410 Gone\r\nConnection: close\r\nContent-Length: 4\r\n\r\ngone"
    server = await serve(lambda _n, _r: reply)
    client = pushhttp.Client()
    for _ in range(2):
        answer = await client.post(f"{server.url}/p", b"", {})
        assert (answer.status, answer.body) == (410, b"gone")
    assert client.connects == 2
    await client.close()


async def test_an_idle_connection_the_service_closed_is_replaced_once(
    serve: Start,
) -> None:
    # The second request arrives on a connection the service then drops unanswered (as
    # when its keep-alive timeout ends): the client sends it once more on a new one.
    server = await serve(lambda n, _r: None if n == 2 else CREATED)
    client = pushhttp.Client()
    assert (await client.post(f"{server.url}/p", b"1", {})).status == 201
    assert (await client.post(f"{server.url}/p", b"2", {})).status == 201
    assert len(server.requests) == 3 and client.connects == 2
    # A fresh connection that is dropped is an error for the caller (who retries later).
    server.answer = lambda _n, _r: None
    with pytest.raises(ConnectionError):
        await client.post(f"{server.url}/p", b"3", {})
    await client.close()


async def test_a_hung_or_garbled_answer_closes_its_connection(
    serve: Start,
) -> None:
    replies = {1: b"", 2: b"HTTP/1.1 20x What\r\n\r\n"}

    def answer(n: int, _r: bytes) -> bytes:
        return replies.get(n, CREATED)

    server = await serve(answer)
    client = pushhttp.Client()
    with pytest.raises(TimeoutError):
        await client.post(f"{server.url}/p", b"", {}, within=0.2)
    with pytest.raises(pushhttp.ProtocolError):
        await client.post(f"{server.url}/p", b"", {})
    assert (await client.post(f"{server.url}/p", b"", {})).status == 201
    assert client.connects == 3  # neither broken connection was reused
    await client.close()
