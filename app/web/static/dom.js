// Builds DOM nodes from data. Text always goes in as text nodes: nothing here parses HTML.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "on") {
      for (const [name, fn] of Object.entries(value)) el.addEventListener(name, fn);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" || key === "checked" || key === "selected") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let ids = 0;
export const uid = (prefix = "f") => `${prefix}-${++ids}`;

// A labelled form field: <label for> + control (+ optional hint, tied by aria-describedby).
export function field(label, control, hint) {
  control.id ||= uid();
  const wrap = h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  if (hint) {
    const hintEl = h("p", { class: "hint", id: uid("hint") }, hint);
    control.setAttribute("aria-describedby", hintEl.id);
    wrap.append(hintEl);
  }
  return wrap;
}

export function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

export function formatTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString();
}

/** A button copying `text()` to the clipboard; says "Copied" for a moment (and to screen readers). */
export function copyButton(text, label = "Copy", shown = "Copy") {
  const button = h("button", { type: "button", class: "small copy", "aria-label": label }, shown);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = shown; }, 1500);
  });
  return button;
}

/** When something happened, for a chat list: "Today", "Yesterday", "Previous 7 days", "Earlier". */
export function dayGroup(iso, now = new Date()) {
  const then = new Date(iso);
  const start = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((start(now) - start(then)) / 86_400_000);
  if (days <= 0) return "Today";
  if (days === 1) return "Yesterday";
  if (days < 7) return "Previous 7 days";
  return "Earlier";
}

/** "Chrome on Linux" from a User-Agent string (the common browsers and systems; else as sent). */
export function deviceName(ua) {
  if (!ua) return "Unknown device";
  const browser = [
    [/Edg(e|A|iOS)?\//, "Edge"], [/OPR\/|Opera/, "Opera"], [/Firefox\/|FxiOS/, "Firefox"],
    [/Chrome\/|CriOS|Chromium/, "Chrome"], [/Safari\//, "Safari"], [/curl\//, "curl"],
    [/python-httpx|python-requests|aiohttp/, "Python script"], [/HeadlessChrome/, "Chrome"],
  ].find(([re]) => re.test(ua))?.[1];
  const system = [
    [/Android/, "Android"], [/iPhone|iPad|iOS/, "iOS"], [/Windows/, "Windows"],
    [/Mac OS X|Macintosh/, "macOS"], [/CrOS/, "ChromeOS"], [/Linux/, "Linux"],
  ].find(([re]) => re.test(ua))?.[1];
  if (browser && system) return `${browser} on ${system}`;
  return browser || system || ua.slice(0, 60);
}
