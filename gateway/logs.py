"""Logging set-up: request ids on every record, secrets scrubbed, text or JSON lines.

Only the CLI entry point calls :func:`configure`; library code just uses
``logging.getLogger(__name__)``. The access log, one line per request, takes a
shorter way to the same stream in the same format (see :class:`AccessLines`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import datetime as dt
import logging
import re
import sys
import threading
import time
from typing import Any

import orjson

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# API tokens, PassKit tokens and URL passwords must never reach a log sink, even
# when a careless message or a library's exception text includes them.
_SCRUB = [
    (re.compile(r"\bgw_[a-z]+_[A-Za-z0-9]+_[A-Za-z0-9_\-]{16,}"), "gw_***"),
    (re.compile(r"(?i)\b(bearer|applepass)\s+[A-Za-z0-9._~+/=\-]+"), r"\1 ***"),
    (re.compile(r"(://[^:/@\s]*:)[^@\s]*@"), r"\1***@"),
]

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
}


def scrub(text: str) -> str:
    # Every text _SCRUB changes contains one of these, and most lines none: substring
    # tests are far cheaper than the substitutions (or one case-blind regex search).
    if "gw_" not in text and "://" not in text:
        lowered = text.lower()
        if "bearer" not in lowered and "applepass" not in lowered:
            return text
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Stamps the current request id on the record and scrubs secrets from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, scrub(value))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


# The current second, formatted once: (second, logging's local asctime, ISO 8601 UTC).
_second: tuple[int, str, str] = (-1, "", "")


def _seconds(whole: int) -> tuple[int, str, str]:
    global _second
    if _second[0] != whole:
        utc = dt.datetime.fromtimestamp(whole, dt.UTC).isoformat()
        _second = (whole, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(whole)), utc)
    return _second


def _asctime(created: float) -> str:
    """logging's default asctime: local time with milliseconds."""
    whole = int(created)
    return f"{_seconds(whole)[1]},{int((created - whole) * 1000):03d}"


def _iso(created: float) -> str:
    """The UTC time as ``datetime.isoformat`` writes it."""
    whole = int(created)
    micro = round((created - whole) * 1_000_000)  # half to even, as datetime rounds
    if micro == 1_000_000:
        whole, micro = whole + 1, 0
    base = _seconds(whole)[2]  # ...T16:22:18+00:00
    return base if not micro else f"{base[:-6]}.{micro:06d}{base[-6:]}"


class TextFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _asctime(record.created) if datefmt is None else super().formatTime(record, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = _extras(record)
        if extras:
            base += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return scrub(base)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return scrub(orjson.dumps(out, default=str).decode())


class AccessLines:
    """The access log: a line per request, in the configured format, written in batches.

    Through ``logging`` a line cost about 25 µs (a LogRecord, the caller's frame, the
    filter's and the formatter's scrubbing, a write and a flush), as much as the bare
    aiohttp handler's whole request. Here it is formatted directly and buffered: lines
    reach the stream at most ``delay`` seconds late, every 256 lines, before any other
    record (so the order holds), and at exit.
    """

    def __init__(self, *, delay: float = 0.2, batch: int = 256) -> None:
        self.handler: logging.StreamHandler[Any] | None = None
        self.json = False
        self._delay = delay
        self._batch = batch
        self._pending: list[str] = []
        self._lock = threading.Lock()

    def add(
        self, logger: str, method: str, path: str, status: int, ms: float, rid: str, remote: str
    ) -> bool:
        """Queue one line; False when logging is not configured here (use ``logging``)."""
        if self.handler is None:
            return False
        created = time.time()
        if self.json:
            line = orjson.dumps(
                {
                    "ts": _iso(created),
                    "level": "INFO",
                    "logger": logger,
                    "msg": f"{method} {path} {status}",
                    "request_id": rid,
                    "ms": ms,
                    "remote": remote,
                }
            ).decode()
        else:
            line = f"{_asctime(created)} INFO {logger} [{rid}] {method} {path} {status} ms={ms}"
            line += f" remote={remote}"
        line = scrub(line) + "\n"
        with self._lock:  # another thread's record may be flushing the queue
            self._pending.append(line)
            queued = len(self._pending)
        if queued == 1:
            try:
                asyncio.get_running_loop().call_later(self._delay, self.flush)
            except RuntimeError:  # no loop: write it now
                self.flush()
        elif queued >= self._batch:
            self.flush()
        return True

    def flush(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
        handler = self.handler
        if not lines or handler is None:
            return
        handler.acquire()
        try:
            handler.stream.write("".join(lines))
            handler.flush()
        finally:
            handler.release()


ACCESS = AccessLines()
atexit.register(ACCESS.flush)


class _Handler(logging.StreamHandler[Any]):
    """The stream handler, writing any queued access lines before its own record."""

    def emit(self, record: logging.LogRecord) -> None:
        if ACCESS._pending:
            ACCESS.flush()
        super().emit(record)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = _Handler(sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    ACCESS.flush()
    ACCESS.handler, ACCESS.json = handler, fmt == "json"
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pgserver narrates every step at INFO; its warnings still come through.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
