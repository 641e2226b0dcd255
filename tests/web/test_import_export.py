"""Import and export on the account page: a ChatGPT export uploaded with its summary shown (one
conversation imported, one reported), the chat in the sidebar, and Export all downloading the
zip."""

import io
import json
import zipfile
from pathlib import Path

from playwright.async_api import expect

from tests.support.exports import ChatGPTConversation, chatgpt_trip
from tests.web.conftest import Browsing, Web, screenshot, sign_in


async def test_import_a_chatgpt_export_and_export_all(browsing: Browsing, web: Web) -> None:
    user = await web.user()
    page = await browsing.page()
    await sign_in(page, user.email)
    await page.get_by_role("link", name="Account").click()
    section = page.locator("section", has_text="Import and export")
    trip, _nodes = chatgpt_trip("Lisbon from ChatGPT")
    cyclic = ChatGPTConversation("Going round")
    first = cyclic.add("user", ["one"])
    second = cyclic.add("assistant", ["two"])
    cyclic.mapping[first]["parent"] = second
    await section.get_by_label("Export file").set_input_files(
        {
            "name": "conversations.json",
            "mimeType": "application/json",
            "buffer": json.dumps([trip, cyclic.export()]).encode(),
        }
    )
    await section.get_by_role("button", name="Import").click()
    summary = section.locator(".import-summary")
    await expect(summary).to_contain_text("From ChatGPT: 1 chat imported with 5 messages.")
    failures = section.get_by_role("list", name="Conversations not imported")
    await expect(failures.get_by_role("listitem")).to_have_text(
        ["#2 “Going round”: Its message tree has a cycle: 2 messages are their own ancestors."]
    )
    await screenshot(page, "import-summary")
    # A file of the wrong kind: the server's message, naming what it expects.
    browsing.watch.allow("status of 422")
    await section.get_by_label("Export file").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just notes"}
    )
    await section.get_by_role("button", name="Import").click()
    await expect(section.get_by_role("alert")).to_contain_text("Expected a conversations.json")

    await section.get_by_label("Include archived chats").check()
    link = section.get_by_role("link", name="Export all")
    await expect(link).to_have_attribute("href", "/api/chats/export?include=archived")
    async with page.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    assert download.suggested_filename.startswith("parley-export-")
    data = Path(await download.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        [json_name] = [name for name in names if name.endswith(".json")]
        assert json.loads(archive.read(json_name))["chat"]["title"] == "Lisbon from ChatGPT"
        assert any(name.endswith(".md") for name in names)

    await page.goto("/")
    await expect(page.get_by_role("link", name="Lisbon from ChatGPT")).to_be_visible()
