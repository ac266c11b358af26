"""Reports: the funnel agrees with the logs before and after compaction, uplift against the
holdout, breakdowns, and the logs paged as JSON or streamed as CSV with flat memory."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import tracemalloc
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.http.handlers import reports as rep_handlers
from gateway.jobs import stats as gw_stats
from offers import report, stats
from offers import store as offers_store
from offers.models import REASONS
from tests.support.shop import Shop, enrol


async def _walkers(conn: asyncpg.Connection, shop: Shop, n: int) -> list[str]:
    return [await enrol(conn, shop.tenant, f"w{i}") for i in range(n)]


async def _walk_everyone_in(shop: Shop, tokens: list[str]) -> list[Any]:
    replies = []
    for token in tokens:
        await shop.ping(-400, 0, token=token)
    shop.clock.advance(seconds=20)
    for token in tokens:
        replies.append(await shop.ping(0, 0, token=token))
    return replies


async def _sql_funnel(conn: asyncpg.Connection, offer_id: int) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT count(*) AS eligible, count(*) FILTER (WHERE outcome = 'sent') AS sent, "
        "count(*) FILTER (WHERE reason = 'holdout') AS held, "
        "count(converted_at) FILTER (WHERE outcome = 'sent') AS conv_sent, "
        "count(converted_at) FILTER (WHERE reason = 'holdout') AS conv_held, "
        "(SELECT count(*) FROM redemptions WHERE offer_id = $1 AND voided_at IS NULL) AS redeemed "
        "FROM decisions WHERE offer_id = $1",
        offer_id,
    )
    return dict(row)


class TestFunnel:
    async def test_funnel_and_uplift_agree_with_the_logs(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer(holdout_pct=50)
        tokens = await _walkers(conn, shop, 30)
        replies = await _walk_everyone_in(shop, tokens)
        codes = [r.json["offers"][0]["coupon"]["code"] for r in replies if r.json["offers"]]
        assert 5 < len(codes) < 25  # about half were held out
        # Some of the treated redeem; some held-out shoppers buy anyway (a purchase
        # recorded at the till converts them by the same rule).
        for i, code in enumerate(codes[: len(codes) // 2]):
            assert (await shop.redeem(code, key=f"r{i}")).status == 201
        held = await conn.fetch(
            "SELECT shopper_id FROM decisions WHERE offer_id = $1 AND reason = 'holdout' "
            "ORDER BY shopper_id",
            int(oid),
        )
        for row in held[: len(held) // 3]:
            await offers_store.record_conversion(
                conn,
                merchant_id=shop.tenant.merchant_id,
                shopper_id=row["shopper_id"],
                store_id=shop.tenant.store_ids[0],
                source="purchase",
                amount=None,
                at=shop.clock.now(),
            )
        expected = await _sql_funnel(conn, int(oid))
        for compacted in (False, True):
            if compacted:
                assert (await gw_stats.compact(conn) or 0) > 0
                assert await conn.fetchval("SELECT count(*) FROM offer_stats_delta") == 0
            r = await shop.api.get(f"/v1/reports/offers/{oid}", token=shop.token("reviewer"))
            f = r.json["funnel"]
            # Everyone passed the targeting: every candidate is eligible.
            assert f["candidates"] == f["eligible"] == expected["eligible"] == 30
            assert f["sent"] == expected["sent"] == len(codes)
            assert f["suppressed"]["by_reason"]["holdout"] == expected["held"]
            assert f["redeemed"] == expected["redeemed"] == len(codes) // 2
            assert f["holdout"]["treatment"] == {
                "decisions": expected["sent"],
                "converted": expected["conv_sent"],
            }
            assert f["holdout"]["holdout"] == {
                "decisions": expected["held"],
                "converted": expected["conv_held"],
            }
            want = stats.uplift(
                expected["sent"], expected["conv_sent"], expected["held"], expected["conv_held"]
            )
            assert f["holdout"]["uplift"]["absolute"] == pytest.approx(want.absolute)
            assert f["holdout"]["uplift"]["ci_low"] == pytest.approx(want.ci_low)
            assert f["rates"]["redeemed_of_sent"] == pytest.approx(len(codes) // 2 / len(codes))

    async def test_breakdowns_add_up_and_days_are_store_local(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer()
        tokens = await _walkers(conn, shop, 3)
        await _walk_everyone_in(shop, tokens)
        # 23:50 in Paris on the 12th is still the 12th there (22:50 UTC).
        shop.clock.set(dt.datetime(2026, 1, 12, 22, 50, tzinfo=dt.UTC))
        await shop.api.put(
            "/v1/program",
            token=shop.token("manager"),
            json={"daily_offer_cap": None, "quiet_hours": None},
        )
        late = await _walkers(conn, shop, 2)
        await _walk_everyone_in(shop, late)
        shop.clock.set(dt.datetime(2026, 1, 12, 23, 30, tzinfo=dt.UTC))  # 00:30 on the 13th
        later = await _walkers(conn, shop, 1)
        await _walk_everyone_in(shop, later)
        base = f"/v1/reports/offers/{oid}"
        by_day = await shop.api.get(f"{base}?by=day", token=shop.token("reviewer"))
        assert {g["key"]: g["sent"] for g in by_day.json["breakdown"]} == {
            "2026-01-12": 5,
            "2026-01-13": 1,
        }
        by_store = await shop.api.get(f"{base}?by=store", token=shop.token("reviewer"))
        assert [(g["key"], g["eligible"]) for g in by_store.json["breakdown"]] == [
            (str(shop.tenant.store_ids[0]), 6)
        ]
        one_day = await shop.api.get(
            f"{base}?from=2026-01-13&to=2026-01-13", token=shop.token("reviewer")
        )
        assert one_day.json["funnel"]["sent"] == 1
        bad = await shop.api.get(f"{base}?by=week", token=shop.token("reviewer"))
        assert bad.status == 422
        bad = await shop.api.get(f"{base}?from=yesterday", token=shop.token("reviewer"))
        assert bad.status == 422

    async def test_a_weekend_offer_on_a_weekday_is_a_candidate_but_not_eligible(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        # T0 is a Monday morning in Paris.
        weekend = await shop.offer(schedule={"weekly": {"sat": ["08:00-14:00"]}})
        daily = await shop.offer(name="Every day", priority=-1)
        tokens = await _walkers(conn, shop, 4)
        replies = await _walk_everyone_in(shop, tokens)
        assert all(r.json["offers"] for r in replies)
        reviewer = shop.token("reviewer")
        w = (await shop.api.get(f"/v1/reports/offers/{weekend}", token=reviewer)).json["funnel"]
        assert (w["candidates"], w["eligible"], w["sent"]) == (4, 0, 0)
        assert w["suppressed"]["not_eligible"] == 4
        assert w["suppressed"]["by_reason"]["outside_schedule"] == 4
        d = (await shop.api.get(f"/v1/reports/offers/{daily}", token=reviewer)).json["funnel"]
        assert (d["candidates"], d["eligible"], d["sent"]) == (4, 4, 4)
        assert d["suppressed"]["eligible_not_sent"] == 0

    async def test_compaction_racing_new_events_loses_nothing(
        self, shop: Shop, conn: asyncpg.Connection, database_url: str
    ) -> None:
        oid = await shop.offer()
        fence, store = shop.fence, shop.tenant.store_ids[0]
        sql = (
            "INSERT INTO decisions (merchant_id, offer_id, shopper_id, store_id, geofence_id, "
            "trigger, outcome, reason, decided_at) SELECT $1, $2, $3, $4, $5, 'enter', "
            "'suppressed', 'weather_mismatch', now() FROM generate_series(1, 50)"
        )
        args = (shop.tenant.merchant_id, int(oid), shop.tenant.shopper_id, store, fence)
        writer = await asyncpg.connect(database_url)
        try:

            async def write() -> None:
                for _ in range(40):
                    await writer.execute(sql, *args)

            async def compact() -> None:
                for _ in range(40):
                    await gw_stats.compact(conn)
                    await asyncio.sleep(0)

            await asyncio.gather(write(), compact())
        finally:
            await writer.close()
        r = await shop.api.get(f"/v1/reports/offers/{oid}", token=shop.token("reviewer"))
        assert r.json["funnel"]["candidates"] == 2000
        assert r.json["funnel"]["suppressed"]["by_reason"]["weather_mismatch"] == 2000
        # The weather did not match: none of them was eligible.
        assert r.json["funnel"]["eligible"] == 0


class TestLogs:
    async def test_decision_log_pages_and_filters(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer(holdout_pct=50)
        tokens = await _walkers(conn, shop, 12)
        await _walk_everyone_in(shop, tokens)
        seen: list[dict[str, Any]] = []
        cursor = ""
        while True:
            r = await shop.api.get(
                f"/v1/logs/decisions?offer_id={oid}&limit=5{cursor}", token=shop.token("reviewer")
            )
            seen += r.json["items"]
            if r.json["next_cursor"] is None:
                break
            cursor = f"&cursor={r.json['next_cursor']}"
        assert len(seen) == 12 and len({d["id"] for d in seen}) == 12
        sent = await shop.api.get(
            f"/v1/logs/decisions?offer_id={oid}&outcome=sent", token=shop.token("reviewer")
        )
        assert {d["outcome"] for d in sent.json["items"]} == {"sent"}
        assert len(sent.json["items"]) == sum(d["outcome"] == "sent" for d in seen)
        r = await shop.api.get("/v1/logs/decisions?reason=bored", token=shop.token("reviewer"))
        assert r.status == 422
        r = await shop.api.get("/v1/logs/decisions?from=2026-01-12", token=shop.token("reviewer"))
        assert r.status == 422
        future = "2030-01-01T00:00:00%2B00:00"
        r = await shop.api.get(f"/v1/logs/decisions?from={future}", token=shop.token("reviewer"))
        assert r.json["items"] == []
        csv_reply = await shop.api.get(
            f"/v1/logs/decisions?offer_id={oid}&format=csv", token=shop.token("reviewer")
        )
        rows = list(csv.DictReader(io.StringIO(csv_reply.body.decode())))
        assert [r["id"] for r in rows] == [d["id"] for d in seen]

    async def test_redemption_log_is_scoped_to_the_keys_stores(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        r = await shop.api.get("/v1/logs/redemptions", token=shop.token("reviewer"))
        assert [x["id"] for x in r.json["items"]] == [str(shop.tenant.redemption_id)]
        scoped = shop.token("manager@store0")
        r = await shop.api.get(
            f"/v1/logs/redemptions?store_id={shop.tenant.store_ids[1]}", token=scoped
        )
        assert r.status == 403
        await conn.execute(
            "UPDATE redemptions SET store_id = $1 WHERE id = $2",
            shop.tenant.store_ids[1],
            shop.tenant.redemption_id,
        )
        r = await shop.api.get("/v1/logs/redemptions", token=scoped)
        assert r.json["items"] == []

    async def test_redemption_log_filters_standing_and_voided(self, shop: Shop) -> None:
        rid = str(shop.tenant.redemption_id)
        reviewer = shop.token("reviewer")

        async def ids(status: str) -> tuple[list[str], list[str]]:
            q = f"?status={status}" if status else ""
            page = await shop.api.get(f"/v1/logs/redemptions{q}", token=reviewer)
            sep = "&" if q else "?"
            sheet = await shop.api.get(f"/v1/logs/redemptions{q}{sep}format=csv", token=reviewer)
            rows = csv.DictReader(io.StringIO(sheet.body.decode()))
            return [x["id"] for x in page.json["items"]], [x["id"] for x in rows]

        assert await ids("active") == ([rid], [rid])
        assert await ids("voided") == ([], [])
        r = await shop.api.post(
            f"/v1/redemptions/{rid}/void", token=shop.token("pos"), json={"reason": "test"}
        )
        assert r.status == 200
        assert await ids("active") == ([], [])
        assert await ids("voided") == ([rid], [rid])
        assert await ids("") == ([rid], [rid])
        r = await shop.api.get("/v1/logs/redemptions?status=gone", token=reviewer)
        assert (r.status, r.error_code) == (422, "validation_failed")
        assert "status" in r.json["error"]["fields"]

    async def test_csv_export_of_100k_redemptions_streams_in_flat_memory(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        n = 100_000
        await conn.execute(
            "WITH d AS (INSERT INTO decisions (merchant_id, offer_id, shopper_id, store_id, "
            "  geofence_id, trigger, outcome, decided_at) SELECT $1, $2, $3, $4, 0, 'enter', "
            "  'sent', now() FROM generate_series(1, $5) RETURNING id), "
            "c AS (INSERT INTO coupons (merchant_id, offer_id, shopper_id, decision_id, code, "
            "  store_ids, issued_at, expires_at) SELECT $1, $2, $3, d.id, 'C' || d.id, "
            "  ARRAY[$4::bigint], now(), now() + interval '1 hour' FROM d RETURNING id) "
            "INSERT INTO redemptions (merchant_id, coupon_id, offer_id, shopper_id, store_id, "
            "  order_ref, amount, key_id, idempotency_key, request_hash, redeemed_at) "
            "SELECT $1, c.id, $2, $3, $4, 'order-' || c.id, 4.50, 1, 'bulk-' || c.id, "
            "  '\\x00', now() FROM c",
            shop.tenant.merchant_id,
            shop.tenant.offer_id,
            shop.tenant.shopper_id,
            shop.tenant.store_ids[0],
            n,
        )
        tracemalloc.start()
        try:
            rows = size = 0
            headers = {"Authorization": f"Bearer {shop.token('reviewer')}"}
            async with shop.api.raw.get("/v1/logs/redemptions?format=csv", headers=headers) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/csv")
                tail = b""
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    # Lines end in \r\n; count the \n, which a chunk boundary cannot split.
                    rows += chunk.count(b"\n")
                    tail = (tail + chunk)[-200:]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert rows == n + 2  # the header and the fixture's own redemption
        assert b"order-" in tail
        # Everything held at once would be several times the CSV's size.
        assert size > 5_000_000
        assert peak < size / 4, (peak, size)


def test_the_funnel_definitions_are_quoted_word_for_word() -> None:
    """One set of definitions: the console's report screen, the README and the API's
    description quote offers.report's STAGES, so none of them can drift."""
    root = Path(__file__).resolve().parents[2]
    console = (root / "gateway/console/report.js").read_text(encoding="utf-8")
    readme = " ".join((root / "README.md").read_text(encoding="utf-8").split())
    described = next(e for e in rep_handlers.ENDPOINTS if e.path.startswith("/v1/reports/"))
    for key, label, text in report.STAGES:
        assert f"**{label}**: {text}." in readme, key
        assert text in (described.description or ""), key
        if key not in ("conv_sent", "conv_holdout", "uplift"):
            assert f'["{key}", "{label}", "{text}"]' in console, key
    reasons = (root / "gateway/console/review-ui.js").read_text(encoding="utf-8")
    for code, words in report.REASON_WORDS.items():
        assert f'  {code}: "{words}",' in reasons, code
    listed = reasons.split("export const REASONS = [", 1)[1].split("];", 1)[0]
    assert [c.strip().strip('",') for c in listed.split() if c.strip()] == list(REASONS)
