"""The program-wide rules: a daily offer cap per shopper and quiet hours."""

from __future__ import annotations

from typing import Annotated

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.db import POOL
from gateway.http import api, errors
from gateway.http.api import Endpoint, Reply
from geo import places as geo_places
from offers import store as offers_store
from offers.models import Program

WRITERS = frozenset({Role.ADMIN, Role.MANAGER})
READERS = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})


class QuietHours(api.Model):
    start: Annotated[str, pydantic.StringConstraints(pattern=r"^\d{2}:\d{2}$")]
    end: Annotated[str, pydantic.StringConstraints(pattern=r"^\d{2}:\d{2}$")]


class ProgramIn(api.Model):
    daily_offer_cap: Annotated[int, pydantic.Field(ge=1, le=1000)] | None
    quiet_hours: QuietHours | None


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class ProgramOut(api.Out):
    daily_offer_cap: int | None
    quiet_hours: dict[str, str] | None

    @classmethod
    def of(cls, program: Program) -> ProgramOut:
        quiet = None
        if program.quiet_start != program.quiet_end:
            quiet = {"start": _hhmm(program.quiet_start), "end": _hhmm(program.quiet_end)}
        return cls.model_construct(daily_offer_cap=program.daily_cap, quiet_hours=quiet)


async def get_program(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn:
        program = await offers_store.get_program(conn, p.merchant_id)
    return api.json(ProgramOut.of(program))


async def put_program(request: web.Request) -> web.Response:
    p = api.principal(request)
    api.require_merchant_wide(p, "program rules")
    req = await api.body(request, ProgramIn)
    start = end = 0
    if req.quiet_hours is not None:
        try:
            start, end = geo_places.parse_interval(f"{req.quiet_hours.start}-{req.quiet_hours.end}")
        except ValueError as exc:
            raise errors.ValidationFailed("bad field", fields={"quiet_hours": str(exc)}) from None
        if end == 24 * 60:
            end = 0
    program = Program(daily_cap=req.daily_offer_cap, quiet_start=start, quiet_end=end)
    async with db.acquire(request.app[POOL]) as conn:
        saved = await offers_store.set_program(conn, p.merchant_id, program)
    return api.json(ProgramOut.of(saved))


ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/program",
        handler=get_program,
        tag="offers",
        summary="The program-wide rules: daily offer cap per shopper and quiet hours",
        roles=READERS,
        replies={200: Reply(description="The rules", model=ProgramOut)},
    ),
    Endpoint(
        method="PUT",
        path="/v1/program",
        handler=put_program,
        tag="offers",
        summary="Set the program-wide rules",
        description="daily_offer_cap: at most this many offers to one shopper in any 24 "
        "hours, all offers together (null: no cap). quiet_hours: nothing is sent between "
        "start and end in the shopper's time zone (the store's when the shopper has none); "
        "null: no quiet hours.",
        roles=WRITERS,
        body=ProgramIn,
        replies={200: Reply(description="The rules", model=ProgramOut)},
    ),
]
