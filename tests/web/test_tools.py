"""Tools in the web client: picked per chat, a call waiting for approval answered with its
buttons, the call shown folded with its arguments and result, live and after a reload."""

import re

from playwright.async_api import expect

from tests.support.fake_upstream import FakeUpstream
from tests.web.conftest import Browsing, Web, screenshot, sign_in


class TestTools:
    async def test_pick_a_tool_approve_its_call_and_see_it_folded(
        self, browsing: Browsing, web: Web, fake: FakeUpstream
    ) -> None:
        user = await web.user()
        page = await browsing.page()
        await sign_in(page, user.email)
        fake.state.turns = [
            {
                "tokens": ["Adding. "],
                "tool_calls": [{"id": "c1", "name": "add", "arguments": ['{"a": 2,', ' "b": 3}']}],
            },
            {"tokens": ["The sum is 5."]},
        ]
        tools = page.get_by_role("group", name="Tools")
        await tools.get_by_label(re.compile(r"^ add")).check()
        await page.get_by_label("Message", exact=True).fill("What is 2 + 3?")
        await page.get_by_role("button", name="Send").click()

        waiting = page.get_by_role("group", name="Run add?")
        await expect(waiting).to_contain_text("The assistant wants to run add.")
        await expect(page.get_by_role("button", name="Approve")).to_be_focused()
        await screenshot(page, "tool-approval")
        await waiting.get_by_role("button", name="Approve").click()

        calls = page.get_by_role("region", name="Tool calls")
        await expect(calls.locator("summary")).to_have_text(re.compile(r"add\s+done"))
        await expect(page.locator(".message.assistant").last).to_contain_text("The sum is 5.")
        await expect(page).to_have_url(re.compile(r"/chats/[0-9a-f-]{36}$"))
        await expect(page.get_by_role("button", name="Send")).to_be_visible()

        # Saved with the reply: folded after a reload, its arguments and result inside.
        await page.reload()
        step = page.get_by_role("region", name="Tool calls").locator("details")
        await expect(step).not_to_have_attribute("open", "")
        await step.locator("summary").click()
        await expect(step.locator(".tool-arguments")).to_have_text('{"a": 2, "b": 3}')
        await expect(step.locator(".tool-result")).to_have_text("5")
        # The chat's header folds its tools behind a button with the count picked.
        await page.get_by_text("Tools · 1").click()
        await expect(
            page.get_by_role("group", name="Tools").get_by_label(re.compile(r"^ add"))
        ).to_be_checked()
        await screenshot(page, "tool-steps")
