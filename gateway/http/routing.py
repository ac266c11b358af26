"""Endpoint declarations: what each route is, who may call it, and what it answers.

The app factory mounts them, the auth middleware enforces their roles, and the
OpenAPI document is built from them, so what is served and what is documented agree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
from aiohttp import web

from gateway.accounts.auth import Role

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

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
    # Other media types the same status can answer with (content negotiation, ?format=):
    # a model, or a raw schema (CSV).
    alternatives: Mapping[str, type[pydantic.BaseModel] | Mapping[str, Any]] = field(
        default_factory=dict
    )


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
    # For bodies validated by domain code rather than a model (GeoJSON).
    body_schema: Mapping[str, Any] | None = None
    replies: Mapping[int, Reply] = field(default_factory=dict)
    # Error statuses this endpoint can answer beyond those implied by auth and body.
    errors: tuple[int, ...] = ()
    description: str = ""
    # Every endpoint that reads the database (including to check a token) can
    # answer 503 while the database is unreachable.
    uses_db: bool = True
    parameters: tuple[Mapping[str, Any], ...] = ()
    # Bulk imports take bodies up to GATEWAY_MAX_IMPORT_BYTES, not GATEWAY_MAX_BODY_BYTES.
    bulk_body: bool = False

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    def error_statuses(self) -> list[int]:
        statuses = set(self.errors)
        if self.roles is not None:
            statuses |= {401, 403}
        if self.body is not None or self.body_schema is not None:
            statuses |= {400, 413, 415, 422}
        if self.uses_db or self.roles is not None:
            statuses.add(503)
        return sorted(statuses)


MOUNTED = web.AppKey("endpoints", dict[Handler, Endpoint])
