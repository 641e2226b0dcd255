// The account: profile and preferences, sessions (revoke, sign out everywhere), API keys (create,
// shown once with copy, list, revoke), two-step sign-in (QR code, recovery codes), change
// password, delete the account; and the usage page.

import * as api from "./api.js";
import { h, field, clear, formatTime, copyButton, deviceName } from "./dom.js";
import { confirmDialog } from "./ui.js";
import { navigate, notify } from "./app.js";
import { submitting } from "./auth.js";
import { models, modelPicker } from "./chats.js";
import { importSection } from "./importing.js";

const input = (name, type, attrs = {}) => h("input", { name, type, id: `acct-${name}-${attrs.idSuffix || ""}`, ...attrs, idSuffix: null });

function section(title, ...children) {
  const id = `sec-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

export async function accountPage(main) {
  main.append(h("h1", {}, "Account"));
  let profile;
  try {
    profile = await api.get("/api/users/me");
  } catch (error) {
    main.append(h("p", { class: "form-error" }, error.message));
    return;
  }
  const modelList = await models().catch(() => []);
  main.append(
    profileSection(profile, modelList),
    sessionsSection(),
    apiKeysSection(),
    mfaSection(profile),
    importSection(),
    passwordSection(),
    deleteSection(),
  );
}

function profileSection(profile, modelList) {
  const prefs = profile.preferences || {};
  const form = h(
    "form",
    {},
    h("p", {}, `Email: ${profile.email} `, profile.email_verified ? h("span", { class: "badge" }, "verified") : h("span", { class: "badge warn" }, "not verified")),
    profile.pending_email ? h("p", { class: "hint" }, `Waiting for ${profile.pending_email} to be verified.`) : null,
    field("Display name", input("display_name", "text", { value: profile.display_name, required: true, maxlength: 100 })),
    modelPicker(modelList, prefs.default_model, { label: "Default model", name: "default_model" }),
    field("Temperature", input("temperature", "number", { min: 0, max: 2, step: 0.1, value: prefs.temperature ?? "" }), "0 to 2; empty: the model's default."),
    field("System prompt", h("textarea", { name: "system_prompt", id: "acct-system-prompt", rows: 3, maxlength: 8000, value: prefs.system_prompt || "" })),
    h("button", { type: "submit", class: "primary" }, "Save"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submitting(form, async (data) => {
      const updated = await api.patch("/api/users/me", {
        display_name: data.display_name,
        preferences: {
          default_model: data.default_model || null,
          temperature: data.temperature === "" ? null : Number(data.temperature),
          system_prompt: data.system_prompt.trim() || null,
        },
      });
      api.updateUser({ display_name: updated.display_name });
      notify("Saved.");
    });
  });
  const extras = [];
  if (!profile.email_verified) {
    extras.push(h("button", { type: "button", class: "small", on: { click: async () => {
      try {
        const r = await api.post("/api/auth/resend-verification", { email: profile.email });
        notify(r.message);
      } catch (error) {
        notify(error.message, "error");
      }
    } } }, "Send the verification link again"));
  }
  return section("Profile and preferences", form, ...extras);
}

let reloadSessions = () => {};

function sessionsSection() {
  const list = h("ul", { class: "sessions", "aria-label": "Signed-in devices" });
  reloadSessions = () => load().catch((error) => notify(error.message, "error"));
  async function load() {
    const sessions = await api.get("/api/auth/sessions");
    clear(list);
    for (const s of sessions) {
      const device = deviceName(s.user_agent);
      list.append(h("li", { dataset: { sessionId: s.id } },
        h("div", {}, h("strong", { title: s.user_agent || "" }, device), s.current ? h("span", { class: "badge" }, "this device") : null),
        h("div", { class: "hint" }, `${s.ip_address || "unknown IP"} · last used ${formatTime(s.last_used_at)}`),
        s.current ? null : h("button", { type: "button", class: "small danger", "aria-label": `Revoke session on ${device}`, on: { click: async () => {
          try {
            await api.del(`/api/auth/sessions/${s.id}`);
            notify("The session is signed out.");
          } catch (error) {
            notify(error.message, "error");
          }
          load();
        } } }, "Revoke")));
    }
  }
  load().catch((error) => notify(error.message, "error"));
  const everywhere = h("button", { type: "button", class: "danger", on: { click: async () => {
    const sure = await confirmDialog({ title: "Sign out everywhere?", body: "Every device signed in to your account is signed out, this one included.", confirm: "Sign out everywhere", danger: true });
    if (!sure) return;
    try {
      await api.post("/api/auth/logout-all");
    } catch {
      /* signed out either way */
    }
    api.forget();
    navigate("/signin");
  } } }, "Sign out everywhere");
  return section("Sessions", list, everywhere);
}

function apiKeysSection() {
  const list = h("ul", { class: "sessions api-keys", "aria-label": "API keys" });
  const shown = h("div", { class: "api-key-created" });
  const load = async () => {
    const keys = await api.get("/api/keys");
    clear(list);
    if (!keys.length) list.append(h("li", { class: "hint" }, "No API keys yet."));
    for (const k of keys) {
      const facts = [
        `created ${formatTime(k.created_at)}`,
        k.last_used_at ? `last used ${formatTime(k.last_used_at)}` : "never used",
        `${k.tokens_today.toLocaleString()} tokens today`,
        k.rpm ? `${k.rpm} requests a minute` : null,
        k.daily_token_limit ? `${k.daily_token_limit.toLocaleString()} tokens a day` : null,
        k.expires_at ? `expires ${formatTime(k.expires_at)}` : null,
      ].filter(Boolean);
      list.append(h("li", { dataset: { keyId: k.id } },
        h("div", {}, h("strong", {}, k.name), " ", h("code", {}, `pk-…${k.hint}`),
          ...k.scopes.map((scope) => h("span", { class: "badge" }, scope))),
        h("div", { class: "hint" }, facts.join(" · ")),
        h("button", { type: "button", class: "small danger", "aria-label": `Revoke API key ${k.name}`, on: { click: async () => {
          const sure = await confirmDialog({ title: `Revoke “${k.name}”?`, body: "Programs using this key stop working at once.", confirm: "Revoke key", danger: true });
          if (!sure) return;
          try {
            await api.del(`/api/keys/${k.id}`);
            notify("The key is revoked.");
          } catch (error) {
            notify(error.message, "error");
          }
          load().catch((error) => notify(error.message, "error"));
        } } }, "Revoke")));
    }
  };
  const scope = (value, label) => h("div", { class: "check" },
    input("scope", "checkbox", { value, idSuffix: value }), h("label", { for: `acct-scope-${value}` }, label));
  const form = h("form", {},
    field("Name", input("name", "text", { required: true, maxlength: 100, idSuffix: "key" }), "What will use it, e.g. “editor on my laptop”."),
    h("fieldset", {}, h("legend", {}, "Besides the OpenAI-compatible /v1 API, the key may use"),
      scope("chats", "My chats"), scope("knowledge", "My files and collections")),
    field("Requests per minute", input("rpm", "number", { min: 1, max: 100000, idSuffix: "key" }), "Empty: no limit of its own."),
    field("Tokens per day", input("daily_token_limit", "number", { min: 1, max: 2000000000, idSuffix: "key" }), "On top of your own quota. Empty: no limit of its own."),
    h("button", { type: "submit", class: "primary" }, "Create key"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const scopes = [...form.querySelectorAll('input[name="scope"]:checked')].map((box) => box.value);
    submitting(form, async (data) => {
      const body = { name: data.name, scopes };
      if (data.rpm) body.rpm = Number(data.rpm);
      if (data.daily_token_limit) body.daily_token_limit = Number(data.daily_token_limit);
      const created = await api.post("/api/keys", body);
      form.reset();
      // The key exists only here and now: Parley keeps a hash of it.
      clear(shown).append(
        h("p", { role: "status" }, `Copy the key “${created.name}” now: it is shown only this once.`),
        h("p", {}, h("code", { class: "secret", id: "new-api-key" }, created.key), " ",
          copyButton(() => created.key, "Copy API key", "Copy")),
        h("button", { type: "button", class: "small", on: { click: () => clear(shown) } }, "Done"));
      load().catch((error) => notify(error.message, "error"));
    });
  });
  load().catch((error) => notify(error.message, "error"));
  return section("API keys", h("p", { class: "hint" }, "Keys let programs (the openai SDKs, editors, scripts) use Parley as you. They cannot change your account."), shown, list, form);
}

function mfaSection(profile) {
  const box = section("Two-step sign-in");
  const body = h("div");
  box.append(body);
  const render = (enabled) => {
    clear(body);
    if (enabled) {
      const form = h("form", {},
        h("p", {}, "Two-step sign-in is on."),
        field("Password", input("password", "password", { autocomplete: "current-password", required: true, idSuffix: "mfa-off" })),
        field("Code", input("code", "text", { autocomplete: "one-time-code", required: true, idSuffix: "mfa-off" }), "From your app, or a recovery code."),
        h("button", { type: "submit", class: "danger" }, "Turn off"));
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        submitting(form, async (data) => {
          await api.post("/api/auth/mfa/disable", data);
          notify("Two-step sign-in is off.");
          render(false);
        });
      });
      body.append(form);
      return;
    }
    body.append(h("p", {}, "Add a code from an authenticator app to your sign-in."),
      h("button", { type: "button", class: "primary", on: { click: setup } }, "Set up two-step sign-in"));
  };
  async function setup() {
    let data;
    try {
      data = await api.post("/api/auth/mfa/setup");
    } catch (error) {
      notify(error.message, "error");
      return;
    }
    clear(body);
    // The API's QR code is SVG markup: shown as an image (a data: URL, where no script runs),
    // never inserted as markup. Markup made for inlining in HTML may lack the SVG namespace
    // that a standalone SVG document needs.
    let svg = data.qr_svg;
    if (!/^<svg[^>]*\sxmlns=/.test(svg)) svg = svg.replace(/^<svg/, '<svg xmlns="http://www.w3.org/2000/svg"');
    const qr = h("img", { class: "qr", alt: "QR code for your authenticator app", src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}` });
    const form = h("form", {},
      h("p", {}, "Scan the code with your authenticator app, or type the key."),
      qr,
      h("p", {}, "Key: ", h("code", { class: "secret", id: "mfa-secret" }, data.secret)),
      field("Code from the app", input("code", "text", { autocomplete: "one-time-code", inputmode: "numeric", required: true, idSuffix: "mfa-on" })),
      field("Password", input("password", "password", { autocomplete: "current-password", required: true, idSuffix: "mfa-on" })),
      h("button", { type: "submit", class: "primary" }, "Turn on"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      submitting(form, async (values) => {
        const result = await api.post("/api/auth/mfa/enable", values);
        reloadSessions(); // turning it on signs the other devices out
        clear(body).append(
          h("p", { role: "status" }, "Two-step sign-in is on. Keep these recovery codes somewhere safe: each works once, and they are shown only now."),
          h("ol", { class: "recovery-codes", "aria-label": "Recovery codes" }, result.recovery_codes.map((c) => h("li", {}, h("code", {}, c)))),
          recoveryActions(result.recovery_codes),
          h("button", { type: "button", on: { click: () => render(true) } }, "I have saved them"));
      });
    });
    body.append(form);
    form.querySelector("input").focus();
  }
  render(profile.mfa_enabled);
  return box;
}

