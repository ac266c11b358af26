// The reference shopper app: enrolment with consent, the inbox and its live feed, location
// pings, Web Push and wallet buttons, and each coupon large with its barcode for the till.
// Routes live in the fragment: #/ (offers) and #/coupon/<delivery id>.

import { call, store } from "./api.js";
import { couponScreen } from "./coupon.js";
import { homeScreen } from "./home.js";
import * as pings from "./pings.js";
import { registration } from "./push.js";
import { errorText, h, setTitle, show, status } from "./ui.js";

// A link from the shop can carry its program's app key: /app/#app=gw_app_...
function takeAppKey() {
  const match = /(?:^#|&)app=([^&]+)/.exec(window.location.hash);
  if (!match) return;
  store.setAppKey(decodeURIComponent(match[1]));
  history.replaceState(null, "", window.location.pathname + window.location.search + "#/");
}

function enrolScreen() {
  setTitle("Join");
  const message = status("enrol-status");
  const keyField = store.appKey()
    ? null
    : h(
        "p",
        { class: "field" },
        h("label", { for: "app-key" }, "Program key"),
        h("input", { id: "app-key", name: "app_key", required: true, autocomplete: "off", spellcheck: "false" }),
        h("span", { class: "hint" }, "From the shop's link or QR code."),
      );
  const form = h(
    "form",
    { class: "card", testid: "enrol-form" },
    h("h2", {}, "Coupons from the shops near you"),
    h("p", {}, "Join to get offers in this app, as notifications and in your wallet."),
    keyField,
    h(
      "p",
      { class: "field" },
      h("label", { for: "name" }, "Your first name (optional)"),
      h("input", { id: "name", name: "name", autocomplete: "given-name", maxlength: "200" }),
    ),
    h(
      "p",
      { class: "check" },
      h("input", { type: "checkbox", id: "consent", name: "marketing_consent", testid: "consent" }),
      h(
        "label",
        { for: "consent" },
        "Send me offers when I am near one of the shops. This uses my location while the app is open. I can turn it off at any time.",
      ),
    ),
    h("button", { type: "submit", class: "primary", testid: "enrol" }, "Join"),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    if (data.get("app_key")) store.setAppKey(String(data.get("app_key")).trim());
    const body = { marketing_consent: data.get("marketing_consent") === "on" };
    const name = String(data.get("name") || "").trim();
    if (name) body.name = name;
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) body.timezone = zone;
    message.textContent = "Joining…";
    try {
      const answer = await call("/v1/shoppers", { method: "POST", body, token: store.appKey() });
      await store.setShopper(answer.token);
      window.location.hash = "#/";
      route();
    } catch (err) {
      message.textContent = err.status === 401 ? "This program key is not valid. Ask the shop for its link." : errorText(err);
    }
  });
  show(form);
}

let leave = null;

export function route() {
  if (leave) leave();
  leave = null;
  if (!store.shopper()) return enrolScreen();
  // The worker shows notifications and reports opens; register it once enrolled.
  registration().catch(() => {});
  const coupon = /^#\/coupon\/([^/]+)$/.exec(window.location.hash);
  if (coupon) leave = couponScreen(decodeURIComponent(coupon[1]));
  else leave = homeScreen();
  document.getElementById("main").focus({ preventScroll: true });
}

function network() {
  const el = document.getElementById("net");
  el.textContent = navigator.onLine ? "" : "Offline: locations are kept and sent when you are back online";
  el.classList.toggle("offline", !navigator.onLine);
  if (navigator.onLine && store.shopper()) pings.flush().catch(() => {});
}

// A revoked or erased shopper: back to the start.
window.addEventListener("gw:signed-out", async () => {
  await store.forget();
  route();
});
window.addEventListener("hashchange", route);
window.addEventListener("online", network);
window.addEventListener("offline", network);

takeAppKey();
network();
route();
// Keep the worker's copy of the token current (a copied app upgraded in place).
if (store.shopper()) store.setShopper(store.shopper()).catch(() => {});

