// The chat list (search, pin, archive, trash with restore and delete forever) and a chat: its
// thread with branch navigation, streaming replies, stop, regenerate, edit, modes, the model
// picker and attachments. A reply still running after a reload is rejoined or polled.

import * as api from "./api.js";
import { h, clear, field, uid } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { readEvents } from "./sse.js";
import { navigate, notify } from "./app.js";
import { showError } from "./auth.js";
import { collections, collectionPicker, citation } from "./knowledge.js";

let modelsCache = null;
let modesCache = null;
export async function models() {
  modelsCache ||= api.get("/api/models").catch((e) => { modelsCache = null; throw e; });
  return modelsCache;
}
export async function modes() {
  modesCache ||= api.get("/api/modes").catch((e) => { modesCache = null; throw e; });
  return modesCache;
}

export function modelPicker(list, selected, { label = "Model", name = "model", allowDefault = true } = {}) {
  const select = h("select", { name, id: uid("model") });
  if (allowDefault) select.append(h("option", { value: "" }, "Default model"));
  for (const m of list) {
    const text = `${m.name}${m.built_in ? " (built-in echo)" : ""}${m.vision ? " · sees images" : ""}${m.default ? " · default" : ""}`;
    select.append(h("option", { value: m.name, selected: m.name === selected }, text));
  }
  return field(label, select);
}

// ---------------------------------------------------------------------------------- chat list

function chatList(activeId) {
  const state = { filter: "active", q: "", cursor: null };
  const list = h("ul", { class: "chat-list", "aria-label": "Chats" });
  const more = h("button", { type: "button", class: "link", hidden: true }, "Load more");
  const search = h("input", { type: "search", name: "q", id: "chat-search", placeholder: "Search chats", autocomplete: "off" });
  const filter = h(
    "select",
    { id: "chat-filter", name: "filter" },
    h("option", { value: "active" }, "Chats"),
    h("option", { value: "pinned" }, "Pinned"),
    h("option", { value: "archived" }, "Archived"),
    h("option", { value: "trashed" }, "Trash"),
  );
  const aside = h(
    "aside",
    { class: "sidebar", "aria-label": "Your chats" },
    h("a", { href: "/", class: "button primary new-chat" }, "New chat"),
    h("div", { class: "list-tools" },
      h("label", { for: search.id, class: "visually-hidden" }, "Search chats"), search,
      h("label", { for: filter.id, class: "visually-hidden" }, "Show"), filter),
    list,
    more,
  );

  async function load(append = false) {
    const params = { limit: 30, q: state.q, cursor: append ? state.cursor : null };
    if (state.filter === "pinned") params.pinned = "true";
    if (state.filter === "archived") params.archived = "true";
    if (state.filter === "trashed") params.trashed = "true";
    let page;
    try {
      page = await api.get(`/api/chats${api.query(params)}`);
    } catch (error) {
      notify(error.message, "error");
      return;
    }
    if (!append) clear(list);
    if (state.filter === "archived") page.items = page.items.filter((c) => c.archived);
    for (const chat of page.items) list.append(item(chat));
    if (!list.children.length) list.append(h("li", { class: "empty" }, state.filter === "trashed" ? "The trash is empty." : "No chats yet."));
    state.cursor = page.next_cursor;
    more.hidden = !page.next_cursor;
  }

  async function act(fn, message) {
    try {
      await fn();
      if (message) notify(message);
    } catch (error) {
      notify(error.message, "error");
    }
    await load();
  }

  function item(chat) {
    const title = chat.title || "Untitled chat";
    const actions = h("div", { class: "item-actions" });
    const button = (text, label, fn) => h("button", { type: "button", class: "small", "aria-label": `${label}: ${title}`, on: { click: fn } }, text);
    if (chat.deleted_at) {
      actions.append(
        button("Restore", "Restore", () => act(() => api.post(`/api/chats/${chat.id}/restore`), `Restored “${title}”.`)),
        button("Delete forever", "Delete forever", () => {
          if (confirm(`Delete “${title}” forever? This cannot be undone.`)) {
            act(() => api.del(`/api/chats/${chat.id}?permanent=true`), `Deleted “${title}” forever.`);
          }
        }),
      );
    } else {
      actions.append(
        button(chat.pinned ? "Unpin" : "Pin", chat.pinned ? "Unpin" : "Pin", () => act(() => api.patch(`/api/chats/${chat.id}`, { pinned: !chat.pinned }))),
        button(chat.archived ? "Unarchive" : "Archive", chat.archived ? "Unarchive" : "Archive", () => act(() => api.patch(`/api/chats/${chat.id}`, { archived: !chat.archived }))),
        button("Trash", "Move to trash", async () => {
          await act(() => api.del(`/api/chats/${chat.id}`), `Moved “${title}” to the trash.`);
          if (chat.id === activeId) navigate("/", { keepNotice: true });
        }),
      );
    }
    const label = chat.deleted_at
      ? h("span", { class: "chat-title" }, title)
      : h("a", { href: `/chats/${chat.id}`, class: "chat-title", "aria-current": chat.id === activeId ? "page" : null }, title);
    return h("li", { class: chat.pinned ? "pinned" : null, dataset: { chatId: chat.id } },
      chat.pinned ? h("span", { class: "pin", title: "Pinned", "aria-label": "Pinned" }, "📌") : null,
      label,
      actions);
  }

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = search.value.trim(); load(); }, 250);
  });
  filter.addEventListener("change", () => { state.filter = filter.value; load(); });
  more.addEventListener("click", () => load(true));
  load();
  return { element: aside, reload: () => load() };
}

