// #/preview: pick a point, a time, the weather and a shopper profile; the gateway answers
// which offers a ping there would fire and why each other one would not. Nothing is sent.
import { api, apiAll } from "./api.js";
import { layerOf } from "./fencegeo.js";
import { createMap, fenceLegend, fitClear, followFences, storeLegend, storeMarkers, textTip } from "./mapbase.js";
import { clearErrors, field, fieldErrors, h, loading, pageHeader } from "./ui.js";

// offers.models.REASONS, in the order decide() checks them, in plain words.
export const REASONS = {
  no_consent: "The shopper has not agreed to marketing, so no offer is ever sent to them.",
  quiet_hours: "It is within the program's quiet hours (21:00–08:00 by default, in the shopper's time zone, else the store's).",
  outside_schedule: "Outside the offer's validity period or its weekly time windows (in the store's time zone).",
  occurrence_lapsed: "A journey's moment (a welcome, win-back, tier-up, birthday or points expiry) passed before it could be sent, e.g. while quiet hours kept deferring it.",
  store_closed: "The store is closed at this time by its opening hours (in the store's time zone). The offer can opt out with “Send even while the store is closed”.",
  weather_mismatch: "The weather does not match the offer's weather rule (a ping without weather never matches one).",
  audience_mismatch: "The shopper's tier, points or tags are not in the offer's audience.",
  budget_exhausted: "The offer's budget of issued or redeemed coupons is used up.",
  frequency_capped: "The shopper already got this offer as often as its frequency caps allow.",
  fatigue_capped: "The shopper already got the program's daily maximum of offers (3 in any 24 h by default).",
  holdout: "The shopper is in this offer's holdout group: it counts as “would have been sent”, nothing is sent, and the next offer in line may go.",
  lower_priority: "Another offer passed every rule and wins this ping (higher priority, then ending sooner, then older): one offer per ping.",
};
const CONDITIONS = ["clear", "clouds", "rain", "drizzle", "thunderstorm", "snow", "sleet", "hail", "fog", "wind"];

