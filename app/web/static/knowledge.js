// The Knowledge page (collections of documents: create, rename, delete; upload and add files,
// their ingestion status until settled, remove; a search box) and the collection picker of chats.

import * as api from "./api.js";
import { h, clear, field, uid } from "./dom.js";
import { notify } from "./app.js";
import { attachmentPicker } from "./chats.js";
import { confirmDialog, textDialog } from "./ui.js";

const SETTLED = new Set(["ready", "failed"]);

export const collections = () => api.get("/api/collections");

/** Checkboxes for the user's collections (none: null). `onChange(ids)` when one is toggled. */
export function collectionPicker(list, selected = [], onChange = () => {}) {
  if (!list.length) return null;
  const chosen = new Set(selected);
  const box = h("fieldset", { class: "collections" }, h("legend", {}, "Knowledge"));
  for (const c of list) {
    const input = h("input", { type: "checkbox", id: uid("col"), value: c.id, checked: chosen.has(c.id) });
    input.addEventListener("change", () => onChange(picked()));
    box.append(h("label", { for: input.id, class: "check" }, input, ` ${c.name}`));
  }
  const picked = () => [...box.querySelectorAll("input:checked")].map((i) => i.value);
  box.picked = picked;
  return box;
}

export async function knowledgePage(main) {
  let gone = false;
  const list = h("div", { class: "collection-list" });
  const name = h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off" });
  const create = h("form", { class: "inline-form" }, field("New collection", name), h("button", { type: "submit", class: "primary" }, "Create"));
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.post("/api/collections", { name: name.value.trim() });
      name.value = "";
      await load();
    } catch (error) {
      notify(error.message, "error");
    }
  });
  main.append(h("h1", {}, "Knowledge"),
    h("p", { class: "hint" }, "Documents in a collection are indexed; pick collections in a chat and its replies quote them."),
    create, list);

  async function load() {
    let items;
    try {
      items = await collections();
    } catch (error) {
      notify(error.message, "error");
      return;
    }
    if (gone) return;
    for (const card of list.querySelectorAll(".collection")) clearTimeout(card.timer);
    clear(list);
    if (!items.length) list.append(h("p", { class: "empty" }, "No collections yet."));
    for (const c of items) list.append(collectionCard(c));
  }

  function collectionCard(c) {
    const heading = h("h2", { id: uid("c") }, c.name);
    const files = h("ul", { class: "kb-files", "aria-label": `Files in ${c.name}` });
    const busy = (on) => { if (on) return; add(); };
    const picker = attachmentPicker(busy, "Upload documents");
    const card = h("section", { class: "collection", "aria-labelledby": heading.id },
      h("div", { class: "kb-head" }, heading,
        h("span", { class: "badge" }, c.retrieval === "hybrid" ? "hybrid search" : "full-text search"),
        h("button", { type: "button", class: "small", "aria-label": `Rename ${c.name}`, on: { click: rename } }, "Rename"),
        h("button", { type: "button", class: "small danger", "aria-label": `Delete ${c.name}`, on: { click: remove } }, "Delete")),
      h("div", { class: "composer-actions" }, ...picker.elements),
      files, searchBox(c));

    async function add() {
      const ids = picker.ids();
      picker.reset();
      for (const id of ids) {
        try {
          await api.post(`/api/collections/${c.id}/files`, { file_id: id });
        } catch (error) {
          notify(error.message, "error");
        }
      }
      await showFiles();
    }

    async function showFiles() {
      let items;
      try {
        items = await api.get(`/api/collections/${c.id}/files`);
      } catch (error) {
        notify(error.message, "error");
        return;
      }
      if (gone || !card.isConnected) return;
      clear(files);
      if (!items.length) files.append(h("li", { class: "empty" }, "No files yet: upload documents to add them."));
      for (const f of items) {
        const status = f.status === "failed"
          ? `failed: ${f.error_message || f.error_code}`
          : f.status === "ready" ? `ready · ${f.chunk_count} chunk${f.chunk_count === 1 ? "" : "s"}` : `${f.status}…`;
        files.append(h("li", { class: `kb-file status-${f.status}` },
          h("span", { class: "source-name" }, f.name), " ",
          h("span", { class: "file-status" }, status),
          f.cuts?.length ? h("span", { class: "hint" }, ` (cut: ${f.cuts.join(", ")})`) : null,
          h("button", { type: "button", class: "small", "aria-label": `Remove ${f.name}`, on: { click: async () => {
            try {
              await api.del(`/api/collections/${c.id}/files/${f.file_id}`);
            } catch (error) {
              notify(error.message, "error");
            }
            showFiles();
          } } }, "Remove")));
      }
      // Refreshed until every file is ready or failed.
      if (items.some((f) => !SETTLED.has(f.status))) {
        clearTimeout(card.timer);
        card.timer = setTimeout(showFiles, 1000);
      }
    }

    async function rename() {
      const title = await textDialog({ title: "Rename the collection", label: "Name", value: c.name, confirm: "Rename" });
      if (!title) return;
      try {
        await api.patch(`/api/collections/${c.id}`, { name: title.trim() });
        await load();
      } catch (error) {
        notify(error.message, "error");
      }
    }

    async function remove() {
      const sure = await confirmDialog({ title: "Delete the collection?", body: `“${c.name}” is deleted; its files stay in your files.`, confirm: "Delete", danger: true });
      if (!sure) return;
      try {
        await api.del(`/api/collections/${c.id}`);
        notify(`Deleted “${c.name}”.`);
        await load();
      } catch (error) {
        notify(error.message, "error");
      }
    }

    showFiles();
    return card;
  }

  function searchBox(c) {
    const q = h("input", { type: "search", name: "q", required: true, autocomplete: "off" });
    const hits = h("ol", { class: "citations", "aria-live": "polite", "aria-label": `Search results in ${c.name}` });
    const form = h("form", { class: "inline-form", role: "search" }, field(`Search ${c.name}`, q), h("button", { type: "submit" }, "Search"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clear(hits);
      try {
        const result = await api.get(`/api/collections/${c.id}/search${api.query({ q: q.value.trim() })}`);
        if (!result.hits.length) hits.append(h("li", { class: "empty" }, "Nothing found."));
        for (const hit of result.hits) hits.append(citation(hit));
      } catch (error) {
        notify(error.message, "error");
      }
    });
    return h("div", {}, form, hits);
  }

  await load();
  return () => {
    gone = true;
    for (const card of list.querySelectorAll(".collection")) clearTimeout(card.timer);
  };
}

/** One source or search hit: file, page or section, snippet (all as text). */
export function citation(s) {
  const where = [s.page != null ? `page ${s.page}` : null, s.section || null].filter(Boolean).join(", ");
  const name = s.name || s.file_name || s.filename || "Source";
  return h("li", {},
    h("span", { class: "source-name" }, String(name)),
    where ? ` (${where})` : "",
    // The fused rank score (about 0.016 for every hit) means nothing to a person: not shown.
    s.snippet ? h("blockquote", {}, String(s.snippet)) : null);
}
