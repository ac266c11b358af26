"""Named SQL blocks loaded from ``.sql`` files shipped inside a package.

A file holds blocks that start with ``-- name: <name>``; the text up to the
next such line is the query. Queries use ``$1`` parameters as asyncpg does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse(text: str) -> Mapping[str, str]:
    pieces = _NAME.split(text)
    queries: dict[str, str] = {}
    # pieces = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(pieces[1::2], pieces[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip()
    return MappingProxyType(queries)


def load(package: str, filename: str) -> Mapping[str, str]:
    return parse(resources.files(package).joinpath(filename).read_text(encoding="utf-8"))
