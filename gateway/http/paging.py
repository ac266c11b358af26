"""Query-string helpers shared by the list endpoints: page size, cursor and ids."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.http import api, errors

# The OpenAPI parameters of every cursor-paged list.
PAGING: tuple[Mapping[str, Any], ...] = (
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}},
    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
)


def limit(request: web.Request, default: int, most: int) -> int:
    """The page size asked for with ?limit=, from 1 to ``most``."""
    raw = request.query.get("limit")
    if raw is None:
        return default
    value = api.as_id(raw)
    if value is None or not 1 <= value <= most:
        raise errors.ValidationFailed(
            "bad query parameter", fields={"limit": f"must be an integer from 1 to {most}"}
        )
    return value


def query_id(request: web.Request, name: str, problem: str) -> int | None:
    """An id from the query string, or None when absent; ``problem`` says what it should be."""
    raw = request.query.get(name)
    if raw is None:
        return None
    value = api.as_id(raw)
    if value is None:
        raise errors.ValidationFailed("bad query parameter", fields={name: problem})
    return value


def cursor(request: web.Request) -> int:
    """The id to list after (?cursor=), 0 for the first page."""
    return query_id(request, "cursor", "not a cursor") or 0


def next_cursor(ids: list[str], page_size: int) -> str | None:
    """The cursor of the next page: the last id when the page is full."""
    return ids[-1] if len(ids) == page_size else None
