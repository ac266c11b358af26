// The offers screen: where the shopper is (pings), notifications, the inbox with its live
// feed, and the loyalty card for the wallets.

import { ApiError, call, store, stream } from "./api.js";
import * as pings from "./pings.js";
import * as push from "./push.js";
import { announce, errorText, h, setTitle, show, status, when } from "./ui.js";
import { appleButton, googleSlot } from "./wallet.js";

function signedOut(err) {
  if (err instanceof ApiError && err.status === 401) {
    window.dispatchEvent(new CustomEvent("gw:signed-out"));
    return true;
  }
  return false;
}

function couponCard(item, onDismiss) {
  const image = item.image_url && item.image_url.startsWith("https://")
    ? h("img", { src: item.image_url, alt: "", loading: "lazy", class: "offer-image" })
    : null;
  return h(
    "li",
    { class: "coupon", testid: "coupon", "data-id": item.delivery_id },
    image,
    h("h3", {}, item.title),
    h("p", {}, item.body),
    h("p", { class: "meta" }, `Valid until ${when(item.coupon.expires_at)}`, item.opened_at ? " · opened" : ""),
    h(
      "p",
      { class: "actions" },
      h("a", { class: "button primary", href: `#/coupon/${encodeURIComponent(item.delivery_id)}`, testid: "open" }, "Show coupon"),
      h("button", { type: "button", testid: "dismiss", onclick: () => onDismiss(item) }, "Dismiss"),
    ),
  );
}

function locationCard(onAnswer) {
  const message = status("location-status");
  const queued = h("p", { class: "note", testid: "pending" });
  const showQueue = ({ pending }) => {
    queued.textContent = pending ? `${pending} location${pending > 1 ? "s" : ""} waiting to be sent` : "";
  };
  showQueue({ pending: pings.pending().length });
  pings.onChange(showQueue);
  const fail = (err) => {
    if (signedOut(err)) return;
    message.textContent = err && err.code === 1
      ? "Location is blocked for this site: allow it in the browser's settings."
      : `Not sent yet: ${errorText(err)}`;
  };
  const done = (answers) => {
    message.textContent = navigator.onLine ? `Location sent at ${new Date().toLocaleTimeString()}` : "Kept until you are back online";
    onAnswer(answers);
  };
  const share = h("input", { type: "checkbox", id: "share", testid: "share-location", checked: pings.watching() });
  share.addEventListener("change", () => {
    if (share.checked) pings.watch(done, fail);
    else pings.stop();
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "loc-h" },
    h("h2", { id: "loc-h" }, "Offers near you"),
    h("p", {}, "Offers come when you are at one of the shops."),
    h(
      "p",
      { class: "actions" },
      h(
        "button",
        {
          type: "button",
          class: "primary",
          testid: "send-location",
          onclick: () => {
            message.textContent = "Finding where you are…";
            pings.sendNow().then(done, fail);
          },
        },
        "I am here: check for offers",
      ),
    ),
    h("p", { class: "check" }, share, h("label", { for: "share" }, "Keep checking while this page is open")),
    message,
    queued,
  );
}

function pushCard() {
  const message = status("push-status");
  const button = h("button", { type: "button", testid: "push-toggle" }, "Turn on notifications");
  const refresh = async () => {
    const now = await push.state().catch(() => "off");
    button.hidden = now === "unsupported" || now === "blocked";
    button.textContent = now === "on" ? "Turn off notifications" : "Turn on notifications";
    button.dataset.state = now;
    if (now === "unsupported") message.textContent = "This browser cannot show notifications from the web.";
    if (now === "blocked") message.textContent = "Notifications are blocked for this site in the browser's settings.";
  };
  button.addEventListener("click", async () => {
    message.textContent = "";
    try {
      if (button.dataset.state === "on") await push.disable();
      else await push.enable();
      message.textContent = button.dataset.state === "on" ? "Notifications are off." : "Notifications are on.";
    } catch (err) {
      if (!signedOut(err)) message.textContent = `Notifications could not be turned on: ${errorText(err)}`;
    }
    refresh();
  });
  refresh();
  return h(
    "section",
    { class: "card", "aria-labelledby": "push-h" },
    h("h2", { id: "push-h" }, "Notifications"),
    h("p", {}, "Get a coupon as a notification, even when this page is closed."),
    h("p", { class: "actions" }, button),
    message,
  );
}

