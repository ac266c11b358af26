// #/geofences: the merchant's stores and geofences on a map. Managers draw circles (a Point
// with radius_m) and areas with Leaflet-Geoman, edit, move and delete them; every change
// goes to the API, and an API error is pinned where it is, with nothing invalid kept.
import { api, apiAll, apiBlob } from "./api.js";
import { createMap, fenceLegend, fitClear, followFences, storeLegend, storeMarkers, textTip } from "./mapbase.js";
import { describe, errorSpot, geometryOf, layerOf, offsetRing, outerRings } from "./fencegeo.js";
import { downloadBlob, field, fieldErrors, clearErrors, h, loading, pageHeader, toast } from "./ui.js";
import { importCard } from "./fenceimport.js";
import { FenceList } from "./fencelist.js";

const STYLE = { color: "#0b57a4", weight: 2, fillOpacity: 0.15 };
const SELECTED = { color: "#d35400", weight: 3, fillOpacity: 0.25 };
const REACH = { color: "#7b3fa0", weight: 2, dashArray: "6 6", fill: false, interactive: false, pmIgnore: true };
const GHOST = { color: "#b3261e", weight: 2, dashArray: "4 4", fillOpacity: 0.05, interactive: false, pmIgnore: true };
const MAX_ACCURACY_M = 150;

export async function geofencesScreen(params, main, whoami) {
  loading(main, "Loading stores…");
  const stores = await apiAll("/v1/stores", { limit: 1000 });
  main.replaceChildren();
  const screen = new FenceScreen(main, whoami, stores);
  screen.render();
}

class FenceScreen {
  constructor(main, whoami, stores) {
    this.main = main;
    this.canEdit = whoami.canEdit;
    this.stores = new Map(stores.map((s) => [s.id, s]));
    this.fences = new Map();
    this.listView = new FenceList(this);
    this.truncated = false;
    this.accuracy = 50;
    this.pending = null;
    this.selected = null;
    this.timers = new Map();
  }

  render() {
    const exportButton = h("button", { type: "button", onclick: () => this.exportAll() }, "Export GeoJSON");
    this.mapEl = h("div", { class: "map", "data-testid": "map", role: "region", "aria-label": "Map of stores and geofences" });
    // The list first, beside the map; then drawing, the reach slider and the import.
    const side = h("div", { class: "side" });
    side.append(this.listView.card());
    if (this.canEdit) side.append(this.drawCard());
    side.append(this.reachCard());
    if (this.canEdit) side.append(importCard(this));
    this.main.append(
      pageHeader("Map & geofences", exportButton),
      h("div", { class: "map-layout" }, this.mapEl, side),
    );
    const { map, legend, L } = createMap(this.mapEl);
    this.map = map;
    this.L = L;
    legend.append(storeLegend(), fenceLegend(), h("div", {}, h("span", { class: "legend-line", "aria-hidden": "true" }), "where a ping may enter"));
    this.fenceGroup = L.featureGroup().addTo(map);
    this.reachGroup = L.featureGroup().addTo(map);
    this.errorGroup = L.featureGroup().addTo(map);
    this.storeGroup = storeMarkers(L, [...this.stores.values()]).addTo(map);
    this.fit();
    if (this.canEdit) this.enableDrawing();
    this.refresh();
    map.on("moveend", () => this.refresh());
    // The map loads the fences in its view, not the whole list.
    this.loadView = followFences(map, (features, truncated) => {
      for (const f of features) if (!this.fences.has(f.id)) this.addFence(f);
      this.truncated = truncated;
      this.refresh();
    });
    // The map measured itself before the layout settled.
    setTimeout(() => {
      map.invalidateSize();
      this.loadView();
    }, 0);
  }

  fit() {
    const bounds = this.L.latLngBounds([]);
    if (this.fenceGroup.getLayers().length) bounds.extend(this.fenceGroup.getBounds());
    if (this.storeGroup.getLayers().length) bounds.extend(this.storeGroup.getBounds());
    if (bounds.isValid()) fitClear(this.map, bounds);
  }

  // -- the list and the reach ------------------------------------------------------------

  /** Redraw the reach and list the fences the map's view meets. */
  refresh() {
    this.reachGroup.clearLayers();
    for (const { layer } of this.fences.values()) this.drawReach(layer);
    const view = this.map.getBounds();
    const rows = [...this.fences.values()]
      .filter((entry) => view.intersects(entry.layer.getBounds()))
      .sort((a, b) => Number(a.feature.id) - Number(b.feature.id));
    this.listView.show(rows, this.truncated);
  }

