// The service worker and Web Push: register the worker (it shows the notifications), ask
// for permission, subscribe with the gateway's VAPID key and hand the subscription over.

import { BASE, call } from "./api.js";

export function supported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** The worker's registration (registered once, scoped to this app's folder). */
export async function registration() {
  if (!("serviceWorker" in navigator)) return null;
  const url = new URL("sw.js", document.baseURI);
  if (BASE !== window.location.origin) url.searchParams.set("api", BASE);
  await navigator.serviceWorker.register(url, { scope: "./" });
  return navigator.serviceWorker.ready;
}

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** "on", "off", "blocked" or "unsupported". */
export async function state() {
  if (!supported()) return "unsupported";
  if (Notification.permission === "denied") return "blocked";
  const reg = await registration();
  const sub = reg && (await reg.pushManager.getSubscription());
  return sub && Notification.permission === "granted" ? "on" : "off";
}

export async function enable() {
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new Error("Notifications were not allowed in this browser.");
  const reg = await registration();
  const { public_key } = await call("/v1/push/vapid-public-key", { token: null });
  let sub = await reg.pushManager.getSubscription();
  if (!sub) {
    sub = await reg.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: keyBytes(public_key),
    });
  }
  await call("/v1/push-subscriptions", { method: "POST", body: sub.toJSON() });
}

export async function disable() {
  const reg = await registration();
  const sub = reg && (await reg.pushManager.getSubscription());
  if (!sub) return;
  await call("/v1/push-subscriptions", { method: "DELETE", body: { endpoint: sub.endpoint } }).catch(() => {});
  await sub.unsubscribe();
}
