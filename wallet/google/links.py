""" "Save to Google Wallet" links: ``https://pay.google.com/gp/v/save/<jwt>``.

The JWT is RS256, signed with the issuer's service-account key, with exactly the claims
Google's documentation lists: ``iss`` (the service account's e-mail), ``aud: "google"``,
``typ: "savetowallet"``, ``iat``, ``origins`` and a ``payload`` of ``loyaltyObjects``
and/or ``offerObjects``. Parsing the PEM key is most of the cost of a signature, so a
:class:`LinkSigner` parses it once and is kept per merchant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.auth import crypt, jwt

from wallet.google import account

SAVE_URL = "https://pay.google.com/gp/v/save/"


def claims(
    issuer_email: str,
    *,
    iat: int,
    origins: Sequence[str],
    loyalty_objects: Sequence[Mapping[str, Any]] = (),
    offer_objects: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if loyalty_objects:
        payload["loyaltyObjects"] = [dict(o) for o in loyalty_objects]
    if offer_objects:
        payload["offerObjects"] = [dict(o) for o in offer_objects]
    if not payload:
        raise ValueError("a save link carries at least one object")
    return {
        "iss": issuer_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": iat,
        "origins": list(origins),
        "payload": payload,
    }


class LinkSigner:
    """Signs save links with one service account's key, parsed once."""

    def __init__(self, service_account: account.ServiceAccount) -> None:
        self.email = service_account.client_email
        self._signer = crypt.RSASigner.from_service_account_info(service_account.info)

    def __repr__(self) -> str:
        return f"LinkSigner({self.email!r})"

    def save_url(self, claim_set: Mapping[str, Any]) -> str:
        token: bytes = jwt.encode(self._signer, dict(claim_set))
        return SAVE_URL + token.decode("ascii")


def save_url_fresh(service_account: account.ServiceAccount, claim_set: Mapping[str, Any]) -> str:
    """The same link as :meth:`LinkSigner.save_url`, parsing the key for this one call (as
    Google's samples do); the benchmark's baseline."""
    signer = crypt.RSASigner.from_service_account_info(service_account.info)
    token: bytes = jwt.encode(signer, dict(claim_set))
    return SAVE_URL + token.decode("ascii")
