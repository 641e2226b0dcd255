"""A new user's way through the web client, in Chromium: sign up, verify by the mailed link,
chat with replies streamed token by token, stop, regenerate and switch branches, reload in the
middle of a reply, the email writer, sign out."""

import re
from typing import Any

from playwright.async_api import Page, expect

from tests.support.api import PASSWORD
from tests.support.smtp_server import extract_url
from tests.web.conftest import (
    IMAGE_LOADED,
    Browsing,
    Web,
    screenshot,
    sign_in,
    signed_in_cookies,
)

RECORD_TEXT = """
() => {
  window.__seen = [];
  const thread = document.querySelector(".thread");
  new MutationObserver(() => {
    const live = thread.querySelector(".streaming-text");
    if (live && live.textContent !== window.__seen.at(-1)) window.__seen.push(live.textContent);
  }).observe(thread, { subtree: true, childList: true, characterData: true });
}
"""


async def send(page: Page, text: str) -> None:
    await page.get_by_label("Message", exact=True).fill(text)
    await page.get_by_role("button", name="Send").click()


def last_reply(page: Page) -> Any:
    return page.locator(".message.assistant").last


class TestFirstVisit:
    async def test_sign_up_verify_chat_and_sign_out(
        self, browsing: Browsing, web: Web, fake: Any
    ) -> None:
        page = await browsing.page()
        browsing.watch.allow(r"status of 422")  # the weak password, refused on purpose
        await page.goto("/")
        await expect(page).to_have_url(re.compile(r"/signin$"))
        await screenshot(page, "sign-in")
        await page.get_by_role("link", name="Create an account").click()
        await page.get_by_label("Email").fill("grace@example.com")
        await page.get_by_label("Display name").fill("Grace")
        await page.get_by_label("Password").fill("password1234")
        await page.get_by_role("button", name="Sign up").click()
        # The password checker's reason, tied to the field.
        feedback = page.locator(".field-error")
        await expect(feedback).to_contain_text("too easy to guess")
        await expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
        await screenshot(page, "sign-up")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign up").click()
        await expect(page.locator("#notice")).to_contain_text("grace@example.com")
        await signed_in_cookies(page)

        mail = await web.smtp.wait_for(to="grace@example.com")
        link = extract_url(mail.text)
        assert link.startswith(f"{web.base_url}/verify-email?token=")
        await page.goto(link)
        await expect(page.get_by_role("status")).to_contain_text("grace@example.com is verified")
        assert "token" not in page.url  # taken out of the address bar and the history

        # Tokens appear one by one as the upstream sends them, not all at once at the end.
        tokens = ["Here ", "is ", "`code` ", "and ", "<b>not bold</b> ", "[x](javascript:alert(1))"]
        fake.state.tokens = tokens
        fake.state.token_delay = 0.12
        await page.get_by_role("link", name="Continue").click()
        await page.evaluate(RECORD_TEXT)
        # Typed on the keyboard: Enter sends.
        composer = page.get_by_label("Message", exact=True)
        await expect(composer).to_be_enabled()
        await composer.focus()
        await page.keyboard.type("Hello there")
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"/chats/[0-9a-f-]{36}$"))
        reply = last_reply(page)
        await expect(reply.locator(".content code")).to_have_text("code")
        seen: list[str] = await page.evaluate("window.__seen")
        full = "".join(tokens)
        growing = [text for text in seen if text and full.startswith(text)]
        # Six tokens 120 ms apart: the text grew at least four times (two may share a read).
        assert len(set(growing)) >= len(tokens) - 2, seen
        assert growing == sorted(growing, key=len), seen
        # Rendered as text: the HTML stays text and the javascript: link is no link.
        await expect(reply.locator(".content")).to_contain_text("<b>not bold</b>")
        assert await reply.locator(".content b, .content a").count() == 0
        await expect(reply.locator(".content").locator("xpath=..")).to_have_attribute(
            "data-message-id", re.compile(".+")
        )
        await screenshot(page, "chat")

        await page.get_by_role("button", name="Sign out", exact=True).click()
        await expect(page).to_have_url(re.compile(r"/signin$"))
        await expect(page.locator("#notice")).to_contain_text("signed out")
        await page.goto("/usage")
        await expect(page).to_have_url(re.compile(r"/signin\?next=%2Fusage$"))