function walletCard(onError) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "wallet-h" },
    h("h2", { id: "wallet-h" }, "Loyalty card"),
    h("p", {}, "Keep your card, points and tier in your phone's wallet."),
    h(
      "p",
      { class: "actions" },
      appleButton("/v1/passes/loyalty", "loyalty.pkpass", onError),
      googleSlot("/v1/passes/google/loyalty"),
    ),
  );
}

export function homeScreen() {
  setTitle("Your offers");
  const list = h("ul", { class: "coupons", testid: "inbox" });
  const empty = h("p", { class: "note", testid: "inbox-empty" }, "No offers yet. Visit one of the shops!");
  const feed = h("ul", { class: "feed", testid: "feed", "aria-label": "Just arrived" });
  const message = status("inbox-status");
  const items = new Map();
  // Each coupon is announced once, whichever brings it first: the feed or a ping's answer.
  const announced = new Set();
  const arrived = (item) => {
    if (announced.has(item.delivery_id)) return;
    announced.add(item.delivery_id);
    announce(`New offer: ${item.title}`);
  };

  const draw = () => {
    const sorted = [...items.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
    list.replaceChildren(...sorted.map((item) => couponCard(item, dismiss)));
    empty.hidden = sorted.length > 0;
  };
  const load = async (fresh = false) => {
    try {
      const page = await call("/v1/inbox?limit=50");
      items.clear();
      for (const item of page.items) {
        items.set(item.delivery_id, item);
        if (fresh) arrived(item);
        else announced.add(item.delivery_id);
      }
      draw();
    } catch (err) {
      if (!signedOut(err)) message.textContent = errorText(err);
    }
  };
  const dismiss = async (item) => {
    try {
      await call(`/v1/inbox/${encodeURIComponent(item.delivery_id)}/dismiss`, { method: "POST" });
      items.delete(item.delivery_id);
      draw();
      announce(`Dismissed: ${item.title}`);
    } catch (err) {
      if (!signedOut(err)) message.textContent = errorText(err);
    }
  };

  const live = new AbortController();
  const follow = async () => {
    while (!live.signal.aborted) {
      try {
        await stream("/v1/inbox/stream", (name, data) => {
          if (name !== "coupon") return;
          const item = JSON.parse(data);
          items.set(item.delivery_id, item);
          draw();
          feed.prepend(h("li", { testid: "feed-item", "data-id": item.delivery_id }, `New: ${item.title}`));
          arrived(item);
        }, live.signal);
      } catch (err) {
        if (live.signal.aborted || signedOut(err)) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 3000)); // reconnect
    }
  };

  show(
    locationCard((answers) => {
      if (answers.some((a) => a.offers && a.offers.length)) load(true);
    }),
    h(
      "section",
      { class: "card", "aria-labelledby": "inbox-h" },
      h("h2", { id: "inbox-h" }, "Your coupons"),
      feed,
      list,
      empty,
      message,
    ),
    pushCard(),
    walletCard((err) => (message.textContent = errorText(err))),
    h(
      "p",
      { class: "leave" },
      h(
        "button",
        {
          type: "button",
          class: "link",
          testid: "forget",
          onclick: async () => {
            pings.stop();
            await store.forget();
            window.location.hash = "#/";
            window.dispatchEvent(new HashChangeEvent("hashchange"));
          },
        },
        "Forget me on this device",
      ),
    ),
  );
  load();
  follow();
  return () => live.abort();
}
