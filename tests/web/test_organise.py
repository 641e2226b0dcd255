"""Projects, tags, share links and the prompt library in the browser: the project sidebar and
tag filter, the share dialog and the public read-only page (continued by a signed-in reader,
gone once revoked), and the prompt library with the composer's "/" command."""

from typing import Any

from playwright.async_api import Page, expect

from tests.support.api import SignedInUser
from tests.support.fake_upstream import FakeUpstream
from tests.web.conftest import Browsing, Web, screenshot, sign_in
from tests.web.test_experience import check_page


async def api_chat(web: Web, user: SignedInUser, **fields: Any) -> dict[str, Any]:
    response = await web.http.post("/api/chats", json=fields, headers=user.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def say(web: Web, user: SignedInUser, chat: dict[str, Any], text: str) -> None:
    response = await web.http.post(
        f"/api/chats/{chat['id']}/messages", json={"content": text}, headers=user.headers
    )
    assert response.status_code == 200, response.text


def sidebar(page: Page) -> Any:
    return page.locator("#chat-sidebar")


class TestProjectsAndTags:
    async def test_the_sidebar_shows_each_projects_chats_and_filters_by_tag(
        self, browsing: Browsing, web: Web
    ) -> None:
        user = await web.user()
        page = await browsing.page()
        await sign_in(page, user.email)

        await sidebar(page).get_by_role("button", name="New project").click()
        dialog = page.get_by_role("dialog", name="New project")
        await dialog.get_by_label("Name").fill("Thesis")
        await dialog.get_by_label("Instructions").fill("Answer as a statistics tutor.")
        await dialog.get_by_role("button", name="Create").click()
        project = await sidebar(page).get_by_role("button", name="Thesis").wait_for()
        del project
        [found] = (await web.http.get("/api/projects", headers=user.headers)).json()
        assert found["instructions"] == "Answer as a statistics tutor."

        await api_chat(web, user, title="Chapter one", project_id=found["id"], tags=["Draft"])
        await api_chat(web, user, title="Groceries", tags=["home"])
        await page.reload()
        chats = sidebar(page).locator(".chat-list")
        await expect(chats.get_by_role("link", name="Groceries")).to_be_visible()

        await sidebar(page).get_by_role("button", name="Thesis").click()
        await expect(chats.get_by_role("link", name="Chapter one")).to_be_visible()
        await expect(chats.get_by_role("link", name="Groceries")).to_have_count(0)
        await expect(sidebar(page).get_by_role("button", name="Thesis")).to_have_attribute(
            "aria-pressed", "true"
        )

        await sidebar(page).get_by_role("button", name="All chats").click()
        await sidebar(page).get_by_role("button", name="Show chats tagged home").click()
        await expect(chats.get_by_role("link", name="Groceries")).to_be_visible()
        await expect(chats.get_by_role("link", name="Chapter one")).to_have_count(0)
        await check_page(page, "projects-sidebar")


class TestShareLinks:
    async def test_share_read_continue_and_revoke(
        self, browsing: Browsing, web: Web, fake: FakeUpstream
    ) -> None:
        owner = await web.user()
        fake.state.tokens = ["**Bold** <img src=x onerror=alert(1)>"]
        chat = await api_chat(web, owner, title="Lisbon trip")
        await say(web, owner, chat, "Where to eat?")

        page = await browsing.page()
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await sign_in(page, owner.email)
        await page.goto(f"/chats/{chat['id']}")
        await page.get_by_role("button", name="Chat actions").click()
        await page.get_by_role("menuitem", name="Share…").click()
        dialog = page.get_by_role("dialog", name="Share this chat")
        await dialog.get_by_role("button", name="Create link").click()
        link = await dialog.get_by_label("Link", exact=True).input_value()
        assert f"{web.base_url}/s/" in link

        # A reader with no account.
        reader = await browsing.page()
        response = await reader.goto(link)
        assert response is not None
        assert response.headers["x-robots-tag"].startswith("noindex")
        await expect(reader.get_by_role("heading", name="Lisbon trip")).to_be_visible()
        await expect(reader.get_by_text("Where to eat?")).to_be_visible()
        await expect(reader.locator(".md strong")).to_have_text("Bold")
        assert await reader.locator(".shared-thread img").count() == 0  # made safe: no markup
        assert owner.email not in await reader.locator("body").inner_text()
        await expect(
            reader.get_by_role("link", name="Sign in to continue this chat")
        ).to_be_visible()
        await check_page(reader, "shared-page")

        # A signed-in reader continues it in a chat of their own.
        other = await web.user()
        continuing = await browsing.page()
        await sign_in(continuing, other.email)
        await continuing.goto(link)
        await continuing.get_by_role("button", name="Continue this chat").click()
        await continuing.wait_for_url("**/chats/*")
        await expect(continuing.get_by_text("Where to eat?")).to_be_visible()
        assert chat["id"] not in continuing.url

        # Revoked: the link stops working at once.
        await dialog.get_by_role("button", name="Revoke link").click()
        await expect(dialog.get_by_role("button", name="Create link")).to_be_visible()
        browsing.watch.allow(r"404")
        await reader.reload()
        await expect(reader.get_by_role("heading", name="Link not found")).to_be_visible()


class TestPromptLibrary:
    async def test_save_a_prompt_and_use_it_with_the_slash_command(
        self, browsing: Browsing, web: Web
    ) -> None:
        user = await web.user()
        page = await browsing.page()
        await sign_in(page, user.email)
        await page.get_by_role("link", name="Prompts").click()
        await page.get_by_label("Name").fill("Explain simply")
        await page.get_by_label("Command").fill("eli5")
        await page.get_by_label("Text").fill("Explain {{topic}} to a five-year-old.")
        await page.get_by_role("button", name="Save prompt").click()
        await expect(page.get_by_text("Asks for: topic")).to_be_visible()
        await check_page(page, "prompts-page")

        await page.get_by_role("link", name="Chats").click()
        composer = page.get_by_label("Message", exact=True)
        await composer.fill("/el")
        await expect(page.get_by_role("option", name="/eli5 Explain simply")).to_be_visible()
        await composer.press("Enter")
        dialog = page.get_by_role("dialog", name="/eli5: Explain simply")
        await dialog.get_by_label("topic").fill("rainbows")
        await dialog.get_by_role("button", name="Use prompt").click()
        await expect(composer).to_have_value("Explain rainbows to a five-year-old.")
        await screenshot(page, "prompt-filled")
