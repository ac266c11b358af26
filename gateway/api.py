"""The HTTP edge's building blocks: endpoint declarations, body parsing, JSON answers.

Each handler module lists its :class:`Endpoint`s. The app factory mounts them,
the auth middleware enforces their roles, and the OpenAPI document is built
from the same declarations, so what is served and what is documented agree.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import orjson
import pydantic
from aiohttp import web

from gateway import errors
from gateway.auth import Principal, Role

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=pydantic.BaseModel)

PRINCIPAL = web.RequestKey("principal", Principal)

ALL_ROLES = frozenset(Role)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One documented answer of an endpoint."""

    description: str
    model: type[pydantic.BaseModel] | None = None
    # Raw JSON Schema for answers that are not a pydantic model (GeoJSON, CSV...).
    schema: Mapping[str, Any] | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    # None: no token needed. Otherwise the roles allowed to call it.
    roles: frozenset[Role] | None
    body: type[pydantic.BaseModel] | None = None
    replies: Mapping[int, Reply] = field(default_factory=dict)
    # Error statuses this endpoint can answer beyond those implied by auth and body.
    errors: tuple[int, ...] = ()
    description: str = ""
    # Every endpoint that reads the database (including to check a token) can
    # answer 503 while the database is unreachable.
    uses_db: bool = True
    parameters: tuple[Mapping[str, Any], ...] = ()

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    def error_statuses(self) -> list[int]:
        statuses = set(self.errors)
        if self.roles is not None:
            statuses |= {401, 403}
        if self.body is not None:
            statuses |= {400, 413, 415, 422}
        if self.uses_db or self.roles is not None:
            statuses.add(503)
        return sorted(statuses)


class Model(pydantic.BaseModel):
    """Base for request bodies: strict types, unknown fields rejected."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)


class Out(pydantic.BaseModel):
    """Base for documented answers (used for the schema; handlers send plain dicts)."""

    model_config = pydantic.ConfigDict(extra="forbid")


def _json_dumps(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)


def json(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_json_dumps(data), status=status, content_type="application/json", headers=headers
    )


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
    if request.content_type != "application/json":
        raise errors.UnsupportedMediaType(
            f"send the body as application/json, not {request.content_type or 'nothing'}"
        )
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    return parse(raw, model)


def parse(raw: bytes, model: type[M]) -> M:
    if not raw.strip():
        raise errors.InvalidJson("the request body is empty; send a JSON object")
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


def path_id(request: web.Request, name: str = "id") -> int:
    """A numeric id from the path; a malformed one is as absent as a missing one."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise errors.NotFound(f"no such {name.removesuffix('_id') or 'item'}")
    return int(raw)


def ident(value: int | None) -> str | None:
    """Ids are strings in JSON so no client rounds a bigint through a double."""
    return None if value is None else str(value)


def _to_id(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("must be an id: a string of digits")


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