function localNow() {
  const d = new Date();
  d.setSeconds(0, 0);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A field that wants the row's width: it wraps below its neighbour rather than clip. */
function wide(element) {
  element.classList.add("wide");
  return element;
}

export async function previewScreen(params, main) {
  loading(main, "Loading the map…");
  const stores = await apiAll("/v1/stores", { limit: 1000 });
  const storeNames = new Map(stores.map((s) => [s.id, s.name]));
  const fenceNames = new Map();
  const mapEl = h("div", { class: "map", "data-testid": "map", role: "region", "aria-label": "Map: click to choose the ping's position" });
  const results = h("section", { class: "card results", "aria-live": "polite", "aria-labelledby": "preview-results" },
    h("h2", { id: "preview-results" }, "What would happen"), h("p", { class: "hint" }, "Choose a point and press “Preview”."));
  const inp = (name, props = {}) => h("input", { name, ...props });
  const f = {
    lat: inp("lat", { type: "number", step: "any", required: true, inputmode: "decimal" }),
    lon: inp("lon", { type: "number", step: "any", required: true, inputmode: "decimal" }),
    accuracy_m: inp("accuracy_m", { type: "number", min: 1, step: "any", value: 10 }),
    at: inp("at", { type: "datetime-local", value: localNow() }),
    temp_c: inp("weather.temp_c", { type: "number", step: "0.5", placeholder: "e.g. 4" }),
    tier: inp("shopper.tier", { placeholder: "e.g. Gold" }),
    points: inp("shopper.points", { type: "number", min: 0, value: 0 }),
    tags: inp("shopper.tags", { placeholder: "e.g. vip, coffee" }),
    consent: h("input", { type: "checkbox", name: "shopper.marketing_consent", checked: true }),
  };
  const condition = h("select", { name: "weather.condition" }, h("option", { value: "" }, "No weather in the ping"), CONDITIONS.map((c) => h("option", { value: c }, c)));
  const trigger = h("select", { name: "trigger" }, h("option", { value: "enter" }, "Entering a geofence"), h("option", { value: "dwell" }, "After a dwell inside"));
  const go = h("button", { type: "submit", class: "primary" }, "Preview");
  const form = h("form", { class: "card", "aria-labelledby": "preview-form", novalidate: true },
    h("h2", { id: "preview-form" }, "The ping"),
    h("p", { class: "hint" }, "Click the map to place the shopper, or type the position. Nothing is sent or logged: this only asks the gateway what it would decide."),
    h("div", { class: "row" }, field("Latitude", f.lat), field("Longitude", f.lon)),
    h("div", { class: "row" }, field("Accuracy (m)", f.accuracy_m, { name: "accuracy_m" }), wide(field("Time", f.at, { name: "at", hint: "Your local time." }))),
    field("Moment", trigger, { name: "trigger" }),
    h("div", { class: "row", "data-field": "weather" },
      wide(field("Weather", condition, { name: "weather.condition" })),
      field("Temperature (°C)", f.temp_c, { name: "weather.temp_c" })),
    h("p", { class: "hint" }, "Weather: a condition and a temperature, or neither."),
    h("h3", {}, "The shopper"),
    h("div", { class: "row", "data-field": "shopper" }, field("Tier", f.tier, { name: "shopper.tier" }), field("Points", f.points, { name: "shopper.points" })),
    field("Tags", f.tags, { name: "shopper.tags", hint: "Comma-separated." }),
    h("label", { class: "check" }, f.consent, " Agreed to marketing"),
    h("div", { class: "row" }, go));
  // The answer comes right under the Preview button, beside the map.
  main.replaceChildren(pageHeader("Decision preview"), h("div", { class: "map-layout" }, mapEl, h("div", { class: "side" }, form, results)));

  const { map, legend, L } = createMap(mapEl);
  legend.append(storeLegend(), fenceLegend());
  const fenceGroup = L.featureGroup().addTo(map);
  const loadView = followFences(map, (features) => {
    for (const fence of features) {
      if (fenceNames.has(fence.id)) continue;
      fenceNames.set(fence.id, fence.properties.name);
      textTip(layerOf(L, fence, { color: "#0b57a4", weight: 2, fillOpacity: 0.12, pmIgnore: true }), fence.properties.name).addTo(fenceGroup);
    }
  });
  const storeGroup = storeMarkers(L, stores).addTo(map);
  if (stores.length) fitClear(map, storeGroup.getBounds());
  setTimeout(() => {
    map.invalidateSize();
    loadView();
  }, 0);
  let pin = null;
  let reach = null;
  const place = (latlng) => {
    if (!pin) {
      pin = L.marker(latlng, { draggable: true, title: "The ping: drag to move", alt: "Ping position" }).addTo(map);
      pin.on("dragend", () => place(pin.getLatLng()));
      reach = L.circle(latlng, { radius: 10, color: "#d35400", weight: 2, dashArray: "4 4", fillOpacity: 0.08, interactive: false }).addTo(map);
    }
    pin.setLatLng(latlng);
    reach.setLatLng(latlng);
    reach.setRadius(Number(f.accuracy_m.value) || 10);
    f.lat.value = latlng.lat.toFixed(6);
    f.lon.value = L.latLng(latlng).wrap().lng.toFixed(6);
  };
  map.on("click", (event) => place(event.latlng));
  const typed = () => {
    if (f.lat.value !== "" && f.lon.value !== "") place(L.latLng(Number(f.lat.value), Number(f.lon.value)));
  };
  f.lat.addEventListener("change", typed);
  f.lon.addEventListener("change", typed);
  f.accuracy_m.addEventListener("input", () => reach && reach.setRadius(Number(f.accuracy_m.value) || 10));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (f.lat.value === "" || f.lon.value === "") {
      fieldErrors(form, { message: "Choose a point first", fields: { lat: "click the map or type the coordinates" } });
      return;
    }
    const body = {
      lat: Number(f.lat.value), lon: Number(f.lon.value), accuracy_m: Number(f.accuracy_m.value) || 10, trigger: trigger.value,
      shopper: { points: Number(f.points.value) || 0, tags: f.tags.value.split(",").map((s) => s.trim()).filter(Boolean), marketing_consent: f.consent.checked },
    };
    if (f.at.value) body.at = new Date(f.at.value).toISOString();
    if (f.tier.value.trim()) body.shopper.tier = f.tier.value.trim();
    if (Boolean(condition.value) !== (f.temp_c.value !== "")) {
      const missing = condition.value ? "weather.temp_c" : "weather.condition";
      fieldErrors(form, { message: "A ping's weather has both a condition and a temperature", fields: { [missing]: "give both, or neither for a ping without weather" } });
      return;
    }
    if (condition.value) body.weather = { condition: condition.value, temp_c: Number(f.temp_c.value) };
    go.disabled = true;
    results.replaceChildren(h("p", { class: "state loading", role: "status" }, h("span", { class: "spinner" }), "Asking the gateway…"));
    try {
      const answer = await api("/v1/offers/preview", { method: "POST", body });
      showResults(results, answer, storeNames, fenceNames);
      results.scrollIntoView({ block: "nearest" });
    } catch (err) {
      fieldErrors(form, err);
      results.replaceChildren(h("h2", {}, "What would happen"), h("p", { class: "hint" }, "Fix the form and try again."));
    } finally {
      go.disabled = false;
    }
  });
}

