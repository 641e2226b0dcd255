// Shared pieces of interface: modal dialogs (<dialog>, in place of confirm() and prompt()), a
// small menu button, and toasts with an action (Undo).

import { h, clear } from "./dom.js";

/** Focus back to what opened a dialog, unless something else took it meanwhile. */
function restoreFocus(opener) {
  const now = document.activeElement;
  if (!now || now === document.body || !now.isConnected) opener?.focus?.();
}

/** A modal dialog asking to confirm; resolves true when confirmed. Esc or Cancel: false. */
export function confirmDialog({ title, body, confirm = "OK", danger = false }) {
  return new Promise((resolve) => {
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const ok = h("button", { type: "submit", value: "ok", class: danger ? "danger solid" : "primary" }, confirm);
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId },
      h("form", { method: "dialog" },
        h("h2", { id: titleId }, title),
        body ? h("p", {}, body) : null,
        h("div", { class: "dialog-actions" },
          h("button", { type: "submit", value: "cancel" }, "Cancel"), ok)));
    const opener = document.activeElement;
    dialog.addEventListener("close", () => {
      dialog.remove();
      restoreFocus(opener);
      resolve(dialog.returnValue === "ok");
    });
    document.body.append(dialog);
    dialog.showModal();
    ok.focus();
  });
}

/** A modal dialog with any content (the shortcuts help); closed by Esc or its Close button. */
export function infoDialog(title, ...content) {
  const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId },
    h("form", { method: "dialog" }, h("h2", { id: titleId }, title), ...content,
      h("div", { class: "dialog-actions" }, h("button", { type: "submit", class: "primary" }, "Close"))));
  const opener = document.activeElement;
  dialog.addEventListener("close", () => { dialog.remove(); restoreFocus(opener); });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

let openMenu = null;
function closeOpenMenu(focusButton = false) {
  if (!openMenu) return;
  const { list, button } = openMenu;
  list.hidden = true;
  button.setAttribute("aria-expanded", "false");
  openMenu = null;
  if (focusButton) button.focus();
}
document.addEventListener("click", (e) => {
  if (openMenu && !openMenu.wrap.contains(e.target)) closeOpenMenu();
});

/** A "…" button opening a menu of actions: items are [label, fn] (null entries skipped). */
export function menuButton(label, items, text = "⋯") {
  const list = h("div", { role: "menu", class: "menu", hidden: true, "aria-label": label });
  const button = h("button", { type: "button", class: "small menu-button", "aria-haspopup": "menu", "aria-expanded": "false", "aria-label": label }, text);
  const wrap = h("div", { class: "menu-wrap" }, button, list);
  const entries = () => [...list.querySelectorAll("[role=menuitem]")];
  button.addEventListener("click", (e) => {
    e.stopPropagation();
    if (openMenu?.list === list) return closeOpenMenu();
    closeOpenMenu();
    clear(list);
    for (const item of (typeof items === "function" ? items() : items)) {
      if (!item) continue;
      const [name, fn, danger] = item;
      list.append(h("button", { type: "button", role: "menuitem", class: danger ? "danger" : null, tabindex: "-1",
        on: { click: () => { closeOpenMenu(); fn(); } } }, name));
    }
    list.hidden = false;
    button.setAttribute("aria-expanded", "true");
    openMenu = { list, button, wrap };
    entries()[0]?.focus();
  });
  list.addEventListener("keydown", (e) => {
    const all = entries();
    const at = all.indexOf(document.activeElement);
    if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); closeOpenMenu(true); }
    else if (e.key === "ArrowDown") { e.preventDefault(); all[(at + 1) % all.length]?.focus(); }
    else if (e.key === "ArrowUp") { e.preventDefault(); all[(at - 1 + all.length) % all.length]?.focus(); }
    else if (e.key === "Tab") closeOpenMenu();
  });
  return wrap;
}

const toasts = () => document.getElementById("toasts");

/** A short message at the bottom of the screen, with an optional action such as Undo. */
export function toast(message, { action, actionLabel = "Undo", timeout = 8000 } = {}) {
  const box = toasts();
  if (!box) return;
  const item = h("div", { class: "toast" }, h("span", {}, message));
  const close = () => item.remove();
  if (action) {
    item.append(h("button", { type: "button", class: "link", on: { click: async () => { close(); await action(); } } }, actionLabel));
  }
  item.append(h("button", { type: "button", class: "link", "aria-label": "Dismiss", on: { click: close } }, "×"));
  box.append(item);
  while (box.children.length > 3) box.firstChild.remove(); // the newest few only
  setTimeout(close, timeout);
}

/** A modal dialog asking for one line of text; resolves the text, or null when cancelled. */
export function textDialog({ title, label, value = "", confirm = "Save" }) {
  return new Promise((resolve) => {
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const input = h("input", { type: "text", id: `${titleId}-in`, name: "text", value, required: true, maxlength: 200 });
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId },
      h("form", { method: "dialog" },
        h("h2", { id: titleId }, title),
        h("div", { class: "field" }, h("label", { for: input.id }, label), input),
        h("div", { class: "dialog-actions" },
          h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
          h("button", { type: "submit", value: "ok", class: "primary" }, confirm))));
    const opener = document.activeElement;
    dialog.addEventListener("close", () => {
      const text = input.value.trim();
      dialog.remove();
      restoreFocus(opener);
      resolve(dialog.returnValue === "ok" && text ? text : null);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.select();
  });
}
