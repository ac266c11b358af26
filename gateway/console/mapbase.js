// A Leaflet map with the configured tiles over a coordinate grid, so the map still reads
// (stores, fences, a labelled graticule) when tiles cannot load, as offline.
import { api } from "./api.js";
import { h, toast } from "./ui.js";

const NICE = [1, 2, 5];

function niceStep(span) {
  const exp = Math.floor(Math.log10(span));
  for (const n of NICE) {
    const step = n * 10 ** exp;
    if (step >= span) return step;
  }
  return 10 ** (exp + 1);
}

function fmt(value, step) {
  const digits = Math.max(0, Math.min(7, -Math.floor(Math.log10(step))));
  return value.toFixed(digits);
}

function gridLayer(L) {
  const Grid = L.GridLayer.extend({
    createTile(coords) {
      const tile = document.createElement("canvas");
      const size = this.getTileSize();
      const ratio = window.devicePixelRatio || 1;
      tile.width = size.x * ratio;
      tile.height = size.y * ratio;
      const ctx = tile.getContext("2d");
      ctx.scale(ratio, ratio);
      ctx.fillStyle = "#eef1f4";
      ctx.fillRect(0, 0, size.x, size.y);
      const map = this._map;
      const nw = coords.scaleBy(size);
      const se = nw.add(size);
      const a = map.unproject(nw, coords.z);
      const b = map.unproject(se, coords.z);
      // About four lines across a 256-pixel tile.
      const step = niceStep((360 / 2 ** coords.z) / 4);
      ctx.strokeStyle = "#c9d0d9";
      ctx.lineWidth = 1;
      for (let lon = Math.ceil(a.lng / step) * step; lon <= b.lng; lon += step) {
        const x = map.project([a.lat, lon], coords.z).x - nw.x;
        ctx.beginPath();
        ctx.moveTo(x + 0.5, 0);
        ctx.lineTo(x + 0.5, size.y);
        ctx.stroke();
      }
      for (let lat = Math.ceil(b.lat / step) * step; lat <= a.lat; lat += step) {
        const y = map.project([lat, a.lng], coords.z).y - nw.y;
        ctx.beginPath();
        ctx.moveTo(0, y + 0.5);
        ctx.lineTo(size.x, y + 0.5);
        ctx.stroke();
      }
      return tile;
    },
  });
  return new Grid({ zIndex: 0, pane: "tilePane" });
}

/** Degree labels along the map's top and right edges, for the grid's lines in view. */
function gridLabels(L, map) {
  const box = L.DomUtil.create("div", "grid-labels", map.getContainer());
  const label = (kind, text, side, px) => {
    const span = document.createElement("span");
    span.className = kind;
    span.textContent = text;
    span.style[side] = `${px}px`;
    return span;
  };
  const update = () => {
    const bounds = map.getBounds();
    const size = map.getSize();
    const z = map.getZoom();
    const step = niceStep((360 / 2 ** z) / 4);
    const labels = [];
    for (let lon = Math.ceil(bounds.getWest() / step) * step; lon <= bounds.getEast(); lon += step) {
      const x = map.latLngToContainerPoint([bounds.getNorth(), lon]).x;
      if (x > 60 && x < size.x - 60) labels.push(label("lon", `${fmt(lon, step)}°`, "left", x + 3));
    }
    for (let lat = Math.ceil(bounds.getSouth() / step) * step; lat <= bounds.getNorth(); lat += step) {
      const y = map.latLngToContainerPoint([lat, bounds.getWest()]).y;
      if (y > 20 && y < size.y - 30) labels.push(label("lat", `${fmt(lat, step)}°`, "top", y - 16));
    }
    box.replaceChildren(...labels);
  };
  map.on("moveend zoomend resize", update);
  map.whenReady(update);
}