/** Copy and download (a text file) for the recovery codes, shown once. */
function recoveryActions(codes) {
  const text = `Parley recovery codes for ${api.currentUser()?.email || "your account"}\nEach works once.\n\n${codes.join("\n")}\n`;
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  return h("div", { class: "recovery-actions" },
    copyButton(() => text, "Copy recovery codes", "Copy codes"),
    h("a", { class: "button small", href: url, download: "parley-recovery-codes.txt" }, "Download"));
}

function passwordSection() {
  const form = h("form", {},
    field("Current password", input("current_password", "password", { autocomplete: "current-password", required: true })),
    field("New password", input("new_password", "password", { autocomplete: "new-password", required: true, minlength: 12, maxlength: 128 }), "12 to 128 characters. Other devices are signed out."),
    h("button", { type: "submit", class: "primary" }, "Change password"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submitting(form, async (data) => {
      await api.post("/api/auth/change-password", data);
      form.reset();
      notify("Your password is changed; your other devices are signed out.");
    });
  });
  return section("Password", form);
}

function deleteSection() {
  const form = h("form", {},
    h("p", {}, "Deletes your account, chats, files and usage history. This cannot be undone."),
    field("Password", input("password", "password", { autocomplete: "current-password", required: true, idSuffix: "delete" })),
    h("div", { class: "check" }, input("confirm", "checkbox", { required: true }), h("label", { for: "acct-confirm-" }, "I understand")),
    h("button", { type: "submit", class: "danger" }, "Delete my account"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submitting(form, async (data) => {
      await api.del("/api/users/me", { password: data.password });
      api.forget();
      await navigate("/signup");
      notify("Your account is deleted.");
    });
  });
  return section("Delete account", form);
}

