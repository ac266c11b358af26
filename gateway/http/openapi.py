"""The OpenAPI 3.1 document, built from the same endpoint declarations that are mounted."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic
from pydantic.json_schema import models_json_schema

from gateway.http import api

_PARAM = re.compile(r"{(\w+)}")

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code."},
                "message": {"type": "string", "description": "What went wrong, for people."},
                "fields": {
                    "type": "object",
                    "description": "Per-field problems, keyed by the field's path in the body.",
                    "additionalProperties": {"type": "string"},
                },
                "request_id": {"type": "string"},
                "details": {
                    "type": "object",
                    "description": "Facts about the error beyond its message, when it has "
                    "any: a 410 coupon_expired gives expired_at (RFC 3339).",
                    "additionalProperties": {"type": "string"},
                },
            },
        }
    },
}

_STATUS_TEXT = {
    400: "Malformed request (for example, invalid JSON)",
    401: "Missing, malformed, unknown or revoked token",
    403: "The token's role or scope does not allow this",
    404: "Not found, or not visible to this token",
    405: "Method not allowed",
    409: "Conflicts with the current state",
    410: "Gone (expired)",
    413: "Body larger than the configured limit",
    415: "Body is not application/json",
    422: "Body failed validation; see error.fields",
    429: "Rate limited; see Retry-After",
    503: "Dependency unavailable; see Retry-After",
}


Refs = Mapping[tuple[Any, Any], Any]


def build(
    endpoints: Iterable[api.Endpoint], *, version: str, server_url: str = ""
) -> dict[str, Any]:
    endpoints = list(endpoints)
    refs, schemas = _schemas(endpoints)
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep, refs)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Geo-offer gateway",
            "version": version,
            "description": "Geofenced offers, coupons, Web Push and wallet passes. Every error "
            'is JSON: {"error": {"code", "message", "fields"}}.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token: 'Authorization: Bearer gw_<role>_...'. "
                    "The x-roles list of each operation says which roles may call it.",
                }
            },
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


def _schemas(endpoints: list[api.Endpoint]) -> tuple[Refs, dict[str, Any]]:
    """The $ref of every model the endpoints name, and the components' schemas."""
    models: set[type[pydantic.BaseModel]] = set()
    for ep in endpoints:
        if ep.body is not None:
            models.add(ep.body)
        for reply in ep.replies.values():
            if reply.model is not None:
                models.add(reply.model)
            models.update(m for m in reply.alternatives.values() if isinstance(m, type))
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, defs = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR_SCHEMA
    return refs, schemas


def _operation(ep: api.Endpoint, refs: Refs) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": ep.operation_id,
        "summary": ep.summary,
        "tags": [ep.tag],
        "responses": {},
    }
    if ep.description:
        op["description"] = ep.description
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
        }
        for name in _PARAM.findall(ep.path)
    ]
    params.extend(dict(p) for p in ep.parameters)
    if params:
        op["parameters"] = params
    if ep.roles is None:
        op["security"] = []
    else:
        op["security"] = [{"bearerAuth": []}]
        op["x-roles"] = sorted(r.value for r in ep.roles)
    body = _request_body(ep, refs)
    if body is not None:
        op["requestBody"] = body
    for status, reply in sorted(ep.replies.items()):
        op["responses"][str(status)] = _reply(reply, refs)
    for status in ep.error_statuses():
        op["responses"].setdefault(
            str(status),
            {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        )
    return op


def _request_body(ep: api.Endpoint, refs: Refs) -> dict[str, Any] | None:
    if ep.body is not None:
        return {
            "required": True,
            "content": {"application/json": {"schema": refs[(ep.body, "validation")]}},
        }
    if ep.body_schema is not None:
        raw_schema = dict(ep.body_schema)
        return {
            "required": True,
            "content": {
                "application/geo+json": {"schema": raw_schema},
                "application/json": {"schema": raw_schema},
            },
        }
    return None


def _reply(reply: api.Reply, refs: Refs) -> dict[str, Any]:
    entry: dict[str, Any] = {"description": reply.description}
    if reply.content_type:
        if reply.model is not None:
            schema: Any = refs[(reply.model, "validation")]
        else:
            schema = dict(reply.schema) if reply.schema is not None else {}
        entry["content"] = {reply.content_type: {"schema": schema}}
        for media, alt in reply.alternatives.items():
            entry["content"][media] = {
                "schema": refs[(alt, "validation")] if isinstance(alt, type) else dict(alt)
            }
    if reply.headers:
        entry["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in reply.headers.items()
        }
    return entry
