"""The JSON of Google Wallet classes and objects, as the Wallet REST API and save links
take them.

A class is the shared template: one LoyaltyClass per merchant program and one OfferClass
per offer. An object is one shopper's pass: a LoyaltyObject per shopper and an
OfferObject per coupon, linked to the loyalty card through ``linkedOfferIds``. Ids read
``<issuerId>.<suffix>``. Per-shopper values (points, tier, barcode) live on the object.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Google chooses the radius; it takes at most 10 locations per object.
MAX_LOCATIONS = 10
# New classes wait for Google's review until the issuer's account is approved.
REVIEW_STATUS = "UNDER_REVIEW"

BARCODES = {"qr": "QR_CODE", "pdf417": "PDF_417", "aztec": "AZTEC", "code128": "CODE_128"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    """A merchant's issuer and branding, shared by its classes."""

    issuer_id: str
    merchant_id: int
    issuer_name: str
    program_name: str
    logo_url: str
    background_color: str | None = None


def loyalty_class_id(program: Program) -> str:
    return f"{program.issuer_id}.program-{program.merchant_id}"


def offer_class_id(program: Program, offer_id: int) -> str:
    return f"{program.issuer_id}.offer-{offer_id}"


def new_object_id(program: Program, kind: str) -> str:
    """A fresh, unguessable object id: a shopper's ids say nothing about other shoppers."""
    return f"{program.issuer_id}.{kind}-{uuid.uuid4().hex}"


def _branding(program: Program) -> dict[str, Any]:
    out: dict[str, Any] = {"issuerName": program.issuer_name, "reviewStatus": REVIEW_STATUS}
    if program.background_color:
        out["hexBackgroundColor"] = program.background_color
    return out


def _callbacks(callback_url: str | None) -> dict[str, Any]:
    """Where Google posts the signed save and delete callbacks of the class's objects."""
    return {} if callback_url is None else {"callbackOptions": {"url": callback_url}}


def loyalty_class(program: Program, callback_url: str | None = None) -> dict[str, Any]:
    return {
        "id": loyalty_class_id(program),
        "programName": program.program_name,
        "programLogo": {"sourceUri": {"uri": program.logo_url}},
        "accountIdLabel": "Member number",
        "accountNameLabel": "Member",
        **_branding(program),
        **_callbacks(callback_url),
    }


def offer_class(
    program: Program,
    *,
    offer_id: int,
    title: str,
    details: str,
    callback_url: str | None = None,
) -> dict[str, Any]:
    return {
        "id": offer_class_id(program, offer_id),
        "title": title,
        "details": details,
        "provider": program.program_name,
        "redemptionChannel": "INSTORE",
        **_branding(program),
        **_callbacks(callback_url),
    }


def _locations(places: Sequence[tuple[float, float]]) -> list[dict[str, float]]:
    return [{"latitude": lat, "longitude": lon} for lat, lon in list(places)[:MAX_LOCATIONS]]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoyaltyCard:
    object_id: str
    class_id: str
    member_code: str
    member_name: str | None
    points: int
    tier: str | None
    places: Sequence[tuple[float, float]] = ()
    linked_offer_ids: Sequence[str] = field(default_factory=tuple)
    # The shopper's shareable referral code (canonical; typing is forgiving).
    referral_code: str | None = None


def loyalty_object(card: LoyaltyCard) -> dict[str, Any]:
    """The shopper's card: points, tier, member barcode, nearest stores, linked coupons,
    and the referral code to share."""
    body: dict[str, Any] = {
        "id": card.object_id,
        "classId": card.class_id,
        "state": "ACTIVE",
        "accountId": card.member_code,
        "loyaltyPoints": {"label": "Points", "balance": {"int": card.points}},
        "secondaryLoyaltyPoints": {"label": "Tier", "balance": {"string": card.tier or "Member"}},
        "barcode": {
            "type": "QR_CODE",
            "value": card.member_code,
            "alternateText": card.member_code,
        },
        "linkedOfferIds": list(card.linked_offer_ids),
        "merchantLocations": _locations(card.places),
    }
    if card.member_name:
        body["accountName"] = card.member_name
    if card.referral_code:
        body["textModulesData"] = [
            {
                "id": "referral",
                "header": "Invite a friend: your referral code",
                "body": card.referral_code,
            }
        ]
    return body


@dataclass(frozen=True, slots=True, kw_only=True)
class CouponCard:
    object_id: str
    class_id: str
    code: str
    barcode_format: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    redeemed: bool
    places: Sequence[tuple[float, float]] = ()


def offer_state(*, redeemed: bool, expires_at: dt.datetime, now: dt.datetime) -> str:
    """As the Apple coupon pass is voided: COMPLETED once redeemed, EXPIRED past its end."""
    if redeemed:
        return "COMPLETED"
    return "EXPIRED" if expires_at <= now else "ACTIVE"


def offer_object(card: CouponCard, now: dt.datetime) -> dict[str, Any]:
    """One coupon: its code as the barcode, its validity, and the offer's stores."""
    return {
        "id": card.object_id,
        "classId": card.class_id,
        "state": offer_state(redeemed=card.redeemed, expires_at=card.expires_at, now=now),
        "barcode": {
            "type": BARCODES.get(card.barcode_format, "QR_CODE"),
            "value": card.code,
            "alternateText": card.code,
        },
        "validTimeInterval": {
            "start": {"date": card.issued_at.isoformat()},
            "end": {"date": card.expires_at.isoformat()},
        },
        "merchantLocations": _locations(card.places),
    }


def digest(body: Mapping[str, Any]) -> str:
    """A digest of what an object says: the same digest means nothing to send."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
