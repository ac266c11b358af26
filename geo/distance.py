"""Distances in metres on a spherical Earth: haversine, metre-to-degree bounding boxes, and
point-to-polygon distance measured in a local equirectangular frame centred on the point.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

FloatArray = npt.NDArray[np.float64]

# IUGG mean Earth radius; the sphere is within 0.5 % of WGS 84 everywhere.
EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
_DEG = math.pi / 180.0


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two lon/lat points."""
    p1 = lat1 * _DEG
    p2 = lat2 * _DEG
    s_lat = math.sin((p2 - p1) * 0.5)
    s_lon = math.sin((lon2 - lon1) * _DEG * 0.5)
    a = s_lat * s_lat + math.cos(p1) * math.cos(p2) * s_lon * s_lon
    # Rounding can push `a` a hair above 1 for antipodal points.
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def haversine_m_array(
    lon1: npt.ArrayLike, lat1: npt.ArrayLike, lon2: npt.ArrayLike, lat2: npt.ArrayLike
) -> FloatArray:
    """Vectorised `haversine_m`; arguments broadcast like numpy arrays."""
    p1 = np.radians(lat1)
    p2 = np.radians(lat2)
    s_lat = np.sin((p2 - p1) * 0.5)
    s_lon = np.sin(np.radians(np.subtract(lon2, lon1)) * 0.5)
    a = s_lat * s_lat + np.cos(p1) * np.cos(p2) * s_lon * s_lon
    out: FloatArray = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
    return out


def bbox_around(lon: float, lat: float, metres: float) -> tuple[float, float, float, float]:
    """The lon/lat box `(west, south, east, north)` enclosing every point within `metres`.

    Exact for a spherical cap at any latitude: the longitude half-width is
    asin(sin d / cos lat), which is wider than the naive d / cos lat. A cap that reaches a
    pole spans all longitudes. A box crossing the antimeridian has west > east, as in
    RFC 7946 section 5.2.
    """
    d = max(metres, 0.0) / EARTH_RADIUS_M
    d_deg = d / _DEG
    south = lat - d_deg
    north = lat + d_deg
    if north >= 90.0 or south <= -90.0 or d >= math.pi / 2:
        return -180.0, max(south, -90.0), 180.0, min(north, 90.0)
    half = math.asin(math.sin(d) / math.cos(lat * _DEG)) / _DEG
    west = lon - half
    east = lon + half
    if west < -180.0:
        west += 360.0
    if east > 180.0:
        east -= 360.0
    return west, south, east, north


def bbox_around_array(
    lon: npt.ArrayLike, lat: npt.ArrayLike, metres: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Vectorised `bbox_around`: arrays `(west, south, east, north)`, west > east on a wrap."""
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    d = np.maximum(np.asarray(metres, dtype=np.float64), 0.0) / EARTH_RADIUS_M
    d_deg = np.degrees(d)
    south = lat_a - d_deg
    north = lat_a + d_deg
    polar = (north >= 90.0) | (south <= -90.0) | (d >= math.pi / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.sin(d) / np.cos(np.radians(lat_a))
    half = np.degrees(np.arcsin(np.clip(np.where(polar, 0.0, ratio), -1.0, 1.0)))
    west = lon_a - half
    east = lon_a + half
    west = np.where(west < -180.0, west + 360.0, west)
    east = np.where(east > 180.0, east - 360.0, east)
    west = np.where(polar, -180.0, west)
    east = np.where(polar, 180.0, east)
    south = np.maximum(south, -90.0)
    north = np.minimum(north, 90.0)
    return west, south, east, north


def polygon_distance_m(geometry: Any, lon: float, lat: float) -> float:
    """Distance in metres from a lon/lat point to a (Multi)Polygon: 0 inside or on it.

    The polygon is projected into an equirectangular frame centred on the point (longitude
    scaled by cos(lat)), where metres are true near the point, so the nearest edge is
    measured correctly instead of through a degree-based buffer. Across the antimeridian the
    copy of the polygon (shifted by 360°) nearest to the point is measured.
    """
    if shapely.intersects_xy(geometry, lon, lat):
        return 0.0
    west, _, east, _ = shapely.bounds(geometry).tolist()
    origin = lon - lon_shift((west + east) * 0.5, lon)
    x_scale = M_PER_DEG * math.cos(lat * _DEG)

    def to_local(coords: FloatArray) -> FloatArray:
        local = np.empty_like(coords)
        local[:, 0] = (coords[:, 0] - origin) * x_scale
        local[:, 1] = (coords[:, 1] - lat) * M_PER_DEG
        return local

    local = shapely.transform(geometry, to_local)
    return float(shapely.distance(local, shapely.Point(0.0, 0.0)))


def lon_shift(ref_lon: float, lon: float) -> float:
    """Multiple of 360° to add to `ref_lon`'s longitudes to bring them nearest to `lon`.

    Fences never cross the antimeridian (validation refuses it), so shifting a whole fence
    by one amount is enough for points on the other side of ±180°.
    """
    return 360.0 * round((lon - ref_lon) / 360.0)
