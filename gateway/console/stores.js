// #/stores and #/stores/:id: the merchant's stores on a map, a paged list, and a form to
// create or edit one (position picked on the map or typed, time zone, opening hours).
import { api } from "./api.js";
import { createMap, fitClear, storeLegend, storeMarkers } from "./mapbase.js";
import { go } from "./router.js";
import { clearErrors, errorBox, field, fieldErrors, h, loading, pageHeader, toast, weeklyEditor } from "./ui.js";

const PAGE = 100;

function timeZones() {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return ["Europe/Paris", "Europe/London", "America/New_York", "UTC"];
  }
}

export async function storesScreen(params, main, whoami) {
  loading(main, "Loading stores…");
  const first = await api("/v1/stores", { query: { limit: PAGE } });
  const editing = params.id ? await api(`/v1/stores/${encodeURIComponent(params.id)}`) : null;
  const mapEl = h("div", { class: "map", "data-testid": "map", role: "region", "aria-label": "Map of stores; click to place the store" });
  const listBody = h("div");
  const side = h("div", { class: "side" });
  main.replaceChildren(
    pageHeader("Stores", whoami.canEdit && editing ? h("a", { href: "#/stores", class: "button" }, "New store") : null),
    h("div", { class: "map-layout" }, mapEl, side));
  const { map, legend, L } = createMap(mapEl);
  legend.append(storeLegend());
  let markers = storeMarkers(L, first.items).addTo(map);
  if (editing) map.setView([editing.lat, editing.lon], 16);
  else if (first.items.length) fitClear(map, markers.getBounds(), 16);
  setTimeout(() => map.invalidateSize(), 0);

  if (whoami.canEdit) side.append(storeForm(editing, map, L, whoami));
  side.append(h("section", { class: "card", "aria-labelledby": "stores-title" }, h("h2", { id: "stores-title" }, "Your stores"), listBody));

  const cursors = [null];
  async function show(index, page = null) {
    try {
      page = page || (await api("/v1/stores", { query: { limit: PAGE, cursor: cursors[index] } }));
    } catch (err) {
      listBody.replaceChildren(errorBox(err, () => show(index)));
      return;
    }
    cursors[index + 1] = page.next_cursor;
    map.removeLayer(markers);
    markers = storeMarkers(L, page.items).addTo(map);
    const rows = page.items.map((s) => h("li", { "data-testid": "store-row", "data-id": s.id, class: editing && editing.id === s.id ? "selected" : "" },
      h("div", { class: "what" }, h("div", { class: "name" }, s.name), h("div", { class: "meta" }, `${s.timezone} · ${hoursSummary(s.opening_hours)}`)),
      whoami.canEdit ? h("a", { href: `#/stores/${encodeURIComponent(s.id)}`, class: "button small" }, "Edit") : null,
      h("button", { type: "button", class: "small", onclick: () => map.setView([s.lat, s.lon], 17) }, "Show")));
    listBody.replaceChildren(h("ul", { class: "fence-list" }, rows.length ? rows : h("li", { class: "empty" }, "No stores yet.")));
    if (index > 0 || page.next_cursor) {
      listBody.append(h("div", { class: "pager" },
        h("button", { type: "button", disabled: index === 0, onclick: () => show(index - 1) }, "← Previous"),
        h("button", { type: "button", disabled: !page.next_cursor, onclick: () => show(index + 1) }, "Next →")));
    }
  }
  await show(0, first);
}

function hoursSummary(hours) {
  if (!hours || !Object.keys(hours).length) return "no opening hours set";
  const days = Object.keys(hours);
  return `open ${days.length} day${days.length > 1 ? "s" : ""} a week`;
}

function storeForm(store, map, L, whoami) {
  const s = store || { timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || "Europe/Paris" };
  const name = h("input", { name: "name", required: true, maxlength: 200, value: s.name });
  const lat = h("input", { name: "lat", type: "number", step: "any", min: -90, max: 90, required: true, value: s.lat, inputmode: "decimal" });
  const lon = h("input", { name: "lon", type: "number", step: "any", min: -180, max: 180, required: true, value: s.lon, inputmode: "decimal" });
  const tz = h("input", { name: "timezone", required: true, value: s.timezone, list: "tz-list", autocomplete: "off" });
  const tzList = h("datalist", { id: "tz-list" }, timeZones().map((z) => h("option", { value: z })));
  const hours = weeklyEditor("opening_hours", s.opening_hours);
  const save = h("button", { type: "submit", class: "primary" }, store ? "Save store" : "Create store");
  let pick = null;
  const place = (latlng, pan = false) => {
    if (!pick) {
      pick = L.marker(latlng, { draggable: true, pmIgnore: true, title: "The store's position: drag to move", alt: "Store position" }).addTo(map);
      pick.on("dragend", () => place(pick.getLatLng()));
    } else {
      pick.setLatLng(latlng);
    }
    lat.value = latlng.lat.toFixed(6);
    lon.value = L.latLng(latlng).wrap().lng.toFixed(6);
    if (pan) map.panTo(latlng);
  };
  if (store) place(L.latLng(store.lat, store.lon));
  map.on("click", (event) => place(event.latlng));
  const typed = () => {
    if (lat.value !== "" && lon.value !== "" && Number.isFinite(Number(lat.value)) && Number.isFinite(Number(lon.value))) {
      place(L.latLng(Number(lat.value), Number(lon.value)), true);
    }
  };
  lat.addEventListener("change", typed);
  lon.addEventListener("change", typed);

  const form = h("form", { class: "card", "aria-labelledby": "store-form-title", novalidate: true },
    h("h2", { id: "store-form-title" }, store ? `Edit ${store.name}` : "New store"),
    field("Name", name),
    h("p", { class: "hint" }, "Position: click the map (or drag the marker), or type the coordinates."),
    h("div", { class: "row" }, field("Latitude", lat), field("Longitude", lon)),
    field("Time zone", tz, { hint: "IANA name, e.g. Europe/Paris. Schedules and opening hours use it." }), tzList,
    h("h3", {}, "Opening hours"),
    h("p", { class: "hint" }, "Like 07:00-19:00; several per day separated by commas (08:00-12:00, 14:00-18:00). A window ending before it starts runs past midnight. Empty days are closed."),
    h("div", { "data-field": "opening_hours" }, hours.element),
    h("div", { class: "row" }, save, store ? h("a", { href: "#/stores", class: "button" }, "Cancel") : null));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { name: name.value.trim(), lat: Number(lat.value), lon: Number(lon.value), timezone: tz.value.trim(), opening_hours: hours.read() };
    if (lat.value === "" || lon.value === "") {
      fieldErrors(form, { message: "The store needs a position", fields: { [lat.value === "" ? "lat" : "lon"]: "click the map or type the coordinates" } });
      return;
    }
    save.disabled = true;
    try {
      const saved = store
        ? await api(`/v1/stores/${encodeURIComponent(store.id)}`, { method: "PATCH", body })
        : await api("/v1/stores", { method: "POST", body });
      toast(`${store ? "Saved" : "Created"} “${saved.name}”.`);
      go(`#/stores/${encodeURIComponent(saved.id)}`);
    } catch (err) {
      fieldErrors(form, err);
    } finally {
      save.disabled = false;
    }
  });
  if (whoami.store_ids && !store) {
    return h("section", { class: "card" }, h("h2", {}, "New store"), h("p", { class: "hint" }, "Your key is limited to some stores, so it cannot create new ones: ask an administrator."));
  }
  return form;
}