// ------------------------------------------------------------------------------- mode params

/** Form controls for a mode's parameters, built from its JSON Schema. */
function modeFields(mode) {
  const box = h("div", { class: "mode-params" });
  const schema = mode?.params_schema || {};
  const defs = schema.$defs || {};
  const required = new Set(schema.required || []);
  for (const [name, raw] of Object.entries(schema.properties || {})) {
    let prop = raw.$ref ? defs[raw.$ref.split("/").pop()] || raw : raw;
    if (prop.anyOf) prop = { ...prop, ...prop.anyOf.find((p) => p.type !== "null") };
    if (prop.$ref) prop = { ...defs[prop.$ref.split("/").pop()], ...raw };
    const label = raw.title || prop.title || name;
    let control;
    if (prop.enum) {
      control = h("select", { name });
      if (!required.has(name) && raw.default === undefined) control.append(h("option", { value: "" }, "—"));
      for (const value of prop.enum) control.append(h("option", { value, selected: value === raw.default }, value));
    } else if (prop.type === "integer" || prop.type === "number") {
      control = h("input", { type: "number", name, min: prop.minimum, max: prop.maximum, value: raw.default ?? "" });
    } else if (prop.type === "array") {
      control = h("textarea", { name, rows: 3, dataset: { list: "1" } });
    } else {
      control = h("input", { type: "text", name, required: required.has(name), maxlength: prop.maxLength });
    }
    control.dataset.kind = prop.type || "string";
    box.append(field(label, control, prop.type === "array" ? "One per line." : raw.description));
  }
  return box;
}

function readModeParams(box) {
  const params = {};
  for (const control of box.querySelectorAll("[name]")) {
    const value = control.value.trim();
    if (!value) continue;
    if (control.dataset.list) params[control.name] = value.split("\n").map((s) => s.trim()).filter(Boolean);
    else if (control.dataset.kind === "integer") params[control.name] = parseInt(value, 10);
    else if (control.dataset.kind === "number") params[control.name] = Number(value);
    else params[control.name] = value;
  }
  return params;
}

// ------------------------------------------------------------------------------- attachments

