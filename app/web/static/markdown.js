// Replies as Markdown, with maintained libraries (vendored from npm by `make vendor`, see
// vendor/MANIFEST.json): markdown-it parses (CommonMark + GFM tables and strikethrough; task
// lists by a small rule below), highlight.js colours fenced code in a few languages, and DOMPurify
// turns the HTML into DOM nodes with anything unsafe removed. Raw HTML in a reply stays text
// (markdown-it's `html: false`), links work only for http:, https: and mailto:, images are not
// loaded (no request to another host), and headings start at level 3 under the page's own.

import MarkdownIt from "./vendor/markdown-it.js";
import DOMPurify from "./vendor/purify.js";
import hljs from "./vendor/highlight/core.js";
import bash from "./vendor/highlight/languages/bash.js";
import css from "./vendor/highlight/languages/css.js";
import diff from "./vendor/highlight/languages/diff.js";
import javascript from "./vendor/highlight/languages/javascript.js";
import json from "./vendor/highlight/languages/json.js";
import python from "./vendor/highlight/languages/python.js";
import sql from "./vendor/highlight/languages/sql.js";
import typescript from "./vendor/highlight/languages/typescript.js";
import xml from "./vendor/highlight/languages/xml.js";
import yaml from "./vendor/highlight/languages/yaml.js";
import { h, copyButton } from "./dom.js";

const LANGUAGES = { bash, css, diff, javascript, json, python, sql, typescript, xml, yaml };
for (const [name, grammar] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, grammar);
hljs.registerAliases(["sh", "shell", "zsh", "console"], { languageName: "bash" });
hljs.registerAliases(["html", "svg"], { languageName: "xml" });

const SAFE_LINK = /^(https?:|mailto:)/i;

export function safeHref(raw) {
  const href = String(raw || "").trim();
  return SAFE_LINK.test(href) ? href : null;
}

const md = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: false,
  highlight(code, lang) {
    const language = (lang || "").trim().toLowerCase();
    if (!language || !hljs.getLanguage(language)) return "";
    try {
      return hljs.highlight(code, { language, ignoreIllegals: true }).value;
    } catch {
      return "";
    }
  },
});
md.disable("image");
md.validateLink = (url) => SAFE_LINK.test(url.trim());

// Headings shift down two levels (# → h3): the page has its h1 and the chat its h2s.
md.core.ruler.push("shift_headings", (state) => {
  for (const token of state.tokens) {
    if (token.type === "heading_open" || token.type === "heading_close") {
      token.tag = `h${Math.min(6, Number(token.tag.slice(1)) + 2)}`;
    }
  }
});

// GFM task lists: "- [ ] todo" / "- [x] done" as a disabled checkbox.
md.core.ruler.push("task_lists", (state) => {
  const tokens = state.tokens;
  for (let i = 2; i < tokens.length; i++) {
    const inline = tokens[i];
    if (inline.type !== "inline" || tokens[i - 1].type !== "paragraph_open" || tokens[i - 2].type !== "list_item_open") continue;
    const first = inline.children?.[0];
    const match = first?.type === "text" && /^\[([ xX])\]\s+/.exec(first.content);
    if (!match) continue;
    first.content = first.content.slice(match[0].length);
    const box = new state.Token("html_inline", "", 0);
    box.content = `<input type="checkbox" disabled${match[1] === " " ? "" : " checked"} aria-label="${match[1] === " " ? "To do" : "Done"}"> `;
    inline.children.unshift(box);
    tokens[i - 2].attrJoin("class", "task");
  }
});

const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  FORBID_TAGS: ["style", "img", "form", "iframe"],
  FORBID_ATTR: ["style"],
  // DOMPurify's own pattern with only http(s) and mailto as schemes: it also judges plain
  // attribute values (type="checkbox"); links were already limited by markdown-it above.
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    if (!node.getAttribute("href")) {
      node.removeAttribute("href");
      return;
    }
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/** A reply's Markdown as DOM nodes (a <div class="md">), with a copy button on each code block. */
export function renderMarkdown(source) {
  const box = h("div", { class: "md" });
  box.append(DOMPurify.sanitize(md.render(String(source || "")), PURIFY));
  for (const pre of box.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    const lang = /language-(\S+)/.exec(code?.className || "")?.[1];
    const bar = h("div", { class: "code-bar" }, h("span", {}, lang || "code"),
      copyButton(() => code?.textContent || pre.textContent, "Copy code", "Copy"));
    const wrap = h("div", { class: "code-block" });
    pre.replaceWith(wrap);
    wrap.append(bar, pre);
  }
  for (const table of box.querySelectorAll("table")) {
    const wrap = h("div", { class: "table-wrap" });
    table.replaceWith(wrap);
    wrap.append(table);
  }
  return box;
}
