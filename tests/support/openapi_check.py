"""Checks live answers against the served OpenAPI document.

Every answer the test client sees must be a status the document lists for
that operation, with a body that matches the documented schema. This is what
keeps the document true beyond "every route is listed".
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


class UndocumentedResponse(AssertionError):
    pass


class SpecChecker:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for path in doc["paths"]:
            pattern = "^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(path)) + "$"
            self._routes.append((re.compile(pattern), path))
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource("urn:openapi", resource)

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template in self._routes:
            if pattern.match(path):
                op = self.doc["paths"][template].get(method.lower())
                if op is not None:
                    return template, op
        return None

    def check(self, method: str, path: str, status: int, content_type: str, body: Any) -> None:
        found = self.operation(method, path)
        if found is None:
            # Unrouted paths and methods answer with the generic error shape.
            if status in (404, 405):
                self._validate({"$ref": "urn:openapi#/components/schemas/Error"}, body, path)
                return
            raise UndocumentedResponse(f"{method} {path} is not in the OpenAPI document")
        template, op = found
        reply = op["responses"].get(str(status))
        if reply is None:
            raise UndocumentedResponse(
                f"{method} {template} answered {status}, which is not documented "
                f"(documented: {sorted(op['responses'])})"
            )
        content = reply.get("content")
        if not content:
            return
        media = content.get(content_type)
        if media is None:
            raise UndocumentedResponse(
                f"{method} {template} {status} answered {content_type}, documented {list(content)}"
            )
        if content_type in ("application/json", "application/geo+json"):
            self._validate(self._rebase(media["schema"]), body, f"{method} {template} {status}")

    def _rebase(self, schema: Any) -> Any:
        if isinstance(schema, dict):
            return {
                k: ("urn:openapi" + v if k == "$ref" and v.startswith("#") else self._rebase(v))
                for k, v in schema.items()
            }
        if isinstance(schema, list):
            return [self._rebase(v) for v in schema]
        return schema

    def _validate(self, schema: Any, body: Any, where: str) -> None:
        validator = jsonschema.Draft202012Validator(schema, registry=self._registry)
        problems = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        if problems:
            details = "; ".join(f"{list(p.path)}: {p.message}" for p in problems[:5])
            raise UndocumentedResponse(f"{where}: body does not match the schema: {details}")
