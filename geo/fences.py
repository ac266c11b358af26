"""The pure enter/dwell/exit state machine of one shopper against nearby geofences.

Accuracy-aware with hysteresis: a ping enters a fence when the fence is within the ping's
accuracy, and only leaves it after `exit_pings` consecutive pings clearly outside, so GPS
jitter on a fence's edge does not make the shopper flap in and out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from geo.models import EventKind, FenceConfig, FenceState, Observation, StepResult, Transition

DEFAULT_CONFIG = FenceConfig()
FloatArray = npt.NDArray[np.float64]


def effective_accuracy_m(accuracy_m: float, config: FenceConfig = DEFAULT_CONFIG) -> float:
    """The accuracy the rules use: devices claiming better than `min_accuracy_m` are not."""
    return max(accuracy_m, config.min_accuracy_m)


def reach_m(accuracy_m: float, config: FenceConfig = DEFAULT_CONFIG) -> float:
    """Beyond this distance a ping counts as out of a visited fence.

    Ask the index for every fence within it (`FenceIndex.match(lon, lat, reach_m(acc), m)`):
    a visited fence missing from `near` is taken to be this far away or farther.
    """
    acc = effective_accuracy_m(accuracy_m, config)
    return acc + config.exit_buffer_m + config.exit_buffer_ratio * acc


def reach_m_array(accuracy_m: FloatArray, config: FenceConfig = DEFAULT_CONFIG) -> FloatArray:
    """`reach_m` of each accuracy, with the same arithmetic, so the same floats."""
    acc = np.maximum(accuracy_m, config.min_accuracy_m)
    out: FloatArray = acc + config.exit_buffer_m + config.exit_buffer_ratio * acc
    return out


NO_STORES: Mapping[int, int] = MappingProxyType({})


def step(
    states: Mapping[int, FenceState],
    near: Mapping[int, float],
    accuracy_m: float,
    ts: datetime,
    config: FenceConfig = DEFAULT_CONFIG,
    *,
    stores: Mapping[int, int] = NO_STORES,
) -> StepResult:
    """Apply one ping to a shopper's open visits.

    `states` are the open visits by fence id; `near` maps fence id to the ping's distance in
    metres (0 inside) for fences within `reach_m(accuracy_m)`. `stores` maps fence ids to
    their stores, so each transition carries its store. Transitions come out as exits, then
    dwells, then enters, each in fence id order.
    """
    if not accuracy_m <= config.max_accuracy_m:  # written so that NaN is refused too
        return StepResult(states=states, transitions=(), changed=False)
    new: dict[int, FenceState] = dict(states)
    exits: list[Transition] = []
    dwells: list[Transition] = []
    changed = False
    for fence_id in sorted(states):
        d = near.get(fence_id, math.inf)
        followed = _follow(states[fence_id], d, accuracy_m, ts, stores, config)
        if followed is None:
            continue
        after, transition = followed
        changed = True
        if after is None:
            del new[fence_id]
        else:
            new[fence_id] = after
        if transition is not None:
            (exits if transition.event == "exit" else dwells).append(transition)
    enters = _enter(new, near, accuracy_m, ts, stores, config)
    if not (changed or enters):
        return StepResult(states=states, transitions=(), changed=False)
    return StepResult(states=new, transitions=(*exits, *dwells, *enters), changed=True)


def _follow(
    state: FenceState,
    d: float,
    accuracy_m: float,
    ts: datetime,
    stores: Mapping[int, int],
    config: FenceConfig,
) -> tuple[FenceState | None, Transition | None] | None:
    """One open visit against a ping `d` metres away.

    None if the visit does not change; else its new state (None: it ended) and its
    transition, if any.
    """
    since_inside = (ts - state.last_inside_at).total_seconds()
    if since_inside < 0:
        # Older than what this visit already knows: it can't tell us anything new.
        return None
    if since_inside > config.visit_timeout_seconds:
        # Pings stopped (app killed, phone off): the visit ended when we last saw it.
        return None, _transition(state.fence_id, "exit", state.last_inside_at, stores)
    if d > reach_m(accuracy_m, config):
        out_count = state.out_count + 1
        if out_count >= config.exit_pings:
            return None, _transition(state.fence_id, "exit", ts, stores)
        return replace(state, out_count=out_count), None
    # Dwell wants a ping that would have entered, not one in the hysteresis band.
    fire = (
        not state.dwell_fired
        and d <= effective_accuracy_m(accuracy_m, config)
        and (ts - state.entered_at).total_seconds() >= config.dwell_seconds
    )
    # Refresh last_inside_at only coarsely: a write per ping for a shopper standing in
    # a shop would buy nothing but a slightly sharper visit timeout.
    if fire or since_inside >= config.touch_seconds:
        touched = replace(
            state, last_inside_at=ts, out_count=0, dwell_fired=state.dwell_fired or fire
        )
        return touched, _transition(state.fence_id, "dwell", ts, stores) if fire else None
    if state.out_count:
        # Back inside: only the counter resets, which needs no database write.
        return replace(state, out_count=0), None
    return None


def _enter(
    visits: dict[int, FenceState],
    near: Mapping[int, float],
    accuracy_m: float,
    ts: datetime,
    stores: Mapping[int, int],
    config: FenceConfig,
) -> list[Transition]:
    """Open a visit in `visits` for each fence within accuracy that has none; their enters."""
    acc = effective_accuracy_m(accuracy_m, config)
    dwell_now = config.dwell_seconds <= 0
    enters: list[Transition] = []
    for fence_id in sorted(near):
        if fence_id in visits or not near[fence_id] <= acc:
            continue
        visits[fence_id] = FenceState(
            fence_id=fence_id, entered_at=ts, last_inside_at=ts, dwell_fired=dwell_now
        )
        enters.append(_transition(fence_id, "enter", ts, stores))
        if dwell_now:
            enters.append(_transition(fence_id, "dwell", ts, stores))
    return enters


def _transition(
    fence_id: int, event: EventKind, at: datetime, stores: Mapping[int, int]
) -> Transition:
    return Transition(fence_id=fence_id, store_id=stores.get(fence_id), event=event, at=at)


def step_batch(
    states: Mapping[int, FenceState],
    observations: Sequence[Observation],
    config: FenceConfig = DEFAULT_CONFIG,
    *,
    stores: Mapping[int, int] = NO_STORES,
) -> StepResult:
    """Apply several pings in timestamp order (ties keep their given order).

    `changed` compares the final states with `states`: a visit opened and closed within
    the batch leaves nothing to write, though its transitions are still returned.
    `by_observation` gives each observation's own transitions, in the order given, so
    pings that share a timestamp keep theirs apart.
    """
    current: Mapping[int, FenceState] = states
    transitions: list[Transition] = []
    by_observation: list[tuple[Transition, ...]] = [()] * len(observations)
    for k in sorted(range(len(observations)), key=lambda k: observations[k].at):
        obs = observations[k]
        result = step(current, obs.near, obs.accuracy_m, obs.at, config, stores=stores)
        current = result.states
        transitions.extend(result.transitions)
        by_observation[k] = result.transitions
    return StepResult(
        states=current,
        transitions=tuple(transitions),
        changed=dict(current) != dict(states),
        by_observation=tuple(by_observation),
    )


def needs_persisting(before: Mapping[int, FenceState], after: Mapping[int, FenceState]) -> bool:
    """Whether going from ``before`` to ``after`` changes anything worth a database write.

    The out counter alone is not: it only counts consecutive pings outside, and
    losing it (a restart, a ping served by another replica) merely delays an
    exit by a ping. Keeping it out of the database spares a write per ping for
    shoppers loitering at a fence's edge.
    """
    if before.keys() != after.keys():
        return True
    for fence_id, old in before.items():
        new = after[fence_id]
        if (new.entered_at, new.last_inside_at, new.dwell_fired) != (
            old.entered_at,
            old.last_inside_at,
            old.dwell_fired,
        ):
            return True
    return False
