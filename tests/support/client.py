"""A test HTTP client that checks every answer against the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import test_utils
from multidict import CIMultiDictProxy

from tests.support.openapi_check import SpecChecker


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def error_code(self) -> str:
        return str(self.json["error"]["code"])


class ApiClient:
    def __init__(self, client: test_utils.TestClient[Any, Any], spec: SpecChecker) -> None:
        self.raw = client
        self.spec = spec

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        check: bool = True,
    ) -> Reply:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if json is not None:
            data = orjson.dumps(json)
            hdrs.setdefault("Content-Type", "application/json")
        async with self.raw.request(method, path, data=data, headers=hdrs) as resp:
            body = await resp.read()
            reply = Reply(status=resp.status, headers=resp.headers, body=body)
        ctype = reply.headers.get("Content-Type", "").split(";")[0].strip()
        if check:
            is_json = ctype in ("application/json", "application/geo+json")
            parsed = orjson.loads(body) if is_json and body else None
            self.spec.check(method, path.split("?")[0], reply.status, ctype, parsed)
        if reply.status >= 400 and ctype == "application/json":
            err = reply.json["error"]
            assert set(err) >= {"code", "message", "fields"}, err
        return reply

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Reply:
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Reply:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)
