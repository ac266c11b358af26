"""Coupon codes: unguessable, easy to read aloud and type, with a check symbol.

A code is 13 random symbols of Crockford's base 32 (65 bits from `secrets`) and one
check symbol (the value mod 37, Crockford's extended alphabet), shown in groups as
``XXXX-XXXX-XXXX-XX``. Referral codes, which shoppers share and type, are shorter:
9 symbols (45 bits) and the same check symbol, ``XXXX-XXXX-XX``; every function takes
the number of data symbols. Typing is forgiving: case, spaces and hyphens do not matter,
and I/L read as 1 and O as 0. The check symbol catches every single mistyped
symbol and every swap of two neighbours before the database is asked.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHECK_ALPHABET = ALPHABET + "*~$=U"
DATA_SYMBOLS = 13
LENGTH = DATA_SYMBOLS + 1
REFERRAL_SYMBOLS = 9
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_CHECK = {c: i for i, c in enumerate(CHECK_ALPHABET)}
_LOOKALIKES = str.maketrans({"I": "1", "L": "1", "O": "0"})


def _check_symbol(data: str) -> str:
    value = 0
    for c in data:
        value = value * 32 + _VALUE[c]
    return CHECK_ALPHABET[value % 37]


def new_code(symbols: int = DATA_SYMBOLS) -> str:
    """A fresh code of ``symbols`` data symbols in canonical form (no separators)."""
    data = "".join(secrets.choice(ALPHABET) for _ in range(symbols))
    return data + _check_symbol(data)


def _shaped(text: str, symbols: int) -> str | None:
    """What a person typed, cleaned, if it has a code's length and symbols; else None."""
    cleaned = text.upper().replace("-", "").replace(" ", "").translate(_LOOKALIKES)
    if len(cleaned) != symbols + 1:
        return None
    data, check = cleaned[:symbols], cleaned[symbols]
    if any(c not in _VALUE for c in data) or check not in _CHECK:
        return None
    return cleaned


def normalize(text: str, symbols: int = DATA_SYMBOLS) -> str | None:
    """The canonical form of what a person typed, or None if it cannot be a code."""
    cleaned = _shaped(text, symbols)
    if cleaned is None:
        return None
    return cleaned if _check_symbol(cleaned[:symbols]) == cleaned[symbols] else None


def is_mistyped(text: str, symbols: int = DATA_SYMBOLS) -> bool:
    """Shaped like a code, but its check symbol disagrees: a symbol was mistyped or two
    were swapped. No code that was ever issued reads like this."""
    cleaned = _shaped(text, symbols)
    return cleaned is not None and _check_symbol(cleaned[:symbols]) != cleaned[symbols]


def display(canonical: str) -> str:
    """``XXXX-XXXX-XXXX-XX`` (``XXXX-XXXX-XX``) for people; `normalize` takes it back."""
    return "-".join(canonical[i : i + 4] for i in range(0, len(canonical), 4))
