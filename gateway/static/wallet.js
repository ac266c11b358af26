// Wallet buttons: "Add to Apple Wallet" downloads the .pkpass (the request needs the
// shopper's token, so it is fetched and handed over as a file); "Save to Google Wallet"
// is the gateway's save link, shown only when the program has Google Wallet set up.

import { call } from "./api.js";
import { h } from "./ui.js";

export function appleButton(path, filename, onError) {
  return h(
    "button",
    {
      type: "button",
      class: "wallet apple",
      testid: "apple-wallet",
      onclick: async () => {
        try {
          const blob = await call(path, { accept: "application/vnd.apple.pkpass" });
          const url = URL.createObjectURL(blob);
          const link = h("a", { href: url, download: filename });
          document.body.append(link);
          link.click();
          link.remove();
          setTimeout(() => URL.revokeObjectURL(url), 60_000);
        } catch (err) {
          onError(err);
        }
      },
    },
    "Add to Apple Wallet",
  );
}

/** A slot that becomes a "Save to Google Wallet" link if the gateway gives a save link. */
export function googleSlot(path) {
  const slot = h("span", { class: "google-slot" });
  call(path)
    .then(({ save_url: url }) => {
      if (!url || !url.startsWith("https://")) return;
      slot.append(
        h(
          "a",
          { class: "wallet google", href: url, target: "_blank", rel: "noopener", testid: "google-wallet" },
          "Save to Google Wallet",
        ),
      );
    })
    .catch(() => {}); // 409: not set up for this program; nothing to offer
  return slot;
}
