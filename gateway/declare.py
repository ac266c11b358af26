"""How a setting is declared: its variable, meaning, CLI flag and parser, and the one
spelling of booleans. gateway/settings.py declares every setting with :func:`about`; the
environment parser, the CLI flags and the README's table read these declarations.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.secret import Secret

# The one spelling of booleans, in the environment and on the command line.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """An environment variable or flag has a value we cannot use."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Declared:
    """One setting: its field, type, default and meaning, and where it is read from.

    `shown` is the default as the README states it, where the value alone would not say
    it (an unset secret, a default computed from other settings); `clean` normalises the
    raw text before it is parsed; `flag` is the CLI flag that overrides it, if any.
    """

    name: str
    env: str
    kind: Any
    default: Any
    meaning: str
    flag: str | None = None
    shown: str | None = None
    clean: Callable[[str], str] | None = None

    def parse(self, raw: str, source: str | None = None) -> Any:
        """The value of the text `raw` given in `source` (the variable or flag)."""
        where = source or self.env
        text = self.clean(raw) if self.clean else raw
        return _parse(self.kind, text, where)

    def choices(self) -> tuple[str, ...] | None:
        """The values a Literal setting may take (checked in ``Settings.__post_init__``)."""
        return typing.get_args(self.kind) if typing.get_origin(self.kind) is Literal else None

    def default_text(self) -> str:
        """The default as plain text, e.g. for a flag's help."""
        value = self.default
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, float):
            return f"{value:g}"
        return "unset" if value is None else str(value)

    def default_cell(self) -> str:
        """The default as the README's table shows it."""
        return self.shown if self.shown is not None else f"`{self.default_text()}`"


def parse_bool(raw: str, where: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{where} must be one of {'/'.join(TRUE_WORDS + FALSE_WORDS)}, got {raw!r}")


def _parse(kind: Any, raw: str, where: str) -> Any:
    if isinstance(kind, types.UnionType):  # X | None: the optional values
        (kind,) = (arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind is bool:
        return parse_bool(raw, where)
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{where} must be an integer, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{where} must be a number, got {raw!r}") from None
    if kind in (Path, Secret):
        return kind(raw)
    # str and the Literal modes: their values are checked in Settings.__post_init__.
    return raw


def about(
    env: str,
    meaning: str,
    *,
    flag: str | None = None,
    shown: str | None = None,
    clean: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """The declaration of one field of :class:`Settings`, as that field's metadata."""
    spec = {"env": env, "meaning": meaning, "flag": flag, "shown": shown, "clean": clean}
    return {"setting": spec}