  drawReach(layer) {
    const L = this.L;
    if (layer instanceof L.Circle) {
      L.circle(layer.getLatLng(), { radius: layer.getRadius() + this.accuracy, ...REACH }).addTo(this.reachGroup);
      return;
    }
    for (const ring of outerRings(layer)) {
      if (ring.length >= 3) L.polygon(offsetRing(L, ring, this.accuracy), REACH).addTo(this.reachGroup);
    }
  }

  reachCard() {
    const slider = h("input", { type: "range", min: 10, max: MAX_ACCURACY_M, step: 5, value: this.accuracy, name: "accuracy", id: "accuracy" });
    const out = h("output", { for: "accuracy" }, `${this.accuracy} m`);
    slider.addEventListener("input", () => {
      this.accuracy = Number(slider.value);
      out.textContent = `${this.accuracy} m`;
      this.refresh();
    });
    return h("section", { class: "card", "aria-labelledby": "reach-title" },
      h("h2", { id: "reach-title" }, "Accuracy reach"),
      h("p", { class: "hint" }, "The dashed line shows how far out a ping with this accuracy can already enter."),
      h("div", { class: "reach" }, h("label", { for: "accuracy" }, "Ping accuracy"), slider, out),
      h("details", { class: "more" }, h("summary", {}, "Why pings enter early"),
        h("p", { class: "hint" }, "A ping enters a geofence when its position is within its accuracy of the fence (accuracy under 10 m counts as 10 m). Phones in a city street typically report 20–65 m; pings worse than ",
          `${MAX_ACCURACY_M} m (the default limit) trigger nothing.`)));
  }

  // -- selection -----------------------------------------------------------------------

  select(id, zoom = false) {
    if (this.selected && this.fences.has(this.selected)) this.fences.get(this.selected).layer.setStyle(STYLE);
    this.selected = id;
    const entry = this.fences.get(id);
    if (!entry) return;
    entry.layer.setStyle(SELECTED);
    if (zoom) this.map.fitBounds(entry.layer.getBounds().pad(0.6), { maxZoom: 18 });
    for (const li of this.listView.list.children) li.classList.toggle("selected", li.dataset.id === id);
  }

  addFence(feature) {
    const layer = layerOf(this.L, feature, { ...STYLE });
    layer.fenceId = feature.id;
    textTip(layer, feature.properties.name, { sticky: true });
    layer.on("click", () => this.select(feature.id));
    if (this.canEdit) layer.on("pm:edit", () => this.scheduleSave(feature.id));
    this.fenceGroup.addLayer(layer);
    if (this.canEdit && this.map.pm && this.map.pm.globalEditModeEnabled()) layer.pm.enable({ allowSelfIntersection: true });
    this.fences.set(feature.id, { feature, layer });
    return layer;
  }

  dropFence(id) {
    const entry = this.fences.get(id);
    if (!entry) return;
    entry.layer.off();
    if (entry.layer.pm) entry.layer.pm.disable();
    this.fenceGroup.removeLayer(entry.layer);
    if (this.map.hasLayer(entry.layer)) this.map.removeLayer(entry.layer);
    this.fences.delete(id);
  }

  // -- errors on the map ----------------------------------------------------------------

  /** Pin each `fields` problem (relative to `prefix`) at its vertex or crossing point. */
  markErrors(err, geometry, radius, prefix = "") {
    const L = this.L;
    let pinned = 0;
    for (const [fullKey, message] of Object.entries(err.fields || {})) {
      if (!fullKey.startsWith(prefix)) continue;
      const spot = errorSpot(fullKey.slice(prefix.length), message, geometry);
      if (!spot) continue;
      const pin = L.marker(spot, { icon: L.divIcon({ className: "error-pin", iconSize: [16, 16] }), pmIgnore: true, keyboard: false, title: message });
      textTip(pin, message, { permanent: true, direction: "top", className: "error-tip", offset: [0, -10] });
      this.errorGroup.addLayer(pin);
      pinned += 1;
    }
    if (pinned && geometry) {
      const ghost = geometry.type === "Point"
        ? L.circle([geometry.coordinates[1], geometry.coordinates[0]], { radius: radius || 10, ...GHOST })
        : L.geoJSON(geometry, { style: GHOST, pmIgnore: true, interactive: false });
      this.errorGroup.addLayer(ghost);
    }
    return pinned;
  }

  clearMapErrors() {
    this.errorGroup.clearLayers();
  }

  // -- drawing and saving ----------------------------------------------------------------