/** A map in `element` with tiles, grid and a legend; returns {map, legend, L}. */
export function createMap(element, { center = [48.8566, 2.3522], zoom = 13 } = {}) {
  const L = window.L;
  if (!L) throw new Error("The map library did not load (vendor/leaflet).");
  const map = L.map(element, { zoomControl: true, worldCopyJump: true, preferCanvas: false }).setView(center, zoom);
  gridLayer(L).addTo(map);
  gridLabels(L, map);
  const template = document.body.dataset.tiles;
  const legend = h("div", { class: "map-legend" });
  const offline = h("div", { class: "offline", hidden: true }, "No map tiles (offline?): coordinate grid only.");
  legend.append(offline);
  if (template && !template.includes("{{")) {
    let failures = 0;
    const tiles = L.tileLayer(template, { attribution: document.body.dataset.attribution || "", maxZoom: 19, zIndex: 1, crossOrigin: false });
    tiles.on("tileerror", () => {
      failures += 1;
      if (failures >= 2) {
        offline.hidden = false;
        // Failed tiles leave empty images over the grid: drop the layer, keep its credit.
        if (map.hasLayer(tiles)) map.removeLayer(tiles);
      }
    });
    tiles.on("tileload", () => {
      failures = 0;
    });
    tiles.addTo(map);
  } else {
    offline.hidden = false;
  }
  const Legend = L.Control.extend({ onAdd: () => legend });
  // Bottom left: the degree labels run along the top and right edges, the tools sit at the
  // top left and the credit at the bottom right.
  new Legend({ position: "bottomleft" }).addTo(map);
  L.DomEvent.disableClickPropagation(legend);
  return { map, legend, L };
}

/**
 * Fit `bounds` in view, clear of the tools (top left) and the legend (bottom left), at once:
 * an animated zoom on opening would move what the user (or a test) is about to click.
 */
export function fitClear(map, bounds, maxZoom = 17) {
  const box = map.getContainer();
  const tools = box.querySelector(".leaflet-top.leaflet-left");
  const legend = box.querySelector(".map-legend");
  map.fitBounds(bounds.pad(0.05), {
    maxZoom,
    animate: false,
    paddingTopLeft: [(tools ? tools.offsetWidth : 0) + 24, 28],
    paddingBottomRight: [56, (legend ? legend.offsetHeight : 0) + 20],
  });
}

/** A tooltip whose content is a text node (Leaflet's string content is HTML). */
export function textTip(layer, text, options = {}) {
  const span = document.createElement("span");
  span.textContent = text;
  layer.bindTooltip(span, options);
  return layer;
}

/** A legend line for the store markers (a small amber square, unlike any geofence). */
export function storeLegend() {
  return h("div", {}, h("span", { class: "store-pin legend-pin", "aria-hidden": "true" }), "store");
}

/** A legend line for geofences drawn in the fence colour. */
export function fenceLegend() {
  return h("div", {}, h("span", { class: "legend-fence", "aria-hidden": "true" }), "geofence");
}

/**
 * Stores as small labelled squares: a store usually stands inside its door circle, so its
 * marker must not look like a fence. Clicks go on to the map (to place a pin or draw there).
 */
export function storeMarkers(L, stores) {
  const group = L.featureGroup();
  const icon = L.divIcon({ className: "store-pin", iconSize: [14, 14] });
  for (const s of stores) {
    const marker = L.marker([s.lat, s.lon], { icon, pmIgnore: true, keyboard: false, bubblingMouseEvents: true, zIndexOffset: -100 });
    textTip(marker, s.name, { direction: "top", offset: [0, -6] });
    marker.storeId = s.id;
    group.addLayer(marker);
  }
  return group;
}

/** Follow the map's view: `onPage(features, truncated)` gets the geofences in (a margin
 * around) the view, after each move and whenever the returned loader is called. One page
 * of GET /v1/geofences?bbox= at most `limit` long; `truncated` when the view holds more. */
export function followFences(map, onPage, limit = 1000) {
  let seq = 0;
  let timer = null;
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v)).toFixed(6);
  async function load() {
    const b = map.getBounds().pad(0.25);
    const bbox = [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90), clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -90, 90)].join(",");
    const mine = ++seq;
    try {
      const page = await api("/v1/geofences", { query: { bbox, limit } });
      if (mine === seq) onPage(page.items, Boolean(page.next_cursor));
    } catch (err) {
      toast(`Could not load the geofences here: ${err.message}`, "error");
    }
  }
  map.on("moveend", () => {
    clearTimeout(timer);
    timer = setTimeout(load, 200);
  });
  return load;
}
