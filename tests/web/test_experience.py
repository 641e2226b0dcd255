"""Parley as a new user meets it, at a laptop's size (1280 by 800) and a phone's (390 by 844): the
thread follows a long streaming reply (and stops following when the user scrolls up), the phone
layout leaves the thread most of the screen, a failed first reply stays with Retry, the composer
clears on send, Esc stops a reply, files dropped or pasted are attached, copy buttons, shortcuts,
live titles, no stray `null` on any page, and axe-core finds nothing serious on any page.
Screenshots of every page at both sizes go to $TEST_ARTIFACTS/web/."""

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.support.fake_upstream import FakeUpstream
from tests.support.wait import wait_until
from tests.web.conftest import Browsing, Web, screenshot, sign_in

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")

# The thread's scroll position: how far its end is below what shows (0: at the end).
GAP = """() => {
  const s = document.querySelector(".thread-scroll");
  return { gap: s.scrollHeight - s.scrollTop - s.clientHeight, top: s.scrollTop,
           height: s.clientHeight, content: s.scrollHeight };
}"""

AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => {
      const where = v.nodes.map((n) => n.target.join(" ")).join(", ");
      return `${v.id} (${v.impact}): ${v.help} at ${where}`;
    });
}"""


async def check_page(page: Page, name: str) -> None:
    """No `null` in the text, no serious or critical axe-core finding; a screenshot."""
    text = await page.locator("body").inner_text()
    assert not re.search(r"\bnull\b", text), f"{name}: 'null' in the page:\n{text}"
    # Evaluated through the DevTools protocol, as a test harness does: not a script the page's
    # CSP would have to allow, and never served to users.
    if not await page.evaluate("() => typeof axe !== 'undefined'"):
        await page.evaluate(AXE)
    # Nothing wider than the window: the page never scrolls sideways.
    assert await page.evaluate("() => document.documentElement.scrollWidth <= innerWidth"), name
    violations = await page.evaluate(AXE_RUN)
    assert violations == [], f"{name}: " + "\n".join(violations)
    await screenshot(page, name)


async def at_end(page: Page) -> bool:
    position = await page.evaluate(GAP)
    return bool(position["gap"] < 60)


async def open_page(browsing: Browsing, size: str) -> Page:
    width, height = SIZES[size]
    page = await browsing.page(width=width, height=height)
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    return page


def composer(page: Page) -> Any:
    return page.get_by_label("Message", exact=True)


async def send(page: Page, text: str) -> None:
    await composer(page).fill(text)
    await page.get_by_role("button", name="Send").click()


@pytest.mark.parametrize("size", SIZES)
class TestEveryPage:
    async def test_no_null_no_serious_axe_finding_and_a_screenshot(
        self, browsing: Browsing, web: Web, size: str
    ) -> None:
        page = await open_page(browsing, size)
        for path, heading in (
            ("/signin", "Sign in"),
            ("/signup", "Create an account"),
            ("/forgot-password", "Reset your password"),
        ):
            await page.goto(path)
            await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            await check_page(page, f"page{path.replace('/', '-')}-{size}")

        user = await web.user()
        web.fake.state.tokens = [
            "## Plan\n\n| Day | Task |\n|---|---|\n| Mon | **Write** |\n| Tue | Test |\n\n",
            "- [x] outline\n- [ ] draft\n\n",
            '```python\ndef greet(name: str) -> str:\n    return f"Hello, {name}"\n```\n',
        ]
        chat = await web.http.post(
            "/api/chats/start",
            json={"content": "Show me a table and some code"},
            headers=user.headers,
        )
        chat_id = chat.json()["chat_id"]
        await sign_in(page, user.email)
        # A new user with no collections: the new-chat form has no stray `null`.
        await expect(composer(page)).to_be_enabled()
        await check_page(page, f"page-new-chat-{size}")
        await page.goto(f"/chats/{chat_id}")
        reply = page.locator(".message.assistant .content")
        await expect(reply.locator("table th")).to_have_count(2)
        await expect(reply.locator("pre .hljs-keyword").first).to_have_text("def")
        await check_page(page, f"page-chat-{size}")
        await reply.get_by_role("button", name="Copy code").click()
        copied = await page.evaluate("() => navigator.clipboard.readText()")
        assert copied.startswith("def greet(name: str)")
        for path, heading in (
            ("/email", "Email writer"),
            ("/knowledge", "Knowledge"),
            ("/usage", "Usage"),
            ("/account", "Account"),
        ):
            await page.goto(path)
            await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            await check_page(page, f"page{path.replace('/', '-')}-{size}")

        # Ctrl+Shift+O: a new chat, from any page.
        await page.locator("body").press("Control+Shift+O")
        await expect(page).to_have_url(re.compile(r"/$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text("New chat")

        # The shortcuts overlay, opened with "?" and closed with Esc.
        await expect(composer(page)).to_be_enabled()
        await page.locator("body").press("?")
        help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
        await expect(help_dialog).to_contain_text("New chat")
        await check_page(page, f"page-shortcuts-{size}")
        await page.keyboard.press("Escape")
        await expect(help_dialog).to_have_count(0)
        # "/" focuses the composer.
        await page.locator("h1").focus()
        await page.keyboard.press("/")
        await expect(composer(page)).to_be_focused()

        if size == "phone":
            # The chat list is a drawer: closed, it takes no room; opened, it lists the chat.
            drawer = page.locator("#chat-sidebar")
            await expect(drawer).to_be_hidden()
            await page.get_by_role("button", name="☰ Chats").click()
            await expect(drawer).to_be_visible()
            await expect(drawer.locator("a.chat-title")).to_have_count(1)
            await expect(drawer.locator("a.chat-title")).to_be_visible()
            await check_page(page, f"page-drawer-{size}")
            await page.keyboard.press("Escape")
            await expect(drawer).to_be_hidden()


@pytest.mark.parametrize("size", SIZES)
class TestLongReply:
    async def test_the_thread_follows_the_reply_unless_scrolled_up(
        self, browsing: Browsing, web: Web, fake: FakeUpstream, size: str
    ) -> None:
        user = await web.user()
        page = await open_page(browsing, size)
        await sign_in(page, user.email)
        fake.state.tokens = [f"Line {n} of a long answer.\n\n" for n in range(150)]
        fake.state.token_delay = 0.04
        await send(page, "Write me something long")
        # Cleared at once, while the reply streams.
        await expect(page.get_by_role("button", name="Stop")).to_be_visible()
        await expect(composer(page)).to_have_value("")
        live = page.locator(".streaming-text")
        await expect(live).to_contain_text("Line 25 ")
        position = await page.evaluate(GAP)
        assert position["content"] > position["height"], position  # it does overflow
        assert position["gap"] < 60, position  # and the end shows
        if size == "phone":
            # The thread has most of the screen while a reply streams.
            assert position["height"] >= 0.6 * SIZES[size][1], position

        # Scrolled up: the thread stays where the reader is, and offers a way back.
        await page.locator(".thread-scroll").evaluate("(s) => s.scrollTo({ top: 0 })")
        jump = page.get_by_role("button", name="Jump to latest")
        await expect(jump).to_be_visible()
        await expect(live).to_contain_text("Line 45 ")
        assert (await page.evaluate(GAP))["top"] == 0
        await jump.click()
        await expect(jump).to_be_hidden()
        await expect(live).to_contain_text("Line 60 ")
        assert (await page.evaluate(GAP))["gap"] < 60
        await screenshot(page, f"streaming-{size}")

        # The reply ends at the bottom of the screen, not below the fold.
        await expect(page.get_by_role("button", name="Send")).to_be_visible()
        reply = page.locator(".message.assistant").last
        await expect(reply.locator(".content")).to_contain_text("Line 149 of a long answer.")
        assert (await page.evaluate(GAP))["gap"] < 60
        # The generated title shows without a reload (the fake model titles it too).
        await expect(page.locator(".chat-head h1")).not_to_have_text("New chat")
        await expect(page.locator(".chat-head h1")).not_to_have_text("Untitled chat")

        # Opening the chat again starts at its end.
        await page.reload()
        await expect(reply.locator(".content")).to_contain_text("Line 149")
        await wait_until(lambda: at_end(page), timeout=10)

        # Copy buttons: the reply, and its text lands on the clipboard.
        await reply.get_by_role("button", name="Copy reply").click()
        copied = await page.evaluate("() => navigator.clipboard.readText()")
        assert copied.startswith("Line 0 of a long answer.")


@pytest.mark.parametrize("size", SIZES)
class TestFailedFirstReply:
    async def test_the_message_stays_with_a_plain_reason_and_retry(
        self, browsing: Browsing, web: Web, fake: FakeUpstream, size: str
    ) -> None:
        browsing.watch.allow(r"status of 50\d")
        user = await web.user()
        page = await open_page(browsing, size)
        await sign_in(page, user.email)
        fake.state.error_status = 500
        await send(page, "Please plan my week")
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("This reply failed")
        await expect(alert).to_contain_text("reference")
        await expect(page).to_have_url(re.compile(r"/chats/[0-9a-f-]{36}$"))
        await expect(page.locator(".message.user .content")).to_have_text("Please plan my week")
        body = await page.locator("body").inner_text()
        assert "Chat not found" not in body and "Errno" not in body
        # A failed first reply still names the chat, from the message.
        await expect(page.locator(".chat-head h1")).to_have_text("Please plan my week")
        await screenshot(page, f"failed-reply-{size}")

        # Still there after a reload, then retried.
        await page.reload()
        await expect(page.locator(".message.assistant")).to_contain_text("This reply failed")
        fake.state.error_status = None
        fake.state.tokens = ["Monday: ", "rest."]
        await page.get_by_role("button", name="Retry").click()
        await expect(page.locator(".message.assistant .content")).to_have_text("Monday: rest.")
        await expect(page.get_by_role("button", name="Retry")).to_have_count(0)
        await expect(page.get_by_role("button", name="Regenerate")).to_be_visible()


@pytest.mark.parametrize("size", SIZES)
class TestComposer:
    async def test_esc_stops_files_drop_and_paste_and_a_stopped_reply_gets_a_title(
        self, browsing: Browsing, web: Web, fake: FakeUpstream, size: str
    ) -> None:
        user = await web.user()
        page = await open_page(browsing, size)
        await sign_in(page, user.email)
        # Dropped on the composer, and pasted into it: both attach.
        await composer(page).evaluate(
            """(text) => {
              const type = { type: "text/markdown" };
              const file = (name) => new File(["# Notes\\n\\nSome notes."], name, type);
              const how = { bubbles: true, cancelable: true };
              const dropped = new DataTransfer();
              dropped.items.add(file("dropped.md"));
              text.form.dispatchEvent(new DragEvent("drop", { dataTransfer: dropped, ...how }));
              const pasted = new DataTransfer();
              pasted.items.add(file("pasted.md"));
              text.dispatchEvent(new ClipboardEvent("paste", { clipboardData: pasted, ...how }));
            }"""
        )
        chips = page.get_by_role("list", name="Attached files")
        await expect(chips.get_by_role("button", name="Remove dropped.md")).to_be_visible()
        await expect(chips.get_by_role("button", name="Remove pasted.md")).to_be_visible()

        fake.state.tokens = [f"word{n} " for n in range(200)]
        fake.state.token_delay = 0.03
        await send(page, "Tell me **everything** about `notes`")
        await expect(composer(page)).to_have_value("")
        await expect(page.locator(".streaming-text")).to_contain_text("word3 ")
        await page.keyboard.press("Escape")
        reply = page.locator(".message.assistant").last
        await expect(reply.locator(".status")).to_have_text("Stopped.")
        await expect(page.locator(".message.user .chip")).to_have_count(2)
        # A stopped first reply: the chat is named from the message, as plain text.
        await expect(page.locator(".chat-head h1")).to_have_text("Tell me everything about notes")
        sidebar_title = page.locator("#chat-sidebar .chat-title").first
        if size == "phone":
            await page.get_by_role("button", name="☰ Chats").click()
        await expect(sidebar_title).to_have_text("Tell me everything about notes")
        if size == "phone":
            await page.keyboard.press("Escape")

        # Esc cancels an edit.
        await page.locator(".message.user").get_by_role("button", name="Edit").click()
        await expect(page.get_by_label("Edited message")).to_be_focused()
        await page.keyboard.press("Escape")
        await expect(page.get_by_label("Edited message")).to_have_count(0)

        # A refused send gives the text back.
        browsing.watch.allow(r"status of 4(13|22)")
        long_text = "x" * 40_000
        await composer(page).fill(long_text)
        await page.get_by_role("button", name="Send").click()
        await expect(page.locator("#notice")).not_to_be_empty()
        await expect(composer(page)).to_have_value(long_text)
        await screenshot(page, f"composer-{size}")


class TestEmailWriterCopy:
    async def test_the_result_has_a_copy_button(
        self, browsing: Browsing, web: Web, fake: FakeUpstream
    ) -> None:
        user = await web.user()
        page = await open_page(browsing, "desktop")
        await sign_in(page, user.email)
        await page.get_by_role("link", name="Email writer").click()
        fake.state.tokens = ["Dear Sam,\n\n", "thank you."]
        await page.get_by_label("Purpose").fill("Thank Sam")
        await page.get_by_role("button", name="Write the email").click()
        await page.get_by_role("button", name="Copy the email").click()
        copied = await page.evaluate("() => navigator.clipboard.readText()")
        assert copied == "Dear Sam,\n\nthank you."
