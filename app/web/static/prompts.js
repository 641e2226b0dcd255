// The prompt library: its page (/prompts: save, edit, delete prompts with a /command and
// {{variables}}), and the "/" command of the composer, which offers the prompts, asks for the
// chosen one's variables and fills the composer. Loaded when first needed.

import * as api from "./api.js";
import { h, clear, uid, field } from "./dom.js";
import { notify } from "./app.js";
import { confirmDialog, toast } from "./ui.js";

const VARIABLE = /\{\{\s*([A-Za-z_][\w.-]{0,63})\s*\}\}/g;

let cache = null;
const prompts = () => (cache ||= api.get("/api/prompts").catch((e) => { cache = null; throw e; }));
const forget = () => { cache = null; };

/** The content with each {{variable}} replaced by its value. */
export function fill(content, values) {
  return content.replace(VARIABLE, (whole, name) => (name in values ? values[name] : whole));
}

/** Asks for the prompt's variables; resolves {name: value}, or null when cancelled. */
function askVariables(prompt) {
  if (!prompt.variables.length) return Promise.resolve({});
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const inputs = prompt.variables.map((name) => h("textarea", { name, rows: 2, required: true }));
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId },
      h("form", { method: "dialog" },
        h("h2", { id: titleId }, `/${prompt.command}: ${prompt.name}`),
        inputs.map((input) => field(input.name, input)),
        h("div", { class: "dialog-actions" },
          h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
          h("button", { type: "submit", value: "ok", class: "primary" }, "Use prompt"))));
    dialog.addEventListener("close", () => {
      const values = Object.fromEntries(inputs.map((i) => [i.name, i.value]));
      dialog.remove();
      resolve(dialog.returnValue === "ok" ? values : null);
    });
    document.body.append(dialog);
    dialog.showModal();
    inputs[0].focus();
  });
}

/** Makes `text` (the composer) offer the prompts whose command starts with what follows "/". */
export function promptCommand(text) {
  const list = h("ul", { class: "prompt-suggestions", role: "listbox", id: uid("prompts"), "aria-label": "Prompts", hidden: true });
  text.after(list);
  text.setAttribute("aria-controls", list.id);
  let shown = [];
  let active = 0;

  const close = () => { list.hidden = true; shown = []; text.removeAttribute("aria-activedescendant"); };

  function draw() {
    clear(list);
    shown.forEach((p, i) => {
      const option = h("li", { role: "option", id: `${list.id}-${i}`, "aria-selected": String(i === active), class: i === active ? "active" : null,
        on: { mousedown: (e) => { e.preventDefault(); choose(p); } } },
      h("span", { class: "command" }, `/${p.command}`), " ", h("span", { class: "name" }, p.name));
      list.append(option);
    });
    list.hidden = !shown.length;
    if (shown.length) text.setAttribute("aria-activedescendant", `${list.id}-${active}`);
  }

  async function update() {
    const match = /^\/([a-z0-9-]*)$/.exec(text.value);
    if (!match) return close();
    let all;
    try {
      all = await prompts();
    } catch {
      return close();
    }
    if (!/^\/([a-z0-9-]*)$/.test(text.value)) return close(); // typed on meanwhile
    shown = all.filter((p) => p.command.startsWith(match[1])).slice(0, 8);
    active = 0;
    draw();
  }

  async function choose(prompt) {
    close();
    const values = await askVariables(prompt);
    text.focus();
    if (!values) return;
    text.value = fill(prompt.content, values);
    text.dispatchEvent(new Event("input"));
    text.setSelectionRange(text.value.length, text.value.length);
  }

  // In the capture phase, so that Enter picks a prompt instead of sending the message.
  text.addEventListener("keydown", (e) => {
    if (list.hidden || !shown.length) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      active = (active + (e.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
      draw();
    } else if (e.key === "Enter" || e.key === "Tab") {
      choose(shown[active]);
    } else if (e.key === "Escape") {
      close();
    } else {
      return;
    }
    e.preventDefault();
    e.stopImmediatePropagation();
  }, true);
  text.addEventListener("input", update);
  text.addEventListener("blur", () => setTimeout(close, 150));
  update();
}

/** The prompt library page. */
export async function promptsPage(main) {
  const list = h("div", { class: "prompt-list" });
  main.append(h("section", { class: "prompts-page" },
    h("h1", {}, "Prompts"),
    h("p", { class: "hint" }, "Type / in a chat's message box to use one. {{name}} in the text asks for a value first."),
    editor(null, reload), list));

  async function reload() {
    forget();
    let all;
    try {
      all = await prompts();
    } catch (error) {
      notify(error.message, "error");
      return;
    }
    clear(list);
    if (!all.length) list.append(h("p", { class: "empty" }, "No prompts yet."));
    for (const p of all) {
      const card = h("article", { class: "prompt-card", dataset: { command: p.command } },
        h("h2", {}, h("span", { class: "command" }, `/${p.command}`), ` ${p.name}`),
        h("pre", { class: "prompt-content" }, p.content),
        p.variables.length ? h("p", { class: "hint" }, `Asks for: ${p.variables.join(", ")}`) : null);
      const actions = h("div", { class: "prompt-actions" },
        h("button", { type: "button", class: "small", on: { click: () => card.replaceWith(editor(p, reload)) } }, `Edit /${p.command}`),
        h("button", { type: "button", class: "small danger", on: { click: async () => {
          if (!(await confirmDialog({ title: `Delete /${p.command}?`, confirm: "Delete", danger: true }))) return;
          try {
            await api.del(`/api/prompts/${p.id}`);
            toast(`Deleted /${p.command}.`);
          } catch (error) {
            notify(error.message, "error");
          }
          reload();
        } } }, `Delete /${p.command}`));
      card.append(actions);
      list.append(card);
    }
  }
  await reload();
}

/** The form that saves a new prompt, or edits `prompt`. */
function editor(prompt, done) {
  const name = h("input", { type: "text", name: "name", required: true, maxlength: 100, value: prompt?.name || "" });
  const command = h("input", { type: "text", name: "command", required: true, maxlength: 32, pattern: "[a-z0-9\\-]+", value: prompt?.command || "", autocomplete: "off" });
  const content = h("textarea", { name: "content", rows: 4, required: true, maxlength: 20000, value: prompt?.content || "" });
  const form = h("form", { class: "prompt-form" },
    h("h2", {}, prompt ? `Edit /${prompt.command}` : "New prompt"),
    field("Name", name),
    field("Command", command, "Lower-case letters, digits and -, typed after /."),
    field("Text", content, "Write {{variable}} where a value goes."),
    h("div", { class: "form-actions" },
      prompt ? h("button", { type: "button", on: { click: done } }, "Cancel") : null,
      h("button", { type: "submit", class: "primary" }, prompt ? "Save" : "Save prompt")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), command: command.value.trim(), content: content.value };
    try {
      if (prompt) await api.patch(`/api/prompts/${prompt.id}`, body);
      else await api.post("/api/prompts", body);
    } catch (error) {
      notify(error.code === "command_taken" ? `You already have a prompt /${body.command}.` : error.message, "error");
      return;
    }
    toast(`Saved /${body.command}.`);
    if (!prompt) form.reset();
    done();
  });
  return form;
}