class TestReplies:
    async def test_stop_regenerate_and_switch_branches(
        self, browsing: Browsing, web: Web, fake: Any
    ) -> None:
        user = await web.user()
        page = await browsing.page()
        await sign_in(page, user.email)
        fake.state.tokens = [f"w{n} " for n in range(60)]
        fake.state.token_delay = 0.05
        await send(page, "Tell me a long story")
        reply = last_reply(page)
        await expect(reply.locator(".streaming-text")).to_contain_text("w3 ")
        await page.get_by_role("button", name="Stop").click()
        await expect(reply.locator(".status")).to_have_text("Stopped.")
        stopped = await reply.locator(".content").inner_text()
        assert stopped.startswith("w0 w1 w2 w3") and "w59" not in stopped

        fake.state.tokens = ["A ", "second ", "answer."]
        fake.state.token_delay = 0.0
        await page.get_by_role("button", name="Regenerate").click()
        await expect(last_reply(page).locator(".content")).to_have_text("A second answer.")
        await expect(last_reply(page).locator(".branch-count")).to_have_text("2 / 2")
        await page.get_by_role("button", name="Previous version").click()
        await expect(last_reply(page).locator(".branch-count")).to_have_text("1 / 2")
        await expect(last_reply(page).locator(".content")).to_contain_text("w0 w1 w2 w3")
        await page.get_by_role("button", name="Next version").click()
        await expect(last_reply(page).locator(".content")).to_have_text("A second answer.")

        # Editing a message makes a version of it, with its own reply.
        fake.state.tokens = ["Edited ", "reply."]
        await page.locator(".message.user").last.get_by_role("button", name="Edit").click()
        await page.get_by_label("Edited message").fill("Tell me a short story")
        await page.get_by_role("button", name="Save and send").click()
        await expect(last_reply(page).locator(".content")).to_have_text("Edited reply.")
        await expect(page.locator(".message.user .branch-count")).to_have_text("2 / 2")
        await screenshot(page, "branches")

        fake.state.tokens = ["A story ", "was **told**."]
        await page.get_by_role("button", name="Chat actions").click()
        await page.get_by_role("menuitem", name="Summarize").click()
        summary = page.get_by_role("region", name="Summary")
        await expect(summary.locator("strong")).to_have_text("told")
        await expect(summary).to_contain_text("A story was told.")

    async def test_reload_mid_reply_shows_the_saved_partial_then_rejoins(
        self, browsing: Browsing, web: Web, fake: Any
    ) -> None:
        user = await web.user()
        page = await browsing.page()
        await sign_in(page, user.email)
        tokens = [f"t{n} " for n in range(40)]
        fake.state.tokens = tokens
        fake.state.token_delay = 0.1
        await send(page, "Count slowly")
        await expect(last_reply(page).locator(".streaming-text")).to_contain_text("t5 ")
        await page.reload()
        reply = last_reply(page)
        # The saved partial at once; then the rejoined stream (Last-Event-ID) goes on to the end,
        # every token once, and the reply the server kept going is stored complete.
        await expect(reply.locator(".content")).to_contain_text("t0 t1 t2 t3 t4 t5")
        await expect(reply).to_have_class(re.compile(r"\bstatus-complete\b"), timeout=15_000)
        await expect(reply.locator(".content")).to_have_text("".join(tokens).strip())
        await expect(page.get_by_label("Message", exact=True)).to_be_enabled()
        replies = [r for r in fake.state.requests if r["messages"][-1]["content"] == "Count slowly"]
        assert len(replies) == 1  # rejoined, not generated again (the other request: the title)


class TestEmailWriter:
    async def test_writes_an_email_with_tone_and_length(
        self, browsing: Browsing, web: Web, fake: Any
    ) -> None:
        user = await web.user()
        page = await browsing.page()
        await sign_in(page, user.email)
        fake.state.tokens = ["Dear Sam,\n\n", "May I have ", "one more week?\n\n", "Ada"]
        fake.state.token_delay = 0.02
        await page.get_by_role("link", name="Email writer").click()
        await page.get_by_label("Purpose").fill("Ask for one more week")
        await page.get_by_label("Recipient").fill("Sam, my manager")
        await page.get_by_label("Key points").fill("the data came late\nthe draft is ready")
        await page.get_by_label("Tone").select_option("formal")
        await page.get_by_label("Length").select_option("short")
        await page.get_by_role("button", name="Write the email").click()
        await expect(page.locator("#email-output")).to_contain_text("May I have one more week?")
        await expect(page.get_by_role("status").filter(has_text="Done.")).to_be_visible()
        system = fake.state.requests[-1]["messages"][0]["content"]
        assert "Tone: formal. Length: under 100 words." in system  # short
        assert "the data came late" in system
        await expect(page.locator(".generations li")).to_have_count(1)
        await screenshot(page, "email-writer")


def png(width: int = 40, height: int = 30) -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


class TestImageMode:
    async def test_a_new_chat_in_the_image_mode_with_an_attached_picture(
        self, browsing: Browsing, web: Web, fake: Any
    ) -> None:
        user = await web.user()
        page = await browsing.page()
        await sign_in(page, user.email)
        fake.state.tokens = ["A ", "red ", "square."]
        await page.get_by_label("Mode", exact=True).select_option("image")
        await page.get_by_label("Task").select_option("describe")
        await page.locator("input[type=file]").set_input_files(
            {"name": "square.png", "mimeType": "image/png", "buffer": png()}
        )
        chip = page.get_by_role("list", name="Attached files").get_by_role("listitem")
        await expect(chip.get_by_role("button", name="Remove square.png")).to_be_visible()
        assert await chip.locator("img").evaluate("img => img.src.startsWith('blob:')")
        await send(page, "What is this?")
        await expect(last_reply(page).locator(".content")).to_have_text("A red square.")
        images = [part for part in fake.state.parts[0] if part.type == "image_url"]  # the reply
        assert len(images) == 1 and images[0].media_type == "image/png"
        thumbnail = page.locator(".message.user img.thumb")
        await expect(thumbnail).to_have_attribute("alt", "square.png")
        assert await thumbnail.evaluate(IMAGE_LOADED)
        await screenshot(page, "image-mode")
