"""The served OpenAPI document is valid and describes every API route the app mounts (the
pages for people, gateway/http/handlers/pages.py, are not API and stay out of it)."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from gateway import app as app_mod
from gateway.http.handlers import pages
from gateway.settings import Settings
from tests.support.client import ApiClient


async def test_served_document_is_valid_openapi_31(api: ApiClient) -> None:
    r = await api.get("/openapi.json")
    assert r.status == 200
    doc = r.json
    assert doc["openapi"].startswith("3.1")
    validate(doc)


async def test_every_mounted_route_is_documented_and_vice_versa(api: ApiClient) -> None:
    doc = (await api.get("/openapi.json")).json
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    app = app_mod.create_app(Settings(), db_url="postgresql://unused/none")
    mounted = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        assert path, f"route without a path: {route!r}"
        if route.method == "HEAD" or route.handler in pages.HANDLERS:
            continue
        mounted.add((route.method, path))
    assert mounted == documented
    assert not any(path == "/" or path.startswith(("/console", "/docs")) for _, path in documented)


async def test_operations_document_auth_and_errors(api: ApiClient) -> None:
    doc = (await api.get("/openapi.json")).json
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert op["operationId"] and op["summary"], where
            responses = op["responses"]
            assert any(s.startswith("2") for s in responses), where
            if op["security"]:
                assert op["x-roles"], where
                assert {"401", "403"} <= set(responses), where
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= set(responses), where
            for status, reply in responses.items():
                if status.startswith(("4", "5")):
                    schema = reply["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, where
            for name in re.findall(r"{(\w+)}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in op["parameters"])


async def test_checker_rejects_an_undocumented_answer(api: ApiClient) -> None:
    # The response checker is what keeps the document honest; make sure it bites.
    import pytest

    from tests.support.openapi_check import UndocumentedResponse

    with pytest.raises(UndocumentedResponse):
        api.spec.check("GET", "/healthz", 418, "application/json", {"status": "ok"})
    with pytest.raises(UndocumentedResponse):
        api.spec.check("GET", "/healthz", 200, "application/json", {"status": 1})
    with pytest.raises(UndocumentedResponse):
        api.spec.check("GET", "/v1/me", 401, "application/json", {"error": {"code": "x"}})
