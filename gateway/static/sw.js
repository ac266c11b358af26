// The shopper app's service worker: shows each Web Push message as a notification and,
// when the shopper taps it, reports the open and opens the coupon in the app.
//
// A message is the gateway's JSON: {delivery_id, offer_id, title, body, image_url,
// coupon: {code, expires_at}, open_url}. The delivery id is the notification's tag, so a
// message delivered twice (push is at least once) replaces itself instead of showing twice.
// The page keeps the shopper's token and the API's base in the Cache API, where this
// worker can read them (it cannot read localStorage).

const SCOPE = new URL("./", self.location.href).href;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  if (!event.data) return;
  let msg;
  try {
    msg = event.data.json();
  } catch {
    return;
  }
  const lines = [msg.body, msg.coupon && msg.coupon.code ? `Code ${msg.coupon.code}` : ""];
  const options = {
    body: lines.filter(Boolean).join("\n"),
    tag: String(msg.delivery_id),
    data: msg,
    icon: new URL("icon.svg", SCOPE).href,
    timestamp: Date.now(),
  };
  if (msg.image_url) options.image = msg.image_url;
  event.waitUntil(self.registration.showNotification(String(msg.title || "A new offer"), options));
});

async function stored(key) {
  const cache = await caches.open("gateway");
  const found = await cache.match(key);
  return found ? found.text() : null;
}

async function apiBase() {
  const named = new URL(self.location.href).searchParams.get("api");
  return (named || (await stored("/__gateway_api")) || self.location.origin).replace(/\/+$/, "");
}

/** Where a click goes: the app's screen of that coupon. */
function couponUrl(deliveryId) {
  return `${SCOPE}#/coupon/${encodeURIComponent(deliveryId)}`;
}

async function reportOpened(deliveryId) {
  const token = await stored("/__gateway_token");
  if (!token) return;
  // Idempotent: a second open records nothing more. The page reports it too on opening.
  await fetch(`${await apiBase()}/v1/inbox/${encodeURIComponent(deliveryId)}/open`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    credentials: "omit",
  }).catch(() => {});
}

async function openCoupon(deliveryId) {
  const url = couponUrl(deliveryId);
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const w of windows) {
    if (w.url.startsWith(SCOPE) && "focus" in w) {
      await w.navigate(url);
      return w.focus();
    }
  }
  return self.clients.openWindow(url);
}

self.addEventListener("notificationclick", (event) => {
  const msg = event.notification.data || {};
  event.notification.close();
  if (!msg.delivery_id) return;
  event.waitUntil(Promise.all([reportOpened(msg.delivery_id), openCoupon(msg.delivery_id)]));
});
