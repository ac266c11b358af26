"""The reviewer's NPS card in a real browser: the score with its interval, sample size and
response rate as the API computes them, at desktop and phone widths (screenshots in
tests/artefacts/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from gateway.accounts import tenancy
from offers import surveys
from tests.support import browser as browser_mod
from tests.support.console import Shop
from tests.support.live import Api, LiveGateway
from tests.support.shop import make_settings
from tests.support.surveys import add_survey, sent_invitation
from tests.support.tenants import make_tenant

SCORES = [10, 9, 8, 3, 10]


@pytest.fixture
async def shop(database_url: str, conn: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[Shop]:
    browser_mod.require()
    tenant = await make_tenant(conn, "Alpha Coffee")
    await add_survey(conn, tenant)
    tokens = [tenant.tokens["shopper"]]
    for i in range(len(SCORES) - 1):
        shopper, token = await tenancy.enrol_shopper(
            conn,
            merchant_id=tenant.merchant_id,
            name=f"Shopper {i}",
            email=None,
            marketing_consent=True,
            timezone=None,
        )
        await sent_invitation(
            conn,
            merchant_id=tenant.merchant_id,
            survey_id=tenant.survey_id,
            shopper_id=shopper.id,
            store_id=tenant.store_ids[0],
        )
        tokens.append(token)
    gateway = LiveGateway(make_settings(tmp_path), database_url)
    gateway.start()
    try:
        api = Api(gateway.url)
        for i, (token, score) in enumerate(zip(tokens, SCORES, strict=True)):
            api.ok(
                "POST",
                f"/v1/surveys/{tenant.survey_id}/responses",
                token=token,
                json={"score": score},
                headers={"Idempotency-Key": f"nps-{i}"},
            )
        yield Shop(url=gateway.url, api=api, tenant=tenant)
    finally:
        gateway.stop()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_nps_card_shows_the_score_with_its_interval_and_sample_size(
    shop: Shop, size: str
) -> None:
    expected = surveys.nps(3, 1, 1).as_json()  # 10, 10, 9 | 8 | 3
    with browser_mod.launch(shop.url, size) as b:
        b.signed_in(shop.token("reviewer"), route="#/nps")
        card = b.testid("nps-card")
        b.wait(lambda: b.testid("nps-value").text == "+40.0", what="the NPS")
        assert card.get_attribute("data-responses") == "5"
        assert b.testid("nps-responses").text == "5"
        low, high = expected["interval"]["low"], expected["interval"]["high"]
        shown = card.text.replace("\u2212", "-")
        assert f"95 % interval {low:+.1f} to {high:+.1f}" in shown, shown
        assert "Wald" in shown and "promoters (9" in shown
        # Five invitations were sent, and all five answered.
        assert b.testid("nps-rate").text == "100.0 %"
        [row] = b.testids("nps-store")
        assert row.get_attribute("data-id") == str(shop.tenant.store_ids[0])
        b.settle()
        b.screenshot(f"reviewer-nps-{size}", full=True)
        assert not b.console_errors()
