"""Errors raised by the geo package.

GeoError
 ├── GeometryInvalid   (submitted GeoJSON is unusable; carries every `Problem` found)
 ├── FenceTooFar       (a geofence would lie too far from its store; carries the `Problem`s)
 └── DuplicatePing     (a ping's client id was recorded by another attempt meanwhile)
"""

from __future__ import annotations

from collections.abc import Sequence

from geo.models import Problem


class GeoError(Exception):
    """Base of every error the geo package raises on purpose."""


class GeometryInvalid(GeoError):
    """Submitted geometry has problems; `problems` lists all of them, each with its path."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        first = self.problems[0] if self.problems else None
        summary = f"{first.path or '(document)'}: {first.message}" if first else "invalid"
        more = len(self.problems) - 1
        super().__init__(summary + (f" (and {more} more)" if more > 0 else ""))


class FenceTooFar(GeoError):
    """Geofences that would lie farther from their store than allowed, each a `Problem`
    at the coordinates (or the store's lat and lon) to look at."""

    code = "fence_too_far"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        first = self.problems[0].message if self.problems else "too far from its store"
        more = len({p.message for p in self.problems}) - 1
        self.message = first + (f" (and {more} more)" if more > 0 else "")
        super().__init__(self.message)


class DuplicatePing(GeoError):
    """Another attempt at the same ping (same shopper, same client id) was recorded first;
    the ping path answers from that record instead."""
