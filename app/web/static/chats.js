// The chat list (search, pin, archive, trash with restore and delete forever) and a chat: its
// thread with branch navigation, streaming replies, stop, regenerate, edit, modes, the model
// picker and attachments. A reply still running after a reload is rejoined or polled.

import * as api from "./api.js";
import { h, append, clear, field, uid, copyButton, dayGroup } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { readEvents } from "./sse.js";
import { navigate, notify } from "./app.js";
import { showError } from "./auth.js";
import { collections, collectionPicker, citation } from "./knowledge.js";
import { tools, toolPicker, toolSteps, liveTools } from "./tools.js";
import { confirmDialog, menuButton, toast, infoDialog } from "./ui.js";
import { projectFilters, tagChips, organiseItems } from "./projects.js";

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

/** The left sidebar: New chat, search, Chats / Pinned / Archived / Trash, chats grouped by day,
 * a "…" menu per chat (rename inline, pin, archive, trash with Undo; restore, delete forever). On
 * a narrow screen it is a drawer opened by the chat's "Chats" button. */
function chatList(view) {
  const state = { filter: "active", q: "", cursor: null };
  const list = h("div", { class: "chat-groups" });
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
  const close = h("button", { type: "button", class: "small drawer-close", "aria-label": "Close the chat list", on: { click: () => view.toggleDrawer(false) } }, "×");
  const organiser = projectFilters(() => load());
  const aside = h(
    "nav",
    { class: "sidebar", id: "chat-sidebar", "aria-label": "Your chats" },
    h("div", { class: "sidebar-head" }, h("a", { href: "/", class: "button primary new-chat" }, "New chat"), close),
    h("div", { class: "list-tools" },
      h("label", { for: search.id, class: "visually-hidden" }, "Search chats"), search,
      h("label", { for: filter.id, class: "visually-hidden" }, "Show"), filter),
    organiser.element,
    list,
    more,
    h("p", { class: "hint shortcuts-hint" }, "Press ? for keyboard shortcuts."),
  );
  let groups = new Map();

  function groupFor(name) {
    if (!groups.has(name)) {
      const id = uid("group");
      const ul = h("ul", { class: "chat-list", "aria-labelledby": id });
      list.append(h("section", { class: "chat-group" }, h("h2", { id }, name), ul));
      groups.set(name, ul);
    }
    return groups.get(name);
  }

  let loads = 0;
  async function load(append = false) {
    const ticket = ++loads;
    const params = { limit: 30, q: state.q, cursor: append ? state.cursor : null };
    if (state.filter === "pinned") params.pinned = "true";
    if (state.filter === "archived") params.archived = "true";
    if (state.filter === "trashed") params.trashed = "true";
    Object.assign(params, organiser.params());
    let page;
    try {
      page = await api.get(`/api/chats${api.query(params)}`);
    } catch (error) {
      notify(error.message, "error");
      return;
    }
    if (ticket !== loads) return; // a later load (a newer search, a refresh) wins
    if (!append) { clear(list); groups = new Map(); }
    if (state.filter === "archived") page.items = page.items.filter((c) => c.archived);
    for (const chat of page.items) {
      const group = chat.deleted_at ? "In the trash" : chat.pinned && state.filter !== "pinned" ? "Pinned" : dayGroup(chat.last_message_at);
      groupFor(group).append(item(chat));
    }
    if (!list.children.length) {
      const empty = state.q ? `No chats match “${state.q}”.`
        : { trashed: "The trash is empty.", pinned: "No pinned chats.", archived: "No archived chats." }[state.filter]
        || "No chats yet. Write a message to start one.";
      list.append(h("p", { class: "empty" }, empty));
    }
    state.cursor = page.next_cursor;
    more.hidden = !page.next_cursor;
  }

  async function act(fn, message) {
    try {
      await fn();
      if (message) toast(message);
    } catch (error) {
      notify(error.message, "error");
    }
    await load();
    organiser.refresh();
  }

  async function trash(chat, title) {
    try {
      await api.del(`/api/chats/${chat.id}`);
    } catch (error) {
      notify(error.message, "error");
      return;
    }
    if (chat.id === view.chatId) await navigate("/");
    else await load();
    toast(`Moved “${title}” to the trash.`, {
      action: async () => {
        try {
          await api.post(`/api/chats/${chat.id}/restore`);
          await navigate(`/chats/${chat.id}`);
          toast(`Restored “${title}”.`);
        } catch (error) {
          notify(error.message, "error");
        }
      },
    });
  }

  function renameInline(li, chat) {
    const input = h("input", { type: "text", value: chat.title || "", "aria-label": "Chat title", maxlength: 200, class: "rename" });
    const label = li.querySelector(".chat-title");
    label.replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (save && title && title !== chat.title) {
        await act(() => api.patch(`/api/chats/${chat.id}`, { title }));
        if (chat.id === view.chatId) view.setTitle(title);
      } else {
        input.replaceWith(label);
        label.focus?.();
      }
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); finish(true); }
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); finish(false); }
    });
    input.addEventListener("blur", () => finish(true));
  }

  function item(chat) {
    const title = chat.title || "Untitled chat";
    const li = h("li", { class: chat.pinned ? "pinned" : null, dataset: { chatId: chat.id } });
    let menu;
    if (chat.deleted_at) {
      menu = menuButton(`Actions for ${title}`, [
        ["Restore", () => act(() => api.post(`/api/chats/${chat.id}/restore`), `Restored “${title}”.`)],
        ["Delete forever", async () => {
          const sure = await confirmDialog({ title: "Delete forever?", body: `“${title}” and its messages will be deleted. This cannot be undone.`, confirm: "Delete forever", danger: true });
          if (sure) await act(() => api.del(`/api/chats/${chat.id}?permanent=true`), `Deleted “${title}” forever.`);
        }, true],
      ]);
    } else {
      menu = menuButton(`Actions for ${title}`, [
        ["Rename", () => renameInline(li, chat)],
        [chat.pinned ? "Unpin" : "Pin", () => act(() => api.patch(`/api/chats/${chat.id}`, { pinned: !chat.pinned }), chat.pinned ? `Unpinned “${title}”.` : `Pinned “${title}”.`)],
        [chat.archived ? "Unarchive" : "Archive", () => act(() => api.patch(`/api/chats/${chat.id}`, { archived: !chat.archived }), chat.archived ? `Unarchived “${title}”.` : `Archived “${title}”.`)],
        ...organiseItems(chat, (saved) => { if (saved.id === view.chatId) view.chat = saved; act(() => null); }),
        ["Move to trash", () => trash(chat, title), true],
      ]);
    }
    const label = chat.deleted_at
      ? h("span", { class: "chat-title" }, title)
      : h("a", { href: `/chats/${chat.id}`, class: "chat-title", "aria-current": chat.id === view.chatId ? "page" : null, on: { click: () => view.toggleDrawer(false) } }, title);
    append(li, [label, chat.pinned ? h("span", { class: "pin", title: "Pinned" }, h("span", { class: "visually-hidden" }, "Pinned")) : null, menu,
      tagChips(chat, (tag) => organiser.setTag(tag))]);
    return li;
  }

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = search.value.trim(); load(); }, 250);
  });
  filter.addEventListener("change", () => { state.filter = filter.value; load(); });
  more.addEventListener("click", () => load(true));
  load();
  return {
    element: aside,
    reload: () => { load(); organiser.refresh(); },
    projectId: () => organiser.projectId(),
    trash: (chat) => trash(chat, chat.title || "Untitled chat"),
    titleOf: (id) => list.querySelector(`[data-chat-id="${id}"] .chat-title`)?.textContent,
  };
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

