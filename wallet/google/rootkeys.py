"""Google's root signing keys for callbacks: a fixed list, or fetched from Google and cached.

Fetched keys are kept for the `max-age` Google's answer gives (an hour when it gives
none), so callbacks do not wait on Google. When no cached key signed a callback's
intermediate key, Google may have rotated its keys: the list is fetched again, at most
once a minute, so forged callbacks cannot make us fetch on every request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from wallet import errors
from wallet.google import callback

# Google's published root signing keys for Google Wallet callbacks.
GOOGLE_KEYS_URL = "https://pay.google.com/gp/m/issuer/keys"
DEFAULT_MAX_AGE = 3600.0
MIN_REFETCH_SECONDS = 60.0
_MAX_AGE = re.compile(r"max-age=(\d{1,9})")

log = logging.getLogger(__name__)


def fixed_keys(setting: str) -> tuple[callback.RootKey, ...]:
    """The keys of GATEWAY_GOOGLE_ROOT_KEYS: a JSON key list, or the path of a file with one."""
    text = setting if setting.lstrip().startswith("{") else Path(setting).read_text("utf-8")
    return callback.parse_root_keys(text)


class KeyRing:
    """The root keys callbacks are verified with; one per process."""

    def __init__(
        self,
        *,
        url: str = GOOGLE_KEYS_URL,
        fixed: tuple[callback.RootKey, ...] | None = None,
        timeout: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._fixed = fixed
        self._timeout = timeout
        self._monotonic = monotonic
        self._keys: tuple[callback.RootKey, ...] | None = None
        self._fresh_until = 0.0
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def keys(self, *, refetch: bool = False) -> tuple[callback.RootKey, ...]:
        """The current keys: fixed, cached, or fetched now (cache expired, or `refetch` and
        the last fetch is more than a minute old)."""
        if self._fixed is not None:
            return self._fixed
        async with self._lock:
            now = self._monotonic()
            stale = self._keys is None or now >= self._fresh_until
            if refetch and now - self._fetched_at >= MIN_REFETCH_SECONDS:
                stale = True
            if stale:
                await self._fetch(now)
            assert self._keys is not None
            return self._keys

    async def _fetch(self, now: float) -> None:
        self._fetched_at = now
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                answer = await client.get(self._url)
            answer.raise_for_status()
            keys = callback.parse_root_keys(answer.content)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("google root keys not fetched", extra={"error": str(exc)})
            if self._keys is None:
                raise errors.RootKeysUnavailable(
                    "Google's root signing keys could not be fetched; try again later"
                ) from None
            return  # keep what we had until the next try
        self.fetches += 1
        found = _MAX_AGE.search(answer.headers.get("Cache-Control", ""))
        self._keys = keys
        self._fresh_until = now + (float(found[1]) if found else DEFAULT_MAX_AGE)

    async def verify(
        self, body: bytes, *, recipient_id: str, now: dt.datetime
    ) -> callback.CallbackEvent:
        """`callback.verify` with the current keys, and once more with fetched ones when no
        cached root key signed the intermediate key."""
        env = callback.envelope(body)
        try:
            key = callback.intermediate_key(env, await self.keys(), now)
        except errors.SignatureInvalid:
            if self._fixed is not None:
                raise
            key = callback.intermediate_key(env, await self.keys(refetch=True), now)
        return callback.open_message(env, key, recipient_id=recipient_id, now=now)
