// The geofence list beside the map: the fences in the map's view, a page at a time, each
// with Show, and for editors Rename/move (name and store, PATCH) and Delete.
import { describe } from "./fencegeo.js";
import { confirmButton, field, h } from "./ui.js";

export const PAGE_SIZE = 10;

export class FenceList {
  /** `screen` is the FenceScreen: its stores, accuracy, selection and actions. */
  constructor(screen) {
    this.screen = screen;
    this.page = 0;
    this.editing = null;
    this.list = h("ul", { class: "fence-list", "aria-label": "Geofences in view" });
    this.count = h("span", { class: "muted" });
    this.note = h("p", { class: "hint", hidden: true });
    this.pager = h("nav", { class: "pager", "aria-label": "Pages of geofences", hidden: true });
  }

  card() {
    return h("section", { class: "card", "aria-labelledby": "fences-title" },
      h("h2", { id: "fences-title" }, "Geofences in view ", this.count),
      this.note, this.list, this.pager);
  }

  /** Show `entries` ({feature, layer}, in id order); `truncated` when the view held more
   * than the map loads at once. */
  show(entries, truncated) {
    const pages = Math.max(1, Math.ceil(entries.length / PAGE_SIZE));
    this.page = Math.min(this.page, pages - 1);
    const start = this.page * PAGE_SIZE;
    const shown = entries.slice(start, start + PAGE_SIZE);
    this.count.textContent = `(${entries.length}${truncated ? "+" : ""})`;
    this.note.hidden = !truncated;
    this.note.textContent = truncated ? "This view holds more geofences than the map loads at once: zoom in to see every one." : "";
    this.list.replaceChildren(...shown.map((entry) => this.row(entry)));
    if (!entries.length) this.list.append(h("li", { class: "empty" }, this.emptyText()));
    this.pager.hidden = pages < 2;
    const go = (delta) => {
      this.page += delta;
      this.show(entries, truncated);
    };
    this.pager.replaceChildren(
      h("button", { type: "button", class: "small", disabled: this.page === 0, onclick: () => go(-1) }, "‹ Previous"),
      h("span", { role: "status" }, `${start + 1}–${start + shown.length} of ${entries.length}`),
      h("button", { type: "button", class: "small", disabled: this.page >= pages - 1, onclick: () => go(1) }, "Next ›"),
    );
  }

  emptyText() {
    if (this.screen.fences.size) return "No geofence in this part of the map: move or zoom out to find the others.";
    return this.screen.canEdit ? "No geofences yet: draw one with the tools on the map." : "No geofences yet.";
  }

  row(entry) {
    const screen = this.screen;
    const { feature } = entry;
    const store = screen.stores.get(feature.properties.store_id);
    const circle = feature.geometry.type === "Point";
    const small = circle && feature.properties.radius_m < screen.accuracy;
    const meta = h("div", { class: "meta" }, `${store ? store.name : `store ${feature.properties.store_id}`} · ${describe(feature)}`);
    if (small) meta.append(h("div", { class: "warn-text" }, `Smaller than a ±${screen.accuracy} m ping's error: entries from up to ${Math.round(feature.properties.radius_m + screen.accuracy)} m away.`));
    const actions = h("div", { class: "actions" },
      h("button", { type: "button", class: "small", onclick: () => screen.select(feature.id, true), "aria-label": `Show ${feature.properties.name} on the map` }, "Show"));
    const li = h("li", { "data-testid": "geofence-row", "data-id": feature.id, class: screen.selected === feature.id ? "selected" : "" },
      h("span", { class: `swatch${circle ? " circle" : ""}`, "aria-hidden": "true" }),
      h("div", { class: "what" }, h("div", { class: "name" }, feature.properties.name), meta),
      actions);
    if (screen.canEdit) {
      actions.append(
        h("button", { type: "button", class: "small", onclick: () => this.edit(li, entry), "aria-label": `Rename or move ${feature.properties.name}` }, "Rename"),
        confirmButton("Delete", "Confirm", () => screen.remove(feature.id), { class: "danger small", "aria-label": `Delete ${feature.properties.name}` }),
      );
    }
    return li;
  }

  /** The row becomes a small form: name and store, saved with PATCH. */
  edit(li, entry) {
    const { feature } = entry;
    const name = h("input", { name: "name", required: true, maxlength: 200, value: feature.properties.name });
    const store = h("select", { name: "store_id" },
      [...this.screen.stores.values()].map((s) => h("option", { value: s.id, selected: s.id === feature.properties.store_id }, s.name)));
    const form = h("form", { class: "fence-edit", "aria-label": `Edit ${feature.properties.name}` },
      field("Name", name, { name: "properties.name" }),
      field("Store", store, { name: "properties.store_id", hint: "Moving it to another store changes whose offers it triggers." }),
      h("div", { class: "row" },
        h("button", { type: "submit", class: "primary small" }, "Save"),
        h("button", { type: "button", class: "small", onclick: () => this.screen.refresh() }, "Cancel")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      await this.screen.saveProperties(feature.id, form, { name: name.value.trim(), store_id: store.value });
    });
    li.replaceChildren(form);
    name.focus();
  }
}
