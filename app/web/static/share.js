// Share links: the dialog of a chat (create the link, copy it, move its snapshot forward,
// revoke it) and the public read-only page /s/{token}, which anyone with the link can open and a
// signed-in reader can continue into a chat of their own. Loaded when first needed.

import * as api from "./api.js";
import { h, clear, uid, copyButton, formatTime } from "./dom.js";
import { navigate, notify } from "./app.js";
import { renderMarkdown } from "./markdown.js";
import { citation } from "./knowledge.js";
import { toast } from "./ui.js";

/** The page address of a token, on this client's own origin. */
const pageUrl = (token) => new URL(`/s/${token}`, location.origin).href;

/** The share dialog of a chat. */
export async function shareDialog(chat) {
  const titleId = uid("dlg");
  const body = h("div", { class: "share-body" }, h("p", {}, "Loading…"));
  const dialog = h("dialog", { class: "dialog share-dialog", "aria-labelledby": titleId },
    h("form", { method: "dialog" },
      h("h2", { id: titleId }, "Share this chat"), body,
      h("div", { class: "dialog-actions" }, h("button", { type: "submit", class: "primary" }, "Close"))));
  const opener = document.activeElement;
  dialog.addEventListener("close", () => { dialog.remove(); opener?.focus?.(); });
  document.body.append(dialog);
  dialog.showModal();

  const act = async (fn) => {
    try {
      await fn();
    } catch (error) {
      notify(error.message, "error");
    }
  };

  function draw(share) {
    clear(body);
    if (!share) {
      body.append(
        h("p", {}, "Anyone with the link can read this chat as it is now, without an account. Later messages stay private until you share again."),
        h("button", { type: "button", class: "primary", on: { click: () => act(async () => draw(await api.post(`/api/chats/${chat.id}/share`))) } }, "Create link"));
      return;
    }
    const url = pageUrl(share.token);
    const input = h("input", { type: "text", readonly: true, value: url, id: uid("link"), class: "share-link" });
    body.append(
      h("label", { for: input.id }, "Link"),
      h("div", { class: "share-row" }, input, copyButton(() => url, "Copy link", "Copy link")),
      h("p", { class: "hint" }, `Shows the chat up to ${formatTime(share.updated_at)}.`),
      h("div", { class: "share-row" },
        h("button", { type: "button", on: { click: () => act(async () => { draw(await api.post(`/api/chats/${chat.id}/share`)); toast("The link now shows the newest messages."); }) } }, "Update to the newest messages"),
        h("button", { type: "button", class: "danger", on: { click: () => act(async () => { await api.del(`/api/chats/${chat.id}/share`); draw(null); toast("The link no longer works."); }) } }, "Revoke link")));
  }

  await act(async () => {
    const shares = await api.get("/api/shares");
    draw(shares.find((s) => s.chat_id === chat.id) || null);
  });
}

/** The public page of a shared chat: read-only, Markdown made safe as everywhere else. */
export async function sharedPage(main, [token]) {
  const heading = h("h1", {}, "Shared chat");
  main.append(h("section", { class: "shared-page" }, heading, h("p", { class: "loading" }, "Loading…")));
  let shared;
  try {
    const response = await api.send(`/api/shared/${encodeURIComponent(token)}`, { auth: false });
    shared = await response.json();
  } catch (error) {
    clear(main).append(h("section", { class: "shared-page" }, h("h1", {}, "Link not found"),
      h("p", {}, error.status === 404 ? "This link does not exist or was revoked by its owner." : error.message)));
    return;
  }
  heading.textContent = shared.title || "Shared chat";
  const thread = h("ol", { class: "thread shared-thread", "aria-label": "Messages" });
  for (const message of shared.messages) {
    const who = message.role === "user" ? "User" : message.role === "assistant" ? (message.model ? `Assistant · ${message.model}` : "Assistant") : "System";
    const content = h("div", { class: "content" });
    if (message.role === "assistant") content.append(renderMarkdown(message.content));
    else content.append(h("p", { class: "plain" }, message.content));
    const li = h("li", { class: `message ${message.role}` }, h("div", { class: "meta" }, h("span", { class: "who" }, who)), content);
    if (message.images.length) {
      li.append(h("ul", { class: "chips" }, message.images.map((image) =>
        h("li", { class: "chip" }, h("img", { src: image.url, alt: image.name, class: "thumb" })))));
    }
    if (message.sources.length) {
      li.append(h("details", { class: "sources" }, h("summary", {}, `Sources (${message.sources.length})`),
        h("ul", {}, message.sources.map(citation))));
    }
    thread.append(li);
  }
  if (!shared.messages.length) thread.append(h("li", { class: "empty" }, "This chat has no messages yet."));
  const actions = h("div", { class: "shared-actions" });
  if (api.currentUser()) {
    actions.append(h("button", { type: "button", class: "primary", on: { click: async () => {
      try {
        const chat = await api.post(`/api/shared/${encodeURIComponent(token)}/continue`);
        await navigate(`/chats/${chat.id}`);
        toast("A copy of the chat is yours to continue.");
      } catch (error) {
        notify(error.message, "error");
      }
    } } }, "Continue this chat"));
  } else {
    actions.append(h("a", { href: `/signin?next=${encodeURIComponent(location.pathname)}`, class: "button" }, "Sign in to continue this chat"));
  }
  const page = main.querySelector(".shared-page");
  page.querySelector(".loading").remove();
  page.append(h("p", { class: "hint" }, `Shared ${formatTime(shared.shared_at)} · read-only`), thread, actions);
}
