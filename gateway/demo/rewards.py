"""The demo's points being spent, through the HTTP API: the manager puts a free coffee on
the rewards catalog, regulars buy it in the app, and one pays for a coffee with points at
the till by showing the member barcode of the wallet card."""

from __future__ import annotations

import io
import zipfile
from typing import Any, Protocol

import aiohttp
import orjson

from gateway.demo import report


class Demo(Protocol):
    """What this module uses of gateway.demo.simulation.Demo (which calls it)."""

    http: aiohttp.ClientSession
    base: str
    tokens: dict[str, str]
    stores: list[Any]
    walkers: list[Any]
    summary: report.Summary

    async def call(
        self,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        idempotency: bool = False,
        ok: tuple[int, ...] = (200, 201),
    ) -> tuple[int, Any]: ...


COFFEE_POINTS = 150


async def _member(demo: Demo, token: str) -> str:
    """What the card's barcode says: the Apple pass's serial number."""
    async with demo.http.get(
        demo.base + "/v1/passes/loyalty", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        raw = await r.read()
        if r.status != 200:
            raise RuntimeError(f"GET /v1/passes/loyalty: {r.status}")
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return str(orjson.loads(z.read("pass.json"))["serialNumber"])


async def morning(demo: Demo) -> None:
    """Before the walk: define the coffee, let the regulars buy it, pay once with points."""
    _, coffee = await demo.call(
        "POST",
        "/v1/catalog/rewards",
        demo.tokens["manager"],
        {
            "kind": "free_item",
            "name": "Coffee on us",
            "title": "A coffee on us",
            "body": "Bought with your points: any size, any milk",
            "points": COFFEE_POINTS,
            "stock": 100,
            "per_shopper_limit": 1,
            "store_ids": [s.id for s in demo.stores],
            # The inbox only: the demo runs without the pass pusher.
            "channels": ["inbox"],
            "coupon": {"discount": "Free coffee", "valid_minutes": 60 * 24 * 30},
        },
    )
    buyers = 0
    richest, most = None, 0
    for w in demo.walkers:
        _, shop = await demo.call("GET", "/v1/rewards", w.token)
        balance = shop["balance"]
        if any(i["id"] == coffee["id"] and i["affordable"] for i in shop["items"]):
            _, grant = await demo.call(
                "POST", f"/v1/rewards/{coffee['id']}/redeem", w.token, idempotency=True
            )
            balance = grant["balance"]
            buyers += 1
        if balance > most:
            richest, most = w, balance
    demo.summary.rewards_bought = buyers
    payer = richest
    if payer is not None:
        member = await _member(demo, payer.token)
        status, _ = await demo.call(
            "POST",
            "/v1/till/payments",
            demo.tokens["pos"],
            {"member": member, "store_id": demo.stores[payer.store].id, "amount": 2.8},
            idempotency=True,
            ok=(201, 409),
        )
        demo.summary.points_payments = int(status == 201)


async def points_report(demo: Demo) -> None:
    """After the walk: the points outstanding and the program's liability, as reviewers
    read them."""
    _, points = await demo.call("GET", "/v1/reports/points", demo.tokens["reviewer"])
    demo.summary.points_outstanding = int(points["totals"]["outstanding"])
    demo.summary.points_liability = str(points["totals"]["liability"])
