// #/offers/new and #/offers/:id: one form for every rule the API knows, each explained in
// words; the API's validation errors appear at their field.
import { api, apiAll } from "./api.js";
import { go } from "./router.js";
import { field, fieldErrors, clearErrors, h, loading, pageHeader, toast, weeklyEditor } from "./ui.js";

const CONDITIONS = ["clear", "clouds", "rain", "drizzle", "thunderstorm", "snow", "sleet", "hail", "fog", "wind"];
const CHANNELS = [["inbox", "In-app inbox"], ["webpush", "Web Push notification"], ["wallet", "Apple Wallet pass"]];

const input = (name, props = {}) => h("input", { name, ...props });
const num = (el) => (el.value.trim() === "" ? null : Number(el.value));
const list = (el) => el.value.split(",").map((s) => s.trim()).filter(Boolean);

function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function section(legend, explain, ...children) {
  return h("fieldset", {}, h("legend", {}, legend), h("p", { class: "explain" }, explain), children);
}

function checkbox(name, value, label, checked) {
  return h("label", {}, h("input", { type: "checkbox", name, value, checked }), label);
}

function checked(form, name) {
  return [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((el) => el.value);
}

export async function offerFormScreen(params, main, whoami) {
  if (!whoami.canEdit) {
    main.replaceChildren(h("div", { class: "state" }, h("p", {}, "Your role can read offers but not change them."), h("a", { href: "#/offers" }, "Back to offers")));
    return;
  }
  loading(main, "Loading the offer…");
  const isNew = !params.id;
  const [stores, fences, offer] = await Promise.all([
    apiAll("/v1/stores", { limit: 1000 }),
    apiAll("/v1/geofences", { limit: 500 }),
    isNew ? Promise.resolve(null) : api(`/v1/offers/${encodeURIComponent(params.id)}`),
  ]);
  const o = offer || {};
  const f = {};
  const el = (name, props) => (f[name] = input(name, props));

  // -- where ---------------------------------------------------------------------------
  const fenceIds = new Set(o.geofence_ids || []);
  const storeIds = new Set(o.store_ids || []);
  const byStore = new Map(stores.map((s) => [s.id, []]));
  for (const fence of fences) (byStore.get(fence.properties.store_id) || []).push(fence);
  const whereBox = h("div", { class: "where-list" });
  for (const s of stores) {
    whereBox.append(h("div", { class: "where-store" },
      h("div", { "data-field": "store_ids" }, checkbox("store_ids", s.id, h("strong", {}, `${s.name}: every geofence of this store`), storeIds.has(s.id))),
      h("div", { class: "checks indent" }, byStore.get(s.id).map((fence) =>
        checkbox("geofence_ids", fence.id, fence.properties.name, fenceIds.has(fence.id))))));
  }
  if (!stores.length) whereBox.append(h("p", { class: "notice warn" }, "No stores yet: ", h("a", { href: "#/stores" }, "create a store"), " and its geofences first."));

  // -- schedule, caps ----------------------------------------------------------------------
  const schedule = o.schedule || {};
  const weekly = weeklyEditor("schedule.weekly", schedule.weekly, "no window");
  const capsBox = h("div", { class: "caps" });
  const addCap = (cap = { max: 1, seconds: 86400 }) => {
    const days = cap.seconds % 86400 === 0;
    const maxEl = h("input", { type: "number", min: 1, max: 1000, value: cap.max, "aria-label": "Most coupons", class: "cap-max" });
    const spanEl = h("input", { type: "number", min: 1, value: days ? cap.seconds / 86400 : Math.round(cap.seconds / 3600), "aria-label": "Window length", class: "cap-span" });
    const unitEl = h("select", { "aria-label": "Window unit", class: "cap-unit" }, h("option", { value: "hours", selected: !days }, "hours"), h("option", { value: "days", selected: days }, "days"));
    const rowEl = h("div", { class: "row cap-row" }, h("span", {}, "At most"), maxEl, h("span", {}, "coupon(s) per shopper in any"), spanEl, unitEl,
      h("button", { type: "button", class: "small", onclick: () => { rowEl.remove(); renumber(); } }, "Remove"));
    capsBox.append(rowEl);
    renumber();
  };
  const renumber = () => [...capsBox.children].forEach((row, i) => row.setAttribute("data-field", `caps[${i}]`));
  for (const cap of o.caps || []) addCap(cap);

  const weather = o.weather || {};
  const audience = o.audience || {};
  const budget = o.budget || {};
  const coupon = o.coupon || { barcode_format: "qr", valid_minutes: 60 };
  const barcode = h("select", { name: "coupon.barcode_format" }, ["qr", "pdf417", "aztec", "code128"].map((b) => h("option", { value: b, selected: coupon.barcode_format === b }, b.toUpperCase())));
  const paused = h("input", { type: "checkbox", name: "paused" });
  const whenClosed = h("input", { type: "checkbox", name: "fire_when_closed", checked: o.fire_when_closed === true });
  const save = h("button", { type: "submit", class: "primary" }, isNew ? "Create offer" : "Save changes");

  // Content, Where, Trigger, Schedule, Weather, Audience, Frequency caps, Budget, Priority,
  // Channels, Coupon.
  const sections = [
    section("Content", "What the shopper sees in the notification, the inbox and the wallet pass. The name is for you only.",
      field("Name (internal)", el("name", { required: true, maxlength: 200, value: o.name })),
      field("Title", el("title", { required: true, maxlength: 200, value: o.title }), { hint: "The headline, e.g. “20% off a hot coffee”." }),
      field("Body", (f.body = h("textarea", { name: "body", required: true, maxlength: 2000 }, o.body || ""))),
      field("Image URL (optional)", el("image_url", { type: "url", value: o.image_url, placeholder: "https://…" }))),
    section("Where", "The offer is a candidate when a shopper enters (or dwells in) one of the ticked geofences, or any geofence of a ticked store. Tick at least one.",
      h("div", { "data-field": "geofence_ids" }, whereBox)),
    section("Trigger", "When the offer is considered for a shopper.",
      h("div", { class: "checks", "data-field": "trigger", role: "radiogroup", "aria-label": "Trigger" },
        h("label", {}, h("input", { type: "radio", name: "trigger", value: "enter", checked: o.trigger !== "dwell" }), "On entry: as soon as the shopper is inside"),
        h("label", {}, h("input", { type: "radio", name: "trigger", value: "dwell", checked: o.trigger === "dwell" }), "After a dwell: once the shopper has stayed inside a while (5 minutes by default)"))),
    section("Schedule", "Optional. The offer only fires between the start and the end, and, if you fill in weekly windows, only within them, in the store's time zone. Write windows like 07:00-10:30, several separated by commas; a window ending before it starts runs past midnight. Empty days have no window.",
      h("div", { class: "row", "data-field": "schedule" },
        field("Starts", el("schedule.starts_at", { type: "datetime-local", value: localInput(schedule.starts_at) }), { hint: "Your local time." }),
        field("Ends", el("schedule.ends_at", { type: "datetime-local", value: localInput(schedule.ends_at) }))),
      weekly.element,
      h("div", { class: "field", "data-field": "fire_when_closed" },
        h("label", {}, whenClosed, " Send even while the store is closed"),
        h("p", { class: "hint" }, "Unticked (the usual choice), the offer waits for the store's opening hours: a shopper walking past a closed shop gets nothing they could use now. Tick it for an offer meant for later, such as “come back tomorrow for a free coffee”. A store without opening hours counts as always open."))),
    section("Weather", "Optional. Fires only when the shopper's ping reports matching weather: one of the ticked conditions (any, if none ticked) and a temperature within the range. A ping without weather never matches a weather rule.",
      h("div", { class: "checks", "data-field": "weather.conditions" }, CONDITIONS.map((c) => checkbox("weather.conditions", c, c, (weather.conditions || []).includes(c)))),
      h("div", { class: "row", "data-field": "weather" },
        field("Lowest temperature (°C)", el("weather.min_temp_c", { type: "number", step: "0.5", value: weather.min_temp_c })),
        field("Highest temperature (°C)", el("weather.max_temp_c", { type: "number", step: "0.5", value: weather.max_temp_c })))),
    section("Audience", "Optional. Who may get it: every rule you fill in must hold. Tags match if the shopper has any of them; excluded tags win.",
      h("div", { class: "row", "data-field": "audience" },
        field("Loyalty tiers", el("audience.tiers", { value: (audience.tiers || []).join(", "), placeholder: "e.g. Gold, Silver" }), { hint: "Comma-separated." }),
        field("Points at least", el("audience.min_points", { type: "number", min: 0, value: audience.min_points })),
        field("Points at most", el("audience.max_points", { type: "number", min: 0, value: audience.max_points }))),
      h("div", { class: "row" },
        field("Has any of the tags", el("audience.tags", { value: (audience.tags || []).join(", "), placeholder: "e.g. coffee, vip" })),
        field("Has none of the tags", el("audience.exclude_tags", { value: (audience.exclude_tags || []).join(", "), placeholder: "e.g. staff" })))),
    section("Frequency caps", "Optional. How often one shopper can get this offer, over rolling windows (e.g. once a day, three times in 30 days). The program also caps offers per shopper per day across all offers.",
      h("div", { "data-field": "caps" }, capsBox, h("button", { type: "button", class: "small", onclick: () => addCap() }, "Add a cap"))),
    section("Budget", `Optional. Stops the offer when this many coupons have been issued or redeemed, counted across all gateways.${offer ? ` So far: ${budget.issued} issued, ${budget.redeemed} redeemed.` : ""}`,
      h("div", { class: "row", "data-field": "budget" },
        field("Most coupons issued", el("budget.max_issued", { type: "number", min: 1, value: budget.max_issued })),
        field("Most coupons redeemed", el("budget.max_redeemed", { type: "number", min: 1, value: budget.max_redeemed })))),
    section("Priority and holdout", "When several offers could fire on one ping, only one is sent: the highest priority (then the one ending soonest, then the oldest). The holdout keeps a share of shoppers from getting the offer, at random but always the same shoppers, so the report can measure its real uplift.",
      h("div", { class: "row" },
        field("Priority", el("priority", { type: "number", min: -1000, max: 1000, step: 1, value: o.priority ?? 0 }), { hint: "-1000 to 1000; higher wins." }),
        field("Holdout (% of shoppers)", el("holdout_pct", { type: "number", min: 0, max: 100, step: "any", value: o.holdout_pct ?? 0 }), { hint: "0 for none; 10–20 % is usual." }))),
    section("Channels", "How the offer reaches the shopper. Tick at least one.",
      h("div", { class: "checks", "data-field": "channels" }, CHANNELS.map(([v, t]) => checkbox("channels", v, t, (o.channels || ["inbox"]).includes(v))))),
    section("Coupon", "The single-use coupon the offer issues: what it gives and how long it stays valid after it is sent.",
      h("div", { class: "row" },
        field("Discount (as shown)", el("coupon.discount", { required: true, maxlength: 100, value: coupon.discount, placeholder: "e.g. 20% off" })),
        field("Valid for (minutes)", el("coupon.valid_minutes", { type: "number", min: 1, value: coupon.valid_minutes })),
        field("Barcode", barcode, { name: "coupon.barcode_format" })),
      h("div", { class: "row" },
        field("Discount in % (optional)", el("coupon.discount_pct", { type: "number", min: 0, max: 100, step: "any", value: coupon.discount_pct }), { hint: "For the till and the reports." }),
        field("Discount amount (optional)", el("coupon.discount_amount", { type: "number", min: 0, step: "any", value: coupon.discount_amount })))),
  ];
  const pick = (...indexes) => indexes.map((i) => sections[i]);
  // Two columns on wide screens: what the shopper gets, where and how | when, who, how often.
  const form = h("form", { class: "offer-form", novalidate: true },
    h("div", { class: "offer-cols" },
      h("div", { class: "offer-col" }, pick(0, 1, 2, 9, 10)),
      h("div", { class: "offer-col" }, pick(3, 4, 5, 6, 7, 8))),
    isNew ? h("div", { class: "field" }, h("label", {}, paused, " Create it paused (it fires nothing until resumed)")) : null,
    h("div", { class: "form-actions" }, save, h("a", { href: "#/offers", class: "button" }, "Cancel")));

  function read() {
    const startsAt = f["schedule.starts_at"].value;
    const endsAt = f["schedule.ends_at"].value;
    const weeklyValue = weekly.read();
    const conditions = checked(form, "weather.conditions");
    const w = { conditions: conditions.length ? conditions : null, min_temp_c: num(f["weather.min_temp_c"]), max_temp_c: num(f["weather.max_temp_c"]) };
    const tiers = list(f["audience.tiers"]);
    const tags = list(f["audience.tags"]);
    const a = { tiers: tiers.length ? tiers : null, min_points: num(f["audience.min_points"]), max_points: num(f["audience.max_points"]), tags: tags.length ? tags : null, exclude_tags: list(f["audience.exclude_tags"]) };
    const b = { max_issued: num(f["budget.max_issued"]), max_redeemed: num(f["budget.max_redeemed"]) };
    const c = { discount: f["coupon.discount"].value.trim(), valid_minutes: num(f["coupon.valid_minutes"]), barcode_format: barcode.value };
    if (num(f["coupon.discount_pct"]) !== null) c.discount_pct = num(f["coupon.discount_pct"]);
    if (num(f["coupon.discount_amount"]) !== null) c.discount_amount = num(f["coupon.discount_amount"]);
    const trigger = form.querySelector('input[name="trigger"]:checked');
    const body = {
      name: f.name.value.trim(), title: f.title.value.trim(), body: f.body.value.trim(),
      image_url: f.image_url.value.trim() || null,
      geofence_ids: checked(form, "geofence_ids"), store_ids: checked(form, "store_ids"),
      trigger: trigger ? trigger.value : "enter",
      schedule: startsAt || endsAt || weeklyValue ? { starts_at: startsAt ? new Date(startsAt).toISOString() : null, ends_at: endsAt ? new Date(endsAt).toISOString() : null, weekly: weeklyValue } : null,
      weather: w.conditions || w.min_temp_c !== null || w.max_temp_c !== null ? w : null,
      audience: a.tiers || a.tags || a.exclude_tags.length || a.min_points !== null || a.max_points !== null ? a : null,
      caps: [...capsBox.children].map((row) => {
        const unit = row.querySelector(".cap-unit").value;
        return { max: num(row.querySelector(".cap-max")), [unit]: num(row.querySelector(".cap-span")) };
      }),
      budget: b.max_issued !== null || b.max_redeemed !== null ? b : null,
      priority: num(f.priority) ?? 0,
      holdout_pct: num(f.holdout_pct) ?? 0,
      channels: checked(form, "channels"),
      coupon: c,
      fire_when_closed: whenClosed.checked,
    };
    if (isNew) body.status = paused.checked ? "paused" : "active";
    return body;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    save.disabled = true;
    try {
      const saved = isNew
        ? await api("/v1/offers", { method: "POST", body: read() })
        : await api(`/v1/offers/${encodeURIComponent(params.id)}`, { method: "PATCH", body: read() });
      toast(`${isNew ? "Created" : "Saved"} “${saved.name}”.`);
      go("#/offers");
    } catch (err) {
      fieldErrors(form, err, { map: { "(body)": "geofence_ids" } });
    } finally {
      save.disabled = false;
    }
  });

  main.replaceChildren(pageHeader(isNew ? "New offer" : `Edit offer: ${o.name}`,
    offer ? h("a", { href: `#/offers/${encodeURIComponent(o.id)}/report`, class: "button" }, "Report") : null), form);
  f.name.focus();
}
