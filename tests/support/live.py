"""The gateway on a real TCP port for a browser, and a blocking API client for the tests
that drive it.

The app runs in a thread with its own event loop: selenium's calls block, and a server in
the test's own loop would wait for them (a deadlock). The thread's app is the same
``create_app`` the ``gateway serve`` command runs, with the real clock.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway import app as app_mod
from gateway.settings import Settings


class LiveGateway:
    """``create_app`` served on 127.0.0.1:<free port> from a background thread."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self._settings = settings
        self._database_url = database_url
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-gateway", daemon=True)
        self.port = 0
        self.url = ""

    def start(self, timeout: float = 60) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise AssertionError(f"the gateway did not start in {timeout}s")
        if self._error is not None:
            raise AssertionError(f"the gateway did not start: {self._error!r}") from self._error

    def stop(self, timeout: float = 30) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        application = app_mod.create_app(self._settings, db_url=self._database_url)
        runner = web.AppRunner(application, access_log=None)
        try:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert isinstance(server, asyncio.base_events.Server)
            self.port = int(server.sockets[0].getsockname()[1])
            self.url = f"http://127.0.0.1:{self.port}"
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            await runner.cleanup()
            raise
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Api:
    """Blocking calls to the live gateway (usable between selenium's blocking calls)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        hdrs = dict(headers or {})
        data = None
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if json is not None:
            data = orjson.dumps(json)
            hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return Answer(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, dict(exc.headers.items()), exc.read())

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        """The parsed JSON of a 2xx answer (None for 204); anything else fails the test."""
        answer = self.request(method, path, **kw)
        assert 200 <= answer.status < 300, (method, path, answer.status, answer.body[:500])
        return answer.json if answer.body else None

    def items(self, path: str, *, token: str) -> list[Any]:
        """Every item of a cursor-paged listing."""
        out: list[Any] = []
        cursor = None
        while True:
            sep = "&" if "?" in path else "?"
            page = self.ok("GET", path + (f"{sep}cursor={cursor}" if cursor else ""), token=token)
            out.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out
