"""Geometry and places: GeoJSON geofence validation, the in-memory fence index,
enter/dwell/exit state, spoofing checks and store opening hours, all pure computation.

The package's I/O is in `store` (its tables, through asyncpg, in the caller's
transaction). `sql` is the one loader of named SQL blocks, which every package uses to
read its `.sql` files; it lives here, in the bottom layer, so that all may import it.
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
