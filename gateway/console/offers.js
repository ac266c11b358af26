// #/offers: the offers with their status, pause/resume for managers and a link to each report.
import { api } from "./api.js";
import { go } from "./router.js";
import { errorBox, h, loading, pageHeader, toast } from "./ui.js";

const PAGE = 50;

function where(offer, names) {
  const parts = [];
  if (offer.geofence_ids.length) parts.push(`${offer.geofence_ids.length} geofence${offer.geofence_ids.length > 1 ? "s" : ""}`);
  for (const id of offer.store_ids) parts.push(names.get(id) || `store ${id}`);
  return parts.join(", ");
}

export async function offersScreen(params, main, whoami) {
  loading(main, "Loading offers…");
  const stores = await api("/v1/stores", { query: { limit: 1000 } });
  const names = new Map(stores.items.map((s) => [s.id, s.name]));
  const status = params.query.get("status") || "";
  const cursors = [null];
  const table = h("tbody");
  const pager = h("div", { class: "pager" });
  const filter = h("select", { name: "status", id: "status-filter" },
    [["", "All"], ["active", "Active"], ["paused", "Paused"]].map(([v, t]) => h("option", { value: v, selected: v === status }, t)));
  filter.addEventListener("change", () => go(filter.value ? `#/offers?status=${filter.value}` : "#/offers"));
  const actions = whoami.canEdit ? [h("a", { href: "#/offers/new", class: "button primary" }, "New offer")] : [];
  const body = h("div");
  main.replaceChildren(
    pageHeader("Offers", ...actions),
    h("div", { class: "field narrow" }, h("label", { for: "status-filter" }, "Show"), filter),
    body);

  async function show(index) {
    body.replaceChildren(h("p", { class: "state loading", role: "status" }, h("span", { class: "spinner" }), "Loading…"));
    let page;
    try {
      page = await api("/v1/offers", { query: { limit: PAGE, cursor: cursors[index], status } });
    } catch (err) {
      body.replaceChildren(errorBox(err, () => show(index)));
      return;
    }
    cursors[index + 1] = page.next_cursor;
    table.replaceChildren(...page.items.map((o) => row(o)));
    if (!page.items.length) table.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, whoami.canEdit ? "No offers yet. Create one with “New offer”." : "No offers yet.")));
    pager.replaceChildren(
      h("button", { type: "button", disabled: index === 0, onclick: () => show(index - 1) }, "← Previous"),
      h("span", { class: "muted" }, `Page ${index + 1}`),
      h("button", { type: "button", disabled: !page.next_cursor, onclick: () => show(index + 1) }, "Next →"));
    body.replaceChildren(h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Offer", "Status", "Trigger", "Where", "Priority", ""].map((t) => h("th", { scope: "col" }, t)))),
      table)), pager);
  }

  function row(offer) {
    const badge = h("span", { class: `badge ${offer.status}` }, offer.status === "active" ? "Active" : "Paused");
    const buttons = h("div", { class: "actions" });
    if (whoami.canEdit) {
      buttons.append(h("a", { href: `#/offers/${encodeURIComponent(offer.id)}`, class: "button small" }, "Edit"));
      const active = offer.status === "active";
      buttons.append(h("button", {
        type: "button", class: "small", "data-action": active ? "pause" : "resume",
        onclick: async (event) => {
          event.currentTarget.disabled = true;
          try {
            const updated = await api(`/v1/offers/${encodeURIComponent(offer.id)}/${active ? "pause" : "resume"}`, { method: "POST" });
            tr.replaceWith(row(updated));
            toast(`${updated.name} is ${updated.status === "active" ? "running again" : "paused"}.`);
          } catch (err) {
            event.currentTarget.disabled = false;
            toast(`Could not change it: ${err.message}`, "error");
          }
        },
      }, active ? "Pause" : "Resume"));
    }
    buttons.append(h("a", { href: `#/offers/${encodeURIComponent(offer.id)}/report`, class: "button small" }, "Report"));
    const tr = h("tr", { "data-testid": "offer-row", "data-id": offer.id, "data-status": offer.status },
      h("td", {}, h("div", { class: "name" }, h("strong", {}, offer.name)), h("div", { class: "muted" }, offer.title)),
      h("td", {}, badge),
      h("td", {}, { enter: "on entry", dwell: "after a dwell", journey: "by a journey" }[offer.trigger] || offer.trigger),
      h("td", {}, where(offer, names)),
      h("td", {}, String(offer.priority)),
      h("td", {}, buttons));
    return tr;
  }

  await show(0);
}
