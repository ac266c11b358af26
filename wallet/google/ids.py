"""How the gateway names its Google Wallet objects, and which pass an object id is.

Google names an object `<issuerId>.<suffix>`. Ours are `<issuerId>.coupon-<coupon id>`
for a coupon's offer object and `<issuerId>.loyalty-<shopper id>` for the loyalty card,
so a callback's object id says which coupon or shopper it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["coupon", "loyalty"]
_SUFFIX = re.compile(r"(coupon|loyalty)-([1-9][0-9]{0,17})", re.ASCII)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectRef:
    kind: Kind
    # The coupon id of a coupon's object, the shopper id of a loyalty card.
    id: int


def coupon_object_id(issuer_id: str, coupon_id: int) -> str:
    return f"{issuer_id}.coupon-{coupon_id}"


def loyalty_object_id(issuer_id: str, shopper_id: int) -> str:
    return f"{issuer_id}.loyalty-{shopper_id}"


def parse(issuer_id: str, object_id: str) -> ObjectRef | None:
    """The pass `object_id` names, or None if it is not one of this issuer's objects."""
    prefix, dot, suffix = object_id.partition(".")
    match = _SUFFIX.fullmatch(suffix) if dot and prefix == issuer_id else None
    if match is None:
        return None
    kind: Kind = "coupon" if match[1] == "coupon" else "loyalty"
    return ObjectRef(kind=kind, id=int(match[2]))
