// Projects and tags in the chat sidebar: the list of projects (each filters the chats to its
// own, with New / Edit / Delete), the tag filter, tag chips on chats, and the dialogs that file a
// chat in a project or change its tags. chats.js calls these through a few hooks.

import * as api from "./api.js";
import { h, clear, uid, field } from "./dom.js";
import { notify } from "./app.js";
import { collections, collectionPicker } from "./knowledge.js";
import { toast } from "./ui.js";

/** A modal form dialog: resolves the form's values (FormData entries plus `extra()`), or null. */
function formDialog(title, fields, { confirm = "Save", extra = () => ({}) } = {}) {
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId },
      h("form", { method: "dialog" },
        h("h2", { id: titleId }, title), ...fields,
        h("div", { class: "dialog-actions" },
          h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
          h("button", { type: "submit", value: "ok", class: "primary" }, confirm))));
    const opener = document.activeElement;
    dialog.addEventListener("close", () => {
      const form = dialog.querySelector("form");
      const values = dialog.returnValue === "ok" ? { ...Object.fromEntries(new FormData(form).entries()), ...extra() } : null;
      dialog.remove();
      opener?.focus?.();
      resolve(values);
    });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector("input, textarea, select")?.focus();
  });
}

/** Creates or edits a project in a dialog; resolves the saved project, or null. */
export async function editProject(project = null) {
  const [modelList, collectionList] = await Promise.all([
    api.get("/api/models").catch(() => []),
    collections().catch(() => []),
  ]);
  const name = h("input", { type: "text", name: "name", required: true, maxlength: 100, value: project?.name || "" });
  const instructions = h("textarea", { name: "instructions", rows: 5, maxlength: 20000, value: project?.instructions || "" });
  const model = h("select", { name: "model" }, h("option", { value: "" }, "Default model"),
    modelList.map((m) => h("option", { value: m.name, selected: m.name === project?.model }, m.name)));
  const picker = collectionPicker(collectionList, project?.collection_ids || []);
  const values = await formDialog(project ? "Edit project" : "New project", [
    field("Name", name),
    field("Instructions", instructions, "Put first in the system prompt of every chat in the project."),
    field("Model", model),
    picker,
  ], { confirm: project ? "Save" : "Create", extra: () => ({ collection_ids: picker ? picker.picked() : [] }) });
  if (!values) return null;
  const body = {
    name: values.name,
    instructions: values.instructions.trim() || null,
    model: values.model || null,
    collection_ids: values.collection_ids,
  };
  try {
    const saved = project ? await api.patch(`/api/projects/${project.id}`, body) : await api.post("/api/projects", body);
    toast(project ? `Saved “${saved.name}”.` : `Created “${saved.name}”.`);
    return saved;
  } catch (error) {
    notify(error.message, "error");
    return null;
  }
}

/** Asks what becomes of a project's chats, then deletes it; true when deleted. */
async function deleteProject(project) {
  const keep = h("input", { type: "radio", name: "chats", value: "move", id: uid("keep"), checked: true });
  const trash = h("input", { type: "radio", name: "chats", value: "trash", id: uid("trash") });
  const values = await formDialog(`Delete “${project.name}”?`, [
    h("p", {}, "What becomes of its chats?"),
    h("label", { for: keep.id, class: "check" }, keep, " Keep them, out of any project"),
    h("label", { for: trash.id, class: "check" }, trash, " Move them to the trash"),
  ], { confirm: "Delete project" });
  if (!values) return false;
  try {
    await api.del(`/api/projects/${project.id}${api.query({ chats: values.chats })}`);
    toast(`Deleted “${project.name}”.`);
    return true;
  } catch (error) {
    notify(error.message, "error");
    return false;
  }
}

/** The sidebar's projects and tag filter. `onChange()` when the filter changes (reload the
 * chats); `params()` is what the chat listing adds to its query. */
