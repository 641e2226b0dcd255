"""The client's Markdown rendering (markdown-it, highlight.js, DOMPurify) and its SSE parser, run in
Chromium on inputs that matter: markup and unsafe links from a model, and event streams cut at
awkward places."""

import json
from typing import Any

from tests.web.conftest import Browsing

RENDER = """
async (source) => {
  const { renderMarkdown } = await import("/static/markdown.js");
  const box = document.createElement("div");
  box.append(renderMarkdown(source));
  const links = [...box.querySelectorAll("a")]
    .map((a) => [a.textContent, a.getAttribute("href"), a.rel]);
  // The renderer's own wrappers (code block bars, copy buttons, highlight spans) left out.
  const tags = [...box.querySelectorAll("*")].map((el) => el.tagName.toLowerCase())
    .filter((t) => !["div", "span", "button"].includes(t));
  const code = box.querySelector("pre")?.cloneNode(true);
  return { html: box.innerHTML, text: box.textContent, links, tags, code: code?.textContent || null,
           highlighted: box.querySelectorAll("pre [class^=hljs-]").length,
           copy: [...box.querySelectorAll("button")].map((b) => b.getAttribute("aria-label")),
           boxes: [...box.querySelectorAll("input")].map((i) => [i.type, i.checked, i.disabled]) };
}
"""

PARSE = """
async (chunks) => {
  const { readEvents } = await import("/static/sse.js");
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
  const events = [];
  for await (const event of readEvents(body)) events.push(event);
  return events;
}
"""


async def render(page: Any, source: str) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(RENDER, source)
    return result


class TestMarkdown:
    async def test_renders_the_usual_blocks_and_never_markup_or_unsafe_links(
        self, browsing: Browsing
    ) -> None:
        page = await browsing.page()
        await page.goto("/signin")

        code = await render(page, "Run:\n\n```python\nprint('<b>hi</b>')\n```\nand `x < 1`.")
        assert code["tags"] == ["p", "pre", "code", "p", "code"]
        assert code["code"] == "print('<b>hi</b>')\n"
        assert "&lt;b&gt;" in code["html"]  # text, escaped by the DOM, not an element
        assert code["highlighted"] > 0  # highlight.js coloured it
        assert code["copy"] == ["Copy code"]

        blocks = await render(
            page,
            "# Title\n\n- **bold** and *em*\n- second\n  - nested\n\n1. one\n2. two\n\n> quoted",
        )
        assert blocks["tags"] == [
            "h3", "ul", "li", "strong", "em", "li", "ul", "li", "ol", "li", "li",
            "blockquote", "p",
        ]  # fmt: skip

        gfm = await render(page, "| a | b |\n|---|---|\n| 1 | 2 |\n\n- [ ] todo\n- [x] done")
        assert gfm["tags"][:9] == ["table", "thead", "tr", "th", "th", "tbody", "tr", "td", "td"]
        assert gfm["boxes"] == [["checkbox", False, True], ["checkbox", True, True]]
        assert "[ ]" not in gfm["text"] and "todo" in gfm["text"]

        hostile = await render(
            page,
            '<img src=x onerror="alert(1)"> <script>alert(2)</script> '
            "[ok](https://example.org/a?b=1) [js](javascript:alert(3)) "
            "[data](data:text/html,hi) [rel](/api/auth/logout) [mail](mailto:a@example.org) "
            "![pic](https://example.org/x.png)",
        )
        assert set(hostile["tags"]) == {"p", "a"}
        assert hostile["links"] == [
            ["ok", "https://example.org/a?b=1", "noopener noreferrer"],
            ["mail", "mailto:a@example.org", "noopener noreferrer"],
            ["pic", "https://example.org/x.png", "noopener noreferrer"],  # a link, never loaded
        ]
        assert "<img src=x" in hostile["text"] and "<script>" in hostile["text"]

        # A fence still open (a reply being streamed) runs to the end, as code.
        unclosed = await render(page, "```\nline one\nline two")
        assert unclosed["tags"] == ["pre", "code"] and "line two" in unclosed["text"]


class TestSSEParser:
    async def test_events_split_across_chunks_and_every_line_ending(
        self, browsing: Browsing
    ) -> None:
        page = await browsing.page()
        await page.goto("/signin")
        stream = (
            ": ping - 2026-11-29 10:00:00\r\n\r\n"
            'id: 1\r\nevent: start\r\ndata: {"chat_id": "c"}\r\n\r\n'
            'event: delta\rdata: {"content": "a"}\r\r'
            'id: 3\nevent: delta\ndata: {"content":\ndata: "b"}\n\n'
            "event: mystery\ndata: x\n\n"
            "event: empty\n\n"
            'data: {"no": "name"}\n\n'
            'event: done\ndata: {"status": "complete"}'  # no blank line: never dispatched
        )
        # Cut into 3-byte pieces, so \r\n pairs, field names and data lines all break apart.
        chunks = [stream[i : i + 3] for i in range(0, len(stream), 3)]
        events = await page.evaluate(PARSE, chunks)
        assert [(e["event"], e["id"]) for e in events] == [
            ("start", "1"),
            ("delta", "1"),
            ("delta", "3"),
            ("mystery", "3"),
            ("message", "3"),
        ]
        assert json.loads(events[2]["data"]) == {"content": "b"}
        assert events[2]["data"] == '{"content":\n"b"}'
