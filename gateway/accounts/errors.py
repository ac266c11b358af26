"""What can go wrong with merchants, API keys and shoppers.

AccountsError
 +-- InvalidKeyRequest   the key asked for cannot exist (a shopper key, an empty or
 |                       foreign store scope)
 +-- UnknownMerchant     no merchant has this id
 +-- EmailTaken          a shopper with this e-mail address is already enrolled
 +-- InvalidOrigin       not a web origin a merchant can allow (scheme://host[:port])
"""

from __future__ import annotations

from collections.abc import Mapping


class AccountsError(Exception):
    """Base of the accounts errors; ``fields`` names the offending inputs."""

    def __init__(self, message: str, *, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})


class InvalidKeyRequest(AccountsError):
    pass


class UnknownMerchant(AccountsError):
    pass


class EmailTaken(AccountsError):
    pass


class InvalidOrigin(AccountsError):
    pass
