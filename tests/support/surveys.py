"""Surveys for tests: one made through the survey store (the SQL the gateway uses), and a
sent invitation of it, as the survey job would leave it."""

from __future__ import annotations

import asyncpg

from offers import survey_store
from tests.support import offers as test_offers
from tests.support.tenants import Tenant


def survey_values(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "name": "How was your visit?",
        "nps_question": "How likely are you to recommend us?",
        "questions": [
            {
                "id": "speed",
                "kind": "choice",
                "text": "Was the service quick?",
                "choices": ["yes", "no"],
                "required": False,
            }
        ],
        "trigger": "redemption",
        "store_ids": [],
        "delay_minutes": 30,
        "points": 25,
        "status": "active",
        "recovery_offer_id": None,
    }
    values.update(overrides)
    return values


async def create_survey(conn: asyncpg.Connection, merchant_id: int, **overrides: object) -> int:
    offer_id = await test_offers.create_offer(
        conn,
        merchant_id,
        [],
        name="Survey: How was your visit?",
        caps=[{"max": 1, "seconds": 30 * 86400}],
        coupon={"discount": "Survey", "valid_minutes": 10080, "barcode_format": "qr"},
        fire_when_closed=True,
    )
    survey = await survey_store.insert_survey(
        conn, merchant_id, offer_id, survey_values(**overrides)
    )
    return survey.id


async def sent_invitation(
    conn: asyncpg.Connection, *, merchant_id: int, survey_id: int, shopper_id: int, store_id: int
) -> int:
    """A sent invitation, live for a week from the database's now."""
    invitation_id: int = await conn.fetchval(
        "INSERT INTO survey_invitations (merchant_id, survey_id, shopper_id, store_id, source, "
        "triggered_at, due_at, done_at, outcome, expires_at) "
        "VALUES ($1, $2, $3, $4, 'redemption', now(), now(), now(), 'sent', "
        "now() + interval '7 days') RETURNING id",
        merchant_id,
        survey_id,
        shopper_id,
        store_id,
    )
    return invitation_id


async def add_survey(conn: asyncpg.Connection, tenant: Tenant) -> int:
    """A redemption survey of the tenant, its shopper invited to it: ``tenant.survey_id``."""
    assert tenant.shopper_id is not None
    tenant.survey_id = await create_survey(conn, tenant.merchant_id)
    await sent_invitation(
        conn,
        merchant_id=tenant.merchant_id,
        survey_id=tenant.survey_id,
        shopper_id=tenant.shopper_id,
        store_id=tenant.store_ids[0],
    )
    return tenant.survey_id
