"""The issuer's Google service account: read from Google's JSON key file and checked before
it is stored, and a development account, labelled not valid at Google, for offline use.

The file holds the private key. It is kept whole (Google's token endpoint and the save
links need its fields), never logged, and its repr shows only the account's e-mail.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.auth import crypt

from wallet import errors

REQUIRED = ("type", "client_email", "private_key_id", "private_key", "token_uri")
TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
DEV_LABEL = "NOT VALID AT GOOGLE - gateway development service account"
# A reserved top-level domain: no real service account can have this address.
DEV_DOMAIN = "gateway-dev.invalid"


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A checked service account. ``info`` is the parsed key file, private key included."""

    client_email: str
    private_key_id: str
    token_uri: str
    info: Mapping[str, Any] = field(repr=False)

    @property
    def dev(self) -> bool:
        """Made by :func:`dev_service_account`: Google would refuse it."""
        return self.client_email.endswith("@" + DEV_DOMAIN)

    def text(self) -> str:
        """The key file as stored."""
        return json.dumps(dict(self.info), sort_keys=True)


def parse(text: str) -> ServiceAccount:
    """The service account in a key file's text; ServiceAccountInvalid says what is wrong.

    Beyond the shape, the private key must be an RSA key that signs (RS256) and whose
    signature its own public key verifies, as Google will check the save links and the
    token requests signed with it.
    """
    try:
        info = json.loads(text)
    except ValueError:
        raise errors.ServiceAccountInvalid("the service-account file is not JSON") from None
    if not isinstance(info, dict):
        raise errors.ServiceAccountInvalid("the service-account file is not a JSON object")
    missing = [k for k in REQUIRED if not isinstance(info.get(k), str) or not info[k]]
    if missing:
        raise errors.ServiceAccountInvalid("the service-account file lacks " + ", ".join(missing))
    if info["type"] != "service_account":
        raise errors.ServiceAccountInvalid(
            f"the file's type is {info['type']!r}, not 'service_account'"
        )
    if "@" not in info["client_email"]:
        raise errors.ServiceAccountInvalid("client_email is not an e-mail address")
    if not info["token_uri"].startswith(("https://", "http://")):
        raise errors.ServiceAccountInvalid("token_uri is not an http(s) URL")
    _check_key(info["private_key"])
    return ServiceAccount(
        client_email=info["client_email"],
        private_key_id=info["private_key_id"],
        token_uri=info["token_uri"],
        info=info,
    )


def _check_key(pem: str) -> None:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise errors.ServiceAccountInvalid("private_key is not an unencrypted PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise errors.ServiceAccountInvalid("private_key is not an RSA key of 2048 bits or more")
    signer = crypt.RSASigner.from_string(pem)
    probe = b"gateway service-account check"
    try:
        key.public_key().verify(signer.sign(probe), probe, padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        raise errors.ServiceAccountInvalid("private_key does not verify its signature") from None


def dev_service_account(project: str = "gateway-dev") -> dict[str, str]:
    """A key file of Google's shape with a fresh RSA key, for development and tests.

    Its address is in the reserved ``.invalid`` domain and it says so in two fields:
    Google knows neither the account nor its key, so its save links and tokens are
    refused there. Everything that stays on this machine works with it.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"wallet-issuer@{DEV_DOMAIN}",
        "client_id": str(secrets.randbelow(10**20)),
        "token_uri": TOKEN_URI,
        "description": DEV_LABEL,
    }
