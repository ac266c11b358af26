"""The console's static files, read once per process: their answers, ETags, and the version
that busts caches when any of them changes; and the security headers of the HTML pages."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gzip
import hashlib
import html
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from gateway import settings as settings_mod
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent / "console"
# The reference shopper app, served at /app/.
APP_ROOT = Path(__file__).resolve().parent.parent / "static"

# ES modules must come as JavaScript; licence, version and notice files are text.
_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".md": "text/plain",
    ".txt": "text/plain",
    "": "text/plain",
}
_COMPRESSIBLE = ("text/", "application/json", "image/svg+xml")
_TEXT = ("text/", "application/json", "image/svg+xml")

IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"

SECURITY_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(slots=True, kw_only=True)
class Asset:
    """One file under the console folder, as it is answered."""

    body: bytes
    content_type: str
    charset: str | None
    etag: str
    last_modified: dt.datetime
    # Made on first request (most files are never asked for gzipped in a given process).
    _gzipped: bytes | None = field(default=None, repr=False)

    @property
    def compressible(self) -> bool:
        return self.content_type.startswith(_COMPRESSIBLE) and len(self.body) > 1024

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped

    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """Every console file by its path under the folder, and the version of them all."""

    files: Mapping[str, Asset]
    version: str

    def get(self, path: str) -> Asset | None:
        """The file at `path` ("vendor/leaflet/leaflet.js"), or None.

        Only files found under the folder at start are answered: a `..`, an absolute path
        or a symbolic link out of the folder names nothing here.
        """
        return self.files.get(path)


@functools.cache
def load(package_version: str, root: Path = ROOT) -> Bundle:
    """Read the folder once per process; the version is the package's plus a content hash."""
    files: dict[str, Asset] = {}
    digest = hashlib.sha256()
    base = root.resolve()
    for path in sorted(base.rglob("*")) if base.is_dir() else ():
        rel = path.relative_to(base)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if not path.resolve().is_relative_to(base):
            continue
        body = path.read_bytes()
        name = rel.as_posix()
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
        files[name] = _asset(path, body)
    return Bundle(files=files, version=f"{package_version}-{digest.hexdigest()[:10]}")


def _asset(path: Path, body: bytes) -> Asset:
    content_type = _TYPES.get(path.suffix) or (
        mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    mtime = dt.datetime.fromtimestamp(int(path.stat().st_mtime), dt.UTC)
    return Asset(
        body=body,
        content_type=content_type,
        charset="utf-8" if content_type.startswith(_TEXT) else None,
        etag=hashlib.sha256(body).hexdigest()[:20],
        last_modified=mtime,
    )


def render(template: str, values: Mapping[str, str]) -> str:
    """`template` with each `{{name}}` replaced by its value, HTML-escaped."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", html.escape(value, quote=True))
    return template


def page_values(cfg: Settings, version: str) -> dict[str, str]:
    """What an HTML page's placeholders stand for."""
    return {"v": version, "tiles": cfg.map_tiles, "attribution": cfg.map_attribution}


def content_security_policy(cfg: Settings) -> str:
    """No inline script anywhere; images also from the map's tile server."""
    tiles = settings_mod.tile_origin(cfg.map_tiles)
    images = " ".join(s for s in ("'self'", "data:", "blob:", tiles) if s)
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        )
    )


# The shopper app: no inline script either; offer images come from the merchants' https
# sites; its service worker and manifest are its own files.
APP_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: https:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    )
)


def html_page(body: str, cfg: Settings, *, policy: str | None = None) -> web.Response:
    """An HTML page, revalidated on every load, under the pages' CSP (or ``policy``)."""
    response = web.Response(text=body, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = NO_CACHE
    response.headers["Content-Security-Policy"] = policy or content_security_policy(cfg)
    response.headers.update(SECURITY_HEADERS)
    return response


async def answer(request: web.Request, asset: Asset, *, versioned: bool) -> web.Response:
    """The file, or 304 if the client has it; cached for a year when the URL is versioned."""
    headers = {
        "Cache-Control": IMMUTABLE if versioned else NO_CACHE,
        # Weak: the gzipped and the plain answer are the same file.
        "ETag": f'W/"{asset.etag}"',
        "Last-Modified": asset.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        **SECURITY_HEADERS,
    }
    if asset.compressible:
        headers["Vary"] = "Accept-Encoding"
    if _fresh(request, asset):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if asset.compressible and "gzip" in request.headers.get("Accept-Encoding", ""):
        # Compressed once per process and file; off the event loop (the largest is 1.4 MB).
        body = await asyncio.get_running_loop().run_in_executor(None, asset.gzipped)
        headers["Content-Encoding"] = "gzip"
    return web.Response(
        body=body, content_type=asset.content_type, charset=asset.charset, headers=headers
    )


def _fresh(request: web.Request, asset: Asset) -> bool:
    match = request.headers.get("If-None-Match")
    if match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in match.split(",")}
        return f'"{asset.etag}"' in tags or "*" in tags
    since = request.if_modified_since
    return since is not None and asset.last_modified <= since
