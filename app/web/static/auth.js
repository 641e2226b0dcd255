// Sign in (with the MFA step), sign up (with the password checker's feedback), forgot password,
// and the pages the mailed links open: /verify-email and /reset-password.

import * as api from "./api.js";
import { h, field, formData, clear } from "./dom.js";
import { navigate, notify } from "./app.js";

/** Shows an API error on a form: field messages next to their inputs, the rest on top. */
export function showError(form, error) {
  form.querySelectorAll(".field-error").forEach((el) => el.remove());
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  let box = form.querySelector(".form-error");
  if (!box) {
    box = h("p", { class: "form-error", role: "alert", tabindex: "-1" });
    const heading = form.querySelector("h1, h2");
    if (heading) heading.after(box);
    else form.prepend(box);
  }
  clear(box);
  let placed = false;
  for (const detail of error.details || []) {
    const name = String(detail.field || "").split(".").pop();
    const input = name && form.elements.namedItem(name);
    if (input instanceof HTMLElement) {
      const message = h("p", { class: "field-error", id: `${input.id}-error` }, detail.message);
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", message.id);
      input.closest(".field")?.append(message);
      placed = true;
    }
  }
  if (!placed) box.append(error.message || "Something went wrong.");
  (form.querySelector("[aria-invalid]") || box).focus?.();
}

function passwordError(form, message) {
  const input = form.elements.namedItem("password") || form.elements.namedItem("new_password");
  showError(form, { details: [{ field: input.name, message }] });
}

export function busy(form, on) {
  for (const el of form.querySelectorAll("button, input, textarea, select")) el.disabled = on;
  form.setAttribute("aria-busy", on ? "true" : "false");
}

export async function submitting(form, action) {
  const data = formData(form); // read before the controls are disabled (disabled ones are left out)
  busy(form, true);
  try {
    await action(data);
  } catch (error) {
    busy(form, false);
    if (error instanceof api.ApiError) {
      if (error.code === "weak_password") passwordError(form, error.message);
      else showError(form, error);
    } else {
      showError(form, { message: "Parley cannot be reached. Try again." });
    }
    return;
  }
  busy(form, false);
  clearErrors(form);
}

/** Takes an earlier error off a form (after a success, a stale one would mislead). */
export function clearErrors(form) {
  form.querySelectorAll(".field-error").forEach((el) => el.remove());
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  form.querySelector(".form-error")?.remove();
}

function nextPath() {
  const next = new URLSearchParams(location.search).get("next");
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

const input = (name, type, attrs = {}) => h("input", { name, type, id: `in-${name}`, ...attrs });

// Why a single sign-on came back to the sign-in page (`?sso_error=<code>`, docs/sso.md).
const SSO_ERRORS = {
  sso_state_invalid: "The single sign-on took too long or did not start in this browser. Please try again.",
  sso_provider_error: "The identity provider did not sign you in.",
  sso_provider_unavailable: "The identity provider cannot be reached right now. Try again later.",
  sso_token_invalid: "The identity provider's answer could not be verified.",
  sso_token_expired: "The identity provider's answer had expired. Please try again.",
  sso_wrong_audience: "The identity provider's answer was meant for another application.",
  sso_wrong_issuer: "The answer did not come from this server's identity provider.",
  sso_wrong_nonce: "The identity provider's answer did not belong to this sign-in. Please try again.",
  sso_email_missing: "The identity provider did not share your email address.",
  sso_email_unverified:
    "An account already uses this email, and the identity provider has not verified it, so it is not linked. Sign in with your password, or verify the address at your identity provider.",
  sso_signup_disabled: "There is no account for you here yet. Ask an administrator.",
  sso_account_disabled: "This account is disabled.",
};

/** "Sign in with <provider>" above the form when single sign-on is on; hides the password form
 * on an SSO-only server. */
async function offerSso(form) {
  let info;
  try {
    info = await api.get("/api/auth/oidc", { auth: false });
  } catch {
    return;
  }
  if (info.enabled) {
    const next = new URLSearchParams(location.search).get("next");
    const href = info.login_url + (next ? `?next=${encodeURIComponent(nextPath())}` : "");
    const button = h("a", { class: "button primary sso", href, id: "sso-sign-in" }, `Sign in with ${info.display_name}`);
    form.querySelector("h1").after(h("p", {}, button));
  }
  if (!info.password_login) {
    form.querySelectorAll(".field, button[type=submit], .password-only").forEach((el) => el.remove());
  }
}

export function signInPage(main) {
  const params = new URLSearchParams(location.search);
  if (params.get("sso") === "mfa" && location.hash.length > 1) {
    // A single sign-on that still needs this account's second factor: the challenge came in
    // the fragment; it leaves the address bar at once.
    const challenge = location.hash.slice(1);
    history.replaceState(null, "", `/signin${params.get("next") ? `?next=${encodeURIComponent(params.get("next"))}` : ""}`);
    mfaStep(main, challenge);
    return;
  }
  const form = h(
    "form",
    { class: "card narrow", novalidate: false },
    h("h1", {}, "Sign in"),
    field("Email", input("email", "email", { autocomplete: "username", required: true })),
    field("Password", input("password", "password", { autocomplete: "current-password", required: true })),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    h("p", { class: "password-only" }, h("a", { href: "/forgot-password" }, "Forgot your password?")),
    h("p", { class: "password-only" }, "New here? ", h("a", { href: "/signup" }, "Create an account")),
  );
  const ssoError = params.get("sso_error");
  if (ssoError) {
    showError(form, { message: SSO_ERRORS[ssoError] || "Single sign-on failed. Please try again." });
  }
  offerSso(form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, async (data) => {
      const result = await api.post("/api/auth/login", data, { auth: false });
      if (result.mfa_required) {
        mfaStep(main, result.challenge_token);
        return;
      }
      api.signedIn(result);
      await navigate(nextPath());
    });
  });
  main.append(form);
}