/** A file input that uploads at once; `onBusy(true)` while uploads run (sending waits for them).
 * `add(files)` takes dropped or pasted files the same way. */
export function attachmentPicker(onBusy = () => {}, label = "Attach") {
  const files = [];
  const chips = h("ul", { class: "chips", "aria-label": "Attached files" });
  const inputEl = h("input", { type: "file", id: uid("file"), multiple: true, class: "visually-hidden" });
  const button = h("label", { for: inputEl.id, class: "button small" }, label);
  let running = 0;
  async function add(list) {
    const picked = [...list];
    if (!picked.length) return;
    running += 1;
    onBusy(true);
    for (const file of picked) {
      const name = file.name || "pasted image";
      const chip = h("li", { class: "chip" }, `Uploading ${name}…`);
      chips.append(chip);
      const body = new FormData();
      body.append("file", file, name);
      try {
        const saved = await api.post("/api/files", body);
        files.push(saved);
        clear(chip);
        append(chip, [
          saved.kind === "image" ? h("img", { src: URL.createObjectURL(file), alt: "", class: "thumb" }) : null,
          saved.name,
          h("button", { type: "button", class: "link", "aria-label": `Remove ${saved.name}`, on: { click: () => { files.splice(files.indexOf(saved), 1); chip.remove(); } } }, "×"),
        ]);
      } catch (error) {
        chip.remove();
        notify(`${name}: ${error.message}`, "error");
      }
    }
    running -= 1;
    if (!running) onBusy(false);
  }
  inputEl.addEventListener("change", async () => {
    await add(inputEl.files);
    inputEl.value = "";
  });
  return {
    elements: [inputEl, button, chips],
    add,
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

// Plain words for a failed reply, by its error code; never the upstream's or the socket's text.
const FAILURES = {
  upstream_unavailable: "The model server could not be reached.",
  upstream_timeout: "The model server took too long to answer.",
  upstream_error: "The model server answered with an error.",
  upstream_http_error: "The model server answered with an error.",
  context_length_exceeded: "This conversation is too long for the model.",
  quota_exceeded: "You have used today's token quota.",
  rate_limited: "Too many requests: wait a moment.",
  network: "The connection was lost.",
  interrupted: "The server stopped while writing this reply.",
};
export function failureText(code) {
  return FAILURES[code] || "The reply did not finish.";
}

const NEAR_BOTTOM = 48; // px: "at the end" for following a streaming reply

class ChatView {
  constructor(main, chatId) {
    this.main = main;
    this.chatId = chatId;
    this.chat = null;
    this.messages = [];
    this.streaming = false;
    this.controllers = new Set();
    this.gone = false;
    this.follow = true; // keep the thread at its end while a reply streams
    this.failure = null; // { id, requestId } of the reply that just failed
  }

  async mount() {
    this.sidebar = chatList(this);
    this.thread = h("ol", { class: "thread", "aria-label": "Messages" });
    this.scroller = h("div", { class: "thread-scroll", tabindex: "-1" }, this.thread);
    this.jump = h("button", { type: "button", class: "jump", hidden: true, on: { click: () => this.toBottom(true) } }, "↓ Jump to latest");
    this.heading = h("h1", { class: "chat-title-heading" }, this.chatId ? "Chat" : "New chat");
    this.tools = h("div", { class: "chat-tools" });
    this.settings = h("div", { class: "new-chat-settings" });
    this.composer = this.buildComposer();
    this.drawerButton = h("button", { type: "button", class: "small drawer-open", "aria-controls": "chat-sidebar", "aria-expanded": "false", on: { click: () => this.toggleDrawer() } }, "☰ Chats");
    this.pane = h("section", { class: "chat-pane", "aria-labelledby": uid() },
      h("div", { class: "chat-head" }, this.drawerButton, this.heading, this.tools),
      h("div", { class: "thread-box" }, this.scroller, this.jump),
      this.settings, this.composer);
    this.heading.id = this.pane.getAttribute("aria-labelledby");
    this.scrim = h("div", { class: "scrim", on: { click: () => this.toggleDrawer(false) } });
    this.layout = h("div", { class: "chat-layout" }, this.sidebar.element, this.scrim, this.pane);
    this.main.append(this.layout);
    document.body.classList.add("chat-mode");
    this.scroller.addEventListener("scroll", () => {
      const gap = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
      this.follow = gap < NEAR_BOTTOM;
      this.jump.hidden = this.follow;
      if (this.follow) this.autoTop = this.scroller.scrollTop;
    }, { passive: true });
    this.onKey = (e) => this.keydown(e);
    document.addEventListener("keydown", this.onKey);
    // Usable once the models, modes and thread are known.
    this.input.disabled = true;
    const [modelList, modeList, collectionList, toolList] = await Promise.all([
      models().catch(() => []), modes().catch(() => []), collections().catch(() => []), tools(),
    ]);
    this.modelList = modelList;
    this.modeList = modeList;
    this.collectionList = collectionList;
    this.toolList = toolList;
    if (this.chatId) await this.loadChat();
    else this.buildNewChatSettings();
    this.input.disabled = false;
    if (!this.chatId) this.input.focus();
  }

  unmount() {
    this.gone = true;
    for (const c of this.controllers) c.abort();
    clearTimeout(this.pollTimer);
    clearTimeout(this.titleTimer);
    document.removeEventListener("keydown", this.onKey);
    document.body.classList.remove("chat-mode");
  }

  toggleDrawer(open = !this.layout.classList.contains("drawer-open")) {
    this.layout.classList.toggle("drawer-open", open);
    this.drawerButton.setAttribute("aria-expanded", String(open));
    if (open) this.sidebar.element.querySelector("a, button, input")?.focus();
    else if (document.activeElement && this.sidebar.element.contains(document.activeElement)) this.drawerButton.focus();
  }

  keydown(e) {
    if (e.key !== "Escape" || e.defaultPrevented) return;
    if (document.querySelector("dialog[open]")) return;
    if (this.layout.classList.contains("drawer-open")) {
      this.toggleDrawer(false);
    } else if (this.editing) {
      this.renderThread();
      this.input.focus();
    } else if (this.streaming) {
      this.stop();
    } else {
      return;
    }
    e.preventDefault();
  }

  /** Scrolls the thread to its end (when following the reply, or `force`). */
  toBottom(force = false) {
    if (force) this.follow = true;
    // Moved up since the last scroll made here (read now: the scroll event may not have come
    // yet when the next token arrives): the reader wants to stay there.
    else if (this.scroller.scrollTop < (this.autoTop ?? 0) - 4) this.follow = false;
    if (!this.follow) {
      this.jump.hidden = false;
      return;
    }
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.autoTop = this.scroller.scrollTop;
    this.jump.hidden = true;
  }

  setTitle(title) {
    this.heading.textContent = title || "Untitled chat";
    document.title = `${this.heading.textContent} · Parley`;
  }

  buildNewChatSettings() {
    const modeSelect = h("select", { name: "mode", id: uid("mode") });
    for (const m of this.modeList) modeSelect.append(h("option", { value: m.name }, m.title));
    const params = h("div");
    const showParams = () => {
      const mode = this.modeList.find((m) => m.name === modeSelect.value);
      clear(params);
      append(params, [mode && mode.name !== "chat" ? h("p", { class: "hint" }, mode.description) : null, modeFields(mode)]);
    };
    modeSelect.addEventListener("change", showParams);
    this.modePicker = { select: modeSelect, params };
    this.modelSelect = modelPicker(this.modelList, api.currentUser()?.preferences?.default_model);
    this.collectionBox = collectionPicker(this.collectionList);
    this.toolBox = toolPicker(this.toolList);
    clear(this.settings);
    append(this.settings, [
      // Open on a wide screen; folded on a phone, where the thread needs the height.
      h("details", { class: "options", open: matchMedia("(min-width: 48.01rem)").matches }, h("summary", {}, this.toolList.length ? "Mode, model, knowledge and tools" : "Mode, model and knowledge"),
        h("div", { class: "row" }, field("Mode", modeSelect), this.modelSelect),
        this.collectionBox,
        this.toolBox,
        params),
    ]);
    clear(this.thread).append(h("li", { class: "welcome" },
      h("p", {}, `Hello${api.currentUser()?.display_name ? `, ${api.currentUser().display_name}` : ""}. What shall we talk about?`),
      h("p", { class: "hint" }, "Enter sends, Shift+Enter adds a line. Drop or paste files to attach them.")));
    showParams();
  }

  async loadChat(leafId, { toEnd = true } = {}) {
    try {
      this.chat = await api.get(`/api/chats/${this.chatId}`);
      const page = await api.get(`/api/chats/${this.chatId}/messages${api.query({ limit: 100, leaf_id: leafId })}`);
      this.messages = page.items;
    } catch (error) {
      if (error.status === 404) {
        clear(this.pane).append(h("h1", {}, "Chat not found"), h("p", {}, "It may have been deleted. ", h("a", { href: "/" }, "Start a new chat")));
        return;
      }
      notify(error.message, "error");
      return;
    }
    if (this.gone) return;
    this.setTitle(this.chat.title);
    this.renderTools();
    const top = this.scroller.scrollTop;
    this.renderThread();
    if (toEnd) this.toBottom(true);
    else this.scroller.scrollTop = this.autoTop = top; // where the reader was (scrolled up)
    const last = this.messages[this.messages.length - 1];
    if (last?.role === "assistant" && last.status === "streaming" && !this.streaming) this.rejoin(last);
  }

  renderTools() {
    const chat = this.chat;
    this.modelSelect = modelPicker(this.modelList, chat.model);
    this.modelSelect.classList.add("inline-field");
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
    const toolBox = toolPicker(this.toolList, chat.tool_ids || [], async (ids) => {
      try {
        this.chat = await api.patch(`/api/chats/${chat.id}`, { tool_ids: ids });
      } catch (error) {
        notify(error.message, "error");
      }
    }, { compact: true });
    const menu = menuButton("Chat actions", () => [
      ["Rename", () => this.rename()],
      ["Summarize", () => this.summarize()],
      ["Export as Markdown", () => { location.href = `/api/chats/${chat.id}/export?format=markdown`; }],
      ["Share…", () => import("./share.js").then((m) => m.shareDialog(this.chat))],
      ...organiseItems(this.chat, (saved) => { this.chat = saved; this.sidebar.reload(); }),
      [this.chat.pinned ? "Unpin" : "Pin", async () => {
        try {
          this.chat = await api.patch(`/api/chats/${chat.id}`, { pinned: !this.chat.pinned });
          this.sidebar.reload();
        } catch (error) {
          notify(error.message, "error");
        }
      }],
      ["Move to trash", () => this.sidebar.trash(this.chat), true],
    ]);
    clear(this.tools);
    append(this.tools, [mode && mode.name !== "chat" ? h("span", { class: "badge" }, mode.title) : null, this.modelSelect, picker, toolBox, menu]);
  }

  /** Inline rename of the heading: Enter saves, Esc cancels. */
  rename() {
    const input = h("input", { type: "text", value: this.chat.title || "", "aria-label": "Chat title", maxlength: 200, class: "rename heading-rename" });
    this.heading.replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      input.replaceWith(this.heading);
      if (save && title && title !== this.chat.title) {
        try {
          this.chat = await api.patch(`/api/chats/${this.chatId}`, { title });
          this.setTitle(this.chat.title);
          this.sidebar.reload();
        } catch (error) {
          notify(error.message, "error");
        }
      }
      this.heading.focus();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); finish(true); }
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); finish(false); }
    });
    input.addEventListener("blur", () => finish(true));
  }

  async summarize() {
    this.pane.querySelector(".summary")?.remove();
    const heading = h("h2", { id: uid("summary") }, "Summary");
    const box = h("section", { class: "summary", "aria-live": "polite", "aria-labelledby": heading.id }, heading, h("p", {}, "Summarizing…"));
    this.thread.append(h("li", { class: "summary-item" }, box));
    this.toBottom(true);
    try {
      const result = await api.post(`/api/chats/${this.chatId}/summarize`, {});
      clear(box).append(heading, renderMarkdown(result.summary));
      this.toBottom(true);
    } catch (error) {
      box.remove();
      notify(error.message, "error");
    }
  }

  renderThread() {
    this.editing = false;
    clear(this.thread);
    this.messages.forEach((m, i) => this.thread.append(this.renderMessage(m, i === this.messages.length - 1)));
  }

  renderMessage(message, isLast) {
    const li = h("li", { class: `message ${message.role} status-${message.status}`, dataset: { messageId: message.id } });
    const who = message.role === "user" ? "You" : message.role === "assistant" ? (message.model ? `Assistant · ${message.model}` : "Assistant") : "System";
    const body = h("div", { class: "content" });
    if (message.role === "assistant") body.append(renderMarkdown(message.content));
    else body.append(h("p", { class: "plain" }, message.content));
    append(li, [h("div", { class: "meta" }, h("span", { class: "who" }, who), this.branchNav(message)),
      message.tool_steps?.length ? toolSteps(message.tool_steps) : null, body]);
    if (message.sources?.length) li.append(citations(message.sources));
    if (message.attachments?.length) {
      li.append(h("ul", { class: "chips" }, message.attachments.map((a) => h("li", { class: "chip" },
        a.kind === "image" ? h("img", { src: `/api/files/${a.id}/content`, alt: a.name, class: "thumb" }) : null,
        h("a", { href: `/api/files/${a.id}/content`, download: a.name }, a.name)))));
    }
    const failed = message.status === "failed" || message.status === "interrupted";
    const status = {
      cancelled: "Stopped.",
      failed: message.error_code === "content_blocked"
        ? "This reply was blocked by the content policy."
        : `This reply failed: ${failureText(message.error_code)}`,
      interrupted: `This reply failed: ${failureText("interrupted")}`,
      streaming: "Writing…",
    }[message.status];
    if (status) {
      const just = this.failure?.id === message.id;
      const note = h("p", { class: failed ? "status error" : "status", role: just ? "alert" : null }, status);
      if (just && this.failure.requestId) note.append(h("span", { class: "reference" }, ` (reference ${this.failure.requestId})`));
      li.append(note);
    }
    const actions = h("div", { class: "message-actions" });
    if (message.content && message.status !== "streaming") {
      actions.append(copyButton(() => message.content, message.role === "user" ? "Copy message" : "Copy reply"));
    }
    if (message.role === "user" && !this.streaming) {
      actions.append(h("button", { type: "button", class: "small", on: { click: () => this.edit(li, message) } }, "Edit"));
    }
    if (message.role === "assistant" && isLast && message.status !== "streaming" && !this.streaming) {
      const retry = failed && message.error_code !== "content_blocked";
      actions.append(h("button", { type: "button", class: retry ? "small primary" : "small", on: { click: () => this.regenerate(message) } }, retry ? "Retry" : "Regenerate"));
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
    const text = h("textarea", { name: "content", id: "composer-input", rows: 2, required: true, placeholder: "Write a message…", "aria-keyshortcuts": "/" });
    this.sendButton = h("button", { type: "submit", class: "primary" }, "Send");
    this.attachments = attachmentPicker((busy) => { this.sendButton.disabled = busy; });
    this.stopButton = h("button", { type: "button", class: "danger", hidden: true, "aria-keyshortcuts": "Escape", on: { click: () => this.stop() } }, "Stop");
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
    text.addEventListener("input", () => {
      // "/" at the start offers the prompt library (prompts.js, loaded when first asked for).
      if (text.value.startsWith("/") && !this.prompting) {
        this.prompting = import("./prompts.js").then((m) => m.promptCommand(text)).catch(() => { this.prompting = null; });
      }
      text.style.height = "auto";
      text.style.height = `${Math.min(text.scrollHeight + 2, 200)}px`;
    });
    // Files dropped on the composer, or pasted into it (a screenshot), are attached.
    form.addEventListener("dragover", (e) => {
      if ([...(e.dataTransfer?.types || [])].includes("Files")) { e.preventDefault(); form.classList.add("dropping"); }
    });
    form.addEventListener("dragleave", () => form.classList.remove("dropping"));
    form.addEventListener("drop", (e) => {
      form.classList.remove("dropping");
      if (e.dataTransfer?.files?.length) { e.preventDefault(); this.attachments.add(e.dataTransfer.files); }
    });
    text.addEventListener("paste", (e) => {
      const files = e.clipboardData?.files;
      if (files?.length) { e.preventDefault(); this.attachments.add(files); }
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const content = text.value.trim();
      if (!content || this.streaming || this.sendButton.disabled) return;
      // Cleared at once; the text comes back only if the send itself is refused.
      const draft = text.value;
      text.value = "";
      text.style.height = "";
      const ok = await this.send(content, form);
      if (ok) this.attachments.reset();
      else if (!text.value) text.value = draft;
    });
    this.input = text;
    return form;
  }

  setStreaming(on) {
    this.streaming = on;
    this.sendButton.hidden = on;
    this.stopButton.hidden = !on;
    this.pane.setAttribute("aria-busy", on ? "true" : "false");
    if (!on && !this.gone && !document.querySelector("dialog[open]")) this.input.focus({ preventScroll: true });
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
      const pickedTools = this.toolBox?.picked() || [];
      if (pickedTools.length) body.tool_ids = pickedTools;
      const projectId = this.sidebar.projectId();
      if (projectId) body.project_id = projectId;
      this.thread.querySelector(".welcome")?.remove();
    }
    this.thread.append(this.renderMessage({ id: "pending", role: "user", content, status: "complete", attachments: [] }, false));
    this.toBottom(true);
    return this.stream(path, body, form);
  }

  async regenerate(message) {
    const at = this.messages.indexOf(message);
    this.messages = this.messages.slice(0, at);
    this.failure = null;
    this.renderThread();
    return this.stream(`/api/chats/${this.chatId}/messages/${message.id}/regenerate`, {});
  }

  edit(li, message) {
    this.renderThread();
    li = this.thread.querySelector(`[data-message-id="${message.id}"]`) || li;
    this.editing = true;
    const text = h("textarea", { name: "content", rows: 3, id: uid("edit"), value: message.content });
    const form = h("form", { class: "edit" },
      h("label", { for: text.id, class: "visually-hidden" }, "Edited message"), text,
      h("div", { class: "composer-actions" },
        h("button", { type: "button", "aria-keyshortcuts": "Escape", on: { click: () => this.renderThread() } }, "Cancel"),
        h("button", { type: "submit", class: "primary" }, "Save and send")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const content = text.value.trim();
      if (!content) return;
      const at = this.messages.indexOf(message);
      this.messages = this.messages.slice(0, at);
      this.renderThread();
      this.thread.append(this.renderMessage({ id: "pending", role: "user", content, status: "complete", attachments: [] }, false));
      this.toBottom(true);
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
    this.toBottom();
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
      if (form && form.classList.contains("composer")) notify(error.message, "error");
      else if (form) showError(form, error);
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
    const untitled = !this.chat?.title;
    const live = liveTools(bubble.li, { chatId: () => this.chatId, replyId: () => assistantId });
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
              this.toBottom();
              save(event.id);
            }
            break;
          case "sources":
            bubble.li.append(citations(data));
            break;
          case "tool_call":
            live.call(data);
            this.toBottom();
            break;
          case "approval_required":
            live.approval(data);
            this.toBottom();
            break;
          case "tool_result":
            live.result(data);
            this.toBottom();
            break;
          case "usage":
            bubble.usage = data;
            break;
          case "title":
            if (typeof data.title === "string") { this.setTitle(data.title); this.sidebar.reload(); }
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
      if (!this.chatId && e.chat_id) {
        this.chatId = e.chat_id;
        history.replaceState(null, "", `/chats/${e.chat_id}`);
      }
      // Announced once: a blocked reply by its notice below (kept on the saved reply), any other
      // failure by the saved reply's status line (with the reference).
      this.failure = e.code === "content_blocked" ? null : { id: assistantId, requestId: e.request_id };
      if (e.code === "content_blocked") {
        bubble.li.append(h("p", { class: "blocked", role: "alert" }, `This reply was blocked by the content policy: ${e.message || "it broke a rule."}`));
      } else {
        bubble.li.querySelector(".status")?.remove();
        bubble.li.append(h("p", { class: "status error", role: "alert" }, `This reply failed: ${failureText(e.code)}`));
      }
    }
    const following = this.follow;
    this.setStreaming(false);
    if (this.chatId) {
      this.sidebar.reload();
      const streamed = bubble.li;
      await this.loadChat(outcome && !outcome.ok ? undefined : assistantId || undefined, { toEnd: following });
      if (this.gone) return;
      const stored = assistantId && this.thread.querySelector(`[data-message-id="${assistantId}"]`);
      if (!stored) {
        // Not stored (or not in this thread): keep what the stream showed.
        streamed.querySelector(".status:not(.error)")?.remove();
        streamed.classList.remove("status-streaming");
        this.thread.append(streamed);
      } else {
        // Keep what the stream showed that the stored thread does not carry.
        const kept = stored.querySelector(".sources") ? ".blocked" : ".sources, .blocked";
        for (const extra of streamed.querySelectorAll(kept)) stored.querySelector(".message-actions")?.before(extra) ?? stored.append(extra);
      }
      if (following) this.toBottom(true);
      if (untitled && this.chat?.title) this.sidebar.reload(); // titled meanwhile
      else if (untitled) this.awaitTitle();
    }
  }

  /** A new chat's title is written in the background after its first reply: the list and the
   * heading are refreshed when it arrives (a few looks, then the page stops asking). */
  awaitTitle(tries = 0) {
    clearTimeout(this.titleTimer);
    if (this.gone || this.chat?.title || tries > 5) return;
    this.titleTimer = setTimeout(async () => {
      if (this.gone || !this.chatId) return;
      try {
        const chat = await api.get(`/api/chats/${this.chatId}`);
        if (this.gone) return;
        if (chat.title) {
          this.chat = { ...this.chat, title: chat.title };
          this.setTitle(chat.title);
          this.sidebar.reload();
          return;
        }
      } catch {
        return;
      }
      this.awaitTitle(tries + 1);
    }, 400 * 2 ** tries);
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
