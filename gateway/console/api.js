// The console's one door to the gateway: the public /v1 JSON API on the same origin,
// with the token from sessionStorage in the Authorization header (never in a URL).

export const TOKEN_KEY = "gw.token";

export class ApiError extends Error {
  constructor(status, code, message, fields = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.fields = fields || {};
  }
}

function request(path, { method = "GET", body, query, headers = {} } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(key, one);
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  const sent = { Accept: "application/json", ...headers };
  if (token) sent.Authorization = `Bearer ${token}`;
  const init = { method, headers: sent, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    if (!sent["Content-Type"]) sent["Content-Type"] = "application/json";
  }
  return fetch(url, init).catch(() => {
    throw new ApiError(0, "network", "The gateway cannot be reached. Check the connection and try again.");
  });
}

async function failure(response) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // Not the API's JSON (a proxy's page): keep the status line.
  }
  const err = new ApiError(
    response.status,
    error.code || `http_${response.status}`,
    error.message || response.statusText || `HTTP ${response.status}`,
    error.fields,
  );
  if (response.status === 401) window.dispatchEvent(new CustomEvent("gw:unauthorized", { detail: err }));
  return err;
}

/** Call the API; the parsed JSON answer, or null for 204. Throws ApiError on non-2xx. */
export async function api(path, options = {}) {
  const response = await request(path, options);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** Fetch an answer as a Blob (CSV, GeoJSON export), with the token in the header. */
export async function apiBlob(path, options = {}) {
  const response = await request(path, options);
  if (!response.ok) throw await failure(response);
  return response.blob();
}

/** Every item of a cursor-paged list (`{items, next_cursor}`), page by page. */
export async function apiAll(path, { query = {}, limit = 500, max = 20000 } = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path, { query: { ...query, limit, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
