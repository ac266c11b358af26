// GeoJSON import for the geofence map: PUT /v1/geofences replaces every geofence in the
// token's scope, all or nothing; a refusal lists each feature's problems (and pins them).
import { api, apiAll } from "./api.js";
import { h, toast } from "./ui.js";

export function importCard(screen) {
  const input = h("input", { type: "file", name: "geojson", accept: ".geojson,.json,application/geo+json,application/json", id: "import-file" });
  const summary = h("div", { class: "import-summary", "aria-live": "polite" });
  let collection = null;
  const apply = h("button", { type: "button", class: "primary", hidden: true }, "Replace geofences");
  const cancel = h("button", { type: "button", hidden: true }, "Cancel");

  function reset() {
    collection = null;
    input.value = "";
    apply.hidden = true;
    cancel.hidden = true;
  }

  input.addEventListener("change", async () => {
    summary.replaceChildren();
    screen.clearMapErrors();
    const file = input.files && input.files[0];
    if (!file) return;
    try {
      collection = JSON.parse(await file.text());
    } catch (err) {
      summary.append(h("p", { class: "field-error", role: "alert" }, `${file.name} is not JSON: ${err.message}`));
      reset();
      return;
    }
    const features = Array.isArray(collection && collection.features) ? collection.features : [];
    const updates = features.filter((f) => f && f.id !== undefined && f.id !== null).length;
    const kept = new Set(features.map((f) => f && f.id !== undefined && f.id !== null && String(f.id)));
    // Every stored id in scope (the map holds only those in its view).
    let stored;
    try {
      stored = (await apiAll("/v1/geofences", { limit: 5000 })).map((f) => f.id);
    } catch (err) {
      summary.append(h("p", { class: "field-error", role: "alert" }, `Could not read the stored geofences: ${err.message}`));
      reset();
      return;
    }
    const deletions = stored.filter((id) => !kept.has(id)).length;
    summary.append(h("p", {}, `${file.name}: ${features.length} features: ${updates} update existing geofences, ${features.length - updates} are new.`));
    if (deletions) summary.append(h("p", { class: "notice warn" }, `${deletions} geofence(s) not in the file will be deleted.`));
    apply.hidden = false;
    cancel.hidden = false;
    apply.focus();
  });

  apply.addEventListener("click", async () => {
    if (!collection) return;
    apply.disabled = true;
    try {
      const result = await api("/v1/geofences", { method: "PUT", body: collection, headers: { "Content-Type": "application/geo+json" } });
      summary.replaceChildren(h("p", { role: "status" }, `Imported: ${result.created.length} created, ${result.updated.length} updated, ${result.deleted.length} deleted.`));
      await screen.reload(collection);
      toast("Geofences imported.");
    } catch (err) {
      summary.replaceChildren(importErrors(err, collection));
      const features = Array.isArray(collection.features) ? collection.features : [];
      features.forEach((f, i) => {
        if (f && f.geometry) screen.markErrors(err, f.geometry, f.properties && f.properties.radius_m, `features[${i}].`);
      });
    } finally {
      apply.disabled = false;
      reset();
    }
  });
  cancel.addEventListener("click", () => {
    summary.replaceChildren();
    reset();
  });

  return h("section", { class: "card", "aria-labelledby": "import-title" },
    h("h2", { id: "import-title" }, "Import GeoJSON"),
    h("p", { class: "hint" }, "A FeatureCollection replaces all your geofences at once: features with an id update it, features without one are created, and geofences missing from the file are deleted. If any feature is invalid, nothing changes. Tip: export, edit, import."),
    h("div", { class: "field" }, h("label", { for: "import-file" }, "GeoJSON file"), input),
    summary, h("div", { class: "row" }, apply, cancel));
}

function importErrors(err, collection) {
  const features = Array.isArray(collection && collection.features) ? collection.features : [];
  const byFeature = new Map();
  const general = [];
  for (const [key, message] of Object.entries(err.fields || {})) {
    const m = /^features\[(\d+)\]\.?(.*)$/.exec(key);
    if (!m) {
      general.push(`${key}: ${message}`);
      continue;
    }
    if (!byFeature.has(m[1])) byFeature.set(m[1], []);
    byFeature.get(m[1]).push(`${m[2] || "feature"}: ${message}`);
  }
  const list = h("ul", {});
  for (const [index, problems] of byFeature) {
    const f = features[Number(index)];
    const name = f && f.properties && f.properties.name ? ` “${f.properties.name}”` : "";
    list.append(h("li", {}, h("strong", {}, `Feature ${Number(index) + 1}${name}`), h("ul", {}, problems.map((p) => h("li", {}, p)))));
  }
  for (const g of general) list.append(h("li", {}, g));
  return h("div", { class: "form-errors", role: "alert" }, h("strong", {}, `Nothing was imported: ${err.message}`), list);
}
