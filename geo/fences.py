"""The pure enter/dwell/exit state machine of one shopper against nearby geofences.

Accuracy-aware with hysteresis: a ping enters a fence when the fence is within the ping's
accuracy, and only leaves it after `exit_pings` consecutive pings clearly outside, so GPS
jitter on a fence's edge does not make the shopper flap in and out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from geo.models import FenceConfig, FenceState, Observation, StepResult, Transition

DEFAULT_CONFIG = FenceConfig()


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


def step(
    states: Mapping[int, FenceState],
    near: Mapping[int, float],
    accuracy_m: float,
    ts: datetime,
    config: FenceConfig = DEFAULT_CONFIG,
) -> StepResult:
    """Apply one ping to a shopper's open visits.

    `states` are the open visits by fence id; `near` maps fence id to the ping's distance in
    metres (0 inside) for fences within `reach_m(accuracy_m)`. Transitions come out as
    exits, then dwells, then enters, each in fence id order.
    """
    if not accuracy_m <= config.max_accuracy_m:  # written so that NaN is refused too
        return StepResult(states=states, transitions=(), changed=False)
    acc = effective_accuracy_m(accuracy_m, config)
    out_beyond = reach_m(accuracy_m, config)
    new: dict[int, FenceState] = dict(states)
    exits: list[Transition] = []
    dwells: list[Transition] = []
    changed = False

    for fence_id in sorted(states):
        state = states[fence_id]
        since_inside = (ts - state.last_inside_at).total_seconds()
        if since_inside < 0:
            # Older than what this visit already knows: it can't tell us anything new.
            continue
        if since_inside > config.visit_timeout_seconds:
            # Pings stopped (app killed, phone off): the visit ended when we last saw it.
            del new[fence_id]
            exits.append(Transition(fence_id=fence_id, event="exit", at=state.last_inside_at))
            changed = True
            continue
        d = near.get(fence_id, math.inf)
        if d > out_beyond:
            out_count = state.out_count + 1
            if out_count >= config.exit_pings:
                del new[fence_id]
                exits.append(Transition(fence_id=fence_id, event="exit", at=ts))
            else:
                new[fence_id] = replace(state, out_count=out_count)
            changed = True
            continue
        # Dwell wants a ping that would have entered, not one in the hysteresis band.
        fire = (
            not state.dwell_fired
            and d <= acc
            and (ts - state.entered_at).total_seconds() >= config.dwell_seconds
        )
        # Refresh last_inside_at only coarsely: a write per ping for a shopper standing in
        # a shop would buy nothing but a slightly sharper visit timeout.
        touch = since_inside >= config.touch_seconds
        if fire or touch:
            new[fence_id] = replace(
                state, last_inside_at=ts, out_count=0, dwell_fired=state.dwell_fired or fire
            )
            changed = True
        elif state.out_count:
            # Back inside: only the counter resets, which needs no database write.
            new[fence_id] = replace(state, out_count=0)
            changed = True
        if fire:
            dwells.append(Transition(fence_id=fence_id, event="dwell", at=ts))

    enters: list[Transition] = []
    for fence_id in sorted(near):
        if fence_id in new or not near[fence_id] <= acc:
            continue
        dwell_now = config.dwell_seconds <= 0
        new[fence_id] = FenceState(
            fence_id=fence_id, entered_at=ts, last_inside_at=ts, dwell_fired=dwell_now
        )
        changed = True
        enters.append(Transition(fence_id=fence_id, event="enter", at=ts))
        if dwell_now:
            enters.append(Transition(fence_id=fence_id, event="dwell", at=ts))

    if not changed:
        return StepResult(states=states, transitions=(), changed=False)
    return StepResult(states=new, transitions=(*exits, *dwells, *enters), changed=True)


def step_batch(
    states: Mapping[int, FenceState],
    observations: Iterable[Observation],
    config: FenceConfig = DEFAULT_CONFIG,
) -> StepResult:
    """Apply several pings in timestamp order (ties keep their given order).

    `changed` compares the final states with `states`: a visit opened and closed within
    the batch leaves nothing to write, though its transitions are still returned.
    """
    current: Mapping[int, FenceState] = states
    transitions: list[Transition] = []
    for obs in sorted(observations, key=lambda o: o.at):
        result = step(current, obs.near, obs.accuracy_m, obs.at, config)
        current = result.states
        transitions.extend(result.transitions)
    changed = dict(current) != dict(states)
    return StepResult(states=current, transitions=tuple(transitions), changed=changed)


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
