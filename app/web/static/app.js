// The web client's entry: a small History-API router, the navigation bar, notices, and start-up
// (renew the session from the refresh cookie, then render the page the URL names).

import * as api from "./api.js";
import { h, clear } from "./dom.js";
import { signInPage, signUpPage, forgotPage, verifyPage, resetPage } from "./auth.js";
import { chatPage, homePage } from "./chats.js";
import { emailPage } from "./email.js";
import { accountPage, usagePage } from "./account.js";
import { knowledgePage } from "./knowledge.js";
import { infoDialog } from "./ui.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const noticeEl = document.getElementById("notice");

// Pages loaded when first opened (not on the first load of the client).
const later = (module, name) => (view, params) => import(module).then((m) => m[name](view, params));

const ROUTES = [
  { path: /^\/$/, page: homePage },
  { path: /^\/chats\/([0-9a-f-]{36})$/, page: chatPage },
  { path: /^\/email$/, page: emailPage },
  { path: /^\/knowledge$/, page: knowledgePage },
  { path: /^\/usage$/, page: usagePage },
  { path: /^\/account$/, page: accountPage },
  { path: /^\/prompts$/, page: later("./prompts.js", "promptsPage") },
  { path: /^\/s\/([A-Za-z0-9_-]{1,200})$/, page: later("./share.js", "sharedPage"), public: true, either: true },
  { path: /^\/signin$/, page: signInPage, public: true },
  { path: /^\/signup$/, page: signUpPage, public: true },
  { path: /^\/forgot-password$/, page: forgotPage, public: true },
  { path: /^\/verify-email$/, page: verifyPage, public: true, either: true },
  { path: /^\/reset-password$/, page: resetPage, public: true, either: true },
];

let cleanup = null;
let rendering = 0;

export function notify(message, kind = "info") {
  clear(noticeEl);
  noticeEl.className = `notice ${kind}`;
  if (message) {
    noticeEl.append(
      h("span", {}, message),
      h("button", { type: "button", class: "link", "aria-label": "Dismiss", on: { click: () => notify("") } }, "×"),
    );
  }
}

export function navigate(path, { replace = false, keepNotice = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  if (!keepNotice) notify("");
  return render();
}

function renderNav() {
  clear(nav);
  const user = api.currentUser();
  const link = (href, text) => {
    const current = location.pathname === href || (href === "/" && location.pathname.startsWith("/chats/"));
    return h("a", { href, "aria-current": current ? "page" : null }, text);
  };
  if (user) {
    nav.append(
      link("/", "Chats"),
      link("/email", ["Email", h("span", { class: "wide-only" }, " writer")]),
      link("/knowledge", "Knowledge"),
      link("/prompts", "Prompts"),
      link("/usage", "Usage"),
      link("/account", "Account"),
      h("button", { type: "button", class: "link", on: { click: signOut } }, "Sign out"),
      h("button", { type: "button", class: "link help-button", "aria-label": "Keyboard shortcuts", "aria-keyshortcuts": "?", on: { click: showShortcuts } }, "?"),
    );
  } else {
    nav.append(link("/signin", "Sign in"), link("/signup", "Sign up"));
  }
}

async function signOut() {
  // The page stops first: nothing of it (a title being awaited, a list refresh) may call the
  // API with the session being closed.
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* ignored, as in render() */
    }
    cleanup = null;
  }
  try {
    await api.post("/api/auth/logout");
  } catch {
    /* already signed out: the cookies are cleared either way below */
  }
  api.forget();
  await navigate("/signin");
  notify("You are signed out.");
}

export async function render() {
  const ticket = ++rendering;
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a page's teardown must not stop the next page */
    }
    cleanup = null;
  }
  const route = ROUTES.find((r) => r.path.test(location.pathname)) || ROUTES[0];
  const params = route.path.exec(location.pathname)?.slice(1) || [];
  const user = api.currentUser();
  if (!route.public && !user) {
    const next = location.pathname === "/" ? "" : `?next=${encodeURIComponent(location.pathname)}`;
    history.replaceState(null, "", `/signin${next}`);
    return render();
  }
  if (route.public && !route.either && user) {
    history.replaceState(null, "", "/");
    return render();
  }
  renderNav();
  clear(main);
  // Each page draws into its own box: a page still loading when the next one starts draws into
  // a detached box, never into the next page.
  const view = h("div", { class: "view" });
  main.append(view);
  const result = await route.page(view, params);
  if (ticket !== rendering) {
    result?.();
    return;
  }
  cleanup = result || null;
  document.title = `${view.querySelector("h1")?.textContent || "Parley"} · Parley`;
  // Move focus to the new page's heading so keyboard and screen reader users start there.
  const heading = view.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

const SHORTCUTS = [
  ["Ctrl + Shift + O", "New chat"],
  ["/", "Focus the message box"],
  ["Enter", "Send the message"],
  ["Shift + Enter", "New line in the message"],
  ["Esc", "Stop the reply, cancel an edit, close a menu or dialog"],
  ["?", "Show these shortcuts"],
];

function showShortcuts() {
  if (document.querySelector("dialog[open]")) return;
  infoDialog("Keyboard shortcuts",
    h("dl", { class: "shortcuts" }, SHORTCUTS.map(([keys, what]) => [h("dt", {}, h("kbd", {}, keys)), h("dd", {}, what)])));
}

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

document.addEventListener("keydown", (event) => {
  if (!api.currentUser() || event.defaultPrevented || document.querySelector("dialog[open]")) return;
  if ((event.ctrlKey || event.metaKey) && event.shiftKey && event.key.toLowerCase() === "o") {
    event.preventDefault();
    navigate("/");
  } else if (event.key === "?" && !typing(event.target)) {
    event.preventDefault();
    showShortcuts();
  } else if (event.key === "/" && !typing(event.target) && !event.ctrlKey && !event.metaKey) {
    const composer = document.getElementById("composer-input");
    if (composer) {
      event.preventDefault();
      composer.focus();
    }
  }
});

document.addEventListener("click", (event) => {
  const a = event.target.closest?.("a[href]");
  if (!a || a.target || a.hasAttribute("download") || event.defaultPrevented) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !ROUTES.some((r) => r.path.test(url.pathname))) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", () => render());

api.setOnSignedOut(() => {
  if (!ROUTES.find((r) => r.path.test(location.pathname))?.public) {
    navigate("/signin").then(() => notify("Your session has ended. Please sign in again.", "error"));
  }
});

async function start() {
  if (api.maybeSignedIn()) await api.refresh();
  await render();
}

start();
