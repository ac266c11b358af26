// Location pings from the Geolocation API. Every fix goes into a queue kept in
// localStorage first, then the queue is uploaded in batches (POST /v1/pings/batch): a fix
// taken offline waits for the connection, and a fix leaves the queue only once the gateway
// has answered for it, so each is sent once. Each ping carries a client id (a UUID) where
// the API takes one, so a resend after a lost answer is processed once.

import { ApiError, call, schemaHas } from "./api.js";

const QUEUE = "gw.pings";
const BATCH = 500;
// A new fix while watching is queued when it moved this far or this long has passed.
const MIN_MOVE_M = 25;
const MIN_GAP_MS = 30_000;

let flushing = null;
let watchId = null;
let last = null;
const listeners = new Set();

export function pending() {
  try {
    return JSON.parse(localStorage.getItem(QUEUE) || "[]");
  } catch {
    return [];
  }
}

function save(queue) {
  localStorage.setItem(QUEUE, JSON.stringify(queue));
  for (const fn of listeners) fn({ pending: queue.length });
}

export function onChange(fn) {
  listeners.add(fn);
}

function ping(position) {
  const c = position.coords;
  return {
    id: crypto.randomUUID(),
    lat: c.latitude,
    lon: c.longitude,
    accuracy_m: Math.max(c.accuracy || 1, 1),
    ts: new Date(position.timestamp || Date.now()).toISOString(),
    ...(Number.isFinite(c.speed) && c.speed >= 0 ? { speed_mps: c.speed } : {}),
  };
}

function metres(a, b) {
  const rad = Math.PI / 180;
  const x = (b.lon - a.lon) * rad * Math.cos(((a.lat + b.lat) / 2) * rad);
  const y = (b.lat - a.lat) * rad;
  return Math.hypot(x, y) * 6_371_000;
}

export function record(position, { force = false } = {}) {
  const p = ping(position);
  if (!force && last && metres(last, p) < MIN_MOVE_M && Date.parse(p.ts) - Date.parse(last.ts) < MIN_GAP_MS) {
    return null;
  }
  last = p;
  save([...pending(), p]);
  return p;
}

/** Upload what is queued; resolves with the gateway's answers (offers sent, per batch). */
export function flush() {
  if (!flushing) flushing = upload().finally(() => (flushing = null));
  return flushing;
}

async function upload() {
  const answers = [];
  const withIds = await schemaHas("PingIn", "id");
  for (;;) {
    const queue = pending();
    if (!queue.length || !navigator.onLine) return answers;
    const batch = queue.slice(0, BATCH);
    // The API refuses fields it does not know: the id goes only where it is described.
    const body = batch.map(({ id, ...rest }) => (withIds ? { id, ...rest } : rest));
    try {
      answers.push(await call("/v1/pings/batch", { method: "POST", body: { pings: body } }));
    } catch (err) {
      // A refused batch (422) would be refused again: drop it rather than block the queue.
      // Offline, 429 or 5xx: keep it for the next try.
      if (err instanceof ApiError && err.status === 422) drop(batch);
      throw err;
    }
    drop(batch);
  }
}

function drop(batch) {
  const sent = new Set(batch.map((p) => p.id));
  save(pending().filter((p) => !sent.has(p.id)));
}

const OPTIONS = { enableHighAccuracy: true, maximumAge: 10_000, timeout: 20_000 };

/** One fix now, queued and uploaded; rejects with the Geolocation API's error. */
export function sendNow() {
  return new Promise((resolve, reject) => {
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        record(pos, { force: true });
        resolve(flush());
      },
      reject,
      OPTIONS,
    );
  });
}

export function watching() {
  return watchId !== null;
}

export function watch(onAnswer, onError) {
  if (watchId !== null) return;
  watchId = navigator.geolocation.watchPosition(
    (pos) => {
      if (record(pos)) flush().then(onAnswer, onError);
    },
    onError,
    OPTIONS,
  );
}

export function stop() {
  if (watchId !== null) navigator.geolocation.clearWatch(watchId);
  watchId = null;
}