/** A file input that uploads at once; `onBusy(true)` while uploads run (sending waits for them). */
export function attachmentPicker(onBusy = () => {}, label = "Attach") {
  const files = [];
  const chips = h("ul", { class: "chips", "aria-label": "Attached files" });
  const inputEl = h("input", { type: "file", id: uid("file"), multiple: true, class: "visually-hidden" });
  const button = h("label", { for: inputEl.id, class: "button small" }, label);
  inputEl.addEventListener("change", async () => {
    onBusy(true);
    for (const file of inputEl.files) {
      const chip = h("li", { class: "chip" }, `Uploading ${file.name}…`);
      chips.append(chip);
      const body = new FormData();
      body.append("file", file);
      try {
        const saved = await api.post("/api/files", body);
        files.push(saved);
        clear(chip).append(
          saved.kind === "image" ? h("img", { src: URL.createObjectURL(file), alt: "", class: "thumb" }) : null,
          saved.name,
          h("button", { type: "button", class: "link", "aria-label": `Remove ${saved.name}`, on: { click: () => { files.splice(files.indexOf(saved), 1); chip.remove(); } } }, "×"),
        );
      } catch (error) {
        chip.remove();
        notify(`${file.name}: ${error.message}`, "error");
      }
    }
    inputEl.value = "";
    onBusy(false);
  });
  return {
    elements: [inputEl, button, chips],
    ids: () => files.map((f) => f.id),
    reset: () => { files.length = 0; clear(chips); },
  };
}

// ------------------------------------------------------------------------------------ pages

export async function homePage(main) {
  const view = new ChatView(main, null);
  await view.mount();
  return () => view.unmount();
}

export async function chatPage(main, [chatId]) {
  const view = new ChatView(main, chatId);
  await view.mount();
  return () => view.unmount();
}

const REJOIN_KEY = "parley:reply"; // sessionStorage: the reply being streamed in this tab

class ChatView {
  constructor(main, chatId) {
    this.main = main;
    this.chatId = chatId;
    this.chat = null;
    this.messages = [];
    this.streaming = false;
    this.controllers = new Set();
    this.gone = false;
  }

  async mount() {
    this.sidebar = chatList(this.chatId);
    this.thread = h("ol", { class: "thread", "aria-label": "Messages" });
    this.heading = h("h1", {}, this.chatId ? "Chat" : "New chat");
    this.tools = h("div", { class: "chat-tools" });
    this.settings = h("div", { class: "new-chat-settings" });
    this.composer = this.buildComposer();
    this.pane = h("section", { class: "chat-pane", "aria-labelledby": uid() },
      h("div", { class: "chat-head" }, this.heading, this.tools),
      this.settings, this.thread, this.composer);
    this.heading.id = this.pane.getAttribute("aria-labelledby");
    this.main.append(h("div", { class: "chat-layout" }, this.sidebar.element, this.pane));
    // Usable once the models, modes and thread are known.
    this.input.disabled = true;
    const [modelList, modeList, collectionList] = await Promise.all([
      models().catch(() => []), modes().catch(() => []), collections().catch(() => []),
    ]);
    this.modelList = modelList;
    this.modeList = modeList;
    this.collectionList = collectionList;
    if (this.chatId) await this.loadChat();
    else this.buildNewChatSettings();
    this.input.disabled = false;
    if (!this.chatId) this.input.focus();
  }

  unmount() {
    this.gone = true;
    for (const c of this.controllers) c.abort();
    clearTimeout(this.pollTimer);
  }

  buildNewChatSettings() {
    const modeSelect = h("select", { name: "mode", id: uid("mode") });
    for (const m of this.modeList) modeSelect.append(h("option", { value: m.name }, m.title));
    const params = h("div");
    const showParams = () => {
      const mode = this.modeList.find((m) => m.name === modeSelect.value);
      clear(params).append(mode ? h("p", { class: "hint" }, mode.description) : null, modeFields(mode));
    };
    modeSelect.addEventListener("change", showParams);
    this.modePicker = { select: modeSelect, params };
    this.modelSelect = modelPicker(this.modelList, api.currentUser()?.preferences?.default_model);
    this.collectionBox = collectionPicker(this.collectionList);
    clear(this.settings).append(
      h("div", { class: "row" }, field("Mode", modeSelect), this.modelSelect),
      this.collectionBox,
      params,
    );
    showParams();
  }

