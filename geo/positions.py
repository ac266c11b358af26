"""GeoJSON positions ([lon, lat]) and the wording every validation problem shares.

The helpers name a value's JSON kind, quote it briefly and join JSON paths, so the
messages of geojson and polygons read alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from geo.models import Problem

Position = tuple[float, float]
Ring = list[Position]


def check_position(value: object, path: str, problems: list[Problem]) -> Position | None:
    if not is_array(value):
        problems.append(
            Problem(
                path=path,
                code="wrong_type",
                message=f"a position must be an array [lon, lat], got {kind(value)}",
            )
        )
        return None
    if not 2 <= len(value) <= 3:
        problems.append(
            Problem(
                path=path,
                code="wrong_position_length",
                message=f"a position is [lon, lat] or [lon, lat, altitude]; got {len(value)} "
                "numbers",
            )
        )
        return None
    ok = True
    for k, item in enumerate(value):
        name = ("longitude", "latitude", "altitude")[k]
        if not is_number(item):
            problems.append(
                Problem(
                    path=f"{path}[{k}]",
                    code="not_a_number",
                    message=f"{name} must be a number, got {show(item)}",
                )
            )
            ok = False
        elif not is_finite(item):
            problems.append(
                Problem(
                    path=f"{path}[{k}]",
                    code="not_finite",
                    message=f"{name} must be a finite number, got {number(item)}",
                )
            )
            ok = False
    if not ok:
        return None
    # The altitude (third number) is allowed by RFC 7946 and deliberately ignored.
    lon, lat = float(value[0]), float(value[1])
    if abs(lat) > 90.0 and abs(lat) <= 180.0 and abs(lon) <= 90.0:
        problems.append(
            Problem(
                path=path,
                code="swapped_coordinates",
                message=f"latitude {lat:g} is outside [-90, 90]; {pos((lon, lat))} looks like "
                "[lat, lon]; GeoJSON order is [lon, lat]",
            )
        )
        return None
    if abs(lon) > 180.0:
        problems.append(
            Problem(
                path=f"{path}[0]",
                code="longitude_out_of_range",
                message=f"longitude {lon:g} is outside [-180, 180]",
            )
        )
        ok = False
    if abs(lat) > 90.0:
        problems.append(
            Problem(
                path=f"{path}[1]",
                code="latitude_out_of_range",
                message=f"latitude {lat:g} is outside [-90, 90]",
            )
        )
        ok = False
    return (lon, lat) if ok else None


def is_array(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    # json gives lists; tuples come from Python callers such as shapely's mapping().
    return isinstance(value, list | tuple)


def is_finite(value: float) -> bool:
    # A JSON integer can be too big for a float; it is not a usable coordinate either.
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def is_number(value: object) -> bool:
    # JSON true/false arrive as bool, which Python counts as int.
    return isinstance(value, int | float) and not isinstance(value, bool)


def not_object(path: str, value: object, what: str) -> Problem:
    return Problem(
        path=path, code="wrong_type", message=f"expected {what} (an object), got {kind(value)}"
    )


def key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Sequence):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else kind(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"a {len(text)}-digit number"


def pos(position: Position) -> str:
    # 7 decimals of a degree is ~1 cm: enough to find the spot, short enough to read.
    return f"[{round(position[0], 7)!r}, {round(position[1], 7)!r}]"
