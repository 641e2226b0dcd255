// A small Markdown renderer that builds DOM nodes, never HTML strings: every piece of text enters
// the page as a text node, so nothing a model or user writes can become markup. Covers fenced and
// indented code blocks, inline code, headings, emphasis, lists, block quotes, rules and links
// (http, https and mailto only; others stay plain text).

const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);

export function safeHref(raw) {
  try {
    const url = new URL(raw, window.location.origin);
    if (!SAFE_SCHEMES.has(url.protocol)) return null;
    // Relative links would point into Parley itself: only absolute ones are kept.
    return /^(https?:|mailto:)/i.test(raw.trim()) ? url.href : null;
  } catch {
    return null;
  }
}

function el(tag, ...children) {
  const node = document.createElement(tag);
  for (const child of children) node.append(child);
  return node;
}

// Inline: `code`, **strong**, __strong__, *em*, _em_, [text](url).
export function renderInline(text) {
  const out = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push(document.createTextNode(plain));
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    let m;
    if ((m = /^(`+)([\s\S]*?[^`])\1(?!`)/.exec(rest))) {
      flush();
      out.push(el("code", m[2].replace(/^ (.*) $/, "$1")));
      i += m[0].length;
    } else if ((m = /^\[([^\]\n]+)\]\(\s*<?([^()\s<>]+)>?(?:\s+"[^"]*")?\s*\)/.exec(rest))) {
      flush();
      const href = safeHref(m[2]);
      if (href) {
        const a = el("a", ...renderInline(m[1]));
        a.href = href;
        a.rel = "noopener noreferrer nofollow";
        a.target = "_blank";
        out.push(a);
      } else {
        out.push(...renderInline(m[1]));
      }
      i += m[0].length;
    } else if ((m = /^(\*\*|__)(?=\S)([\s\S]*?\S)\1/.exec(rest))) {
      flush();
      out.push(el("strong", ...renderInline(m[2])));
      i += m[0].length;
    } else if ((m = /^(\*|_)(?=[^\s*_])([\s\S]*?[^\s\\])\1(?![*_\w])/.exec(rest)) &&
               !(m[1] === "_" && /\w/.test(text[i - 1] || ""))) {
      flush();
      out.push(el("em", ...renderInline(m[2])));
      i += m[0].length;
    } else if (rest[0] === "\\" && /^[\\`*_[\]()#+\-.!>]/.test(rest.slice(1))) {
      plain += rest[1];
      i += 2;
    } else {
      plain += rest[0];
      i += 1;
    }
  }
  flush();
  return out;
}

function paragraph(lines) {
  const p = document.createElement("p");
  lines.forEach((line, n) => {
    if (n) p.append(document.createElement("br"));
    p.append(...renderInline(line));
  });
  return p;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])\s+(.*)$/;

export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  renderBlocks(String(source ?? "").replace(/\r\n?/g, "\n").split("\n"), fragment, 0);
  return fragment;
}

function renderBlocks(lines, parent, depth) {
  let i = 0;
  let para = [];
  const endPara = () => {
    if (para.length) parent.append(paragraph(para));
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = FENCE.exec(line))) {
      endPara();
      const fence = m[1];
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trimStart().startsWith(fence)) body.push(lines[i++]);
      i += 1; // the closing fence (or the end: an unclosed block runs to the end, as it streams)
      const code = el("code", body.join("\n"));
      if (m[2]) code.className = `language-${m[2]}`;
      const pre = el("pre", code);
      if (m[2]) pre.dataset.lang = m[2];
      parent.append(pre);
    } else if (!line.trim()) {
      endPara();
      i += 1;
    } else if (!para.length && /^( {4}|\t)/.test(line)) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || !lines[i].trim())) {
        body.push(lines[i++].replace(/^( {4}|\t)/, ""));
      }
      while (body.length && !body[body.length - 1].trim()) body.pop();
      parent.append(el("pre", el("code", body.join("\n"))));
    } else if ((m = HEADING.exec(line))) {
      endPara();
      parent.append(el(`h${Math.min(6, m[1].length + 2)}`, ...renderInline(m[2])));
      i += 1;
    } else if (RULE.test(line)) {
      endPara();
      parent.append(document.createElement("hr"));
      i += 1;
    } else if (QUOTE.test(line)) {
      endPara();
      const body = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
        body.push(m[1]);
        i += 1;
      }
      const quote = document.createElement("blockquote");
      if (depth < 8) renderBlocks(body, quote, depth + 1);
      else quote.append(body.join("\n"));
      parent.append(quote);
    } else if ((m = ITEM.exec(line))) {
      endPara();
      const ordered = /\d/.test(m[2]);
      const list = document.createElement(ordered ? "ol" : "ul");
      if (ordered && parseInt(m[2], 10) !== 1) list.start = parseInt(m[2], 10);
      while (i < lines.length) {
        const item = ITEM.exec(lines[i]);
        if (!item || /\d/.test(item[2]) !== ordered) break;
        const indent = item[1].length + item[2].length + 1;
        const body = [item[3]];
        i += 1;
        // Continuation: indented lines (nested lists, code), or lazy text right after.
        while (i < lines.length) {
          const next = lines[i];
          if (!next.trim()) {
            if (i + 1 < lines.length && /^\s{2,}\S/.test(lines[i + 1])) {
              body.push("");
              i += 1;
              continue;
            }
            break;
          }
          if (/^\s{2,}/.test(next)) body.push(next.slice(Math.min(indent, next.search(/\S/))));
          else if (ITEM.exec(next) || FENCE.test(next) || HEADING.test(next)) break;
          else body.push(next);
          i += 1;
        }
        const li = document.createElement("li");
        if (depth < 8) {
          renderBlocks(body, li, depth + 1);
          // A single paragraph item renders without its <p>, as a tight list.
          if (li.childNodes.length && li.firstChild.nodeName === "P") li.firstChild.replaceWith(...li.firstChild.childNodes);
        } else {
          li.append(body.join("\n"));
        }
        list.append(li);
      }
      parent.append(list);
    } else {
      para.push(line);
      i += 1;
    }
  }
  endPara();
}
