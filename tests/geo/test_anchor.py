"""A geofence stays near its store: distances to circles and polygons, and the swapped
[lat, lon] that range checks cannot see."""

from __future__ import annotations

import pytest
import shapely

from geo import anchor
from geo.errors import FenceTooFar

# A store in Paris, [lon, lat].
STORE = (2.3522, 48.8566)
LIMIT = 50_000.0


def circle(lon: float, lat: float, radius: float = 50) -> anchor.Tethered:
    return anchor.Tethered(
        path="",
        geometry=shapely.Point(lon, lat),
        radius_m=radius,
        store_lon=STORE[0],
        store_lat=STORE[1],
    )


def square(lon: float, lat: float, half: float = 0.001, path: str = "") -> anchor.Tethered:
    box = shapely.box(lon - half, lat - half, lon + half, lat + half)
    return anchor.Tethered(
        path=path, geometry=box, radius_m=None, store_lon=STORE[0], store_lat=STORE[1]
    )


def test_a_fence_at_its_store_passes() -> None:
    assert anchor.problems([circle(*STORE), square(*STORE)], LIMIT) == []


def test_swapped_coordinates_are_caught_with_a_hint() -> None:
    # [48.86, 2.34] as [lon, lat] is in range, and some 6,800 km away.
    [p] = anchor.problems([circle(48.8566, 2.3522)], LIMIT)
    assert p.path == "geometry.coordinates"
    assert p.code == "swapped_lon_lat"
    assert "did you swap longitude and latitude?" in p.message
    assert "6,7" in p.message or "6,8" in p.message, p.message
    [p] = anchor.problems([square(48.8566, 2.3522, path="features[2].")], LIMIT)
    assert (p.path, p.code) == ("features[2].geometry.coordinates", "swapped_lon_lat")


def test_far_but_not_swapped_says_how_far() -> None:
    lyon = (4.8357, 45.7640)  # about 390 km from Paris
    [p] = anchor.problems([circle(*lyon)], LIMIT)
    assert p.code == "far_from_store"
    assert "swap" not in p.message
    assert "(39" in p.message and "km" in p.message, p.message
    # A swapped position out of latitude range is no place: no hint either.
    [p] = anchor.problems([circle(139.69, 35.68)], LIMIT)
    assert p.code == "far_from_store"


def test_the_nearest_point_counts_not_the_centre() -> None:
    # A 10 km circle whose centre is 55 km off reaches within 45 km of the store.
    east = 2.3522 + 55_000 / (111_195 * 0.6580)
    assert anchor.problems([circle(east, 48.8566, radius=10_000)], LIMIT) == []
    assert len(anchor.problems([circle(east, 48.8566, radius=1_000)], LIMIT)) == 1


def test_zero_turns_the_check_off() -> None:
    assert anchor.problems([circle(48.8566, 2.3522)], 0) == []
    anchor.check([circle(48.8566, 2.3522)], 0)


def test_check_raises_with_every_problem() -> None:
    with pytest.raises(FenceTooFar) as caught:
        anchor.check([circle(*STORE), circle(48.8566, 2.3522), square(4.8357, 45.764)], LIMIT)
    assert [p.code for p in caught.value.problems] == ["swapped_lon_lat", "far_from_store"]


def test_a_store_move_that_leaves_its_fences_behind() -> None:
    fences = [("door", shapely.Point(*STORE), 50.0), ("block", square(*STORE).geometry, None)]
    assert anchor.store_move_problems(fences, 2.36, 48.86, LIMIT) == []
    swapped = anchor.store_move_problems(fences, 48.8566, 2.3522, LIMIT)
    assert [p.path for p in swapped] == ["lat", "lon"]
    assert "did you swap longitude and latitude?" in swapped[0].message
    assert "'door'" in swapped[0].message and "'block'" in swapped[0].message
    moved = anchor.store_move_problems(fences, 4.8357, 45.764, LIMIT)
    assert moved[0].code == "far_from_store" and "swap" not in moved[0].message
