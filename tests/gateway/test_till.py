"""The till over HTTP: the member barcode on the wallet pass names the shopper, points pay
a bill once per key and never overdraw when tills race, a payment is voided within the
window, and the points report shows issued, spent and outstanding with the liability."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.support.shop import Shop


async def _member(shop: Shop, conn: asyncpg.Connection) -> str:
    """The barcode of the shopper's Apple pass (its serial), as the till scans it."""
    r = await shop.api.get("/v1/passes/loyalty", token=shop.token("shopper"), check=False)
    assert r.status == 200
    serial = await conn.fetchval(
        "SELECT serial FROM passes WHERE shopper_id = $1 AND kind = 'loyalty'",
        shop.tenant.shopper_id,
    )
    return str(serial)


async def _pay(shop: Shop, member: str, amount: float, key: str, **extra: Any) -> Any:
    return await shop.api.post(
        "/v1/till/payments",
        token=shop.token("pos"),
        json={
            "member": member,
            "store_id": str(shop.tenant.store_ids[0]),
            "amount": amount,
            **extra,
        },
        headers={"Idempotency-Key": key},
    )


async def _buy(shop: Shop, member: str, amount: float, key: str) -> Any:
    return await shop.api.post(
        "/v1/purchases",
        token=shop.token("pos"),
        json={"member": member, "store_id": str(shop.tenant.store_ids[0]), "amount": amount},
        headers={"Idempotency-Key": key},
    )


async def test_the_member_barcode_names_the_shopper_for_purchases_and_payments(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    member = await _member(shop, conn)
    r = await _buy(shop, member, 1000, "b1")
    assert (r.status, r.json["shopper_id"], r.json["balance"]) == (
        201,
        str(shop.tenant.shopper_id),
        1000,
    )
    found = await shop.api.get(f"/v1/till/member?code={member}", token=shop.token("pos"))
    assert (found.json["balance"], found.json["value"]) == (1000, "10.00")
    unknown = await _buy(shop, "L0000000000000000000", 5, "b2")
    assert (unknown.status, unknown.error_code) == (404, "unknown_member")
    both = await shop.api.post(
        "/v1/purchases",
        token=shop.token("pos"),
        json={"member": member, "shopper_id": "1", "store_id": "1", "amount": 1},
        headers={"Idempotency-Key": "b3"},
    )
    assert both.status == 422
    # 3.50 at 0.01 a point: 350 points, once per key.
    paid = await _pay(shop, member, 3.5, "p1", order_ref="T-1")
    assert paid.status == 201, paid.body
    assert (paid.json["points"], paid.json["covered"], paid.json["due"]) == (350, "3.50", "0.00")
    assert paid.json["balance"] == 650
    again = await _pay(shop, member, 3.5, "p1", order_ref="T-1")
    assert (again.json["id"], again.headers["Idempotent-Replayed"]) == (paid.json["id"], "true")
    reused = await _pay(shop, member, 9, "p1")
    assert (reused.status, reused.error_code) == (422, "idempotency_key_reused")
    # Partial by default: the balance pays what it can; all-or-nothing on request.
    whole = await _pay(shop, member, 10, "p2", partial=False)
    assert (whole.status, whole.error_code) == (409, "insufficient_points")
    part = await _pay(shop, member, 10, "p3")
    assert (part.json["points"], part.json["covered"], part.json["due"]) == (650, "6.50", "3.50")
    empty = await _pay(shop, member, 1, "p4")
    assert (empty.status, empty.error_code) == (409, "insufficient_points")


async def test_two_tills_racing_never_overdraw(shop: Shop, conn: asyncpg.Connection) -> None:
    member = await _member(shop, conn)
    assert (await _buy(shop, member, 1000, "b1")).status == 201
    replies = await asyncio.gather(
        *(_pay(shop, member, 3, f"race{i}", partial=False) for i in range(10))
    )
    assert sorted(r.status for r in replies) == [201] * 3 + [409] * 7
    sid = shop.tenant.shopper_id
    balance = await conn.fetchval("SELECT points FROM shoppers WHERE id = $1", sid)
    ledger = await conn.fetchval("SELECT sum(points) FROM points_ledger WHERE shopper_id = $1", sid)
    assert balance == ledger == 100
    # Partial payments racing: together they take the balance to zero and no further.
    replies = await asyncio.gather(*(_pay(shop, member, 0.3, f"part{i}") for i in range(6)))
    assert sum(r.json["points"] for r in replies if r.status == 201) == 100
    assert await conn.fetchval("SELECT points FROM shoppers WHERE id = $1", sid) == 0


async def test_a_payment_is_voided_once_within_the_window(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    member = await _member(shop, conn)
    assert (await _buy(shop, member, 500, "b1")).status == 201
    paid = await _pay(shop, member, 2, "p1")
    url = f"/v1/till/payments/{paid.json['id']}/void"
    voids = await asyncio.gather(
        *(
            shop.api.post(url, token=shop.token("pos"), json={"reason": "wrong card"})
            for _ in range(3)
        )
    )
    assert sorted(v.status for v in voids) == [200, 409, 409]
    done = next(v for v in voids if v.status == 200)
    assert (done.json["balance"], done.json["void_reason"]) == (500, "wrong card")
    assert {v.error_code for v in voids if v.status == 409} == {"already_voided"}
    late = await _pay(shop, member, 1, "p2")
    shop.clock.advance(seconds=60 * 60)
    r = await shop.api.post(
        f"/v1/till/payments/{late.json['id']}/void", token=shop.token("manager")
    )
    assert (r.status, r.error_code) == (409, "void_window_closed")
    twice = await shop.api.post(url, token=shop.token("pos"))
    assert (twice.status, twice.error_code) == (409, "already_voided")
    scoped = await _pay(shop, member, 1, "p3")
    r = await shop.api.post(
        f"/v1/till/payments/{scoped.json['id']}/void",
        token=shop.token("pos"),
        data=b"",
    )
    assert r.status == 200


async def test_the_points_report_shows_issued_spent_outstanding_and_liability(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    member = await _member(shop, conn)
    assert (await _buy(shop, member, 1000, "b1")).status == 201
    assert (await _pay(shop, member, 2.5, "p1")).status == 201
    shop.clock.advance(seconds=31 * 86400)
    assert (await _buy(shop, member, 200, "b2")).status == 201
    r = await shop.api.get("/v1/reports/points", token=shop.token("reviewer"))
    assert r.status == 200, r.body
    assert [
        (m["month"], m["issued"], m["spent"], m["outstanding"], m["liability"])
        for m in r.json["months"]
    ] == [("2026-01", 1000, 250, 750, "7.50"), ("2026-02", 200, 0, 950, "9.50")]
    assert r.json["totals"]["liability"] == "9.50"
    window = await shop.api.get("/v1/reports/points?from=2026-02", token=shop.token("reviewer"))
    assert [m["month"] for m in window.json["months"]] == ["2026-02"]
    assert window.json["totals"]["issued"] == 200
    csv = await shop.api.get("/v1/reports/points?format=csv", token=shop.token("reviewer"))
    assert csv.body.decode().splitlines() == [
        "month,issued,spent,expired,outstanding,liability",
        "2026-01,1000,250,0,750,7.50",
        "2026-02,200,0,0,950,9.50",
    ]
    bad = await shop.api.get("/v1/reports/points?from=2026-13", token=shop.token("reviewer"))
    assert bad.status == 422
