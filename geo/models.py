"""Domain values of the geo package: geofences, per-shopper visit state, transitions and configs.

Everything here is an immutable value; the logic that uses them lives in the sibling modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

FenceKind = Literal["circle", "polygon"]
EventKind = Literal["enter", "dwell", "exit"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with submitted geometry, and where it is (e.g. `geometry.coordinates[0][3]`).

    `path` is empty when the problem concerns the whole document; `code` is a stable
    machine-readable name for the kind of problem, `message` is for humans.
    """

    path: str
    code: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Fence:
    """A geofence: a true metre circle (centre `Point` + `radius_m`) or a lon/lat (Multi)Polygon."""

    id: int
    merchant_id: int
    store_id: int
    kind: FenceKind
    # A shapely geometry in lon/lat (EPSG:4326 axis order of GeoJSON); shapely ships no types.
    geometry: Any
    radius_m: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FenceFeature:
    """A validated GeoJSON Feature, ready to be stored as a fence once it has ids."""

    kind: FenceKind
    geometry: Any
    radius_m: float | None
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class FenceState:
    """One open visit of one shopper to one fence: the only state enter/dwell/exit needs.

    `last_inside_at` is refreshed coarsely (see `FenceConfig.touch_seconds`) so that a
    shopper who stays inside does not cost a write per ping; it only serves to expire
    visits whose pings stopped.
    """

    fence_id: int
    entered_at: datetime
    last_inside_at: datetime
    dwell_fired: bool = False
    out_count: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """An enter, dwell or exit event of one shopper on one fence.

    `store_id` is the fence's store as the state machine was told it (see `fences.step`);
    None when it was not told, e.g. for a fence deleted while a visit to it was open.
    """

    fence_id: int
    store_id: int | None = None
    event: EventKind
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """What the state machine needs from one ping: when, how precise, and the nearby fences.

    `near` maps fence id to distance in metres (0 inside), as returned by `FenceIndex.match`.
    """

    at: datetime
    accuracy_m: float
    near: Mapping[int, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """The outcome of feeding pings to the state machine.

    `changed` is False when `states` equals the input, so the caller can skip the write.
    `by_observation` (from `fences.step_batch` only) splits `transitions` by the
    observation that caused them, in the order the observations were given.
    """

    states: Mapping[int, FenceState]
    transitions: tuple[Transition, ...]
    changed: bool
    by_observation: tuple[tuple[Transition, ...], ...] = ()


# How the index measures one ping's candidates (`geo.kernel`): numba's compiled loop, the
# numpy path, or "auto", numba when it can be imported. Both give the same answers.
MatchKernel = Literal["auto", "numba", "numpy"]
MATCH_KERNELS: tuple[MatchKernel, ...] = ("auto", "numba", "numpy")


@dataclass(frozen=True, slots=True, kw_only=True)
class FenceConfig:
    """Tuning of enter/dwell/exit.

    - `dwell_seconds`: time inside after which one dwell fires per visit.
    - `max_accuracy_m`: pings less precise than this are ignored altogether.
    - `min_accuracy_m`: devices claiming better accuracy are treated as this good.
    - `exit_buffer_m`, `exit_buffer_ratio`: a ping counts as *out* of a fence when its
      distance exceeds `accuracy + exit_buffer_m + exit_buffer_ratio * accuracy`. The
      accuracy-proportional part keeps the hysteresis band as wide as the noise the device
      reports; with ratio 0 a fixed 20 m band lets sigma = 15 m jitter flap (about one
      600-ping run in twenty exits spuriously).
    - `exit_pings`: consecutive out pings that end a visit.
    - `touch_seconds`: how stale `FenceState.last_inside_at` may get before a ping inside
      refreshes it (a write), so standing in a shop does not cost a write per ping.
    - `visit_timeout_seconds`: a visit with no ping inside for this long has ended.
    """

    dwell_seconds: float = 300.0
    max_accuracy_m: float = 150.0
    min_accuracy_m: float = 10.0
    exit_buffer_m: float = 20.0
    exit_buffer_ratio: float = 1.0
    exit_pings: int = 2
    touch_seconds: float = 300.0
    visit_timeout_seconds: float = 7200.0

    def __post_init__(self) -> None:
        # These are programmer-supplied settings; refusing nonsense early beats odd visits later.
        if self.exit_pings < 1:
            raise ValueError("exit_pings must be at least 1")
        if min(self.dwell_seconds, self.min_accuracy_m, self.exit_buffer_m) < 0:
            raise ValueError("durations and distances must not be negative")
        if self.exit_buffer_ratio < 0:
            raise ValueError("exit_buffer_ratio must not be negative")
        if self.max_accuracy_m < self.min_accuracy_m:
            raise ValueError("max_accuracy_m must be at least min_accuracy_m")
        if not 0 < self.touch_seconds < self.visit_timeout_seconds:
            raise ValueError("need 0 < touch_seconds < visit_timeout_seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fix:
    """A located ping as the spoofing checks see it."""

    lon: float
    lat: float
    at: datetime
    accuracy_m: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoofingConfig:
    """Limits of the spoofing checks; 70 m/s is faster than any car a shopper arrives in."""

    max_speed_mps: float = 70.0
    max_future_skew_s: float = 30.0
    max_age_s: float = 24 * 3600.0