export async function usagePage(main) {
  main.append(h("h1", {}, "Usage"));
  let report;
  try {
    report = await api.get("/api/usage?group_by=day");
  } catch (error) {
    main.append(h("p", { class: "form-error" }, error.message));
    return;
  }
  const q = report.quota;
  const quota = q.daily_limit == null
    ? h("p", {}, `Today: ${q.used_today.toLocaleString()} tokens. No daily limit.`)
    : h("div", {},
      h("label", { for: "quota-meter" }, `Today: ${q.used_today.toLocaleString()} of ${q.daily_limit.toLocaleString()} tokens (${(q.remaining_today ?? 0).toLocaleString()} left, resets ${formatTime(q.resets_at)})`),
      h("meter", { id: "quota-meter", min: 0, max: q.daily_limit, value: q.used_today, high: q.daily_limit * 0.8, optimum: 0 }));
  const max = Math.max(1, ...report.items.map((r) => r.total_tokens));
  const table = h("table", {},
    h("caption", {}, `Tokens per day, ${report.from} to ${report.to}`),
    h("thead", {}, h("tr", {}, ["Day", "Requests", "Prompt", "Completion", "Total", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, report.items.map((r) => h("tr", {},
      h("th", { scope: "row" }, r.key),
      [r.requests, r.prompt_tokens, r.completion_tokens, r.total_tokens].map((n) => h("td", { class: "num" }, n.toLocaleString())),
      h("td", {}, h("progress", { max, value: r.total_tokens, "aria-label": `${r.total_tokens} tokens` }))))),
    h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, "Total"),
      [report.totals.requests, report.totals.prompt_tokens, report.totals.completion_tokens, report.totals.total_tokens].map((n) => h("td", { class: "num" }, n.toLocaleString())), h("td"))));
  main.append(section("Quota", quota), section("Tokens per day", report.items.length ? table : h("p", {}, "No usage yet.")));
}
