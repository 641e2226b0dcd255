"""The client's own Markdown renderer and SSE parser, run in Chromium on inputs that matter:
markup and unsafe links from a model, and event streams cut at awkward places."""

import json
from typing import Any

from tests.web.conftest import Browsing

RENDER = """
async (source) => {
  const { renderMarkdown } = await import("/static/markdown.js");
  const box = document.createElement("div");
  box.append(renderMarkdown(source));
  const links = [...box.querySelectorAll("a")].map((a) => [a.textContent, a.getAttribute("href")]);
  return { html: box.innerHTML, text: box.textContent, links,
           tags: [...box.querySelectorAll("*")].map((el) => el.tagName.toLowerCase()) };
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
        assert "print('<b>hi</b>')" in code["text"]
        assert "&lt;b&gt;" in code["html"]  # text, escaped by the DOM, not an element

        blocks = await render(
            page,
            "# Title\n\n- **bold** and *em*\n- second\n  - nested\n\n1. one\n2. two\n\n> quoted",
        )
        assert blocks["tags"] == [
            "h3", "ul", "li", "strong", "em", "li", "ul", "li", "ol", "li", "li",
            "blockquote", "p",
        ]  # fmt: skip

        hostile = await render(
            page,
            '<img src=x onerror="alert(1)"> <script>alert(2)</script> '
            "[ok](https://example.org/a?b=1) [js](javascript:alert(3)) "
            "[data](data:text/html,hi) [rel](/api/auth/logout) [mail](mailto:a@example.org)",
        )
        assert set(hostile["tags"]) == {"p", "a"}
        assert hostile["links"] == [
            ["ok", "https://example.org/a?b=1"],
            ["mail", "mailto:a@example.org"],
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
