"""The ping body's two decoders agree: the msgspec fast path of POST /v1/pings accepts only
what the documented model (PingIn) accepts, with equal values, and everything else gets
PingIn's own answer, field messages included (hypothesis, over near-valid and broken
bodies)."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.http import api, errors
from gateway.http.handlers import pings as handlers
from gateway.pingpath import pings

FUZZ = settings(
    max_examples=600, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

GOOD = {"lat": 48.85, "lon": 2.35, "accuracy_m": 15, "ts": "2026-01-01T10:00:00.123Z"}


Read = tuple[object, ...]


def _fields(p: pings.PingLike) -> Read:
    """Everything the ping service reads of a ping; the offset too, as it is shown."""
    return (
        p.lat,
        p.lon,
        p.accuracy_m,
        p.ts,
        p.ts.utcoffset(),
        p.ts.isoformat(),
        p.speed_mps,
        p.weather_condition,
        p.temp_c,
        p.id,
    )


def _reference(raw: bytes) -> Read:
    """What PingIn alone makes of a body: the ping, or the error's code, message, fields."""
    try:
        return _fields(handlers._ping(api.parse(raw, handlers.PingIn)))
    except errors.ApiError as exc:
        return (exc.code, exc.message, dict(exc.fields) if exc.fields else None)


def _decoded(raw: bytes) -> Read:
    try:
        return _fields(handlers.decode_ping(raw))
    except errors.ApiError as exc:
        return (exc.code, exc.message, dict(exc.fields) if exc.fields else None)


def _fast_accepts(raw: bytes) -> bool:
    return handlers._wire(raw, handlers._ONE) is not None


def _same(raw: bytes) -> None:
    assert _decoded(raw) == _reference(raw), raw


digits = st.text(alphabet="0123456789", min_size=1, max_size=4)
timestamps = st.one_of(
    st.datetimes(
        min_value=dt.datetime(1, 1, 1),
        timezones=st.sampled_from(
            [
                dt.UTC,
                dt.timezone(dt.timedelta(hours=5, minutes=30)),
                dt.timezone(-dt.timedelta(hours=23, minutes=59)),
            ]
        ),
    ).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.builds(
        lambda y, mo, d, h, mi, s, frac, sep, off: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{off}",
        digits,
        digits,
        digits,
        digits,
        digits,
        digits,
        st.sampled_from(["", ".", ".1", ".123456", ".1234567", ",5"]),
        st.sampled_from(["T", "t", " ", "_"]),
        st.sampled_from(["Z", "z", "+00:00", "-00:00", "+24:00", "+00:60", "+0100", "+01", ""]),
    ),
    st.text(max_size=30),
)
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([90, -90, 180, -180, 0, -0.0, 1e-320, 100_000, 100_000.0000001, 1000, 70]),
)
values = st.one_of(
    numbers,
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    timestamps,
    st.lists(numbers, max_size=2),
)


