"""A local stand-in for Google Wallet's servers, for tests: the OAuth token endpoint and the
Wallet REST API's class and object endpoints, speaking their protocol.

- ``POST /token`` takes the service-account grant (``grant_type`` =
  ``urn:ietf:params:oauth:grant-type:jwt-bearer``) and checks its JWT assertion as Google
  does: RS256 signed by the registered key named in ``kid``, ``iss`` the account's e-mail,
  ``aud`` Google's token endpoint, the ``wallet_object.issuer`` scope, ``iat``/``exp`` at most an
  hour apart and current. It answers an access token valid for an hour.
- ``/walletobjects/v1/{loyaltyClass|offerClass|loyaltyObject|offerObject}``: insert
  (POST; 409 when the id exists, 400 for an id outside the issuer, 404 for an object of
  an unknown class), get, patch (404 when missing) and ``{id}/addMessage``. Without a
  valid bearer token: 401. Errors have Google's JSON shape.
- The notification quota: a patch with ``notifyPreference: NOTIFY_ON_UPDATE`` or a
  ``TEXT_AND_NOTIFY`` message counts against 3 per object in 24 hours; past it the
  request is refused with 429 and reason ``quotaExceeded``, and nothing changes.
- Faults can be queued (``fail``): the next Wallet requests answer them instead.

The signatures are checked with ``cryptography`` directly, not with google-auth, so the
gateway's use of google-auth is checked by an independent reading of the JWTs.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
AUDIENCE = "https://oauth2.googleapis.com/token"
RESOURCES = ("loyaltyClass", "offerClass", "loyaltyObject", "offerObject")
QUOTA = 3
DAY = 24 * 3600.0


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_rs256(token: str, public_key: rsa.RSAPublicKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of an RS256 JWT whose signature the key verifies; ValueError if not."""
    try:
        head, body, sig = token.split(".")
        header, claims = json.loads(_b64d(head)), json.loads(_b64d(body))
    except ValueError as exc:
        raise ValueError(f"not a JWT: {exc}") from None
    if header.get("alg") != "RS256":
        raise ValueError(f"alg is {header.get('alg')!r}, not RS256")
    try:
        public_key.verify(
            _b64d(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise ValueError("bad signature") from None
    return header, claims


def public_key_of(info: dict[str, str]) -> rsa.RSAPublicKey:
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key()


@dataclass
class Call:
    method: str
    resource: str
    object_id: str | None
    body: dict[str, Any] | None
    status: int
    notified: bool = False


@dataclass
class GoogleStandIn:
    issuer_id: str
    accounts: dict[str, tuple[str, rsa.RSAPublicKey]] = field(default_factory=dict)  # kid ->
    calls: list[Call] = field(default_factory=list)
    stored: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {r: {} for r in RESOURCES}
    )
    notifications: dict[str, list[float]] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    issued: list[str] = field(default_factory=list)  # every access token ever issued
    token_requests: int = 0
    faults: list[tuple[int, str, int | None]] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    def register(self, info: dict[str, str]) -> None:
        """Accept this service account's key, as Google knows the issuer's accounts."""
        self.accounts[info["private_key_id"]] = (info["client_email"], public_key_of(info))

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def wallet_url(self) -> str:
        return f"{self.base_url}/walletobjects/v1"

    def fail(self, status: int, reason: str, *, times: int = 1, retry_after: int | None = None):
        self.faults.extend([(status, reason, retry_after)] * times)

    def revoke_tokens(self) -> None:
        """Every access token issued so far is refused from now on."""
        self.tokens.clear()

    def writes(self, resource: str) -> list[Call]:
        return [c for c in self.calls if c.resource == resource and c.method != "GET"]

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_route("*", "/walletobjects/v1/{resource}", self._wallet)
        app.router.add_route("*", "/walletobjects/v1/{resource}/{object_id}", self._wallet)
        app.router.add_post("/walletobjects/v1/{resource}/{object_id}/addMessage", self._message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.base_url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- OAuth ---------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != GRANT:
            return _oauth_error("unsupported_grant_type", "expected the JWT bearer grant")
        try:
            self._check_assertion(str(form.get("assertion", "")))
        except ValueError as exc:
            return _oauth_error("invalid_grant", str(exc))
        token = "ya29." + secrets.token_urlsafe(32)
        self.tokens[token] = time.time() + 3600
        self.issued.append(token)
        return web.json_response(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        )

    def _check_assertion(self, assertion: str) -> None:
        head = json.loads(_b64d(assertion.split(".")[0])) if assertion.count(".") == 2 else {}
        known = self.accounts.get(str(head.get("kid")))
        if known is None:
            raise ValueError("Invalid JWT Signature: unknown key id")
        email, key = known
        _, claims = verify_rs256(assertion, key)
        now = time.time()
        if claims.get("iss") != email:
            raise ValueError("iss is not the service account")
        # Google's token endpoint wants its own address as the audience, wherever the
        # request is sent (google-auth signs it so whatever the token_uri).
        if claims.get("aud") != AUDIENCE:
            raise ValueError(f"aud is {claims.get('aud')!r}, not {AUDIENCE}")
        if SCOPE not in str(claims.get("scope", "")).split():
            raise ValueError("the wallet_object.issuer scope is missing")
        iat, exp = float(claims.get("iat", 0)), float(claims.get("exp", 0))
        if not (iat - 300 <= now < exp) or exp - iat > 3600:
            raise ValueError("Invalid JWT: Token must be a short-lived token (60 minutes)")

    # -- Wallet objects --------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        expiry = self.tokens.get(header.removeprefix("Bearer "))
        return header.startswith("Bearer ") and expiry is not None and expiry > time.time()

    def _gate(self, request: web.Request, call: Call) -> web.Response | None:
        self.calls.append(call)
        if not self._authorised(request):
            call.status = 401
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if call.resource not in RESOURCES:
            call.status = 404
            return _error(404, "notFound", f"no resource {call.resource}")
        if self.faults:
            status, reason, retry_after = self.faults.pop(0)
            call.status = status
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            return _error(status, reason, "injected fault", headers=headers)
        return None

    async def _wallet(self, request: web.Request) -> web.Response:
        resource = request.match_info["resource"]
        object_id = request.match_info.get("object_id")
        body = await request.json() if request.can_read_body else None
        call = Call(request.method, resource, object_id, body, 200)
        refused = self._gate(request, call)
        if refused is not None:
            return refused
        table = self.stored[resource]
        if request.method == "POST" and object_id is None:
            return self._insert(call, table, body or {})
        if object_id is None or object_id not in table:
            call.status = 404
            return _error(404, "resourceNotFound", f"{resource} {object_id} not found")
        if request.method == "GET":
            return web.json_response(table[object_id])
        if request.method in ("PATCH", "PUT"):
            return self._patch(call, table, body or {})
        call.status = 405
        return _error(405, "methodNotAllowed", request.method)

    def _insert(self, call: Call, table: dict[str, Any], body: dict[str, Any]) -> web.Response:
        object_id = str(body.get("id", ""))
        call.object_id = object_id
        if not object_id.startswith(self.issuer_id + "."):
            call.status = 400
            return _error(400, "invalid", f"id must read {self.issuer_id}.<suffix>")
        if object_id in table:
            call.status = 409
            return _error(409, "duplicate", f"{call.resource} {object_id} already exists")
        if call.resource.endswith("Object"):
            classes = self.stored[call.resource.replace("Object", "Class")]
            if body.get("classId") not in classes:
                call.status = 404
                return _error(404, "classNotFound", f"class {body.get('classId')} not found")
        table[object_id] = dict(body)
        return web.json_response(table[object_id])

    def _spend_quota(self, call: Call, object_id: str) -> web.Response | None:
        now = time.time()
        sent = [t for t in self.notifications.get(object_id, []) if t > now - DAY]
        if len(sent) >= QUOTA:
            call.status = 429
            return _error(429, "quotaExceeded", "QuotaExceededException: 3 notifications a day")
        self.notifications[object_id] = [*sent, now]
        call.notified = True
        return None

    def _patch(self, call: Call, table: dict[str, Any], body: dict[str, Any]) -> web.Response:
        object_id = str(call.object_id)
        if body.get("notifyPreference") == "NOTIFY_ON_UPDATE":
            refused = self._spend_quota(call, object_id)
            if refused is not None:
                return refused
        changes = {k: v for k, v in body.items() if k != "notifyPreference"}
        table[object_id] = {**table[object_id], **changes}
        return web.json_response(table[object_id])

    async def _message(self, request: web.Request) -> web.Response:
        resource, object_id = request.match_info["resource"], request.match_info["object_id"]
        body = await request.json()
        call = Call("ADDMESSAGE", resource, object_id, body, 200)
        refused = self._gate(request, call)
        if refused is not None:
            return refused
        table = self.stored[resource]
        if object_id not in table:
            call.status = 404
            return _error(404, "resourceNotFound", f"{resource} {object_id} not found")
        message = dict(body.get("message") or {})
        if message.get("messageType") == "TEXT_AND_NOTIFY":
            refused = self._spend_quota(call, object_id)
            if refused is not None:
                return refused
        table[object_id] = {
            **table[object_id],
            "messages": [*table[object_id].get("messages", []), message],
        }
        return web.json_response({"resource": table[object_id]})


def _error(
    status: int, reason: str, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    """Google's error shape."""
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }
    return web.json_response(body, status=status, headers=headers)


def _oauth_error(code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=400)