export function projectFilters(onChange) {
  const state = { project: null, tag: "" };
  let projects = [];
  const list = h("ul", { class: "project-list", "aria-label": "Projects" });
  const tagSelect = h("select", { id: uid("tag-filter"), name: "tag", "aria-label": "Filter by tag" });
  const tools = h("div", { class: "project-tools" });
  const element = h("section", { class: "projects", "aria-labelledby": uid("projects") },
    h("div", { class: "projects-head" },
      h("h2", {}, "Projects"),
      h("button", { type: "button", class: "small", on: { click: create } }, "New project")),
    list, tools,
    h("div", { class: "tag-filter" }, h("label", { for: tagSelect.id, class: "visually-hidden" }, "Tag"), tagSelect));
  element.querySelector("h2").id = element.getAttribute("aria-labelledby");

  function pick(project) {
    state.project = project;
    draw();
    onChange();
  }

  function entry(project, label, count) {
    const current = (state.project?.id || null) === (project?.id || null);
    return h("li", {}, h("button", { type: "button", class: "project-item link", "aria-pressed": String(current), on: { click: () => pick(project) } },
      label, count !== undefined ? h("span", { class: "count" }, ` ${count}`) : null));
  }

  function draw() {
    clear(list);
    list.append(entry(null, "All chats"));
    for (const p of projects) list.append(entry(p, p.name, p.chat_count));
    clear(tools);
    if (state.project) {
      tools.append(
        h("button", { type: "button", class: "small", on: { click: edit } }, "Edit project"),
        h("button", { type: "button", class: "small danger", on: { click: remove } }, "Delete project"));
    }
  }

  async function refresh() {
    try {
      const [found, tags] = await Promise.all([api.get("/api/projects"), api.get("/api/tags")]);
      projects = found;
      if (state.project) state.project = projects.find((p) => p.id === state.project.id) || null;
      clear(tagSelect).append(h("option", { value: "" }, "All tags"),
        tags.map((t) => h("option", { value: t.tag, selected: t.tag === state.tag }, `${t.tag} (${t.count})`)));
      if (state.tag && !tags.some((t) => t.tag === state.tag)) {
        tagSelect.append(h("option", { value: state.tag, selected: true }, state.tag));
      }
      draw();
    } catch (error) {
      notify(error.message, "error");
    }
  }

  async function create() {
    const project = await editProject();
    if (project) { await refresh(); pick(projects.find((p) => p.id === project.id) || null); }
  }

  async function edit() {
    if (await editProject(state.project)) await refresh();
  }

  async function remove() {
    if (await deleteProject(state.project)) {
      state.project = null;
      await refresh();
      onChange();
    }
  }

  tagSelect.addEventListener("change", () => { state.tag = tagSelect.value; onChange(); });
  draw();
  refresh();
  return {
    element,
    refresh,
    params: () => ({ project_id: state.project?.id, tag: state.tag || undefined }),
    projectId: () => state.project?.id || null,
    setTag: (tag) => { state.tag = tag; refresh(); onChange(); },
  };
}

/** A chat's tags as small buttons; clicking one filters the list by it. */
export function tagChips(chat, onPick) {
  if (!chat.tags?.length) return null;
  return h("span", { class: "tags" }, chat.tags.map((tag) =>
    h("button", { type: "button", class: "tag", "aria-label": `Show chats tagged ${tag}`, on: { click: () => onPick(tag) } }, `#${tag}`)));
}

/** Files a chat in a project (or takes it out); resolves the updated chat, or null. */
export async function moveToProject(chat) {
  let projects;
  try {
    projects = await api.get("/api/projects");
  } catch (error) {
    notify(error.message, "error");
    return null;
  }
  const select = h("select", { name: "project_id" }, h("option", { value: "" }, "No project"),
    projects.map((p) => h("option", { value: p.id, selected: p.id === chat.project_id }, p.name)));
  const values = await formDialog("Move to project", [field("Project", select)], { confirm: "Move" });
  if (!values) return null;
  try {
    return await api.patch(`/api/chats/${chat.id}`, { project_id: values.project_id || null });
  } catch (error) {
    notify(error.message, "error");
    return null;
  }
}

/** Edits a chat's tags as comma-separated text; resolves the updated chat, or null. */
export async function editTags(chat) {
  const input = h("input", { type: "text", name: "tags", value: (chat.tags || []).join(", "), autocomplete: "off" });
  const values = await formDialog("Tags", [field("Tags, separated by commas", input, "Up to 20, each up to 32 characters.")]);
  if (!values) return null;
  const tags = values.tags.split(",").map((t) => t.trim()).filter(Boolean);
  try {
    return await api.patch(`/api/chats/${chat.id}`, { tags });
  } catch (error) {
    notify(error.details?.[0]?.message || error.message, "error");
    return null;
  }
}

/** The "⋯" menu entries of a chat for projects and tags; `done(chat)` after a change. */
export function organiseItems(chat, done) {
  return [
    ["Move to project…", async () => { const saved = await moveToProject(chat); if (saved) done(saved); }],
    ["Tags…", async () => { const saved = await editTags(chat); if (saved) done(saved); }],
  ];
}
