"""Advisory lock ids: declared once in geo/locks.py, unique, and the only keys the code
and its SQL take."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from geo import locks

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "geo", "offers", "wallet")
REGISTRY = ROOT / "geo" / "locks.py"

_CALL = re.compile(r"pg_(?:try_)?advisory_\w*\(", re.IGNORECASE)
# hashtextextended's seed is not a key.
_SEED = re.compile(r",\s*0\s*\)")
_INT = re.compile(r"(?<![$\w])(0x[0-9a-f_]+|\d[\d_]*)(?!\w)", re.IGNORECASE)
_TEXT = re.compile(r"'((?:[^']|'')*)'")


def _ids() -> dict[str, int]:
    return {k: v for k, v in vars(locks).items() if k.isupper() and isinstance(v, int)}


def _prefixes() -> dict[str, str]:
    return {k: v for k, v in vars(locks).items() if k.isupper() and isinstance(v, str)}


def _sources(suffix: str) -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob(f"*{suffix}"))


def _python_strings(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _sql_texts() -> Iterator[tuple[Path, str]]:
    for path in _sources(".sql"):
        yield path, path.read_text()
    for path in _sources(".py"):
        for text in _python_strings(path):
            yield path, text


def _lock_arguments(text: str) -> Iterator[str]:
    """The argument text of every advisory lock call in ``text``, comments dropped."""
    text = re.sub(r"--[^\n]*", "", text)
    for match in _CALL.finditer(text):
        depth, end = 1, match.end()
        while depth and end < len(text):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        yield text[match.end() : end - 1]


def test_ids_are_unique_bigints() -> None:
    ids = _ids()
    assert ids, "geo/locks.py declares no ids"
    assert len(set(ids.values())) == len(ids), ids
    for name, value in ids.items():
        assert -(1 << 63) <= value < (1 << 63), f"{name} does not fit a bigint"
    prefixes = _prefixes()
    assert len(set(prefixes.values())) == len(prefixes), prefixes


def test_sql_takes_declared_keys_only() -> None:
    ids = set(_ids().values())
    prefixes = set(_prefixes().values())
    calls = 0
    for path, text in _sql_texts():
        for args in _lock_arguments(text):
            calls += 1
            bare = _SEED.sub(")", _TEXT.sub("", re.sub(r"::\w+|\$\d+", "", args)))
            for literal in _INT.findall(bare):
                assert int(literal.replace("_", ""), 0) in ids, f"{path}: undeclared id in {args}"
            for literal in _TEXT.findall(args):
                assert literal in prefixes, f"{path}: undeclared key {literal!r} in {args}"
    assert calls, "no advisory lock found: the scan is broken"


def test_no_module_spells_a_lock_id_of_its_own() -> None:
    ids = set(_ids().values())
    for path in _sources(".py"):
        if path == REGISTRY:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and type(node.value) is int:
                assert node.value not in ids, f"{path}:{node.lineno} repeats a lock id"


def test_every_declared_lock_is_used() -> None:
    code = "\n".join(p.read_text() for p in _sources(".py") if p != REGISTRY)
    for name in [*_ids(), *_prefixes()]:
        assert f"locks.{name}" in code, f"geo/locks.py declares {name}, which nothing takes"
