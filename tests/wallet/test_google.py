"""Google Wallet's pure parts: the service-account check, the save-link claims and their
signature (cached signer and fresh signer alike), the objects' JSON and the quota."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.google_peer import public_key_of, verify_rs256
from wallet import errors
from wallet.google import account, links, objects, quota

T = dt.datetime(2026, 1, 12, 8, 0, tzinfo=dt.UTC)
PROGRAM = objects.Program(
    issuer_id="3388000000022000001",
    merchant_id=7,
    issuer_name="Corner Coffee",
    program_name="Corner Rewards",
    logo_url="https://example.com/logo.png",
)


def test_a_dev_account_has_googles_shape_and_says_it_is_not_valid_there() -> None:
    info = account.dev_service_account()
    assert set(account.REQUIRED) <= set(info)
    sa = account.parse(json.dumps(info))
    assert sa.dev and sa.client_email.endswith(".invalid")
    assert account.DEV_LABEL in info["description"]
    assert info["private_key"] not in repr(sa)
    assert json.loads(sa.text()) == info


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda i: "not json", "not JSON"),
        (lambda i: [i], "not a JSON object"),
        (lambda i: {**i, "private_key_id": ""}, "lacks private_key_id"),
        (lambda i: {k: v for k, v in i.items() if k != "token_uri"}, "lacks token_uri"),
        (lambda i: {**i, "type": "authorized_user"}, "not 'service_account'"),
        (lambda i: {**i, "client_email": "nobody"}, "not an e-mail"),
        (lambda i: {**i, "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n"}, "PEM"),
        (
            lambda i: {
                **i,
                "private_key": ec.generate_private_key(ec.SECP256R1())
                .private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                .decode(),
            },
            "not an RSA key",
        ),
    ],
)
def test_an_unusable_service_account_is_refused_with_what_is_wrong(change, problem) -> None:  # type: ignore[no-untyped-def]
    changed = change(account.dev_service_account())
    text = changed if isinstance(changed, str) else json.dumps(changed)
    with pytest.raises(errors.ServiceAccountInvalid) as refused:
        account.parse(text)
    assert problem in refused.value.message


def test_save_links_carry_exactly_the_documented_claims_and_verify_either_way() -> None:
    info = account.dev_service_account()
    sa = account.parse(json.dumps(info))
    card = objects.loyalty_object(
        objects.LoyaltyCard(
            object_id=objects.new_object_id(PROGRAM, "loyalty"),
            class_id=objects.loyalty_class_id(PROGRAM),
            member_code="ABC",
            member_name=None,
            points=12,
            tier=None,
        )
    )
    claim_set = links.claims(
        sa.client_email, iat=1_768_204_800, origins=["https://shop.example"], loyalty_objects=[card]
    )
    cached, fresh = links.LinkSigner(sa).save_url(claim_set), links.save_url_fresh(sa, claim_set)
    for url in (cached, fresh):
        assert url.startswith("https://pay.google.com/gp/v/save/")
        header, claims = verify_rs256(url.removeprefix(links.SAVE_URL), public_key_of(info))
        assert header == {"alg": "RS256", "typ": "JWT", "kid": info["private_key_id"]}
        assert claims == {
            "iss": sa.client_email,
            "aud": "google",
            "typ": "savetowallet",
            "iat": 1_768_204_800,
            "origins": ["https://shop.example"],
            "payload": {"loyaltyObjects": [card]},
        }
    # Another account's key does not verify it.
    other = public_key_of(account.dev_service_account())
    with pytest.raises(ValueError, match="bad signature"):
        verify_rs256(cached.removeprefix(links.SAVE_URL), other)
    with pytest.raises(ValueError, match="at least one object"):
        links.claims(sa.client_email, iat=1, origins=[])


def test_objects_hold_the_shoppers_values_and_at_most_ten_locations() -> None:
    assert objects.loyalty_class(PROGRAM)["id"] == "3388000000022000001.program-7"
    assert objects.offer_class(PROGRAM, offer_id=3, title="t", details="d")["id"].endswith(
        ".offer-3"
    )
    oid = objects.new_object_id(PROGRAM, "coupon")
    assert oid.startswith("3388000000022000001.coupon-") and oid != objects.new_object_id(
        PROGRAM, "coupon"
    )
    places = [(48.0 + i / 100, 2.0) for i in range(14)]
    coupon = objects.CouponCard(
        object_id=oid,
        class_id="c",
        code="ABCD",
        barcode_format="pdf417",
        issued_at=T,
        expires_at=T + dt.timedelta(hours=1),
        redeemed=False,
        places=places,
    )
    body = objects.offer_object(coupon, T)
    assert body["state"] == "ACTIVE" and body["barcode"]["type"] == "PDF_417"
    assert len(body["merchantLocations"]) == objects.MAX_LOCATIONS
    assert body["merchantLocations"][0] == {"latitude": 48.0, "longitude": 2.0}
    assert objects.offer_object(coupon, T + dt.timedelta(hours=2))["state"] == "EXPIRED"
    redeemed = objects.CouponCard(**{**_fields(coupon), "redeemed": True})
    assert objects.offer_object(redeemed, T + dt.timedelta(hours=2))["state"] == "COMPLETED"
    assert objects.digest(body) == objects.digest(dict(reversed(body.items())))


def _fields(card: objects.CouponCard) -> dict[str, object]:
    return {name: getattr(card, name) for name in card.__slots__}  # type: ignore[attr-defined]


def test_three_notifications_a_day_then_silence() -> None:
    assert [quota.may_notify(n) for n in range(5)] == [True, True, True, False, False]
    assert quota.window_start(T) == T - dt.timedelta(hours=24)
    assert quota.wants_notification("points_earn") and quota.wants_notification("coupon_issued")
    assert not quota.wants_notification("coupon_redeemed")
