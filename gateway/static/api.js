// The app's one door to the gateway: the /v1 JSON API at the configured base (this origin
// unless <meta name="gateway-api"> names another), with the shopper's token as a Bearer
// header. Tokens never go in URLs or cookies, so cross-origin calls need no credentials.

const meta = document.querySelector('meta[name="gateway-api"]');
export const BASE = ((meta && meta.content) || window.location.origin).replace(/\/+$/, "");

const KEYS = { shopper: "gw.shopper", app: "gw.app" };

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || {};
  }
}

export const store = {
  shopper: () => localStorage.getItem(KEYS.shopper),
  appKey: () => localStorage.getItem(KEYS.app),
  setAppKey: (key) => localStorage.setItem(KEYS.app, key),
  async setShopper(token) {
    localStorage.setItem(KEYS.shopper, token);
    await shareWithWorker(token);
  },
  async forget() {
    localStorage.removeItem(KEYS.shopper);
    await shareWithWorker(null);
  },
};

// The service worker cannot read localStorage: it finds the token (to report opens) and
// the API's base in the Cache API.
export async function shareWithWorker(token) {
  if (!("caches" in window)) return;
  const cache = await caches.open("gateway");
  if (token) {
    await cache.put("/__gateway_token", new Response(token));
    await cache.put("/__gateway_api", new Response(BASE));
  } else {
    await cache.delete("/__gateway_token");
  }
}

export async function call(path, { method = "GET", body, token = store.shopper(), accept } = {}) {
  const headers = { Accept: accept || "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch {
    throw new ApiError(0, "network", "You are offline, or the shop's server cannot be reached.");
  }
  if (!response.ok) {
    let error = {};
    try {
      error = (await response.json()).error || {};
    } catch {
      // not the API's JSON (a proxy's page): keep the status
    }
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || `HTTP ${response.status}`,
      error.fields,
    );
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.blob();
}

/** Server-Sent Events over fetch (EventSource cannot send a Bearer token): calls
 * onEvent(name, data) for each event until the signal aborts; throws when it drops. */
export async function stream(path, onEvent, signal) {
  const response = await fetch(BASE + path, {
    headers: { Authorization: `Bearer ${store.shopper()}`, Accept: "text/event-stream" },
    credentials: "omit",
    cache: "no-store",
    signal,
  });
  if (!response.ok || !response.body) throw new ApiError(response.status, "stream", "no feed");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let end;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

let spec = null;
/** Whether the API's description says the body schema `name` has `field` (feature check). */
export async function schemaHas(name, field) {
  if (spec === null) {
    spec = call("/openapi.json", { token: null }).catch(() => ({}));
  }
  const doc = await spec;
  const schema = ((doc.components || {}).schemas || {})[name] || {};
  return Boolean((schema.properties || {})[field]);
}
