// Tools in chats (docs/tools.md): the per-chat tool picker, tool calls shown inline (folded),
// Approve and Deny on a call waiting for the user, a knowledge search's sources as citations.

import * as api from "./api.js";
import { h, uid } from "./dom.js";
import { citation } from "./knowledge.js";
import { notify } from "./app.js";

/** The enabled tools (GET /api/tools), [] when the server has none or cannot say. */
export async function tools() {
  try {
    return (await api.get("/api/tools")).tools.filter((t) => t.enabled);
  } catch {
    return [];
  }
}

/** Checkboxes for a chat's tools; `onChange(ids)` when the choice changes. `compact`: folded
 * behind a "Tools" button with the count picked (a chat's header, where room is short). */
export function toolPicker(list, selected = [], onChange = () => {}, { compact = false } = {}) {
  if (!list.length) return null;
  const chosen = new Set(selected);
  const box = h("fieldset", { class: "collections tools" }, h("legend", {}, "Tools"));
  for (const t of list) {
    const input = h("input", { type: "checkbox", id: uid("tool"), value: t.id, checked: chosen.has(t.id) });
    input.addEventListener("change", () => onChange(picked()));
    const note = [t.needs_approval ? "asks first" : null, t.reachable ? null : "unreachable"].filter(Boolean).join(", ");
    box.append(h("label", { for: input.id, class: "check", title: t.description || "" }, input, ` ${t.name}`,
      h("span", { class: "hint" }, ` ${t.server}${note ? ` · ${note}` : ""}`)));
  }
  const picked = () => [...box.querySelectorAll("input:checked")].map((i) => i.value);
  box.picked = picked;
  if (!compact) return box;
  const label = () => `Tools · ${picked().length}`;
  const summary = h("summary", {}, label());
  box.addEventListener("change", () => { summary.textContent = label(); });
  const menu = h("details", { class: "tool-menu" }, summary, box);
  menu.picked = picked;
  return menu;
}

function outcomeOf(step) {
  if (step.approval === "denied") return "denied";
  if (step.approval === "timed_out") return "not approved in time";
  if (step.result == null) return "stopped";
  return step.is_error ? "failed" : "done";
}

/** One tool call, folded: its name and outcome; open, its arguments and result. */
function stepView(step) {
  const summary = h("summary", {}, h("span", { class: "tool-name" }, step.name), " ",
    h("span", { class: "tool-outcome" }, step.result === undefined ? "running…" : outcomeOf(step)));
  const args = h("pre", { class: "tool-arguments" }, h("code", {}, String(step.arguments || "{}")));
  const result = h("pre", { class: "tool-result" }, h("code", {}, step.result == null ? "" : String(step.result)));
  const pending = step.result === undefined; // still running: no result to show yet
  const resultLabel = h("p", { class: "hint", hidden: pending }, "Result");
  result.hidden = pending;
  const view = h("details", { class: `tool-step${step.is_error ? " error" : ""}`, dataset: { callId: step.id } },
    summary, h("p", { class: "hint" }, "Arguments"), args, resultLabel, result);
  view.fill = (data) => {
    resultLabel.hidden = result.hidden = false;
    summary.querySelector(".tool-outcome").textContent = outcomeOf({ ...data, result: data.content });
    result.querySelector("code").textContent = String(data.content ?? "");
    view.classList.toggle("error", Boolean(data.is_error));
    view.querySelector(".approval")?.remove();
  };
  return view;
}

/** A saved reply's tool calls, in order. */
export function toolSteps(steps) {
  const box = h("section", { class: "tool-steps", "aria-label": "Tool calls" });
  for (const step of steps) box.append(stepView(step));
  return box;
}

/** The tool events of a reply as it streams, drawn into `li` (the reply's bubble). */
export function liveTools(li, { chatId, replyId }) {
  let box = null;
  const views = new Map();
  const section = () => {
    if (!box) {
      box = h("section", { class: "tool-steps", "aria-label": "Tool calls" });
      const content = li.querySelector(".content");
      if (content) content.before(box);
      else li.append(box);
    }
    return box;
  };
  return {
    call(data) {
      const view = stepView({ id: data.id, name: data.name, arguments: data.arguments, result: undefined });
      views.set(data.id, view);
      section().append(view);
    },
    approval(data) {
      const view = views.get(data.id) || (this.call(data), views.get(data.id));
      view.open = true;
      view.querySelector(".tool-outcome").textContent = "waiting for your approval";
      const answer = async (approve, button) => {
        for (const b of view.querySelectorAll(".approval button")) b.disabled = true;
        try {
          await api.post(`/api/chats/${chatId()}/messages/${replyId()}/tool-approvals`, { call_id: data.id, approve });
          view.querySelector(".approval")?.remove();
        } catch (error) {
          for (const b of view.querySelectorAll(".approval button")) b.disabled = false;
          notify(error.message, "error");
          button.focus();
        }
      };
      const approve = h("button", { type: "button", class: "primary" }, "Approve");
      const deny = h("button", { type: "button" }, "Deny");
      approve.addEventListener("click", () => answer(true, approve));
      deny.addEventListener("click", () => answer(false, deny));
      view.querySelector(".approval")?.remove();
      view.append(h("div", { class: "approval", role: "group", "aria-label": `Run ${data.name}?` },
        h("p", {}, `The assistant wants to run ${data.name}.`), approve, " ", deny));
      approve.focus({ preventScroll: true });
    },
    result(data) {
      const view = views.get(data.id) || (this.call(data), views.get(data.id));
      view.fill(data);
      if (Array.isArray(data.sources) && data.sources.length) {
        const list = h("ol", { class: "citations" });
        for (const s of data.sources) if (s && typeof s === "object") list.append(citation(s));
        view.append(h("section", { class: "sources", "aria-label": "Sources found" }, h("h2", {}, "Sources found"), list));
      }
    },
  };
}
