// The console's shell: sign-in with an API token (kept in sessionStorage only), the header
// and the navigation for the token's role, and the screens that manager.js and reviewer.js
// register on the router.
import { api, ApiError, TOKEN_KEY } from "./api.js";
import { go, route, start, stop, current } from "./router.js";
import { h, showError } from "./ui.js";

const EDITORS = new Set(["admin", "manager"]);
const ROLE_NAMES = { admin: "Administrator", manager: "Store manager", reviewer: "Campaign reviewer" };
// The roles that cannot use the console, named with their article ("an app token").
const A_TOKEN = { pos: "A POS token", app: "An app token", shopper: "A shopper token" };

// What each role finds in the navigation: only what its rights allow.
const NAV = [
  { hash: "#/geofences", label: "Map & geofences", roles: ["admin", "manager"] },
  { hash: "#/stores", label: "Stores", roles: ["admin", "manager"] },
  { hash: "#/offers", label: "Offers", roles: ["admin", "manager", "reviewer"] },
  { hash: "#/journeys", label: "Journeys", roles: ["admin", "manager", "reviewer"] },
  { hash: "#/preview", label: "Preview", roles: ["admin", "manager", "reviewer"] },
  { hash: "#/redemptions", label: "Redemptions", roles: ["admin", "manager", "reviewer"] },
  { hash: "#/decisions", label: "Decisions", roles: ["admin", "manager", "reviewer"] },
  { hash: "#/live", label: "Live", roles: ["admin", "manager", "reviewer"] },
  { hash: "#/rewards", label: "Rewards", roles: ["admin", "manager", "reviewer"] },
  { hash: "#/referrals", label: "Referrals", roles: ["admin", "manager", "reviewer"] },
  { hash: "#/nps", label: "NPS", roles: ["admin", "manager", "reviewer"] },
];

const outlet = document.getElementById("outlet");
const top = document.getElementById("top");
const nav = document.getElementById("nav");
let started = false;

function signInForm(message) {
  top.hidden = true;
  const input = h("input", { name: "token", id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true, placeholder: "gw_manager_…", "aria-describedby": "token-hint" });
  const error = h("p", { class: "field-error", id: "sign-in-error", role: "alert", hidden: !message }, message || "");
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "sign-in card", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in to the console"),
    h("div", { class: "field" },
      h("label", { for: "token" }, "API token"), input,
      h("p", { class: "hint", id: "token-hint" }, "An admin, manager or reviewer token, as printed by ",
        h("code", {}, "gateway keys create"), ". It stays in this browser tab only and is forgotten when you close it.")),
    error, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    error.hidden = true;
    button.disabled = true;
    button.textContent = "Checking…";
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      await boot();
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      error.textContent = describeSignInError(err);
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
    }
  });
  const main = h("main", { id: "main", class: "centered", tabindex: "-1" }, form);
  outlet.replaceChildren(main);
  input.focus();
}

function describeSignInError(err) {
  if (err instanceof ApiError && err.status === 401) return "This token is not valid (unknown, revoked or mistyped). Check it and try again.";
  if (err instanceof ApiError && err.code === "console_role") return err.message;
  return `Could not sign in: ${err.message}`;
}

async function whoamiAndMerchant() {
  const whoami = await api("/v1/auth/whoami");
  if (!EDITORS.has(whoami.role) && whoami.role !== "reviewer") {
    throw new ApiError(403, "console_role", `${A_TOKEN[whoami.role] || "This token"} cannot use the console: sign in with an admin, manager or reviewer token.`);
  }
  try {
    whoami.merchant = await api(`/v1/merchants/${encodeURIComponent(whoami.merchant_id)}`);
  } catch {
    whoami.merchant = { id: whoami.merchant_id, name: `Merchant ${whoami.merchant_id}` };
  }
  whoami.canEdit = EDITORS.has(whoami.role);
  return whoami;
}

function header(whoami) {
  document.getElementById("merchant-name").textContent = whoami.merchant.name;
  const scope = whoami.store_ids ? ` · stores ${whoami.store_ids.join(", ")}` : "";
  document.getElementById("who-role").textContent = `${ROLE_NAMES[whoami.role] || whoami.role}${scope}`;
  nav.replaceChildren(...NAV.filter((item) => item.roles.includes(whoami.role)).map((item) =>
    h("a", { href: item.hash, "data-nav": item.hash }, item.label)));
  top.hidden = false;
  markCurrent();
}

function markCurrent() {
  const { path } = current();
  for (const a of nav.querySelectorAll("a")) {
    const target = a.dataset.nav.slice(1);
    const here = path === target || path.startsWith(`${target}/`);
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  nav.classList.remove("open");
  document.getElementById("menu-toggle").setAttribute("aria-expanded", "false");
}

async function registerScreens(whoami) {
  const modules = [["./manager.js", "manager screens"], ["./reviewer.js", "reviewer screens"]];
  for (const [path, what] of modules) {
    try {
      const mod = await import(path);
      await mod.register({ route, api, whoami });
    } catch (err) {
      console.error(`could not load the ${what}`, err);
    }
  }
}

async function boot() {
  const whoami = await whoamiAndMerchant();
  header(whoami);
  if (!started) {
    started = true;
    await registerScreens(whoami);
  }
  const home = whoami.canEdit ? "#/geofences" : "#/offers";
  if (!window.location.hash || window.location.hash === "#" || window.location.hash === "#/") {
    history.replaceState(null, "", home);
  }
  await start(outlet, (path, main) => {
    main.append(h("div", { class: "state" }, h("h1", {}, "Nothing here"),
      h("p", {}, `There is no screen at #${path} for your role.`), h("a", { href: home }, "Go to the start page")));
  });
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  stop();
  // Screens were registered for the old role: a full reload starts clean.
  if (started) {
    sessionStorage.setItem("gw.signed-out", message || "");
    window.location.replace(window.location.pathname);
    return;
  }
  signInForm(message);
}

window.addEventListener("route:change", markCurrent);
window.addEventListener("route:error", (event) => {
  const { error, main } = event.detail;
  showError(main, error, () => go(window.location.hash));
});
window.addEventListener("gw:unauthorized", () => {
  if (started) signOut("Your session ended: the token is no longer valid. Sign in again.");
});
document.getElementById("sign-out").addEventListener("click", () => signOut("You are signed out."));
document.getElementById("menu-toggle").addEventListener("click", (event) => {
  const open = nav.classList.toggle("open");
  event.currentTarget.setAttribute("aria-expanded", String(open));
});

const leftMessage = sessionStorage.getItem("gw.signed-out");
sessionStorage.removeItem("gw.signed-out");
if (sessionStorage.getItem(TOKEN_KEY)) {
  boot().catch((err) => {
    sessionStorage.removeItem(TOKEN_KEY);
    signInForm(describeSignInError(err));
  });
} else {
  signInForm(leftMessage || "");
}
