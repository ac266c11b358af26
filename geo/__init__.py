"""Geometry and places: geofence validation, the in-memory fence index, enter/dwell/exit
state and spoofing checks. Pure Python, no I/O; the gateway wires it to HTTP and SQL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from geo.errors import GeoError, GeometryInvalid
from geo.models import (
    Fence,
    FenceConfig,
    FenceFeature,
    FenceState,
    Fix,
    Observation,
    Problem,
    SpoofingConfig,
    StepResult,
    Transition,
)

if TYPE_CHECKING:
    from geo.index import BatchMatches, FenceIndex
    from geo.spoofing import Verdict

# Names from modules that load numpy and shapely, resolved on first use so that importing
# `geo` for its models stays cheap.
_LAZY = {"BatchMatches": "geo.index", "FenceIndex": "geo.index", "Verdict": "geo.spoofing"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'geo' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "BatchMatches",
    "Fence",
    "FenceConfig",
    "FenceFeature",
    "FenceIndex",
    "FenceState",
    "Fix",
    "GeoError",
    "GeometryInvalid",
    "Observation",
    "Problem",
    "SpoofingConfig",
    "StepResult",
    "Transition",
    "Verdict",
]