function mfaStep(main, challenge) {
  clear(main);
  const code = input("code", "text", {
    autocomplete: "one-time-code",
    inputmode: "text",
    required: true,
    maxlength: 64,
  });
  const form = h(
    "form",
    { class: "card narrow" },
    h("h1", {}, "Two-step sign-in"),
    field("Code", code, "The 6-digit code from your authenticator app, or one of your recovery codes."),
    h("button", { type: "submit", class: "primary" }, "Verify"),
    h("p", {}, h("a", { href: "/signin" }, "Start again")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, async () => {
      const tokens = await api.post(
        "/api/auth/mfa/verify",
        { challenge_token: challenge, code: code.value },
        { auth: false },
      );
      api.signedIn(tokens);
      await navigate(nextPath());
    });
  });
  main.append(form);
  code.focus();
}

export function signUpPage(main) {
  const form = h(
    "form",
    { class: "card narrow" },
    h("h1", {}, "Create an account"),
    field("Email", input("email", "email", { autocomplete: "email", required: true })),
    field("Display name", input("display_name", "text", { autocomplete: "name", required: true, maxlength: 100 })),
    field(
      "Password",
      input("password", "password", { autocomplete: "new-password", required: true, minlength: 12, maxlength: 128 }),
      "12 to 128 characters. A few unrelated words make a strong password.",
    ),
    h("button", { type: "submit", class: "primary" }, "Sign up"),
    h("p", {}, "Have an account? ", h("a", { href: "/signin" }, "Sign in")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, async (data) => {
      const tokens = await api.post("/api/auth/register", data, { auth: false });
      api.signedIn(tokens);
      await navigate("/", { keepNotice: true });
      notify(`Welcome! We sent a link to ${tokens.user.email}: open it to verify your address.`);
    });
  });
  main.append(form);
}

export function forgotPage(main) {
  const form = h(
    "form",
    { class: "card narrow" },
    h("h1", {}, "Reset your password"),
    field("Email", input("email", "email", { autocomplete: "email", required: true })),
    h("button", { type: "submit", class: "primary" }, "Send me a link"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, async (data) => {
      const result = await api.post("/api/auth/forgot-password", data, { auth: false });
      clear(form).append(h("h1", {}, "Check your email"), h("p", { role: "status" }, result.message));
    });
  });
  main.append(form);
}

/** Reads the mailed token and takes it out of the address bar (and so out of the history). */
function takeToken() {
  const token = new URLSearchParams(location.search).get("token");
  history.replaceState(null, "", location.pathname);
  return token;
}

export async function verifyPage(main) {
  const token = takeToken();
  const card = h("section", { class: "card narrow" }, h("h1", {}, "Verify your email"));
  main.append(card);
  const status = h("p", { role: "status" }, "Verifying…");
  card.append(status);
  if (!token) {
    status.textContent = "This link has no token. Open the link from the mail again.";
    return;
  }
  try {
    const result = await api.post("/api/auth/verify-email", { token }, { auth: false });
    status.textContent = `Your email ${result.email} is verified.`;
    if (api.currentUser()) api.updateUser({ email: result.email, email_verified: true });
    card.append(h("p", {}, h("a", { href: api.currentUser() ? "/" : "/signin" }, "Continue")));
  } catch (error) {
    status.textContent = error.message || "This link cannot be used.";
    status.className = "form-error";
  }
}

export function resetPage(main) {
  const token = takeToken();
  const password = input("new_password", "password", {
    autocomplete: "new-password",
    required: true,
    minlength: 12,
    maxlength: 128,
  });
  const form = h(
    "form",
    { class: "card narrow" },
    h("h1", {}, "Choose a new password"),
    field("New password", password, "12 to 128 characters."),
    h("button", { type: "submit", class: "primary" }, "Set password"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, async () => {
      await api.post("/api/auth/reset-password", { token, new_password: password.value }, { auth: false });
      api.forget();
      clear(form).append(
        h("h1", {}, "Password changed"),
        h("p", { role: "status" }, "Your password is changed and every session was signed out."),
        h("p", {}, h("a", { href: "/signin" }, "Sign in")),
      );
    });
  });
  if (!token) form.prepend(h("p", { class: "form-error", role: "alert" }, "This link has no token."));
  main.append(form);
}
