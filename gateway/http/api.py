"""The HTTP edge's building blocks: body parsing, JSON answers, ids and principals."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

import orjson
import pydantic
from aiohttp import web

from gateway.accounts.auth import Principal
from gateway.http import errors
from gateway.http.routing import ALL_ROLES, Endpoint, Handler, Reply
from gateway.settings import SETTINGS

__all__ = ["ALL_ROLES", "Endpoint", "Handler", "Reply"]

M = TypeVar("M", bound=pydantic.BaseModel)

# Weather conditions, as pings report them and offers target them.
WEATHER = Literal[
    "clear", "clouds", "rain", "drizzle", "thunderstorm", "snow", "sleet", "hail", "fog", "wind"
]

PRINCIPAL = web.RequestKey("principal", Principal)
# Set by a middleware that adds headers to the answer (CORS): a streamed answer sends its
# headers before the handler returns, so it calls this first (see prepare_stream).
StreamHook = Callable[[web.StreamResponse], None]
BEFORE_STREAM: web.RequestKey[StreamHook] = web.RequestKey("before_stream")


class Model(pydantic.BaseModel):
    """Base for request bodies: strict types, unknown fields rejected."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)


class Out(pydantic.BaseModel):
    """Base for documented answers: the OpenAPI schema, and the JSON sent.

    Handlers build answers with ``model_construct`` (the values are ours, already
    checked: no validation cost, and no coercion that would change the JSON).
    """

    model_config = pydantic.ConfigDict(extra="forbid")


def dumps(data: Any) -> bytes:
    """JSON bytes of a plain value or an answer model."""
    # Plain values first: pydantic's isinstance check costs more than the encoding.
    if not isinstance(data, dict | list) and isinstance(data, pydantic.BaseModel):
        data = data.model_dump(by_alias=True)
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)


def json(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=dumps(data), status=status, content_type="application/json", headers=headers
    )


async def prepare_stream(request: web.Request, response: web.StreamResponse) -> bool:
    """Send a streamed answer's headers; False for HEAD, whose answer ends with them."""
    hook = request.get(BEFORE_STREAM)
    if hook is not None:
        hook(response)
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return False
    return True


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def validation_fields(exc: pydantic.ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        path = _location(tuple(err["loc"]))
        fields.setdefault(path, err["msg"].removeprefix("Value error, "))
    return fields


async def body(request: web.Request, model: type[M]) -> M:
    """The request body parsed and validated as ``model``, or the matching 4xx."""
    raw = await read_body(request, limit=request.app[SETTINGS].max_body_bytes)
    return parse(raw, model)


async def read_body(
    request: web.Request, *, limit: int, media_types: tuple[str, ...] = ("application/json",)
) -> bytes:
    """The raw body of an accepted media type, non-empty and within ``limit`` bytes."""
    # A bare media type, as apps send it, needs no header parsing.
    if (
        request.headers.get("Content-Type") not in media_types
        and request.content_type not in media_types
    ):
        raise errors.UnsupportedMediaType(
            f"send the body as {' or '.join(media_types)}, not {request.content_type or 'nothing'}"
        )
    raw = await read_limited(request, limit)
    if not raw or raw.isspace():
        raise errors.InvalidJson("the request body is empty; send a JSON object")
    if b"u0000" in raw and _NUL_ESCAPE.search(raw):
        # PostgreSQL text cannot hold U+0000: refuse it here, clearly, for every field.
        raise errors.ValidationFailed(
            "text must not contain the NUL character (\\u0000)", fields={"(body)": "NUL"}
        )
    return raw


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refusing with 413 as soon as it grows past ``limit`` bytes."""
    if request.content_length is not None:
        if request.content_length > limit:
            raise errors.PayloadTooLarge(f"the body is larger than the {limit} bytes allowed")
        payload = request.content
        if payload.is_eof():
            # All of it has arrived (a small body comes with its headers): take it as it
            # is, without read()'s loop of awaits and copies.
            raw = payload.read_nowait(-1)
            if len(raw) > limit:  # a compressed body, inflated
                raise errors.PayloadTooLarge(f"the body is larger than the {limit} bytes allowed")
            return raw
        # Declared and within the limit (aiohttp also stops at client_max_size).
        return await request.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"the body is larger than the {limit} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)


# A JSON \u0000 escape that is not itself escaped (an even run of backslashes before it).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def parse(raw: bytes, model: type[M]) -> M:
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        problems = exc.errors(include_url=False)
        if any(p["type"] == "json_invalid" for p in problems):
            detail = problems[0].get("ctx", {}).get("error", "invalid JSON")
            raise errors.InvalidJson(f"the body is not valid JSON: {detail}") from None
        if len(problems) == 1 and problems[0]["type"] == "model_type" and not problems[0]["loc"]:
            raise errors.ValidationFailed(
                "the body must be a JSON object", fields={"(body)": problems[0]["msg"]}
            ) from None
        raise errors.ValidationFailed(
            "the body has invalid fields", fields=validation_fields(exc)
        ) from None


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def require_store(p: Principal, store_id: int) -> None:
    """Refuse a store outside the token's scope."""
    if not p.can_reach_store(store_id):
        raise errors.Forbidden("this token is not scoped to that store", code="out_of_scope")


def require_merchant_wide(p: Principal, what: str) -> None:
    """Refuse a store-scoped token for settings that apply to the whole merchant."""
    if p.store_ids is not None:
        raise errors.Forbidden(
            f"{what} are merchant-wide; use a merchant-wide key", code="out_of_scope"
        )


def as_id(value: object) -> int | None:
    """An id from a JSON value, path or query string: an int or up to 18 ASCII digits.

    ``str.isdigit`` alone also admits digits such as "²" that ``int`` refuses.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def path_id(request: web.Request, name: str = "id") -> int:
    """A numeric id from the path; a malformed one is as absent as a missing one."""
    value = as_id(request.match_info[name])
    if value is None:
        raise errors.NotFound(f"no such {name.removesuffix('_id') or 'item'}")
    return value


def ident(value: int | None) -> str | None:
    """Ids are strings in JSON so no client rounds a bigint through a double."""
    return None if value is None else str(value)


def _to_id(value: Any) -> Any:
    found = as_id(value)
    if found is None:
        raise ValueError("must be an id: a string of digits")
    return found


# Ids travel as strings; a bare JSON integer is accepted too, out of kindness.
Id = Annotated[
    int,
    pydantic.BeforeValidator(_to_id),
    pydantic.WithJsonSchema({"type": "string", "pattern": "^[0-9]{1,18}$", "examples": ["42"]}),
]


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone such as 'Europe/Paris'") from None
    return value


TimeZone = Annotated[
    str,
    pydantic.AfterValidator(_check_timezone),
    pydantic.WithJsonSchema({"type": "string", "examples": ["Europe/Paris"]}),
]
