// One coupon, for the till: the code large and as a Code 128 barcode, its validity, and
// the wallet buttons. Showing it reports "opened" (idempotent: once per coupon).

import { ApiError, call } from "./api.js";
import { svg } from "./barcode.js";
import { errorText, h, setTitle, show, when } from "./ui.js";
import { appleButton, googleSlot } from "./wallet.js";

async function find(deliveryId) {
  let cursor = null;
  do {
    const page = await call(`/v1/inbox?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    const item = page.items.find((i) => i.delivery_id === deliveryId);
    if (item) return item;
    cursor = page.next_cursor;
  } while (cursor);
  return null;
}

function back() {
  return h("p", {}, h("a", { href: "#/", class: "back", testid: "back" }, "← All offers"));
}

function view(item, onError) {
  const code = item.coupon.code;
  const plain = code.replace(/[^\x20-\x7e]/g, "");
  const image = item.image_url && item.image_url.startsWith("https://")
    ? h("img", { src: item.image_url, alt: "", class: "offer-image" })
    : null;
  return h(
    "article",
    { class: "card coupon-view", testid: "coupon-view", "data-id": item.delivery_id },
    image,
    h("h2", { testid: "coupon-title" }, item.title),
    h("p", { testid: "coupon-body" }, item.body),
    h("p", { class: "code", testid: "coupon-code" }, h("span", { class: "sr-only" }, "Code "), code),
    h("div", { class: "barcode-box", testid: "barcode" }, svg(plain)),
    h(
      "p",
      { class: "meta" },
      item.coupon.redeemed ? "Already used at the till." : `Show this at the till. Valid until ${when(item.coupon.expires_at)}.`,
    ),
    h(
      "p",
      { class: "actions" },
      appleButton(`/v1/passes/coupons/${encodeURIComponent(item.coupon.id)}`, "coupon.pkpass", onError),
      googleSlot(`/v1/passes/google/coupons/${encodeURIComponent(item.coupon.id)}`),
    ),
  );
}

export function couponScreen(deliveryId) {
  setTitle("Coupon");
  const message = h("p", { class: "note", role: "status", testid: "coupon-status" }, "Loading…");
  show(back(), message);
  (async () => {
    try {
      const item = await find(deliveryId);
      if (!item) {
        message.textContent = "This coupon is no longer available: it was used, dismissed or has expired.";
        return;
      }
      setTitle(item.title);
      message.textContent = "";
      show(back(), view(item, (err) => (message.textContent = errorText(err))), message);
      await call(`/v1/inbox/${encodeURIComponent(deliveryId)}/open`, { method: "POST" });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        window.dispatchEvent(new CustomEvent("gw:signed-out"));
        return;
      }
      message.textContent = errorText(err);
    }
  })();
  return () => {};
}
