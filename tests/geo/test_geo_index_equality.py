"""One-ping matching equals the reference, whichever path measures the ping.

`FenceIndex.match` measures a ping's candidates in numba's compiled loop (`geo.kernel`) or,
as the fallback, in numpy: in array operations when there are more than a few, one by one
in Python when there are few, and through the batched matcher's edge arrays for a merchant
with a very long polygon. Each must give the reference's distances (haversine for circles,
`distance.polygon_distance_m` for polygons) to 1e-6 m.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import shapely

from geo import distance, index, layout
from geo.index import FenceIndex
from geo.models import Fence, MatchKernel
from tests.geo.test_geo_index import brute_force
from tests.support.geo import circle, destination, polygon

# Where the layouts are: a city, both sides of the antimeridian, and near both poles.
PLACES = [
    (21, 2.35, 48.85),
    (22, 179.995, -16.5),
    (23, -179.998, 64.0),
    (24, 40.0, 89.997),
    (25, -120.0, -89.99),
]


def ring(
    lon: float, lat: float, radii: list[float], start: float = 0.0
) -> list[tuple[float, float]]:
    """Vertices at these distances from a centre, evenly round it (on the sphere)."""
    step = 360.0 / len(radii)
    return [destination(lon, lat, start + k * step, r) for k, r in enumerate(radii)]


def shape_near(rng: np.random.Generator, lon: float, lat: float) -> shapely.Geometry | None:
    """A polygon, a polygon with a hole, or a multipolygon round this centre; None when it
    would cross the antimeridian (fences never do)."""
    corners = int(rng.integers(4, 30))
    outer = ring(lon, lat, rng.uniform(40, 150, corners).tolist(), float(rng.uniform(0, 90)))
    kind = rng.random()
    if kind < 0.4:
        geometry = shapely.Polygon(outer)
    elif kind < 0.7:
        geometry = shapely.Polygon(outer, [ring(lon, lat, [20.0] * 6)])
    else:
        far = destination(lon, lat, float(rng.uniform(0, 360)), 400.0)
        second = shapely.Polygon(ring(*far, [30.0, 50.0, 40.0, 35.0]))
        geometry = shapely.MultiPolygon([shapely.Polygon(outer), second])
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
        if geometry.geom_type not in ("Polygon", "MultiPolygon"):
            return None
    west, _, east, _ = geometry.bounds
    return None if east - west > 180.0 else geometry


def layout_near(seed: int, lon0: float, lat0: float) -> list[Fence]:
    """A dense layout for merchant 1 and, for merchant 2, a sparse one that includes one
    polygon too long for the padded edge rows."""
    rng = np.random.default_rng(seed)
    fences: list[Fence] = []
    for i in range(1, 301):
        lon, lat = destination(lon0, lat0, float(rng.uniform(0, 360)), float(rng.uniform(0, 900)))
        merchant = 1 if i <= 260 else 2
        geometry = shape_near(rng, lon, lat) if rng.random() < 0.35 else None
        if geometry is None:
            fences.append(circle(i, lon, lat, float(rng.uniform(10, 250)), merchant))
        else:
            fences.append(polygon(i, geometry, merchant))
    long_ring = ring(lon0, lat0, [300.0] * (layout.MAX_ROW_EDGES + 20))
    fences.append(polygon(301, shapely.Polygon(long_ring), merchant_id=2))
    return fences


# Both kernels, always: numba is a dependency, so "numba" fails here rather than fall back.
KERNELS = pytest.mark.parametrize("kernel", ["numba", "numpy"])


@KERNELS
@pytest.mark.parametrize(("seed", "lon0", "lat0"), PLACES)
def test_one_ping_matching_equals_the_reference(
    seed: int, lon0: float, lat0: float, kernel: MatchKernel
) -> None:
    fences = layout_near(seed, lon0, lat0)
    fence_index = FenceIndex.build(fences, kernel)
    assert fence_index.match_kernel == kernel
    rng = np.random.default_rng(seed + 100)
    paths = {"array": 0, "loop": 0}
    matched = 0
    for k in range(400):
        lon, lat = destination(lon0, lat0, float(rng.uniform(0, 360)), float(rng.uniform(0, 1200)))
        merchant = 1 if k % 4 else 2
        want_all = brute_force(fences, lon, lat, math.inf, merchant)
        reach = float(rng.uniform(0, 150))
        if k % 5 == 0 and want_all:
            # At the edge of reach: exactly as far as some fence.
            reach = float(rng.choice(list(want_all.values())))
        got = fence_index.match(lon, lat, reach, merchant)
        for fence_id, d in got.items():
            assert d == pytest.approx(want_all[fence_id], abs=1e-6)
        for fence_id in want_all.keys() - got.keys():
            # Missed only if the reference puts it beyond reach (give or take 1e-6 m).
            assert want_all[fence_id] > reach - 1e-6
        for fence_id in got:
            assert want_all[fence_id] <= reach + 1e-6
        found = fence_index._lookup(lon, lat, reach, merchant)
        if found is not None:
            paths["array" if len(found[1]) > index._SCALAR_CANDIDATES else "loop"] += 1
        matched += len(got)
    # The test means something only if both paths ran and fences matched.
    assert paths["array"] > 20
    assert paths["loop"] > 20
    assert matched > 300


@KERNELS
@pytest.mark.parametrize(("seed", "lon0", "lat0"), PLACES)
def test_batched_matching_equals_one_ping_matching(
    seed: int, lon0: float, lat0: float, kernel: MatchKernel
) -> None:
    """`match_many` (the batch upload's matcher; with numba, one compiled call per ping
    over the batch's candidate pairs) finds what `match` finds for each ping alone."""
    fences = layout_near(seed, lon0, lat0)
    fence_index = FenceIndex.build(fences, kernel)
    rng = np.random.default_rng(seed + 200)
    n = 300
    points = [
        destination(lon0, lat0, float(rng.uniform(0, 360)), float(rng.uniform(0, 1200)))
        for _ in range(n)
    ]
    lons, lats = (np.array(c) for c in zip(*points, strict=True))
    reach = rng.uniform(0, 150, n)
    merchants = np.where(np.arange(n) % 4 == 0, 2, 1)
    merchants[::7] = 3  # no fences
    batch = fence_index.match_many(lons, lats, reach, merchants, margin_m=5.0).to_dicts()
    matched = 0
    for k in range(n):
        one = fence_index.match(lons[k], lats[k], reach[k], int(merchants[k]), margin_m=5.0)
        assert batch[k].keys() == one.keys(), k
        for fence_id, d in one.items():
            assert batch[k][fence_id] == pytest.approx(d, abs=1e-6)
        matched += len(one)
    assert matched > 200  # the test means something only if fences did match


def test_long_polygons_take_the_general_path() -> None:
    fences = layout_near(31, 2.35, 48.85)
    fence_index = FenceIndex.build(fences)
    assert fence_index._groups[1].edge_rows is not None
    assert fence_index._groups[2].edge_rows is None


@KERNELS
def test_one_ping_matches_inside_a_hole_and_far_parts(kernel: MatchKernel) -> None:
    """Many candidates (the array path): a hole is outside, a far part is inside."""
    lon0, lat0 = 2.35, 48.85
    outer = ring(lon0, lat0, [200.0] * 8, 22.5)
    hole = ring(lon0, lat0, [60.0] * 8, 22.5)
    part = ring(*destination(lon0, lat0, 90.0, 800.0), [50.0] * 6)
    shape = shapely.MultiPolygon([shapely.Polygon(outer, [hole]), shapely.Polygon(part)])
    fences = [polygon(1, shape)]
    fences += [circle(10 + k, *destination(lon0, lat0, k * 36.0, 100.0), 30.0) for k in range(10)]
    fence_index = FenceIndex.build(fences, kernel)
    for (bearing, metres), want in [((0.0, 0.0), 60.0 * math.cos(math.pi / 8)), ((90, 800), 0.0)]:
        lon, lat = destination(lon0, lat0, bearing, metres)
        assert fence_index._lookup(lon, lat, 500.0, 1) is not None
        got = fence_index.match(lon, lat, 500.0, 1)
        assert got[1] == pytest.approx(want, abs=0.5)
        assert got[1] == pytest.approx(distance.polygon_distance_m(shape, lon, lat), abs=1e-6)


def test_the_kernel_is_chosen_once_and_checked() -> None:
    fences = layout_near(41, 2.35, 48.85)
    assert FenceIndex.build(fences).match_kernel == "numba"  # "auto", numba installed
    assert FenceIndex.build(fences, "numpy").match_kernel == "numpy"
    assert FenceIndex.build([], "numba").match_kernel == "numpy"  # nothing to measure
    with pytest.raises(ValueError, match="auto/numba/numpy"):
        FenceIndex.build(fences, "cuda")  # type: ignore[arg-type]


def test_without_numba_auto_takes_the_numpy_path() -> None:
    """A machine where numba cannot be imported: "auto" falls back, "numba" says why."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["numba"] = None  # what an interpreter without numba does on import
        import pytest
        from geo.index import FenceIndex
        from tests.geo.test_geo_index_equality import layout_near
        fences = layout_near(41, 2.35, 48.85)
        assert FenceIndex.build(fences).match_kernel == "numpy"
        with pytest.raises(ImportError):
            FenceIndex.build(fences, "numba")
        print("fell back")
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fell back"