  async loadChat(leafId) {
    try {
      this.chat = await api.get(`/api/chats/${this.chatId}`);
      const page = await api.get(`/api/chats/${this.chatId}/messages${api.query({ limit: 100, leaf_id: leafId })}`);
      this.messages = page.items;
    } catch (error) {
      if (error.status === 404) {
        clear(this.pane).append(h("h1", {}, "Chat not found"), h("p", {}, h("a", { href: "/" }, "Back to your chats")));
        return;
      }
      notify(error.message, "error");
      return;
    }
    if (this.gone) return;
    this.heading.textContent = this.chat.title || "Untitled chat";
    this.renderTools();
    this.renderThread();
    const last = this.messages[this.messages.length - 1];
    if (last?.role === "assistant" && last.status === "streaming" && !this.streaming) this.rejoin(last);
  }

  renderTools() {
    const chat = this.chat;
    this.modelSelect = modelPicker(this.modelList, chat.model);
    this.modelSelect.querySelector("select").addEventListener("change", async (e) => {
      try {
        this.chat = await api.patch(`/api/chats/${chat.id}`, { model: e.target.value || null });
      } catch (error) {
        notify(error.message, "error");
      }
    });
    const mode = this.modeList.find((m) => m.name === chat.mode);
    const picker = collectionPicker(this.collectionList, chat.collection_ids || [], async (ids) => {
      try {
        this.chat = await api.patch(`/api/chats/${chat.id}`, { collection_ids: ids });
      } catch (error) {
        notify(error.message, "error");
      }
    });
    clear(this.tools).append(
      h("span", { class: "badge" }, mode ? mode.title : chat.mode),
      this.modelSelect,
      picker,
      h("button", { type: "button", class: "small", on: { click: () => this.rename() } }, "Rename"),
      h("button", { type: "button", class: "small", on: { click: () => this.summarize() } }, "Summarize"),
      h("a", { class: "button small", href: `/api/chats/${chat.id}/export?format=markdown`, download: "" }, "Export"),
    );
  }

  async rename() {
    const title = prompt("New title", this.chat.title || "");
    if (title === null || !title.trim()) return;
    try {
      this.chat = await api.patch(`/api/chats/${this.chatId}`, { title: title.trim() });
      this.heading.textContent = this.chat.title;
      this.sidebar.reload();
    } catch (error) {
      notify(error.message, "error");
    }
  }

  async summarize() {
    this.pane.querySelector(".summary")?.remove();
    const heading = h("h2", { id: uid("summary") }, "Summary");
    const box = h("section", { class: "summary", "aria-live": "polite", "aria-labelledby": heading.id }, heading, h("p", {}, "Summarizing…"));
    this.thread.after(box);
    try {
      const result = await api.post(`/api/chats/${this.chatId}/summarize`, {});
      clear(box).append(heading, renderMarkdown(result.summary));
    } catch (error) {
      box.remove();
      notify(error.message, "error");
    }
  }

  renderThread() {
    clear(this.thread);
    this.messages.forEach((m, i) => this.thread.append(this.renderMessage(m, i === this.messages.length - 1)));
  }

  renderMessage(message, isLast) {
    const li = h("li", { class: `message ${message.role} status-${message.status}`, dataset: { messageId: message.id } });
    const who = message.role === "user" ? "You" : message.role === "assistant" ? (message.model ? `Assistant · ${message.model}` : "Assistant") : "System";
    const body = h("div", { class: "content" });
    if (message.role === "assistant") body.append(renderMarkdown(message.content));
    else body.append(h("p", { class: "plain" }, message.content));
    li.append(h("div", { class: "meta" }, h("span", { class: "who" }, who), this.branchNav(message)), body);
    if (message.sources?.length) li.append(citations(message.sources));
    if (message.attachments?.length) {
      li.append(h("ul", { class: "chips" }, message.attachments.map((a) => h("li", { class: "chip" },
        a.kind === "image" ? h("img", { src: `/api/files/${a.id}/content`, alt: a.name, class: "thumb" }) : null,
        h("a", { href: `/api/files/${a.id}/content`, download: a.name }, a.name)))));
    }
    const status = {
      cancelled: "Stopped.",
      failed: message.error_code === "content_blocked"
        ? "This reply was blocked by the content policy."
        : `Failed: ${message.error_message || message.error_code || "the reply did not finish"}.`,
      interrupted: "Interrupted: the server stopped while writing this reply.",
      streaming: "Writing…",
    }[message.status];
    if (status) li.append(h("p", { class: "status" }, status));
    const actions = h("div", { class: "message-actions" });
    if (message.role === "user" && !this.streaming) {
      actions.append(h("button", { type: "button", class: "small", on: { click: () => this.edit(li, message) } }, "Edit"));
    }
    if (message.role === "assistant" && isLast && message.status !== "streaming" && !this.streaming) {
      actions.append(h("button", { type: "button", class: "small", on: { click: () => this.regenerate(message) } }, "Regenerate"));
    }
    if (actions.children.length) li.append(actions);
    return li;
  }

