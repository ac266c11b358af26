// Small DOM helpers shared by the screens. Data always goes in as text (textContent,
// setAttribute), never as HTML.

/** h("button", {class: "primary", onclick: fn, "data-id": 3}, "Save") */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked" || key === "selected" || key === "disabled" || key === "hidden") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function loading(main, text = "Loading…") {
  main.replaceChildren(h("p", { class: "state loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text));
}

export function errorBox(err, retry) {
  const box = h("div", { class: "state error", role: "alert" },
    h("strong", {}, err && err.status === 403 ? "Not allowed" : "Something went wrong"),
    h("p", {}, (err && err.message) || String(err)));
  if (retry) box.append(h("button", { type: "button", onclick: retry }, "Try again"));
  return box;
}

export function showError(main, err, retry) {
  main.replaceChildren(errorBox(err, retry));
}

/** A polite announcement at the bottom of the screen. */
export function toast(text, kind = "ok") {
  let region = document.getElementById("toasts");
  if (!region) {
    region = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  const note = h("div", { class: `toast ${kind}` }, text);
  region.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}

/** A labelled field: the label, the control, an explanation, and a slot for errors. */
export function field(label, control, { hint, name } = {}) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field", "data-field": name || control.name || null },
    h("label", { for: id }, label), control, hintEl);
}

/** Clear, then show the API's `fields` next to the [data-field] they name (longest prefix),
 *  the rest (and the message) at the top of the form. */
export function fieldErrors(form, err, { map = {}, elsewhere = () => false, elsewhereNote = "" } = {}) {
  clearErrors(form);
  const slots = [...form.querySelectorAll("[data-field]")];
  const loose = [];
  let shown = false;
  for (const [key, message] of Object.entries((err && err.fields) || {})) {
    if (elsewhere(key)) {
      shown = true;
      continue;
    }
    const target = map[key] || key;
    let best = null;
    for (const slot of slots) {
      const name = slot.dataset.field;
      if ((target === name || target.startsWith(`${name}.`) || target.startsWith(`${name}[`)) && (!best || name.length > best.dataset.field.length)) best = slot;
    }
    if (!best) {
      loose.push(`${key}: ${message}`);
      continue;
    }
    best.classList.add("invalid");
    const control = best.querySelector("input, select, textarea");
    if (control) control.setAttribute("aria-invalid", "true");
    best.append(h("p", { class: "field-error", role: "alert" }, target === best.dataset.field ? message : `${key}: ${message}`));
  }
  const summary = h("div", { class: "form-errors", role: "alert" },
    h("strong", {}, (err && err.message) || "The form has errors"),
    loose.length ? h("ul", {}, loose.map((m) => h("li", {}, m))) : null,
    shown && elsewhereNote ? h("p", {}, elsewhereNote) : null);
  form.prepend(summary);
  const first = form.querySelector(".invalid input, .invalid select, .invalid textarea");
  (first || summary).focus?.();
}

export function clearErrors(form) {
  form.querySelectorAll(".field-error, .form-errors").forEach((el) => el.remove());
  form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
}

/** A button that asks once more before acting ("Delete" → "Really delete?"). */
export function confirmButton(label, confirmLabel, action, props = {}) {
  let armed = false;
  let timer = null;
  const button = h("button", { type: "button", class: "danger", ...props }, label);
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = confirmLabel;
      button.classList.add("armed");
      timer = setTimeout(() => {
        armed = false;
        button.textContent = label;
        button.classList.remove("armed");
      }, 4000);
      return;
    }
    clearTimeout(timer);
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
      armed = false;
      button.textContent = label;
      button.classList.remove("armed");
    }
  });
  return button;
}

/** Offer a Blob as a download (the token stays in the header, never in a URL). */
export function downloadBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export function pageHeader(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", {}, title), h("div", { class: "actions" }, actions));
}

export const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
export const DAY_NAMES = { mon: "Monday", tue: "Tuesday", wed: "Wednesday", thu: "Thursday", fri: "Friday", sat: "Saturday", sun: "Sunday" };

/** Weekly windows ({"mon": ["07:00-10:30"]}) as one text input per day. */
export function weeklyEditor(name, value, placeholder = "closed") {
  const inputs = {};
  const grid = h("div", { class: "weekly" });
  for (const day of WEEKDAYS) {
    const input = h("input", { name: `${name}.${day}`, placeholder, value: ((value || {})[day] || []).join(", "), inputmode: "text", autocomplete: "off" });
    inputs[day] = input;
    grid.append(h("div", { class: "field", "data-field": `${name}.${day}` }, h("label", { for: (input.id = `${name}-${day}`) }, DAY_NAMES[day]), input));
  }
  return {
    element: grid,
    read() {
      const out = {};
      for (const day of WEEKDAYS) {
        const parts = inputs[day].value.split(/[,;\s]+/).map((s) => s.trim()).filter(Boolean);
        if (parts.length) out[day] = parts;
      }
      return Object.keys(out).length ? out : null;
    },
  };
}

export function fmtDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
