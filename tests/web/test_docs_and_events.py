"""Swagger UI works offline in the browser (Authorize with the password flow included); the
Knowledge page feeds a chat whose replies cite their sources, live and saved; a reply the output
guardrails stop shows as blocked without ever showing the blocked word."""

import re

from playwright.async_api import FilePayload, expect

from tests.support.fake_upstream import FakeUpstream
from tests.support.wait import wait_until
from tests.web.conftest import BLOCKED_WORD, Browsing, Web, screenshot, sign_in


class TestSwaggerOffline:
    async def test_docs_list_operations_and_authorize_with_the_password_flow(
        self, browsing: Browsing, web: Web
    ) -> None:
        user = await web.user()
        # A request to any other host fails the test (conftest): the page works offline.
        page = await browsing.page()
        await page.goto("/docs")
        me = page.locator(".opblock", has=page.locator('[data-path="/api/auth/me"]'))
        await expect(me).to_have_count(1)
        assert await page.locator(".opblock").count() > 40  # every operation is listed
        await page.locator("button.authorize").first.click()
        await page.locator("#oauth_username").fill(user.email)
        await page.locator("#oauth_password").fill(user.password)
        await page.locator(".auth-btn-wrapper button.authorize").click()
        await expect(page.get_by_role("heading", name="Authorized")).to_be_visible()
        await expect(page.get_by_role("button", name="Remove authorization")).to_be_visible()
        await page.get_by_role("button", name="Close").click()
        await me.locator(".opblock-summary").click()
        await me.get_by_role("button", name="Try it out").click()
        await me.get_by_role("button", name="Execute").click()
        response = me.locator(".live-responses-table .response")
        await expect(response.locator(".response-col_status")).to_have_text("200")
        await expect(response.locator(".response-col_description")).to_contain_text(user.email)
        await screenshot(page, "docs")


HANDBOOK = b"""# Leave policy

Staff may carry five days of annual leave over into the next year. Carried days lapse at the
end of March.

# Expenses

Receipts are needed for every claim above ten euros.
"""


class TestKnowledge:
    async def test_a_collection_feeds_a_chat_and_its_replies_cite_the_document(
        self, browsing: Browsing, web: Web
    ) -> None:
        user = await web.user()
        page = await browsing.page()
        await sign_in(page, user.email)
        await page.get_by_role("link", name="Knowledge").click()
        await expect(page.get_by_role("heading", name="Knowledge", level=1)).to_be_focused()

        await page.get_by_label("New collection").fill("Handbook <b>2026</b>")
        await page.get_by_role("button", name="Create").click()
        card = page.get_by_role("region", name="Handbook <b>2026</b>")
        await expect(card).to_contain_text("No files yet")
        await card.get_by_label("Upload documents").set_input_files(
            files=[FilePayload(name="leave.md", mimeType="text/markdown", buffer=HANDBOOK)]
        )
        # queued → processing → ready, refreshed by the page until settled.
        files = card.get_by_role("list", name="Files in Handbook <b>2026</b>")
        await expect(files.locator(".kb-file")).to_have_count(1)
        await expect(files).to_contain_text(re.compile(r"leave\.md\s+ready · \d+ chunks?"))

        await card.get_by_label("Search Handbook <b>2026</b>").fill("carry annual leave")
        await card.get_by_role("button", name="Search").click()
        hits = card.get_by_role("list", name="Search results in Handbook <b>2026</b>")
        await expect(hits.locator("li").first).to_contain_text("leave.md (Leave policy)")
        # The fused rank score (about 0.016 for every hit) means nothing to a person.
        await expect(hits.locator("li").first).not_to_contain_text("score")
        await screenshot(page, "knowledge")

        # A new chat with the collection picked: the reply cites the document as it streams.
        await page.get_by_role("link", name="Chats").click()
        await page.get_by_label("Handbook <b>2026</b>").check()
        await page.get_by_label("Message", exact=True).fill("How many leave days carry over?")
        await page.get_by_role("button", name="Send").click()
        sources = page.get_by_role("region", name="Sources")
        await expect(sources).to_have_count(1)
        await expect(sources).to_contain_text("leave.md (Leave policy)")
        await expect(sources.locator("blockquote").first).to_contain_text("carry five days")
        await expect(page).to_have_url(re.compile(r"/chats/[0-9a-f-]{36}$"))
        await expect(page.get_by_role("button", name="Send")).to_be_visible()
        await expect(sources).to_have_count(1)  # the saved reply's, not a second copy

        # Saved with the reply: the same citations after a reload, and the chat keeps the pick.
        await page.reload()
        await expect(sources).to_contain_text("leave.md (Leave policy)")
        await expect(sources.locator("blockquote").first).to_contain_text("carry five days")
        picked = page.get_by_label("Handbook <b>2026</b>")
        await expect(picked).to_be_checked()
        chat_id = page.url.rsplit("/", 1)[1]
        await picked.uncheck()

        async def cleared() -> bool:
            chat = await web.http.get(f"/api/chats/{chat_id}", headers=user.headers)
            return chat.json()["collection_ids"] == []

        await wait_until(cleared, timeout=5)
        await screenshot(page, "chat-sources")

        # Back on the Knowledge page: remove the file, rename, then delete the collection.
        await page.get_by_role("link", name="Knowledge").click()
        await card.get_by_role("button", name="Remove leave.md").click()
        await expect(card).to_contain_text("No files yet")
        await card.get_by_role("button", name="Rename").click()
        rename = page.get_by_role("dialog", name="Rename the collection")
        await rename.get_by_label("Name").fill("Policies")
        await rename.get_by_role("button", name="Rename").click()
        renamed = page.get_by_role("region", name="Policies")
        await expect(renamed).to_be_visible()
        await renamed.get_by_role("button", name="Delete Policies").click()
        await (
            page.get_by_role("dialog", name="Delete the collection?")
            .get_by_role("button", name="Delete")
            .click()
        )
        await expect(page.get_by_text("No collections yet.")).to_be_visible()


class TestBlockedReply:
    async def test_a_reply_stopped_by_the_output_check_never_shows_the_word(
        self, browsing: Browsing, web: Web, fake: FakeUpstream
    ) -> None:
        user = await web.user()
        fake.state.tokens = ["1. Is ", "the ", f"{BLOCKED_WORD} ", "real?\n", "2. Where ", "now?"]
        # In a chat of its own (the similar-questions mode, where the output check runs).
        created = await web.http.post(
            "/api/chats", json={"mode": "similar_questions"}, headers=user.headers
        )
        page = await browsing.page()
        await sign_in(page, user.email)
        await page.goto(f"/chats/{created.json()['id']}")
        await page.get_by_label("Message", exact=True).fill("Is the creature real?")
        await page.get_by_role("button", name="Send").click()
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("blocked by the content policy")
        await expect(page.get_by_role("button", name="Send")).to_be_visible()
        await expect(page.locator("body")).not_to_contain_text(BLOCKED_WORD)
        await page.reload()
        reply = page.locator(".message.assistant")
        await expect(reply).to_contain_text("blocked by the content policy")
        await expect(page.locator("body")).not_to_contain_text(BLOCKED_WORD)
