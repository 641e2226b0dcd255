// Import and export on the account page: upload an export of ChatGPT, Claude, Open WebUI or
// Parley (POST /api/chats/import) and show its summary; download every chat as one zip
// (GET /api/chats/export, a plain link: the cookies go with it).

import * as api from "./api.js";
import { h, field, clear } from "./dom.js";

const SOURCES = { chatgpt: "ChatGPT", claude: "Claude", openwebui: "Open WebUI", parley: "Parley" };

const plural = (n, one, many = `${one}s`) => `${n.toLocaleString()} ${n === 1 ? one : many}`;

function summaryView(summary) {
  const lines = [
    `From ${SOURCES[summary.format] || summary.format}: ${plural(summary.imported, "chat")} imported ` +
      `with ${plural(summary.messages, "message")}.`,
  ];
  if (summary.unchanged) lines.push(`${plural(summary.unchanged, "chat")} had been imported before and stayed as they were.`);
  if (summary.skipped_messages) lines.push(`${plural(summary.skipped_messages, "message")} left out (tool calls and output, hidden or empty messages).`);
  const view = h("div", { class: "import-summary", role: "status" }, lines.map((line) => h("p", {}, line)));
  if (summary.failed) {
    view.append(
      h("p", { class: "form-error" }, `${plural(summary.failed, "conversation")} could not be imported:`),
      h("ul", { "aria-label": "Conversations not imported" },
        summary.failures.map((f) => h("li", {}, `#${f.index + 1} ${f.title ? `“${f.title}”` : "(untitled)"}: ${f.reason}`))),
    );
  }
  return view;
}

export function importSection() {
  const id = "sec-import-and-export";
  const file = h("input", { type: "file", name: "file", accept: ".json,.zip,application/json,application/zip", required: true });
  const result = h("div", {});
  const button = h("button", { type: "submit", class: "primary" }, "Import");
  const form = h("form", {},
    field("Export file", file, "A conversations.json or the .zip from ChatGPT or Claude, an Open WebUI chat export, or a Parley export."),
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    const body = new FormData();
    body.append("file", file.files[0]);
    button.disabled = true;
    clear(result).append(h("p", { class: "hint", role: "status" }, "Importing…"));
    try {
      const summary = await api.post("/api/chats/import", body);
      clear(result).append(summaryView(summary));
      form.reset();
    } catch (error) {
      clear(result).append(h("p", { class: "form-error", role: "alert" }, error.message));
    } finally {
      button.disabled = false;
    }
  });

  const archived = h("input", { type: "checkbox", id: "export-archived" });
  const trashed = h("input", { type: "checkbox", id: "export-trashed" });
  const link = h("a", { class: "button", href: "/api/chats/export", download: "" }, "Export all");
  const update = () => {
    const include = [archived.checked && "archived", trashed.checked && "trashed"].filter(Boolean).join(",");
    link.href = `/api/chats/export${api.query({ include })}`;
  };
  archived.addEventListener("change", update);
  trashed.addEventListener("change", update);

  return h("section", { class: "card", "aria-labelledby": id },
    h("h2", { id }, "Import and export"),
    form,
    result,
    h("h3", {}, "Export all chats"),
    h("p", { class: "hint" }, "A zip with each chat as JSON (which Import reads back) and as Markdown."),
    h("p", {},
      h("label", { for: "export-archived" }, archived, " Include archived chats"), " ",
      h("label", { for: "export-trashed" }, trashed, " Include the trash")),
    link,
  );
}
