// Example service worker for the gateway's Web Push messages.
//
// The app subscribes with the gateway's VAPID key:
//   const { public_key } = await (await fetch("/v1/push/vapid-public-key")).json();
//   const sub = await registration.pushManager.subscribe({
//     userVisibleOnly: true, applicationServerKey: public_key });
//   await fetch("/v1/push-subscriptions", { method: "POST", body: JSON.stringify(sub),
//     headers: { "Content-Type": "application/json", Authorization: "Bearer " + token } });
// and stores the shopper's token where this worker can read it (here: the Cache API
// under "/__gateway_token"), so it can report opens.
//
// Each message is JSON: {delivery_id, offer_id, title, body, coupon: {code, expires_at},
// open_url}. The delivery id is the notification's tag: a message delivered twice
// (push is at least once) replaces itself instead of showing twice.

self.addEventListener("push", (event) => {
  if (!event.data) return;
  const msg = event.data.json();
  event.waitUntil(
    self.registration.showNotification(msg.title, {
      body: `${msg.body}\nCode ${msg.coupon.code}`,
      tag: msg.delivery_id,
      data: msg,
      timestamp: Date.now(),
      requireInteraction: false,
    }),
  );
});

async function shopperToken() {
  const cache = await caches.open("gateway");
  const stored = await cache.match("/__gateway_token");
  return stored ? stored.text() : null;
}

self.addEventListener("notificationclick", (event) => {
  const msg = event.notification.data;
  event.notification.close();
  event.waitUntil(
    (async () => {
      const token = await shopperToken();
      if (token) {
        // Idempotent: opening twice records one open.
        await fetch(msg.open_url, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}` },
        }).catch(() => {});
      }
      const windows = await clients.matchAll({ type: "window", includeUncontrolled: true });
      const url = `/coupons/${encodeURIComponent(msg.delivery_id)}`;
      for (const w of windows) {
        if ("focus" in w) {
          w.navigate(url);
          return w.focus();
        }
      }
      return clients.openWindow(url);
    })(),
  );
});
