"""Apple's PassKit web service, exactly as devices call it, under `<base>/wallet`.

Devices authenticate with `Authorization: ApplePass <authenticationToken>` of the pass
(compared in constant time). The device-listing endpoint carries no token, as in
Apple's protocol. Update tags are microseconds since the epoch, as strings.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from typing import Annotated

import pydantic
from aiohttp import web

from gateway import db
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors
from gateway.http.api import Endpoint, Reply
from gateway.http.handlers import passes
from wallet.store import passes as pass_store
from wallet.store import saves

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_device_log = logging.getLogger("gateway.passkit")


def _tag(at: dt.datetime) -> str:
    return str((at - EPOCH) // dt.timedelta(microseconds=1))


def _since(raw: str | None) -> dt.datetime | None:
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 20:
        return None  # no tag, or not one of ours: everything
    return EPOCH + dt.timedelta(microseconds=int(raw))


async def _authenticated(request: web.Request) -> pass_store.PassRecord:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    async with db.acquire(request.app[POOL]) as conn:
        found = await pass_store.pass_by_serial(
            conn, request.match_info["pass_type_id"], request.match_info["serial"]
        )
    # One answer for a wrong token and an unknown pass: nothing to probe serials with.
    expected = found.auth_token if found is not None else "-" * 32
    if scheme != "ApplePass" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise errors.Unauthorized("the ApplePass token does not match this pass")
    assert found is not None
    return found


class RegistrationIn(api.Model):
    pushToken: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)]


async def register(request: web.Request) -> web.Response:
    found = await _authenticated(request)
    req = await api.body(request, RegistrationIn)
    # A registered device holds the pass: it is saved to Apple Wallet (the funnel counts it).
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        created = await pass_store.register_device(
            conn, request.match_info["device_id"], found.id, req.pushToken
        )
        await saves.apple_registrations_changed(conn, found.id, request.app[CLOCK].now())
    return web.Response(status=201 if created else 200)


async def unregister(request: web.Request) -> web.Response:
    found = await _authenticated(request)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        await pass_store.unregister_device(conn, request.match_info["device_id"], found.id)
        await saves.apple_registrations_changed(conn, found.id, request.app[CLOCK].now())
    return web.Response(status=200)


class SerialsOut(api.Out):
    serialNumbers: list[str]
    lastUpdated: str


async def updated_passes(request: web.Request) -> web.Response:
    since = _since(request.query.get("passesUpdatedSince"))
    async with db.acquire(request.app[POOL]) as conn:
        held = await pass_store.device_passes(
            conn, request.match_info["device_id"], request.match_info["pass_type_id"]
        )
    changed = [(serial, at) for serial, at in held if since is None or at > since]
    if not changed:
        return web.Response(status=204)
    return api.json(
        {
            "serialNumbers": sorted(serial for serial, _ in changed),
            "lastUpdated": _tag(max(at for _, at in changed)),
        }
    )


async def latest_pass(request: web.Request) -> web.Response:
    found = await _authenticated(request)
    if found.kind == "coupon" and found.coupon_id is not None:
        return await passes.render_coupon(
            request, found.merchant_id, found.shopper_id, found.coupon_id
        )
    return await passes.render_loyalty(request, found.merchant_id, found.shopper_id, ensure=False)


class LogIn(api.Model):
    logs: Annotated[
        list[Annotated[str, pydantic.StringConstraints(max_length=2000)]],
        pydantic.Field(max_length=100),
    ]


async def device_log(request: web.Request) -> web.Response:
    req = await api.body(request, LogIn)
    for line in req.logs:
        _device_log.warning("device log", extra={"message_": line})
    return web.Response(status=200)


_DEVICE = "/wallet/v1/devices/{device_id}/registrations/{pass_type_id}"
_AUTH_NOTE = "Authenticated with `Authorization: ApplePass <authenticationToken>`."

ENDPOINTS = [
    Endpoint(
        method="POST",
        path=_DEVICE + "/{serial}",
        handler=register,
        tag="passkit",
        summary="PassKit: a device registers for a pass's updates",
        description=_AUTH_NOTE + " 201 for a new registration, 200 when it existed.",
        roles=None,
        body=RegistrationIn,
        replies={
            201: Reply(description="Registered", content_type=""),
            200: Reply(description="Already registered", content_type=""),
        },
        errors=(401,),
    ),
    Endpoint(
        method="DELETE",
        path=_DEVICE + "/{serial}",
        handler=unregister,
        tag="passkit",
        summary="PassKit: a device unregisters from a pass",
        description=_AUTH_NOTE,
        roles=None,
        replies={200: Reply(description="Unregistered", content_type="")},
        errors=(401,),
    ),
    Endpoint(
        method="GET",
        path=_DEVICE,
        handler=updated_passes,
        tag="passkit",
        summary="PassKit: the serial numbers of a device's passes changed since a tag",
        description="Every pass changed after passesUpdatedSince, not only the newest; "
        "lastUpdated is the tag to send next time. 204 when nothing changed.",
        roles=None,
        replies={
            200: Reply(description="Changed passes", model=SerialsOut),
            204: Reply(description="Nothing changed", content_type=""),
        },
        parameters=(
            {
                "name": "passesUpdatedSince",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
            },
        ),
    ),
    Endpoint(
        method="GET",
        path="/wallet/v1/passes/{pass_type_id}/{serial}",
        handler=latest_pass,
        tag="passkit",
        summary="PassKit: the latest version of a pass",
        description=_AUTH_NOTE + " 304 when If-Modified-Since is not older than the pass.",
        roles=None,
        replies={
            200: Reply(
                description="The pass",
                content_type=passes.PKPASS,
                schema={"type": "string", "format": "binary"},
            ),
            304: Reply(description="Not modified", content_type=""),
        },
        errors=(401, 404),
    ),
    Endpoint(
        method="POST",
        path="/wallet/v1/log",
        handler=device_log,
        tag="passkit",
        summary="PassKit: devices report problems with the web service",
        roles=None,
        uses_db=False,
        body=LogIn,
        replies={200: Reply(description="Logged", content_type="")},
    ),
]
