"""The gateway serves the console, the API reference and a landing page: HTML under a
Content-Security-Policy with no inline script, versioned static files cached for a year,
nothing outside the console folder, and the vendored libraries with their licences."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import test_utils
from yarl import URL

from gateway import app as app_mod
from gateway.http import assets
from gateway.http.handlers import system
from gateway.settings import Settings, SettingsError
from tests.support.shop import make_settings

CONSOLE = Path(assets.ROOT)
VENDOR = CONSOLE / "vendor"
Client = test_utils.TestClient[Any, Any]
Serve = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Serve:
    @asynccontextmanager
    async def start(**settings: Any) -> AsyncIterator[Client]:
        application = app_mod.create_app(make_settings(tmp_path, **settings), db_url=database_url)
        async with test_utils.TestClient(test_utils.TestServer(application)) as client:
            yield client

    return start


@pytest.fixture
async def client(serve: Serve) -> AsyncIterator[Client]:
    async with serve() as c:
        yield c


def _version() -> str:
    return assets.load(system.version()).version


def _csp(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def _assert_page_headers(headers: Any) -> dict[str, list[str]]:
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    csp = _csp(headers["Content-Security-Policy"])
    assert csp["script-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in headers["Content-Security-Policy"]
    return csp


def _assert_no_inline_script(html: str) -> None:
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert re.search(r"\bsrc=", tag), tag
    assert not re.search(r"\son[a-z]+\s*=", html), "an inline event handler"


async def test_the_console_page_has_its_placeholders_filled_and_a_strict_csp(
    client: Client,
) -> None:
    async with client.get("/console/") as r:
        assert r.status == 200
        csp = _assert_page_headers(r.headers)
        html = await r.text()
    assert "{{" not in html and "}}" not in html
    defaults = Settings()
    assert f'data-tiles="{defaults.map_tiles}"' in html
    assert 'data-attribution="© OpenStreetMap contributors"' in html
    assert "https://tile.openstreetmap.org" in csp["img-src"]
    assert f"?v={_version()}" in html
    _assert_no_inline_script(html)
    async with client.get("/console", allow_redirects=False) as r:
        assert r.status == 308 and r.headers["Location"] == "/console/"


async def test_a_versioned_file_is_immutable_and_an_unversioned_one_is_revalidated(
    client: Client,
) -> None:
    path = "/console/vendor/leaflet/leaflet.js"
    async with client.get(path, params={"v": _version()}) as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.headers["Content-Type"].startswith("text/javascript")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert await r.read() == (VENDOR / "leaflet/leaflet.js").read_bytes()
        etag = r.headers["ETag"]
        assert r.headers["Last-Modified"]
    for params in ({}, {"v": "0.0.0-stale"}):
        async with client.get(path, params=params) as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"
    async with client.get(path, headers={"If-None-Match": etag}) as r:
        assert r.status == 304 and await r.read() == b""
    async with client.get(path, headers={"Accept-Encoding": "gzip"}) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        assert await r.read() == (VENDOR / "leaflet/leaflet.js").read_bytes()
    for name, kind in [
        ("vendor/leaflet/leaflet.css", "text/css"),
        ("vendor/leaflet/images/marker-icon.png", "image/png"),
        ("vendor/leaflet/LICENSE", "text/plain"),
    ]:
        async with client.get(f"/console/{name}") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith(kind), name


@pytest.mark.parametrize(
    "raw",
    [
        "/console/../gateway/app.py",
        "/console/%2e%2e/app.py",
        "/console/..%2fapp.py",
        "/console/vendor/%2e%2e/%2e%2e/http/assets.py",
        "/console/%2e%2e/%2e%2e/pyproject.toml",
        "/console//etc/passwd",
        "/console/%2fetc%2fpasswd",
        "/console/vendor/leaflet/../../../settings.py",
    ],
)
async def test_paths_out_of_the_console_folder_are_refused(client: Client, raw: str) -> None:
    async with client.get(URL(raw, encoded=True)) as r:
        assert r.status == 404, raw
        body = await r.read()
    assert orjson.loads(body)["error"]["code"] == "not_found"
    assert b"import" not in body and b"root:" not in body


async def test_a_missing_file_is_a_json_404(client: Client) -> None:
    async with client.get("/console/no-such-file.js") as r:
        assert r.status == 404
        error = (await r.json())["error"]
    assert error["code"] == "not_found"
    assert set(error) >= {"code", "message", "fields"}


async def test_the_docs_page_renders_the_openapi_document_with_the_vendored_swagger_ui(
    client: Client,
) -> None:
    async with client.get("/docs") as r:
        assert r.status == 200
        _assert_page_headers(r.headers)
        html = await r.text()
    _assert_no_inline_script(html)
    v = _version()
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts == [
        f"/console/vendor/swagger-ui/swagger-ui-bundle.js?v={v}",
        f"/console/site/docs.js?v={v}",
    ]
    assert f'href="/console/vendor/swagger-ui/swagger-ui.css?v={v}"' in html
    assert 'data-spec="/openapi.json"' in html
    for url in [*scripts, f"/console/vendor/swagger-ui/swagger-ui.css?v={v}"]:
        async with client.get(url) as r:
            assert r.status == 200, url
            assert r.headers["Cache-Control"].endswith("immutable"), url
    async with client.get("/console/site/docs.js") as r:
        assert "SwaggerUIBundle" in await r.text()
    async with client.get("/openapi.json") as r:
        paths = (await r.json())["paths"]
    assert not any(p == "/" or p.startswith(("/console", "/docs")) for p in paths)


async def test_the_landing_page_links_the_console_docs_document_and_probes(
    client: Client,
) -> None:
    async with client.get("/") as r:
        assert r.status == 200
        _assert_page_headers(r.headers)
        html = await r.text()
    _assert_no_inline_script(html)
    links = set(re.findall(r'<a[^>]* href="([^"]+)"', html))
    assert links >= {"/console/", "/docs", "/openapi.json", "/healthz", "/readyz"}
    for link in sorted(links):
        async with client.get(link) as r:
            assert r.status == 200, link


async def test_the_tile_setting_reaches_the_page_escaped_and_the_csp(serve: Serve) -> None:
    tiles = 'https://{s}.tiles.example.org/{z}/{x}/{y}.png?key=a&b="x"'
    attribution = "<b>Tiles & co</b>"
    async with (
        serve(map_tiles=tiles, map_attribution=attribution) as client,
        client.get("/console/") as r,
    ):
        csp = _csp(r.headers["Content-Security-Policy"])
        html = await r.text()
    assert (
        'data-tiles="https://{s}.tiles.example.org/{z}/{x}/{y}.png?key=a&amp;b=&quot;x&quot;"'
        in html
    )
    assert 'data-attribution="&lt;b&gt;Tiles &amp; co&lt;/b&gt;"' in html
    assert "<b>" not in html
    assert csp["img-src"] == ["'self'", "data:", "blob:", "https://*.tiles.example.org"]


@pytest.mark.parametrize(
    "tiles",
    [
        "javascript:alert(1)",
        "https://tiles.example.org'; script-src *; x/{z}/{x}/{y}.png",
        "https://a.{s}.example.org/{z}/{x}/{y}.png",
        "tile.openstreetmap.org/{z}/{x}/{y}.png",
    ],
)
def test_a_tile_template_without_a_safe_origin_is_refused(tiles: str) -> None:
    with pytest.raises(SettingsError, match="GATEWAY_MAP_TILES"):
        Settings.from_env({"GATEWAY_MAP_TILES": tiles})


def test_every_vendored_library_is_pinned_with_its_licence_and_version() -> None:
    pinned = [
        line.split()
        for line in (VENDOR / "versions.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    folders = sorted(p.name for p in VENDOR.iterdir() if p.is_dir())
    assert folders == sorted(row[0] for row in pinned)
    for folder, package, version, *files in pinned:
        here = VENDOR / folder
        assert any(p.name.upper().startswith("LICEN") for p in here.iterdir()), folder
        assert (here / "VERSION").read_text().strip() == f"{package}@{version}"
        for name in files:
            assert (here / Path(name).name).exists(), (folder, name)
    contract = [
        "leaflet/leaflet.js",
        "leaflet/leaflet.css",
        "leaflet/images/marker-icon.png",
        "leaflet-geoman/leaflet-geoman.js",
        "leaflet-geoman/leaflet-geoman.css",
        "chartjs/chart.umd.js",
        "swagger-ui/swagger-ui-bundle.js",
        "swagger-ui/swagger-ui.css",
    ]
    assert all((VENDOR / name).is_file() for name in contract)


def test_the_demo_prints_the_console_url_next_to_the_tokens() -> None:
    from gateway.demo import report

    summary = report.Summary(
        tokens={"url": "http://127.0.0.1:8080", "manager": "gw_m", "reviewer": "gw_r"}
    )
    text = report.render_tokens(summary)
    assert "http://127.0.0.1:8080/console/" in text
    assert "http://127.0.0.1:8080/docs" in text
    assert "gw_m" in text and "gw_r" in text