def _bounded(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Mostly in [lo, hi], often at or just past either end."""
    return st.one_of(
        st.floats(min_value=lo, max_value=hi),
        st.floats(min_value=hi, max_value=hi + 1, exclude_min=True),
        st.floats(min_value=lo - 1, max_value=lo, exclude_max=True),
        st.sampled_from([lo, hi, math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf)]),
        st.integers(min_value=int(lo) - 2, max_value=int(hi) + 2),
    )


weathers = st.fixed_dictionaries(
    {
        "condition": st.sampled_from(["rain", "clear", "fog", "Rain", "tornado", ""]),
        "temp_c": _bounded(-90, 70),
    },
    optional={"extra": st.just(1)},
)
ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.uuids().map(lambda u: f"urn:uuid:{u}"),
    st.uuids().map(lambda u: str(u)[:-1]),
    st.none(),
)
valid_weather = st.fixed_dictionaries(
    {
        "condition": st.sampled_from(["rain", "clear"]),
        "temp_c": st.floats(min_value=-90, max_value=70),
    }
)
valid = st.fixed_dictionaries(
    {
        "lat": st.floats(min_value=-90, max_value=90),
        "lon": st.floats(min_value=-180, max_value=180),
        "accuracy_m": st.floats(min_value=0, max_value=100_000, exclude_min=True),
        "ts": st.datetimes(min_value=dt.datetime(1970, 1, 1), timezones=st.just(dt.UTC)).map(
            lambda d: d.isoformat()
        ),
    },
    optional={
        "speed_mps": st.none() | st.floats(min_value=0, max_value=1000),
        "weather": st.none() | valid_weather,
        "id": st.none() | st.uuids().map(str),
    },
)
# One field of a valid body set to a value near or past its edge.
edges: dict[str, st.SearchStrategy[Any]] = {
    "lat": _bounded(-90, 90),
    "lon": _bounded(-180, 180),
    "accuracy_m": _bounded(0, 100_000),
    "ts": timestamps,
    "speed_mps": _bounded(0, 1000),
    "weather": weathers
    | valid_weather.flatmap(lambda w: _bounded(-90, 70).map(lambda t: {**w, "temp_c": t})),
    "id": ids,
    "other": values,
}
near_valid = st.tuples(valid, st.sampled_from(sorted(edges))).flatmap(
    lambda pair: edges[pair[1]].map(lambda v: {**pair[0], pair[1]: v})
)
junk = st.fixed_dictionaries(
    {},
    optional={
        "lat": values,
        "lon": values,
        "accuracy_m": values,
        "ts": timestamps,
        "speed_mps": values,
        "weather": weathers | values,
        "id": ids | values,
        "other": values,
    },
)


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


@FUZZ
@given(near_valid)
def test_near_valid_bodies_get_the_same_answer_from_both_decoders(body: dict[str, Any]) -> None:
    _same(_dump(body))


@FUZZ
@given(junk)
def test_broken_bodies_get_the_same_answer_from_both_decoders(body: dict[str, Any]) -> None:
    _same(_dump(body))


@FUZZ
@given(valid)
def test_valid_bodies_take_the_fast_path_with_equal_values(body: dict[str, Any]) -> None:
    raw = _dump(body)
    _same(raw)
    # What apps send is decoded by msgspec, not by the fallback.
    assert _fast_accepts(raw), raw


@pytest.mark.parametrize(
    "raw",
    [
        b'{"lat":NaN,"lon":2,"accuracy_m":3,"ts":"2026-01-01T10:00:00Z"}',
        b'{"lat":1e999,"lon":2,"accuracy_m":3,"ts":"2026-01-01T10:00:00Z"}',
        b'\xef\xbb\xbf{"lat":1,"lon":2,"accuracy_m":3,"ts":"2026-01-01T10:00:00Z"}',
        b'{"lat":1,"lat":5,"lon":2,"accuracy_m":3,"ts":"2026-01-01T10:00:00Z"}',
        b'{"lat":1,"lon":2,"accuracy_m":3,"ts":"2026-01-01T10:00:00.1234567Z"}',
        b'{"lat":1,"lon":2,"accuracy_m":3,"ts":"2026-01-01T10:00:00,5Z"}',
        b'{"lat":1,"lon":2,"accuracy_m":3,"ts":"2026-02-30T10:00:00Z"}',
        b'{"lat":1,"lon":2,"accuracy_m":3,"ts":"2026-01-01T10:00:00+00:60"}',
        b'{"lat":1,"lon":2,"accuracy_m":3,"ts":"2026-01-01T10:00:00"}',
        b'{"lat":1,"lon":2,"accuracy_m":3,"ts":"2026-01-01T10:00:00Z","id":"nope"}',
        b'{"lat":1,"lon":2,"accuracy_m":3,"ts":"2026-01-01T10:00:00Z","id":7}',
        b"[1, 2]",
        b'{"lat":1,',
        b"null",
    ],
)
def test_awkward_bodies_get_the_same_answer_from_both_decoders(raw: bytes) -> None:
    _same(raw)


def test_the_client_id_is_a_uuid() -> None:
    good = uuid.uuid4()
    raw = _dump({**GOOD, "id": str(good)})
    assert _fast_accepts(raw)
    assert handlers.decode_ping(raw).id == good
    with pytest.raises(errors.ValidationFailed) as refused:
        handlers.decode_ping(_dump({**GOOD, "id": "not-a-uuid"}))
    assert set(refused.value.fields or {}) == {"id"}


def test_the_fast_path_takes_what_apps_send() -> None:
    raw = _dump({**GOOD, "speed_mps": 1.5, "weather": {"condition": "rain", "temp_c": 4}})
    assert _fast_accepts(raw)
    ping = handlers.decode_ping(raw)
    assert ping.ts == dt.datetime(2026, 1, 1, 10, 0, 0, 123000, tzinfo=dt.UTC)
    assert (ping.weather_condition, ping.temp_c, ping.speed_mps) == ("rain", 4.0, 1.5)
    assert not math.isnan(ping.lat)