  branchNav(message) {
    const ids = message.sibling_ids || [];
    if (ids.length < 2) return null;
    const index = message.sibling_index ?? ids.indexOf(message.id);
    const go = (to) => () => this.loadChat(ids[to]);
    return h("span", { class: "branches", role: "group", "aria-label": "Versions" },
      h("button", { type: "button", class: "small", "aria-label": "Previous version", disabled: index === 0 || this.streaming, on: { click: go(index - 1) } }, "‹"),
      h("span", { class: "branch-count" }, `${index + 1} / ${ids.length}`),
      h("button", { type: "button", class: "small", "aria-label": "Next version", disabled: index === ids.length - 1 || this.streaming, on: { click: go(index + 1) } }, "›"));
  }

  buildComposer() {
    const text = h("textarea", { name: "content", id: "composer-input", rows: 3, required: true, placeholder: "Write a message… (Enter sends, Shift+Enter for a new line)" });
    this.sendButton = h("button", { type: "submit", class: "primary" }, "Send");
    this.attachments = attachmentPicker((busy) => { this.sendButton.disabled = busy; });
    this.stopButton = h("button", { type: "button", class: "danger", hidden: true, on: { click: () => this.stop() } }, "Stop");
    const form = h("form", { class: "composer" },
      h("label", { for: text.id, class: "visually-hidden" }, "Message"),
      text,
      h("div", { class: "composer-actions" }, ...this.attachments.elements, this.stopButton, this.sendButton));
    text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const content = text.value.trim();
      if (!content || this.streaming || this.sendButton.disabled) return;
      this.send(content, form).then((ok) => { if (ok) { text.value = ""; this.attachments.reset(); } });
    });
    this.input = text;
    return form;
  }

  setStreaming(on) {
    this.streaming = on;
    this.sendButton.hidden = on;
    this.stopButton.hidden = !on;
    this.pane.setAttribute("aria-busy", on ? "true" : "false");
    if (!on) this.input.focus();
  }

  async send(content, form) {
    const attachments = this.attachments.ids();
    const model = this.modelSelect?.querySelector("select").value || undefined;
    let path = `/api/chats/${this.chatId}/messages`;
    let body = { content, attachments, model };
    if (!this.chatId) {
      path = "/api/chats/start";
      const mode = this.modePicker.select.value;
      body = { content, attachments, model, mode, mode_params: readModeParams(this.modePicker.params) };
      const picked = this.collectionBox?.picked() || [];
      if (picked.length) body.collection_ids = picked;
    }
    this.thread.append(this.renderMessage({ id: "pending", role: "user", content, status: "complete", attachments: [] }, false));
    return this.stream(path, body, form);
  }

  async regenerate(message) {
    const at = this.messages.indexOf(message);
    this.messages = this.messages.slice(0, at);
    this.renderThread();
    return this.stream(`/api/chats/${this.chatId}/messages/${message.id}/regenerate`, {});
  }

  edit(li, message) {
    const text = h("textarea", { name: "content", rows: 3, id: uid("edit"), value: message.content });
    const form = h("form", { class: "edit" },
      h("label", { for: text.id, class: "visually-hidden" }, "Edited message"), text,
      h("div", { class: "composer-actions" },
        h("button", { type: "button", on: { click: () => this.renderThread() } }, "Cancel"),
        h("button", { type: "submit", class: "primary" }, "Save and send")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const content = text.value.trim();
      if (!content) return;
      const at = this.messages.indexOf(message);
      this.messages = this.messages.slice(0, at);
      this.renderThread();
      this.thread.append(this.renderMessage({ id: "pending", role: "user", content, status: "complete", attachments: [] }, false));
      this.stream(`/api/chats/${this.chatId}/messages/${message.id}`, { content }, form, "PATCH");
    });
    li.querySelector(".content").replaceWith(form);
    li.querySelector(".message-actions")?.remove();
    text.focus();
  }

  /** The reply bubble: text arrives in an aria-live region as plain text, Markdown at the end. */
  replyBubble() {
    const live = h("div", { class: "content streaming-text", "aria-live": "polite", "aria-atomic": "false" });
    const li = h("li", { class: "message assistant status-streaming" },
      h("div", { class: "meta" }, h("span", { class: "who" }, "Assistant")), live,
      h("p", { class: "status" }, "Writing…"));
    this.thread.append(li);
    li.scrollIntoView({ block: "end" });
    return { li, live };
  }

  async stream(path, body, form, method = "POST") {
    const controller = new AbortController();
    this.controllers.add(controller);
    this.setStreaming(true);
    let response;
    try {
      response = await api.openStream(path, body, { method, signal: controller.signal });
    } catch (error) {
      this.controllers.delete(controller);
      this.setStreaming(false);
      this.thread.querySelector('[data-message-id="pending"]')?.remove();
      if (form) showError(form, error);
      else notify(error.message, "error");
      return false;
    }
    const bubble = this.replyBubble();
    await this.consume(response.body, bubble, controller, { text: "" });
    return true;
  }

  /** Reads a reply's events into `bubble`; unknown events are ignored. */
  async consume(body, bubble, controller, progress) {
    let outcome = null;
    let assistantId = progress.id || null;
    let savedAt = 0;
    const save = (eventId) => {
      // The text with the id of its last event, for a rejoin after a reload; a few times a
      // second at most, so a long reply is not copied on every token.
      if (!assistantId || !this.chatId || !eventId || performance.now() - savedAt < 250) return;
      savedAt = performance.now();
      try {
        sessionStorage.setItem(REJOIN_KEY, JSON.stringify({ id: assistantId, chat: this.chatId, text: progress.text, eventId }));
      } catch {
        /* storage full or off: rejoining then starts from the saved partial */
      }
    };
    try {
      for await (const event of readEvents(body, controller.signal)) {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          continue;
        }
        switch (event.event) {
          case "start":
            assistantId = data.assistant_message_id;
            if (data.chat_id && !this.chatId) {
              this.chatId = data.chat_id;
              history.replaceState(null, "", `/chats/${data.chat_id}`);
              clear(this.settings);
              this.sidebar.reload();
            }
            bubble.li.dataset.messageId = assistantId;
            if (data.model) bubble.li.querySelector(".who").textContent = `Assistant · ${data.model}`;
            break;
          case "delta":
            if (typeof data.content === "string") {
              progress.text += data.content;
              bubble.live.append(document.createTextNode(data.content));
              save(event.id);
            }
            break;
          case "sources":
            bubble.li.append(citations(data));
            break;
          case "usage":
            bubble.usage = data;
            break;
          case "done":
            outcome = { ok: true, message: data };
            break;
          case "error":
            outcome = { ok: false, error: data };
            break;
          default:
            break; // an event this client does not know: ignored, as the contract says
        }
      }
    } catch (error) {
      if (!controller.signal.aborted) outcome ||= { ok: false, error: { code: "network", message: "The connection was lost." } };
    }
    this.controllers.delete(controller);
    // Kept when the stream broke off (a reload, the network): the next page may rejoin.
    if (outcome?.error?.code !== "network") sessionStorage.removeItem(REJOIN_KEY);
    if (this.gone) return;
    if (outcome && !outcome.ok) {
      const e = outcome.error;
      const blocked = e.code === "content_blocked";
      bubble.li.append(h("p", { class: blocked ? "blocked" : "status error", role: "alert" },
        blocked ? `This reply was blocked by the content policy: ${e.message || "it broke a rule."}` : `The reply failed: ${e.message || e.code}`));
    }
    this.setStreaming(false);
    if (this.chatId) {
      this.sidebar.reload();
      const streamed = bubble.li;
      // After a failure the reply may be gone (a failed first send deletes it): show the thread.
      await this.loadChat(outcome && !outcome.ok ? undefined : assistantId || undefined);
      if (this.gone) return;
      const stored = assistantId && this.thread.querySelector(`[data-message-id="${assistantId}"]`);
      if (!stored) {
        // Not stored (or not in this thread): keep what the stream showed.
        streamed.querySelector(".status:not(.error)")?.remove();
        streamed.classList.remove("status-streaming");
        this.thread.append(streamed);
      } else {
        // Keep what the stream showed that the stored thread does not carry.
        const kept = stored.querySelector(".sources") ? "[role=alert]" : ".sources, [role=alert]";
        for (const extra of streamed.querySelectorAll(kept)) stored.append(extra);
      }
    }
  }

  async stop() {
    if (!this.chatId) return;
    try {
      await api.post(`/api/chats/${this.chatId}/stop`);
    } catch (error) {
      notify(error.message, "error");
    }
  }

  /** After a reload mid-reply: show the saved partial, then rejoin the stream or poll. */
  async rejoin(message) {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(REJOIN_KEY) || "null");
    } catch {
      saved = null;
    }
    // With this tab's own copy (text and the id of its last event) the rejoin continues from
    // there; without it, the saved partial shows and the rejoin replays the reply from the start.
    const known = Boolean(saved && saved.id === message.id && saved.eventId);
    const progress = { id: message.id, text: known ? saved.text : message.content };
    const li = this.thread.querySelector(`[data-message-id="${message.id}"]`);
    const live = h("div", { class: "content streaming-text", "aria-live": "polite" }, progress.text);
    li.querySelector(".content").replaceWith(live);
    this.setStreaming(true);
    const controller = new AbortController();
    this.controllers.add(controller);
    const headers = { Accept: "text/event-stream" };
    if (known) headers["Last-Event-ID"] = saved.eventId;
    let response = null;
    try {
      response = await fetch(`/api/chats/${this.chatId}/messages/${message.id}/stream`, {
        headers, credentials: "same-origin", signal: controller.signal,
      });
    } catch {
      response = null;
    }
    if (response?.ok && (response.headers.get("content-type") || "").includes("text/event-stream")) {
      if (!known) {
        // No event id to resume from: the server replays from the start.
        progress.text = "";
        clear(live);
      }
      await this.consume(response.body, { li, live }, controller, progress);
      return;
    }
    this.controllers.delete(controller);
    // No rejoin endpoint (404/405), or the reply has ended: poll the stored message.
    this.poll(message.id, live);
  }

  poll(messageId, live) {
    const tick = async () => {
      if (this.gone) return;
      let page;
      try {
        page = await api.get(`/api/chats/${this.chatId}/messages?limit=100`);
      } catch {
        this.pollTimer = setTimeout(tick, 2000);
        return;
      }
      const message = page.items.find((m) => m.id === messageId);
      if (message && message.status === "streaming") {
        if (message.content !== live.textContent) live.textContent = message.content;
        this.pollTimer = setTimeout(tick, 1000);
        return;
      }
      sessionStorage.removeItem(REJOIN_KEY);
      this.setStreaming(false);
      await this.loadChat();
    };
    this.pollTimer = setTimeout(tick, 500);
  }
}

/** Citations under a reply (a `sources` event or a saved reply's `sources`). */
function citations(data) {
  const items = Array.isArray(data) ? data : data.sources || data.items || [];
  const list = h("ol", { class: "citations" });
  for (const s of items) if (s && typeof s === "object") list.append(citation(s));
  return h("section", { class: "sources", "aria-label": "Sources" }, h("h2", {}, "Sources"), list);
}
