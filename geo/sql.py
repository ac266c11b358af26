"""The one loader of named SQL blocks, for every package's ``.sql`` files.

A file holds blocks that start with ``-- name: <name>``; the text up to the next such line
is the query, with ``$1`` parameters as asyncpg takes them. A block whose name ends in
``_columns`` is a fragment: other blocks of the same file splice it in where they say
``{name}``. A name defined twice in one file is an error at load time.

It lives in ``geo``, the bottom layer, so that every package may import it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_FRAGMENT_SUFFIX = "_columns"


def parse(text: str) -> Mapping[str, str]:
    """Named blocks of ``text``, with fragments spliced in."""
    pieces = _NAME.split(text)
    blocks: dict[str, str] = {}
    # pieces = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(pieces[1::2], pieces[2::2], strict=True):
        if name in blocks:
            raise ValueError(f"query {name!r} is defined twice")
        blocks[name] = body.strip()
    fragments = {k: v for k, v in blocks.items() if k.endswith(_FRAGMENT_SUFFIX)}
    for name, body in blocks.items():
        for frag, text_ in fragments.items():
            body = body.replace("{" + frag + "}", text_)
        blocks[name] = body
    return MappingProxyType(blocks)


def load(package: str, filename: str = "queries.sql") -> Mapping[str, str]:
    """The named blocks of ``filename`` shipped inside ``package``."""
    return parse(resources.files(package).joinpath(filename).read_text(encoding="utf-8"))
