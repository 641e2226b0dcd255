"""API keys in the browser: created on the Account page, shown once with a copy button, used
by a program, listed, and revoked."""

import re

from playwright.async_api import expect

from tests.web.conftest import Browsing, Web, screenshot, sign_in


class TestApiKeys:
    async def test_create_copy_use_and_revoke_a_key(self, browsing: Browsing, web: Web) -> None:
        user = await web.user()
        page = await browsing.page()
        await sign_in(page, user.email)
        await page.get_by_role("link", name="Account").click()
        keys = page.get_by_role("list", name="API keys")
        await expect(keys).to_contain_text("No API keys yet.")
        section = page.locator("section", has_text="API keys")
        await section.get_by_label("Name").fill("laptop scripts")
        await section.get_by_label("My chats").check()
        await section.get_by_label("Requests per minute").fill("30")
        await section.get_by_role("button", name="Create key").click()

        shown = page.locator("#new-api-key")
        await expect(shown).to_have_text(re.compile(r"^pk-[A-Za-z0-9_-]{43}$"))
        key = (await shown.inner_text()).strip()
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.get_by_role("button", name="Copy API key").click()
        assert await page.evaluate("() => navigator.clipboard.readText()") == key
        item = keys.get_by_role("listitem").filter(has_text="laptop scripts")
        await expect(item).to_contain_text(f"pk-…{key[-4:]}")
        await expect(item).to_contain_text("chats")
        await expect(item).to_contain_text("30 requests a minute")
        await screenshot(page, "account-api-keys")
        # The key works for a program, and cannot reach the account.
        chats = await web.http.get("/api/chats", headers={"Authorization": f"Bearer {key}"})
        assert chats.status_code == 200, chats.text
        account = await web.http.get("/api/users/me", headers={"Authorization": f"Bearer {key}"})
        assert account.status_code == 403

        await page.get_by_role("button", name="Done").click()
        await expect(shown).to_have_count(0)
        await page.get_by_role("button", name="Revoke API key laptop scripts").click()
        await page.get_by_role("button", name="Revoke key").click()
        await expect(keys).to_contain_text("No API keys yet.")
        refused = await web.http.get("/api/chats", headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 401