function showResults(box, answer, storeNames, fenceNames) {
  const fenceName = (id) => fenceNames.get(id) || `geofence ${id}`;
  const storeName = (id) => storeNames.get(id) || `store ${id}`;
  box.replaceChildren(h("h2", { id: "preview-results" }, "What would happen"));
  if (answer.status === "ignored") {
    box.append(h("p", { class: "notice warn" }, "This accuracy is worse than the gateway accepts for triggers: a real ping like this is recorded but enters no geofence and fires nothing."));
  }
  const fences = answer.fences || [];
  box.append(h("h3", {}, "Geofences in reach"));
  box.append(fences.length
    ? h("ul", { class: "fence-list" }, fences.map((fence) => h("li", { "data-geofence-id": fence.geofence_id },
      h("div", { class: "what" }, h("div", { class: "name" }, fenceName(fence.geofence_id)),
        h("div", { class: "meta" }, `${storeName(fence.store_id)} · ${fence.inside ? "inside" : `${Math.round(fence.distance_m ?? 0)} m outside`}${fence.enters === false ? " · too far to enter" : ""}`)))))
    : h("p", { class: "empty" }, "No geofence is within reach of this point: a ping here triggers nothing."));
  const offers = answer.offers || [];
  box.append(h("h3", {}, "Offers"));
  if (!offers.length) {
    box.append(h("p", { class: "empty" }, fences.length ? "No active offer applies to these geofences or their stores." : "None."));
    return;
  }
  const firing = offers.filter((o) => o.fires).length;
  box.append(h("p", {}, firing ? `${firing} offer would be sent.` : "No offer would be sent."));
  box.append(h("ul", { class: "fence-list preview-offers" }, offers.map((o) => h("li", {
    "data-testid": "preview-offer", "data-offer-id": o.offer_id, "data-reason": o.reason || "", "data-fires": String(o.fires),
  },
  h("div", { class: "what" },
    h("div", { class: "name" }, o.name, " ", o.fires ? h("span", { class: "badge fires" }, "would fire") : h("code", { class: "badge blocked" }, o.reason)),
    h("div", { class: "meta" }, `“${o.title}” · ${fenceName(o.geofence_id)}, ${storeName(o.store_id)}`),
    o.fires ? null : h("span", { class: "reason" }, REASONS[o.reason] || "")),
  ))));
}
