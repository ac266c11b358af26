"""Enter/dwell/exit: accuracy-aware entry, hysteresis on exit, minimal writes, batches."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from geo import fences
from geo.index import FenceIndex
from geo.models import Fence, FenceConfig, FenceState, Observation, StepResult, Transition
from tests.support.geo import at, circle, destination, offset_ellipsoid, polygon, square

LON, LAT = 2.35, 48.85
CONFIG = FenceConfig()


class Shopper:
    """Drives real pings through the index and the state machine, as the gateway will."""

    def __init__(self, fence_list: list[Fence], config: FenceConfig = CONFIG) -> None:
        self.index = FenceIndex.build(fence_list)
        self.config = config
        self.states: Mapping[int, FenceState] = {}
        self.log: list[Transition] = []
        self.writes = 0

    def near(self, lon: float, lat: float, accuracy_m: float) -> dict[int, float]:
        return self.index.match(lon, lat, fences.reach_m(accuracy_m, self.config), 1)

    def ping(self, lon: float, lat: float, accuracy_m: float, seconds: float) -> StepResult:
        near = self.near(lon, lat, accuracy_m)
        result = fences.step(self.states, near, accuracy_m, at(seconds), self.config)
        self.states = result.states
        self.log.extend(result.transitions)
        self.writes += result.changed
        return result

    def events(self) -> list[str]:
        return [t.event for t in self.log]


def east_of(lon: float, lat: float, metres: float) -> tuple[float, float]:
    return offset_ellipsoid(lon, lat, metres, 0.0)


# -- a whole visit --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["circle", "polygon"])
def test_enter_dwell_exit(shape: str) -> None:
    if shape == "circle":
        fence, inside, edge_lon = circle(1, LON, LAT, 50.0), (LON, LAT), east_of(LON, LAT, 50)[0]
    else:
        sq = square(LON, LAT, 100.0)
        fence = polygon(1, sq)
        inside = (sq.centroid.x, sq.centroid.y)
        edge_lon = sq.bounds[2]
    shopper = Shopper([fence])
    first = shopper.ping(*inside, 10.0, 0)
    assert first.transitions == (Transition(fence_id=1, event="enter", at=at(0)),)
    assert first.changed
    assert first.states[1] == FenceState(fence_id=1, entered_at=at(0), last_inside_at=at(0))
    assert shopper.ping(*inside, 10.0, 120).transitions == ()
    assert shopper.ping(*inside, 10.0, 299).transitions == ()
    dwell = shopper.ping(*inside, 10.0, 300)
    assert dwell.transitions == (Transition(fence_id=1, event="dwell", at=at(300)),)
    assert dwell.states[1].dwell_fired
    assert shopper.ping(*inside, 10.0, 900).transitions == ()  # once per visit
    away = east_of(edge_lon, LAT + 0.0002, 200.0)
    first_out = shopper.ping(*away, 10.0, 1000)
    assert first_out.transitions == ()
    assert first_out.changed
    assert first_out.states[1].out_count == 1
    gone = shopper.ping(*away, 10.0, 1001)
    assert gone.transitions == (Transition(fence_id=1, event="exit", at=at(1001)),)
    assert gone.states == {}
    assert shopper.events() == ["enter", "dwell", "exit"]


def test_enter_again_after_exit_is_a_new_visit() -> None:
    shopper = Shopper([circle(1, LON, LAT, 50.0)])
    away = east_of(LON, LAT, 300.0)
    shopper.ping(LON, LAT, 10.0, 0)
    shopper.ping(*away, 10.0, 10)
    shopper.ping(*away, 10.0, 11)
    again = shopper.ping(LON, LAT, 10.0, 20)
    assert again.transitions == (Transition(fence_id=1, event="enter", at=at(20)),)
    assert again.states[1].entered_at == at(20)
    assert not again.states[1].dwell_fired


# -- entry and accuracy ---------------------------------------------------------------------


def test_entry_is_accuracy_aware() -> None:
    edge = east_of(LON, LAT, 50.0)[0]
    point = east_of(edge, LAT, 40.0)  # 40 m outside a 50 m circle
    assert Shopper([circle(1, LON, LAT, 50.0)]).ping(*point, 30.0, 0).transitions == ()
    entered = Shopper([circle(1, LON, LAT, 50.0)]).ping(*point, 50.0, 0)
    assert [t.event for t in entered.transitions] == ["enter"]


def test_accuracy_below_ten_metres_counts_as_ten() -> None:
    edge = east_of(LON, LAT, 50.0)[0]
    near = east_of(edge, LAT, 8.0)
    far = east_of(edge, LAT, 12.0)
    assert fences.effective_accuracy_m(3.0) == 10.0
    assert [
        t.event for t in Shopper([circle(1, LON, LAT, 50.0)]).ping(*near, 3.0, 0).transitions
    ] == ["enter"]
    assert Shopper([circle(1, LON, LAT, 50.0)]).ping(*far, 3.0, 0).transitions == ()


def test_too_poor_accuracy_triggers_and_changes_nothing() -> None:
    shopper = Shopper([circle(1, LON, LAT, 50.0)])
    poor = shopper.ping(LON, LAT, 150.1, 0)
    assert poor == StepResult(states={}, transitions=(), changed=False)
    shopper.ping(LON, LAT, 10.0, 1)
    before = shopper.states
    for k in range(5):  # far away, but too imprecise to count as out
        result = shopper.ping(*east_of(LON, LAT, 5_000.0), 400.0, 2 + k)
        assert result.states is before
        assert not result.changed
    state = dict(shopper.states)
    assert fences.step(state, {}, math.nan, at(10)).states is state


def test_max_accuracy_is_inclusive() -> None:
    result = Shopper([circle(1, LON, LAT, 50.0)]).ping(LON, LAT, CONFIG.max_accuracy_m, 0)
    assert [t.event for t in result.transitions] == ["enter"]


# -- hysteresis and exit --------------------------------------------------------------------


def test_reach_is_the_exit_distance() -> None:
    assert fences.reach_m(15.0) == 15.0 + 20.0 + 15.0
    assert fences.reach_m(3.0) == 10.0 + 20.0 + 10.0
    fixed = FenceConfig(exit_buffer_ratio=0.0)
    assert fences.reach_m(15.0, fixed) == 35.0


def test_hysteresis_band_neither_enters_nor_counts_out() -> None:
    shopper = Shopper([circle(1, LON, LAT, 50.0)])
    edge = east_of(LON, LAT, 50.0)[0]
    band = east_of(edge, LAT, 30.0)  # beyond accuracy 15 m, within reach 50 m
    assert shopper.ping(*band, 15.0, 0).transitions == ()
    assert shopper.states == {}
    shopper.ping(LON, LAT, 15.0, 1)
    result = shopper.ping(*band, 15.0, 2)
    assert result.transitions == ()
    assert not result.changed
    assert shopper.states[1].out_count == 0


def test_exit_needs_consecutive_out_pings() -> None:
    shopper = Shopper([circle(1, LON, LAT, 50.0)])
    away = east_of(LON, LAT, 250.0)
    shopper.ping(LON, LAT, 10.0, 0)
    for k in range(10):
        shopper.ping(*away, 10.0, 1 + 2 * k)
        assert shopper.states[1].out_count == 1
        shopper.ping(LON, LAT, 10.0, 2 + 2 * k)
        assert shopper.states[1].out_count == 0
    assert shopper.events() == ["enter"]


def test_walking_away_exits_after_exactly_two_pings() -> None:
    for fence in (circle(1, LON, LAT, 50.0), polygon(1, square(LON, LAT, 100.0))):
        shopper = Shopper([fence])
        shopper.ping(*east_of(LON, LAT, 20.0), 15.0, 0)
        edge = fence.geometry.bounds[2]
        out = east_of(edge, LAT + 0.0001, 200.0)
        assert shopper.ping(*out, 15.0, 1).transitions == ()
        assert shopper.events() == ["enter"]
        assert [t.event for t in shopper.ping(*out, 15.0, 2).transitions] == ["exit"]
        assert shopper.states == {}


def test_exit_pings_is_configurable() -> None:
    shopper = Shopper([circle(1, LON, LAT, 50.0)], FenceConfig(exit_pings=3))
    away = east_of(LON, LAT, 300.0)
    shopper.ping(LON, LAT, 10.0, 0)
    shopper.ping(*away, 10.0, 1)
    shopper.ping(*away, 10.0, 2)
    assert shopper.events() == ["enter"]
    shopper.ping(*away, 10.0, 3)
    assert shopper.events() == ["enter", "exit"]


def test_moving_between_neighbours_exits_before_entering() -> None:
    a = circle(1, LON, LAT, 40.0)
    b_lon, b_lat = east_of(LON, LAT, 300.0)
    b = circle(2, b_lon, b_lat, 40.0)
    shopper = Shopper([a, b])
    shopper.ping(LON, LAT, 10.0, 0)
    shopper.ping(b_lon, b_lat, 10.0, 1)
    shopper.ping(b_lon, b_lat, 10.0, 2)
    assert [(t.fence_id, t.event) for t in shopper.log] == [(1, "enter"), (2, "enter"), (1, "exit")]
    both = fences.step(
        {1: FenceState(fence_id=1, entered_at=at(0), last_inside_at=at(0), out_count=1)},
        {2: 0.0},
        10.0,
        at(5),
    )
    assert [(t.fence_id, t.event) for t in both.transitions] == [(1, "exit"), (2, "enter")]


# -- jitter on the boundary -----------------------------------------------------------------


def jitter_run(shape: str, seed: int) -> list[str]:
    """600 pings at 1 Hz, Gaussian sigma 15 m across the boundary, centred on it, accuracy 15 m."""
    rng = random.Random(seed)
    if shape == "circle":
        fence = circle(1, LON, LAT, 100.0)

        def position(offset_m: float) -> tuple[float, float]:
            return destination(LON, LAT, 70.0, 100.0 + offset_m)

    else:
        sq = square(LON, LAT, 200.0)
        fence = polygon(1, sq)
        _, south, east, north = sq.bounds

        def position(offset_m: float) -> tuple[float, float]:
            return east_of(east, (south + north) / 2, offset_m)

    shopper = Shopper([fence])
    for second in range(600):
        shopper.ping(*position(rng.gauss(0.0, 15.0)), 15.0, second)
    events = shopper.events()
    # Then the shopper really leaves: exactly two pings later the visit is over.
    shopper.ping(*position(200.0), 15.0, 600)
    assert shopper.events() == events
    shopper.ping(*position(200.0), 15.0, 601)
    assert shopper.events() == [*events, "exit"]
    return events


@pytest.mark.parametrize("shape", ["circle", "polygon"])
def test_jitter_on_the_boundary_does_not_flap(shape: str) -> None:
    assert jitter_run(shape, seed=1234) == ["enter", "dwell"]


@pytest.mark.parametrize("shape", ["circle", "polygon"])
def test_jitter_on_the_boundary_does_not_flap_for_many_seeds(shape: str) -> None:
    for seed in range(20):
        events = jitter_run(shape, seed)
        assert events.count("enter") == 1, (seed, events)
        assert events.count("exit") == 0, (seed, events)


# -- writes only when needed ----------------------------------------------------------------


def test_staying_inside_writes_rarely() -> None:
    shopper = Shopper([circle(1, LON, LAT, 50.0)])
    changed_at = []
    for second in range(0, 1200):
        if shopper.ping(LON, LAT, 10.0, second).changed:
            changed_at.append(second)
    # Enter; dwell (which also refreshes last_inside_at); then one refresh per touch period.
    assert changed_at == [0, 300, 600, 900]
    assert shopper.states[1].last_inside_at == at(900)
    assert shopper.events() == ["enter", "dwell"]


def test_nothing_near_and_no_visits_changes_nothing() -> None:
    states: dict[int, FenceState] = {}
    result = fences.step(states, {}, 10.0, at(0))
    assert result == StepResult(states={}, transitions=(), changed=False)
    assert result.states is states


def test_visit_expires_when_pings_stop() -> None:
    shopper = Shopper([circle(1, LON, LAT, 50.0)])
    shopper.ping(LON, LAT, 10.0, 0)
    shopper.ping(LON, LAT, 10.0, 400)  # dwell, refresh
    later = 400 + CONFIG.visit_timeout_seconds + 1
    result = shopper.ping(LON, LAT, 10.0, later)
    assert result.transitions == (
        Transition(fence_id=1, event="exit", at=at(400)),
        Transition(fence_id=1, event="enter", at=at(later)),
    )
    assert result.states[1].entered_at == at(later)


def test_expired_visit_elsewhere_just_exits() -> None:
    state = FenceState(fence_id=1, entered_at=at(0), last_inside_at=at(0))
    result = fences.step({1: state}, {}, 10.0, at(CONFIG.visit_timeout_seconds + 1))
    assert result.transitions == (Transition(fence_id=1, event="exit", at=at(0)),)
    assert result.states == {}


def test_ping_older_than_the_visit_is_ignored_for_it() -> None:
    state = FenceState(fence_id=1, entered_at=at(100), last_inside_at=at(100))
    result = fences.step({1: state}, {}, 10.0, at(50))
    assert not result.changed
    assert result.states == {1: state}


def test_immediate_dwell() -> None:
    shopper = Shopper([circle(1, LON, LAT, 50.0)], FenceConfig(dwell_seconds=0))
    assert [t.event for t in shopper.ping(LON, LAT, 10.0, 0).transitions] == ["enter", "dwell"]
    assert shopper.ping(LON, LAT, 10.0, 1).transitions == ()


def test_dwell_needs_a_ping_that_would_have_entered() -> None:
    shopper = Shopper([circle(1, LON, LAT, 50.0)])
    shopper.ping(LON, LAT, 15.0, 0)
    band = east_of(east_of(LON, LAT, 50.0)[0], LAT, 30.0)
    assert shopper.ping(*band, 15.0, 400).transitions == ()
    assert [t.event for t in shopper.ping(LON, LAT, 15.0, 401).transitions] == ["dwell"]


# -- batches --------------------------------------------------------------------------------


def test_batch_sorts_by_time_and_matches_sequential_steps() -> None:
    shopper = Shopper([circle(1, LON, LAT, 50.0), circle(2, *east_of(LON, LAT, 400.0), 50.0)])
    path = [(LON, LAT)] * 4 + [east_of(LON, LAT, 400.0)] * 4 + [(LON, LAT)] * 3
    seconds = [0, 100, 200, 310, 400, 401, 500, 800, 900, 901, 902]
    observations = [
        Observation(at=at(s), accuracy_m=10.0, near=shopper.near(*p, 10.0))
        for p, s in zip(path, seconds, strict=True)
    ]
    shuffled = observations[:]
    random.Random(3).shuffle(shuffled)
    batch = fences.step_batch({}, shuffled)
    sequential: Mapping[int, FenceState] = {}
    expected: list[Transition] = []
    for obs in observations:
        result = fences.step(sequential, obs.near, obs.accuracy_m, obs.at)
        sequential = result.states
        expected.extend(result.transitions)
    assert list(batch.transitions) == expected
    assert [t.at for t in batch.transitions] == sorted(t.at for t in batch.transitions)
    assert [(t.fence_id, t.event) for t in batch.transitions] == [
        (1, "enter"),
        (1, "dwell"),
        (2, "enter"),
        (1, "exit"),
        (2, "dwell"),
        (1, "enter"),
        (2, "exit"),
    ]
    assert batch.states == sequential
    assert batch.changed


def test_batch_that_opens_and_closes_a_visit_needs_no_write() -> None:
    observations = [
        Observation(at=at(0), accuracy_m=10.0, near={1: 0.0}),
        Observation(at=at(1), accuracy_m=10.0, near={}),
        Observation(at=at(2), accuracy_m=10.0, near={}),
    ]
    result = fences.step_batch({}, observations)
    assert [t.event for t in result.transitions] == ["enter", "exit"]
    assert not result.changed
    assert fences.step_batch({}, []) == StepResult(states={}, transitions=(), changed=False)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="exit_pings"):
        FenceConfig(exit_pings=0)
    with pytest.raises(ValueError, match="touch_seconds"):
        FenceConfig(touch_seconds=10_000)
    with pytest.raises(ValueError, match="negative"):
        FenceConfig(exit_buffer_m=-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONFIG.dwell_seconds = 1  # type: ignore[misc]


def test_needs_persisting_ignores_only_the_out_counter() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    inside = {7: FenceState(fence_id=7, entered_at=t0, last_inside_at=t0)}
    counted = {7: FenceState(fence_id=7, entered_at=t0, last_inside_at=t0, out_count=1)}
    assert not fences.needs_persisting(inside, counted)
    assert not fences.needs_persisting(counted, inside)
    assert fences.needs_persisting(inside, {})
    assert fences.needs_persisting({}, inside)
    dwelt = {7: FenceState(fence_id=7, entered_at=t0, last_inside_at=t0, dwell_fired=True)}
    assert fences.needs_persisting(inside, dwelt)
    later = {7: FenceState(fence_id=7, entered_at=t0, last_inside_at=t0 + timedelta(minutes=5))}
    assert fences.needs_persisting(inside, later)
