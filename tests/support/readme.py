"""The README's shell examples as data: fenced blocks, their commands, and the output each
command shows in its comment, so a test can run them and compare."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"

_FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)
# `APP=<the app token>`: the reader is to copy a token from an earlier answer.
_PLACEHOLDER = re.compile(r"\b(?P<name>[A-Z]+)=<the (?P<role>\w+) token>")
# One `"key": value` of a shown answer; the value is a string, a literal or an empty list.
_FIELD = re.compile(
    r'"(?P<key>\w+)"\s*:\s*(?P<value>"(?:[^"\\]|\\.)*"|null|true|false|-?\d+(?:\.\d+)?|\[\])'
)


@dataclass(slots=True)
class Example:
    """One command of a block, and what the README shows it answers (if anything)."""

    command: str
    shown: str = ""
    # Variables the README asks the reader to set by hand: name -> the role of the token.
    placeholders: dict[str, str] = field(default_factory=dict)


def blocks(lang: str = "sh", text: str | None = None) -> list[str]:
    source = README.read_text() if text is None else text
    return [m["body"] for m in _FENCE.finditer(source) if m["lang"] == lang]


def _comment_at(text: str) -> int:
    """Where a shell comment starts in `text` (outside quotes), or -1; -2 if `text` ends
    inside quotes or with a line continuation (the command goes on)."""
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quote != "'":
            i += 2
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return i
        i += 1
    return -2 if quote or text.endswith("\\") else -1


def examples(block: str) -> list[Example]:
    """The commands of a block, each with the answer its trailing comment shows, and the
    comment lines right after it that carry on that answer."""
    out: list[Example] = []
    pending = ""
    for line in block.splitlines():
        if not pending and line.startswith("#"):
            said = line.lstrip("#").strip()
            last = out[-1] if out else None
            if last is not None and (said.startswith("{") and not last.shown):
                last.shown = said
            elif last is not None and last.shown and line.startswith("#  "):
                last.shown += " " + said
            continue
        pending = f"{pending}\n{line}" if pending else line
        at = _comment_at(pending)
        if at == -2:
            continue
        code, comment = (pending, "") if at == -1 else (pending[:at], pending[at + 1 :])
        pending = ""
        if not code.strip():
            continue
        holes = {m["name"]: m["role"] for m in _PLACEHOLDER.finditer(code)}
        shown = comment.strip()
        out.append(
            Example(
                command=code.strip(),
                shown=shown if shown.startswith("{") else "",
                placeholders=holes,
            )
        )
    return out


def shown_fields(shown: str) -> list[tuple[str, Any]]:
    """The `"key": value` pairs a shown answer states. A string value with `...` in it
    stands for any string that starts with what comes before the `...`."""
    found: list[tuple[str, Any]] = []
    for m in _FIELD.finditer(shown):
        raw = m["value"]
        value: Any
        if raw.startswith('"'):
            value = raw[1:-1]
        else:
            value = {"null": None, "true": True, "false": False, "[]": []}.get(raw, raw)
            if isinstance(value, str):
                value = float(value) if "." in value else int(value)
        found.append((m["key"], value))
    return found


def _dicts(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        return [data, *(d for v in data.values() for d in _dicts(v))]
    if isinstance(data, list):
        return [d for v in data for d in _dicts(v)]
    return []


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, str) and "..." in expected:
        return isinstance(actual, str) and actual.startswith(expected.split("...", 1)[0])
    return bool(expected == actual and type(expected) is type(actual))


def missing(shown: str, answer: Any) -> list[tuple[str, Any]]:
    """The shown fields that no object in `answer` (at any depth) has with that value."""
    objects = _dicts(answer)
    return [
        (key, value)
        for key, value in shown_fields(shown)
        if not any(key in o and _matches(value, o[key]) for o in objects)
    ]
