"""The pages the gateway serves to people besides its JSON API: the console at /console/,
the reference shopper app at /app/, the API reference at /docs and a landing page at /.

They are not API endpoints: no token, and not in the OpenAPI document. Their files are
static, in gateway/console/ (the reference and the landing page in its site/ folder) and
gateway/static/ (the shopper app, its manifest and service worker).
"""

from __future__ import annotations

from aiohttp import web

from gateway.http import assets, errors
from gateway.http.handlers import system
from gateway.settings import SETTINGS

INDEX = "index.html"
DOCS = "site/docs.html"
LANDING = "site/landing.html"


def _bundle() -> assets.Bundle:
    return assets.load(system.version())


def _page(request: web.Request, name: str) -> web.Response:
    bundle = _bundle()
    template = bundle.get(name)
    if template is None:
        raise errors.NotFound(f"{name} is missing from this installation")
    cfg = request.app[SETTINGS]
    body = assets.render(template.text(), assets.page_values(cfg, bundle.version))
    return assets.html_page(body, cfg)


async def landing(request: web.Request) -> web.Response:
    return _page(request, LANDING)


async def docs(request: web.Request) -> web.Response:
    return _page(request, DOCS)


async def console(request: web.Request) -> web.StreamResponse:
    """The console's page at /console/, and its files below it."""
    path = request.match_info["path"]
    if path in ("", INDEX):
        return _page(request, INDEX)
    bundle = _bundle()
    asset = bundle.get(path)
    if asset is None:
        raise errors.NotFound(f"no console file {path!r}")
    versioned = request.query.get("v") == bundle.version
    response = await assets.answer(request, asset, versioned=versioned)
    if asset.content_type == "text/html":
        response.headers["Content-Security-Policy"] = assets.content_security_policy(
            request.app[SETTINGS]
        )
    return response


async def console_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/console/")


async def shopper_app(request: web.Request) -> web.StreamResponse:
    """The shopper app at /app/ and its files below it (the service worker's scope)."""
    path = request.match_info["path"] or INDEX
    bundle = assets.load(system.version(), assets.APP_ROOT)
    asset = bundle.get(path)
    if asset is None:
        raise errors.NotFound(f"no app file {path!r}")
    if path == INDEX:
        body = assets.render(asset.text(), {"v": bundle.version})
        return assets.html_page(
            body, request.app[SETTINGS], policy=assets.APP_CONTENT_SECURITY_POLICY
        )
    versioned = request.query.get("v") == bundle.version
    return await assets.answer(request, asset, versioned=versioned)


async def shopper_app_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/app/")


ROUTES = [
    web.get("/", landing),
    web.get("/docs", docs),
    web.get("/console", console_root),
    web.get("/console/{path:.*}", console),
    web.get("/app", shopper_app_root),
    web.get("/app/{path:.*}", shopper_app),
]
HANDLERS = frozenset(route.handler for route in ROUTES)
