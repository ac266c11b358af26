// Geometry helpers for the geofence map: GeoJSON <-> Leaflet layers, the accuracy reach
// around a fence, areas, and where an API error's `fields` key points on the map.

const KY = 110540;

function frame(lat0) {
  return Math.cos((lat0 * Math.PI) / 180) * 111320;
}

/** A Leaflet layer for a stored geofence Feature. */
export function layerOf(L, feature, style) {
  const g = feature.geometry;
  if (g.type === "Point") {
    return L.circle([g.coordinates[1], g.coordinates[0]], { radius: feature.properties.radius_m || 10, ...style });
  }
  const levels = g.type === "MultiPolygon" ? 2 : 1;
  return L.polygon(L.GeoJSON.coordsToLatLngs(g.coordinates, levels), style);
}

const round7 = (x) => Math.round(x * 1e7) / 1e7;

/** The GeoJSON geometry (and radius for a circle) a drawn or edited layer stands for. */
export function geometryOf(L, layer) {
  if (layer instanceof L.Circle) {
    const c = layer.getLatLng().wrap();
    return { geometry: { type: "Point", coordinates: [round7(c.lng), round7(c.lat)] }, radius: Math.round(layer.getRadius() * 10) / 10 };
  }
  return { geometry: layer.toGeoJSON(7).geometry, radius: null };
}

/** Outer rings of a polygon layer as arrays of LatLng. */
export function outerRings(layer) {
  const ll = layer.getLatLngs();
  if (!ll.length) return [];
  return Array.isArray(ll[0][0]) ? ll.map((poly) => poly[0]) : [ll[0]];
}

/** Area of a ring in m² (local flat frame: fine at a store's scale). */
export function ringArea(ring) {
  if (ring.length < 3) return 0;
  const kx = frame(ring[0].lat);
  let twice = 0;
  for (let i = 0; i < ring.length; i++) {
    const a = ring[i];
    const b = ring[(i + 1) % ring.length];
    twice += (a.lng - ring[0].lng) * kx * (b.lat - ring[0].lat) * KY - (b.lng - ring[0].lng) * kx * (a.lat - ring[0].lat) * KY;
  }
  return Math.abs(twice / 2);
}

/** The ring pushed outwards by `metres`, rounded at its convex corners: where a ping with
 *  that accuracy can already count as inside. */
export function offsetRing(L, ring, metres) {
  const lat0 = ring[0].lat;
  const lng0 = ring[0].lng;
  const kx = frame(lat0);
  const pts = ring.map((p) => [(p.lng - lng0) * kx, (p.lat - lat0) * KY]);
  const n = pts.length;
  let area = 0;
  for (let i = 0; i < n; i++) {
    const [x1, y1] = pts[i];
    const [x2, y2] = pts[(i + 1) % n];
    area += x1 * y2 - x2 * y1;
  }
  const sign = area > 0 ? 1 : -1;
  const normal = (p, q) => {
    const dx = q[0] - p[0];
    const dy = q[1] - p[1];
    const len = Math.hypot(dx, dy) || 1;
    return [(sign * dy) / len, (-sign * dx) / len];
  };
  const out = [];
  for (let i = 0; i < n; i++) {
    const prev = pts[(i - 1 + n) % n];
    const cur = pts[i];
    const next = pts[(i + 1) % n];
    const n1 = normal(prev, cur);
    const n2 = normal(cur, next);
    const turn = ((cur[0] - prev[0]) * (next[1] - cur[1]) - (cur[1] - prev[1]) * (next[0] - cur[0])) * sign;
    if (turn > 0) {
      const a1 = Math.atan2(n1[1], n1[0]);
      let delta = Math.atan2(n2[1], n2[0]) - a1;
      while (delta > Math.PI) delta -= 2 * Math.PI;
      while (delta < -Math.PI) delta += 2 * Math.PI;
      const steps = Math.max(1, Math.ceil(Math.abs(delta) / (Math.PI / 12)));
      for (let k = 0; k <= steps; k++) {
        const ang = a1 + (delta * k) / steps;
        out.push([cur[0] + metres * Math.cos(ang), cur[1] + metres * Math.sin(ang)]);
      }
    } else {
      out.push([cur[0] + n1[0] * metres, cur[1] + n1[1] * metres]);
      out.push([cur[0] + n2[0] * metres, cur[1] + n2[1] * metres]);
    }
  }
  return out.map(([x, y]) => L.latLng(lat0 + y / KY, lng0 + x / kx));
}

const AT = /at \[(-?[\d.]+(?:e-?\d+)?), (-?[\d.]+(?:e-?\d+)?)\]/i;

/** Where on the map an error about `key` (a `fields` key relative to the Feature, such as
 *  geometry.coordinates[0][3]) is: the crossing point its message names, else the vertex. */
export function errorSpot(key, message, geometry) {
  const at = AT.exec(message || "");
  if (at) return [Number(at[2]), Number(at[1])];
  if (!geometry || !Array.isArray(geometry.coordinates)) return null;
  const m = /^geometry\.coordinates((?:\[\d+\])*)/.exec(key);
  if (!m && !key.startsWith("geometry") && !key.startsWith("properties.radius_m")) return null;
  let node = geometry.coordinates;
  for (const index of (m ? m[1] : "").match(/\d+/g) || []) {
    if (!Array.isArray(node) || node[Number(index)] === undefined) break;
    node = node[Number(index)];
  }
  while (Array.isArray(node) && Array.isArray(node[0])) node = node[0];
  if (Array.isArray(node) && typeof node[0] === "number" && typeof node[1] === "number") return [node[1], node[0]];
  return null;
}

export function describe(feature) {
  const g = feature.geometry;
  if (g.type === "Point") return `circle, ${Math.round(feature.properties.radius_m)} m radius`;
  const count = g.type === "Polygon" ? g.coordinates[0].length - 1 : g.coordinates.reduce((s, p) => s + p[0].length - 1, 0);
  return `${g.type === "Polygon" ? "area" : "areas"}, ${count} corners`;
}