  enableDrawing() {
    const map = this.map;
    if (!map.pm) {
      this.drawNote.textContent = "The drawing tools did not load (vendor/leaflet-geoman): circles can still be added at a store.";
      return;
    }
    map.pm.setGlobalOptions({ allowSelfIntersection: true, snappable: true, templineStyle: { color: "#d35400" }, hintlineStyle: { color: "#d35400", dashArray: "5 5" } });
    map.pm.addControls({
      position: "topleft", drawMarker: false, drawCircleMarker: false, drawPolyline: false, drawText: false,
      drawRectangle: true, drawPolygon: true, drawCircle: true, cutPolygon: false, rotateMode: false,
      editMode: true, dragMode: true, removalMode: true,
    });
    map.on("pm:create", (event) => this.drawn(event.layer));
    map.on("pm:remove", (event) => {
      if (event.layer.fenceId) this.remove(event.layer.fenceId, event.layer);
      else if (this.pending && event.layer === this.pending) this.discard();
    });
  }

  drawCard() {
    this.storeSelect = h("select", { name: "store_id", required: true },
      [...this.stores.values()].map((s) => h("option", { value: s.id }, s.name)));
    this.nameInput = h("input", { name: "name", required: true, maxlength: 200, placeholder: "e.g. front door" });
    this.radiusInput = h("input", { name: "radius_m", type: "number", min: 10, max: 10000, step: 1, value: 60, inputmode: "numeric" });
    this.radiusInput.addEventListener("input", () => {
      if (this.pending && this.pending instanceof this.L.Circle && Number(this.radiusInput.value) > 0) this.pending.setRadius(Number(this.radiusInput.value));
    });
    this.drawNote = h("p", { class: "hint" }, "Draw a circle, a rectangle or an area with the tools at the map's left; then choose its store and name here and save. Or save now to add a circle around the chosen store.");
    this.saveButton = h("button", { type: "submit", class: "primary" }, "Save geofence");
    this.discardButton = h("button", { type: "button", hidden: true, onclick: () => this.discard() }, "Discard drawing");
    this.radiusField = field("Radius (metres)", this.radiusInput, { name: "properties.radius_m", hint: "10 m to 10 km, a true circle on the ground." });
    this.form = h("form", { class: "card", "aria-labelledby": "draw-title", "data-field": "geometry" },
      h("h2", { id: "draw-title" }, "New geofence"), this.drawNote,
      field("Store", this.storeSelect, { name: "properties.store_id" }),
      field("Name", this.nameInput, { name: "properties.name" }),
      this.radiusField,
      h("div", { class: "row" }, this.saveButton, this.discardButton));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveNew();
    });
    if (!this.stores.size) {
      this.form.replaceChildren(h("h2", {}, "New geofence"), h("p", { class: "notice warn" }, "A geofence belongs to a store: ", h("a", { href: "#/stores" }, "create a store"), " first."));
    }
    return this.form;
  }

  nearestStore(latlng) {
    let best = null;
    for (const s of this.stores.values()) {
      const d = this.map.distance(latlng, [s.lat, s.lon]);
      if (!best || d < best.d) best = { s, d };
    }
    return best && best.s;
  }

  drawn(layer) {
    if (this.pending) this.discard();
    this.clearMapErrors();
    this.pending = layer;
    layer.setStyle({ color: "#d35400", weight: 3 });
    const circle = layer instanceof this.L.Circle;
    const center = circle ? layer.getLatLng() : layer.getBounds().getCenter();
    const store = this.nearestStore(center);
    if (store && this.storeSelect) this.storeSelect.value = store.id;
    if (circle) this.radiusInput.value = Math.round(layer.getRadius());
    this.radiusField.hidden = !circle;
    if (!this.nameInput.value) this.nameInput.value = circle ? "door circle" : "area";
    this.drawNote.textContent = `New ${circle ? "circle" : "area"} drawn. Check its store and name, then save it (or discard it).`;
    this.discardButton.hidden = false;
    this.nameInput.focus();
  }

  discard() {
    if (this.pending) this.map.removeLayer(this.pending);
    this.pending = null;
    this.radiusField.hidden = false;
    this.discardButton.hidden = true;
    this.drawNote.textContent = "Draw a circle, a rectangle or an area with the tools at the map's left; then choose its store and name here and save. Or save now to add a circle around the chosen store.";
  }

  async saveNew() {
    clearErrors(this.form);
    this.clearMapErrors();
    let geometry;
    let radius = null;
    if (this.pending) {
      ({ geometry, radius } = geometryOf(this.L, this.pending));
      if (radius !== null) radius = Number(this.radiusInput.value) || radius;
    } else {
      const store = this.stores.get(this.storeSelect.value);
      if (!store) return;
      geometry = { type: "Point", coordinates: [store.lon, store.lat] };
      radius = Number(this.radiusInput.value);
    }
    const properties = { store_id: this.storeSelect.value, name: this.nameInput.value.trim() };
    if (radius !== null) properties.radius_m = radius;
    this.saveButton.disabled = true;
    try {
      const feature = await api("/v1/geofences", { method: "POST", body: { type: "Feature", geometry, properties } });
      if (this.pending) this.map.removeLayer(this.pending);
      this.pending = null;
      this.discard();
      this.nameInput.value = "";
      this.addFence(feature);
      this.refresh();
      this.select(feature.id);
      toast(`Saved “${feature.properties.name}”.`);
    } catch (err) {
      this.rejected(err, geometry, radius);
    } finally {
      this.saveButton.disabled = false;
    }
  }

  rejected(err, geometry, radius) {
    const pinned = this.markErrors(err, geometry, radius);
    fieldErrors(this.form, err, {
      elsewhere: (key) => pinned > 0 && key.startsWith("geometry"),
      elsewhereNote: "The red marks on the map show where.",
    });
    const aboutShape = Object.keys(err.fields || {}).some((k) => k.startsWith("geometry") || k.startsWith("properties.radius_m"));
    if (aboutShape && this.pending) {
      // Nothing invalid stays on the map as if it were a fence: the red outline and pins
      // show what was refused and where.
      this.map.removeLayer(this.pending);
      this.pending = null;
      this.discardButton.hidden = true;
      this.radiusField.hidden = false;
      this.drawNote.textContent = "The shape was refused (see the red marks on the map). Draw it again.";
    }
    if (pinned) toast("Not saved: see the red marks on the map.", "error");
  }

  scheduleSave(id) {
    clearTimeout(this.timers.get(id));
    this.timers.set(id, setTimeout(() => this.saveEdit(id), 350));
  }

  async saveEdit(id) {
    const entry = this.fences.get(id);
    if (!entry) return;
    this.clearMapErrors();
    const { geometry, radius } = geometryOf(this.L, entry.layer);
    const body = { geometry, properties: radius !== null ? { radius_m: radius } : {} };
    try {
      const feature = await api(`/v1/geofences/${encodeURIComponent(id)}`, { method: "PATCH", body });
      entry.feature = feature;
      this.refresh();
      toast(`Saved the change to “${feature.properties.name}”.`);
    } catch (err) {
      // Put the stored shape back: what is on the map is what is saved.
      this.dropFence(id);
      this.addFence(entry.feature);
      this.refresh();
      this.markErrors(err, geometry, radius);
      toast(`Not saved: ${err.message}`, "error");
    }
  }

  /** Rename a fence or move it to another store (the list's row form). */
  async saveProperties(id, form, properties) {
    const entry = this.fences.get(id);
    if (!entry) return;
    clearErrors(form);
    try {
      entry.feature = await api(`/v1/geofences/${encodeURIComponent(id)}`, { method: "PATCH", body: { properties } });
      this.refresh();
      toast(`Saved “${entry.feature.properties.name}”.`);
    } catch (err) {
      fieldErrors(form, err);
    }
  }

  async remove(id, removedLayer = null) {
    const entry = this.fences.get(id);
    if (!entry) return;
    try {
      await api(`/v1/geofences/${encodeURIComponent(id)}`, { method: "DELETE" });
      this.dropFence(id);
      this.refresh();
      toast(`Deleted “${entry.feature.properties.name}”.`);
    } catch (err) {
      if (removedLayer) {
        this.dropFence(id);
        this.addFence(entry.feature);
        this.refresh();
      }
      toast(`Not deleted: ${err.message}`, "error");
    }
  }

  async exportAll() {
    try {
      const blob = await apiBlob("/v1/geofences", { query: { format: "geojson" }, headers: { Accept: "application/geo+json" } });
      downloadBlob(new Blob([blob], { type: "application/geo+json" }), "geofences.geojson");
    } catch (err) {
      toast(`Export failed: ${err.message}`, "error");
    }
  }

  /** After an import: forget what was loaded, look at `collection`'s fences, load them. */
  async reload(collection = null) {
    for (const id of [...this.fences.keys()]) this.dropFence(id);
    let shown = null;
    try {
      shown = collection && this.L.geoJSON(collection).getBounds();
    } catch {
      shown = null;
    }
    if (shown && shown.isValid()) fitClear(this.map, shown.extend(this.storeGroup.getBounds()));
    await this.loadView();
  }
}
