"""Swagger UI works offline in the browser (Authorize with the password flow included), and the
client handles the reply events other features add: `sources`, `content_blocked`, unknown ones."""

import json
import re
from typing import Any

from playwright.async_api import Route, expect

from tests.web.conftest import Browsing, Web, screenshot, sign_in


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


def canned_reply(chat_id: str) -> str:
    """A reply as the features being added will stream it (an `id:` on each event, a `sources`
    event, an event this client does not know, a reply blocked by the guardrails)."""
    assistant = "7b0c3c8e-7f0e-4c55-9d2a-2f6e0f0f0a01"
    events: list[tuple[str, Any]] = [
        ("start", {"chat_id": chat_id, "assistant_message_id": assistant, "model": "fake"}),
        (
            "sources",
            [
                {
                    "file_name": "handbook.pdf",
                    "page": 12,
                    "section": "Leave",
                    "score": 0.87,
                    "snippet": "Staff may carry <em>five</em> days over.",
                }
            ],
        ),
        ("mystery", {"anything": True}),
        ("delta", {"content": "You may carry "}),
        ("error", {"code": "content_blocked", "message": "It named a colleague's salary."}),
    ]
    return "".join(
        f"id: {n}\nevent: {name}\ndata: {json.dumps(data)}\n\n"
        for n, (name, data) in enumerate(events, start=1)
    )


class TestReplyEvents:
    async def test_sources_unknown_events_and_a_blocked_reply(
        self, browsing: Browsing, web: Web
    ) -> None:
        user = await web.user()
        created = await web.http.post("/api/chats", json={"title": "Leave"}, headers=user.headers)
        chat_id = created.json()["id"]
        page = await browsing.page()
        await sign_in(page, user.email)

        # Parley emits `sources` and `content_blocked` once retrieval and guardrails land; this
        # one answer is canned in the browser so the client's handling is tested now.
        async def reply(route: Route) -> None:
            if route.request.method != "POST":
                await route.continue_()
                return
            await route.fulfill(
                status=200,
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                body=canned_reply(chat_id),
            )

        await page.route(re.compile(rf"/api/chats/{chat_id}/messages$"), reply)
        await page.goto(f"/chats/{chat_id}")
        await page.get_by_label("Message", exact=True).fill("How many days carry over?")
        await page.get_by_role("button", name="Send").click()
        sources = page.get_by_role("region", name="Sources")
        await expect(sources).to_contain_text("handbook.pdf (page 12, Leave)")
        await expect(sources).to_contain_text("score 0.87")
        await expect(sources.locator("blockquote")).to_have_text(
            "Staff may carry <em>five</em> days over."
        )
        await expect(page.get_by_role("alert")).to_contain_text("blocked by the content policy")
        await expect(page.locator(".message.assistant .content")).to_contain_text("You may carry")
        await expect(page.get_by_role("button", name="Send")).to_be_visible()
