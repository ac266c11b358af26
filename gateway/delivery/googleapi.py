"""A client of the Google Wallet REST API: classes and objects (insert, get, patch) and
``addMessage``, authorised by an OAuth access token for the issuer's service account.

google-auth makes the token: it signs the service-account JWT assertion (RS256, scope
``wallet_object.issuer``) and exchanges it at the token URI; the exchange is blocking, so
it runs in a thread, once per token lifetime. A 401 refreshes the token once and sends
the request again. 429 (other than the notification quota) and 5xx are for the caller
to retry later; the notification quota has its own error, so the caller can go silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from google.auth import exceptions as auth_exceptions
from google.auth.transport import requests as auth_requests
from google.oauth2 import service_account as oauth_service_account

from wallet.google import account

log = logging.getLogger(__name__)

PRODUCTION = "https://walletobjects.googleapis.com/walletobjects/v1"
SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
NOTIFY = "NOTIFY_ON_UPDATE"


class Failure(Exception):
    """Google answered with an error (status 0: no answer)."""

    def __init__(
        self, status: int, message: str, *, reason: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {reason} {message}".strip())
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    @property
    def retry(self) -> bool:
        """Worth another try later: no answer, rate limited, or a server error."""
        return self.status == 0 or self.status == 429 or self.status >= 500


class QuotaExceeded(Failure):
    """The pass has had its 3 notifications in 24 hours: send it again without one."""


def _failure(resp: httpx.Response) -> Failure:
    try:
        error = resp.json().get("error", {})
    except ValueError:
        error = {}
    details = error.get("errors") or [{}]
    reason = str(details[0].get("reason", "") or error.get("status", ""))
    message = str(error.get("message", resp.reason_phrase))[:300]
    retry = resp.headers.get("retry-after", "")
    retry_after = float(retry) if retry.isdigit() else None
    kind = QuotaExceeded if reason == "quotaExceeded" else Failure
    return kind(resp.status_code, message, reason=reason, retry_after=retry_after)


class Tokens:
    """The service account's OAuth access token, refreshed when it expires or is refused."""

    def __init__(self, sa: account.ServiceAccount, token_uri: str | None = None) -> None:
        info = dict(sa.info)
        if token_uri:
            info["token_uri"] = token_uri
        self._credentials = oauth_service_account.Credentials.from_service_account_info(
            info, scopes=[SCOPE]
        )
        self._lock = asyncio.Lock()
        self.refreshed = 0

    async def header(self, *, stale: str | None = None) -> str:
        """``Bearer <token>``; with ``stale`` (a header Google refused), a fresh one."""
        async with self._lock:
            current = self._credentials.token
            refused = stale is not None and stale == f"Bearer {current}"
            if refused or not self._credentials.valid:
                await asyncio.to_thread(self._refresh)
            return f"Bearer {self._credentials.token}"

    def _refresh(self) -> None:
        try:
            self._credentials.refresh(auth_requests.Request())
        except auth_exceptions.TransportError as exc:
            raise Failure(0, f"token endpoint unreachable: {type(exc).__name__}") from None
        except auth_exceptions.RefreshError as exc:
            # Retryable refusals (5xx at the token endpoint) say so; the rest are final.
            status = 503 if getattr(exc, "retryable", False) else 401
            raise Failure(status, f"token refused: {str(exc)[:200]}") from None
        self.refreshed += 1


class Client:
    """One issuer's Wallet REST client, on one HTTP connection pool."""

    def __init__(
        self,
        sa: account.ServiceAccount,
        *,
        base_url: str = PRODUCTION,
        token_uri: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.tokens = Tokens(sa, token_uri)
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, body: Mapping[str, Any] | None) -> httpx.Response:
        auth = await self.tokens.header()
        for refreshed in (False, True):
            try:
                resp = await self._http.request(
                    method, path, json=body, headers={"Authorization": auth}
                )
            except httpx.HTTPError as exc:
                raise Failure(0, type(exc).__name__) from None
            if resp.status_code != 401 or refreshed:
                return resp
            # The token was revoked or expired early: one fresh token, one more try.
            auth = await self.tokens.header(stale=auth)
        raise AssertionError("unreachable")

    async def call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        resp = await self._send(method, path, body)
        if resp.status_code >= 400:
            raise _failure(resp)
        return dict(resp.json()) if resp.content else {}

    async def get(self, resource: str, object_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/{resource}/{object_id}")

    async def insert(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.call("POST", f"/{resource}", body)

    async def patch(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.call("PATCH", f"/{resource}/{body['id']}", body)

    async def add_message(
        self, resource: str, object_id: str, message: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self.call("POST", f"/{resource}/{object_id}/addMessage", {"message": message})

    async def put_class(self, resource: str, body: Mapping[str, Any]) -> None:
        """Insert the class, or patch it when it exists already (409)."""
        try:
            await self.insert(resource, body)
        except Failure as exc:
            if exc.status != 409:
                raise
            await self.patch(resource, body)

    async def put_object(
        self, resource: str, body: Mapping[str, Any], *, notify: bool = False
    ) -> None:
        """Patch the object, or insert it when Google does not have it yet (404: the
        shopper has not saved it). ``notify`` asks Google to notify the shopper."""
        sent = {**body, "notifyPreference": NOTIFY} if notify else dict(body)
        try:
            await self.patch(resource, sent)
        except Failure as exc:
            if exc.status != 404:
                raise
            try:
                await self.insert(resource, body)
            except Failure as raced:
                if raced.status != 409:
                    raise
                await self.patch(resource, sent)
