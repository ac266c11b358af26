"""Secret values that never show themselves: in a repr, a str, a log line or a URL."""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(?P<prefix>://[^:/@]*:)(?P<password>[^@]*)@")


class Secret:
    """A string that never shows itself in a repr, str or log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def mask_url(url: str) -> str:
    """A database URL with its password replaced, fit for logs."""
    return _URL_PASSWORD.sub(r"\g<prefix>***@", url)
