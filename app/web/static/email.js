// The email writer: POST /api/generate in the `email` mode (purpose, recipient, key points, tone,
// length), the text streamed into an aria-live region, kept in GET /api/generations.

import * as api from "./api.js";
import { h, field, clear, formatTime, copyButton } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { readEvents } from "./sse.js";
import { models, modelPicker, attachmentPicker, failureText } from "./chats.js";
import { showError } from "./auth.js";

const TONES = ["neutral", "formal", "friendly", "persuasive", "apologetic"];
const LENGTHS = ["short", "medium", "long"];

export async function emailPage(main) {
  const modelList = await models().catch(() => []);
  const select = (name, values, selected) =>
    h("select", { name, id: `email-${name}` }, values.map((v) => h("option", { value: v, selected: v === selected }, v)));
  const output = h("div", { class: "output", "aria-live": "polite", id: "email-output" });
  const status = h("p", { class: "status", role: "status" });
  const write = h("button", { type: "submit", class: "primary" }, "Write the email");
  const stop = h("button", { type: "button", class: "danger", hidden: true }, "Stop");
  const files = attachmentPicker((busy) => { write.disabled = busy; });
  const form = h(
    "form",
    { class: "card" },
    h("h1", {}, "Email writer"),
    field("Purpose", h("input", { name: "purpose", id: "email-purpose", required: true, maxlength: 2000 }), "What the email should achieve."),
    field("Recipient", h("input", { name: "recipient", id: "email-recipient", maxlength: 200 })),
    field("Key points", h("textarea", { name: "key_points", id: "email-points", rows: 3 }), "One per line."),
    h("div", { class: "row" },
      field("Tone", select("tone", TONES, "neutral")),
      field("Length", select("length", LENGTHS, "medium")),
      modelPicker(modelList, null)),
    field("Anything else", h("textarea", { name: "prompt", id: "email-prompt", rows: 2, placeholder: "Write the email." })),
    h("div", { class: "composer-actions" }, ...files.elements, stop, write),
  );
  const history = h("ol", { class: "generations", "aria-label": "Earlier emails" });
  main.append(form, h("section", { class: "card", "aria-label": "The email" }, h("h2", {}, "Your email"), status, output),
    h("section", { class: "card" }, h("h2", {}, "Earlier emails"), history));

  async function loadHistory() {
    try {
      const page = await api.get("/api/generations?limit=10");
      clear(history);
      for (const g of page.items.filter((g) => g.mode === "email")) {
        history.append(h("li", {}, h("details", {},
          h("summary", {}, `${g.params.purpose || "Email"} · ${g.params.tone || ""} · ${formatTime(g.created_at)}`),
          renderMarkdown(g.output), g.output ? copyButton(() => g.output, "Copy this email", "Copy") : null)));
      }
    } catch {
      /* the list is a convenience */
    }
  }

  let controller = null;
  stop.addEventListener("click", () => controller?.abort());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const params = { purpose: data.get("purpose").trim(), tone: data.get("tone"), length: data.get("length") };
    if (data.get("recipient").trim()) params.recipient = data.get("recipient").trim();
    const points = data.get("key_points").split("\n").map((s) => s.trim()).filter(Boolean);
    if (points.length) params.key_points = points;
    const body = {
      mode: "email",
      params,
      prompt: data.get("prompt").trim() || "Write the email.",
      model: data.get("model") || undefined,
      attachments: files.ids(),
    };
    controller = new AbortController();
    clear(output);
    status.textContent = "Writing…";
    write.hidden = true;
    stop.hidden = false;
    let text = "";
    let failed = null;
    try {
      const response = await api.openStream("/api/generate", body, { signal: controller.signal });
      for await (const ev of readEvents(response.body, controller.signal)) {
        let payload;
        try {
          payload = JSON.parse(ev.data);
        } catch {
          continue;
        }
        if (ev.event === "delta" && typeof payload.content === "string") {
          text += payload.content;
          output.append(document.createTextNode(payload.content));
        } else if (ev.event === "error") {
          failed = payload;
        }
      }
      status.textContent = failed ? `The email could not be finished: ${failureText(failed.code)}` : "Done.";
    } catch (error) {
      if (controller.signal.aborted) status.textContent = "Stopped.";
      else if (error instanceof api.ApiError) {
        status.textContent = "";
        showError(form, error);
      } else status.textContent = "The connection was lost.";
    }
    clear(output).append(renderMarkdown(text));
    if (text) output.append(h("div", { class: "message-actions" }, copyButton(() => text, "Copy the email", "Copy email")));
    write.hidden = false;
    stop.hidden = true;
    controller = null;
    loadHistory();
  });
  loadHistory();
  return () => controller?.abort();
}
