"""The account in the browser: two-step sign-in set up from the QR page and used to sign in,
a session revoked from another browser, the chat list's pin, archive, trash and restore."""

import re
import time
from pathlib import Path

import pyotp
from playwright.async_api import expect

from tests.support.smtp_server import extract_url
from tests.web.conftest import IMAGE_LOADED, Browsing, Web, chat_action, screenshot, sign_in


class TestTwoStepSignIn:
    async def test_enrol_with_the_qr_page_then_sign_in_with_a_code(
        self, browsing: Browsing, web: Web
    ) -> None:
        user = await web.user()
        page = await browsing.page()
        await sign_in(page, user.email)
        await page.get_by_role("link", name="Account").click()
        await page.get_by_role("button", name="Set up two-step sign-in").click()
        qr = page.get_by_role("img", name="QR code for your authenticator app")
        await expect(qr).to_be_visible()
        assert await qr.evaluate(IMAGE_LOADED)
        secret = (await page.locator("#mfa-secret").inner_text()).strip()
        totp = pyotp.TOTP(secret)
        await page.get_by_label("Code from the app").fill(totp.now())
        await (
            page.locator("section", has_text="Two-step sign-in")
            .get_by_label("Password")
            .fill(user.password)
        )
        await page.get_by_role("button", name="Turn on").click()
        codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
        await expect(codes).to_have_count(10)
        recovery_code = (await codes.first.inner_text()).strip()
        # The codes can be copied and downloaded (a text file made in the page).
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.get_by_role("button", name="Copy recovery codes").click()
        copied = await page.evaluate("() => navigator.clipboard.readText()")
        assert recovery_code in copied and copied.count("\n") >= 10
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name="Download").click()
        download = await download_info.value
        assert download.suggested_filename == "parley-recovery-codes.txt"
        saved = Path(await download.path()).read_text()
        assert recovery_code in saved
        # Turning it on signed the other session (the API's) out.
        devices = page.get_by_role("list", name="Signed-in devices").get_by_role("listitem")
        await expect(devices).to_have_count(1)
        await screenshot(page, "account-mfa")
        await page.get_by_role("button", name="I have saved them").click()

        await page.get_by_role("button", name="Sign out", exact=True).click()
        # By keyboard alone: the page's heading has the focus, Tab goes through the form.
        await expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("Email")).to_be_focused()
        await page.keyboard.type(user.email)
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("Password")).to_be_focused()
        await page.keyboard.type(user.password)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Two-step sign-in")).to_be_visible()
        await expect(page.get_by_label("Code")).to_be_focused()
        # The code of the next time step: the one used to enable cannot be replayed.
        await page.keyboard.type(totp.at(time.time() + 30))
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("link", name="Account")).to_be_visible()
        await expect(page).to_have_url(re.compile(r"/$"))

        # A recovery code works in place of the app's code (once).
        await page.get_by_role("button", name="Sign out", exact=True).click()
        await page.get_by_label("Email").fill(user.email)
        await page.get_by_label("Password").fill(user.password)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_label("Code").fill(recovery_code.lower())
        await page.get_by_role("button", name="Verify").click()
        await expect(page.get_by_role("link", name="Account")).to_be_visible()


class TestSessions:
    async def test_a_session_revoked_from_another_browser_is_signed_out(
        self, browsing: Browsing, web: Web
    ) -> None:
        # The revoked browser's next calls are refused (401) before it signs itself out.
        browsing.watch.allow(r"status of 401")
        user = await web.user()
        laptop = await browsing.page()
        await sign_in(laptop, user.email)
        phone = await browsing.page(width=390, height=844)
        await sign_in(phone, user.email)
        await phone.get_by_role("link", name="Account").click()
        sessions = phone.get_by_role("list", name="Signed-in devices").get_by_role("listitem")
        await expect(sessions).to_have_count(3)  # the API's, the laptop's, the phone's
        # Named as people name them, not as raw User-Agent strings.
        await expect(sessions.filter(has_text="this device")).to_contain_text("Chrome on Linux")
        await expect(sessions.filter(has_text="Python script")).to_have_count(1)
        assert "Mozilla/5.0" not in await sessions.first.inner_text()
        await screenshot(phone, "account-phone")
        revoke = phone.get_by_role("button", name=re.compile("^Revoke session"))
        while left := await sessions.count() - 1:
            await revoke.first.click()
            await expect(sessions).to_have_count(left)  # counted before the click
        await expect(sessions).to_have_count(1)

        await laptop.get_by_role("link", name="Usage").click()
        await expect(laptop).to_have_url(re.compile(r"/signin$"))
        await expect(laptop.locator("#notice")).to_contain_text("session has ended")
        # The phone is still signed in, and its pages fit its width.
        await phone.get_by_role("link", name="Chats").click()
        await expect(phone.get_by_label("Message", exact=True)).to_be_enabled()
        assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await screenshot(phone, "chat-phone")


class TestChatList:
    async def test_search_pin_archive_trash_restore_and_delete_forever(
        self, browsing: Browsing, web: Web
    ) -> None:
        user = await web.user()
        for title in ("Trip to Lisbon", "Budget 2027", "Garden plans"):
            response = await web.http.post(
                "/api/chats", json={"title": title}, headers=user.headers
            )
            assert response.status_code == 201
        page = await browsing.page()
        await sign_in(page, user.email)
        chats = page.locator("#chat-sidebar .chat-list > li")
        await expect(chats).to_have_count(3)
        await expect(page.get_by_role("heading", name="Today")).to_be_visible()

        await chat_action(page, "Budget 2027", "Pin")
        await expect(page.get_by_role("heading", name="Pinned")).to_be_visible()
        await expect(chats.first).to_contain_text("Budget 2027")
        await page.get_by_label("Search chats").fill("lisb")
        await expect(chats).to_have_count(1)
        await expect(chats.first).to_contain_text("Trip to Lisbon")
        await page.get_by_label("Search chats").fill("nothing like it")
        await expect(page.locator("#chat-sidebar .empty")).to_have_text(
            "No chats match “nothing like it”."
        )
        await page.get_by_label("Search chats").fill("")
        await expect(chats).to_have_count(3)

        # Rename inline: Esc cancels, Enter saves.
        await chat_action(page, "Garden plans", "Rename")
        await page.get_by_label("Chat title").fill("Not this")
        await page.keyboard.press("Escape")
        await expect(chats.filter(has_text="Garden plans")).to_have_count(1)
        await chat_action(page, "Garden plans", "Rename")
        await page.get_by_label("Chat title").fill("Garden plans 2027")
        await page.keyboard.press("Enter")
        await expect(chats.filter(has_text="Garden plans 2027")).to_have_count(1)

        await chat_action(page, "Garden plans 2027", "Archive")
        await expect(chats).to_have_count(2)
        await page.get_by_label("Show").select_option("archived")
        await expect(chats).to_have_count(1)
        await expect(chats.first).to_contain_text("Garden plans 2027")

        # Trash the open chat: the page leaves it, and Undo brings it back.
        await page.get_by_label("Show").select_option("active")
        await page.get_by_role("link", name="Trip to Lisbon").click()
        await expect(page).to_have_url(re.compile(r"/chats/"))
        await chat_action(page, "Trip to Lisbon", "Move to trash")
        await expect(page).to_have_url(re.compile(r"/$"))
        toast = page.locator("#toasts .toast", has_text="Moved “Trip to Lisbon” to the trash.")
        await expect(toast).to_be_visible()
        await toast.get_by_role("button", name="Undo").click()
        await expect(page).to_have_url(re.compile(r"/chats/"))
        await expect(page.get_by_role("heading", name="Trip to Lisbon", level=1)).to_be_visible()

        await chat_action(page, "Budget 2027", "Move to trash")
        await page.get_by_label("Show").select_option("trashed")
        await expect(chats).to_have_count(1)
        await screenshot(page, "trash")
        # Delete forever asks in a modal dialog: Cancel keeps the chat.
        await chat_action(page, "Budget 2027", "Delete forever")
        dialog = page.get_by_role("dialog", name="Delete forever?")
        await expect(dialog).to_be_visible()
        await dialog.get_by_role("button", name="Cancel").click()
        await expect(dialog).to_have_count(0)
        await expect(chats).to_have_count(1)
        await chat_action(page, "Budget 2027", "Delete forever")
        await page.get_by_role("dialog").get_by_role("button", name="Delete forever").click()
        await expect(page.locator("#toasts")).to_contain_text("forever")
        await expect(page.locator("#chat-sidebar .empty")).to_have_text("The trash is empty.")
        listed = await web.http.get("/api/chats?trashed=true", headers=user.headers)
        assert listed.json()["items"] == []
        remaining = await web.http.get("/api/chats", headers=user.headers)
        assert [c["title"] for c in remaining.json()["items"]] == ["Trip to Lisbon"]


class TestProfile:
    async def test_preferences_password_usage_and_deleting_the_account(
        self, browsing: Browsing, web: Web
    ) -> None:
        # The wrong current password and the weak new one, refused on purpose.
        browsing.watch.allow(r"status of 4(03|22)")
        user = await web.user()
        chat = await web.http.post("/api/chats/start", json={"content": "Hi"}, headers=user.headers)
        assert chat.status_code == 200
        page = await browsing.page()
        await sign_in(page, user.email)

        await page.get_by_role("link", name="Usage").click()
        today = page.get_by_role("table").get_by_role("row").nth(1)
        await expect(today).to_contain_text(time.strftime("%Y-%m-%d", time.gmtime()))
        await screenshot(page, "usage")

        await page.get_by_role("link", name="Account").click()
        await page.get_by_label("Display name").fill("Ada King")
        await page.get_by_label("Temperature").fill("0.3")
        await page.get_by_label("System prompt").fill("Answer in French.")
        await page.get_by_role("button", name="Save").click()
        await expect(page.locator("#notice")).to_have_text(re.compile("^Saved."))
        me = (await web.http.get("/api/users/me", headers=user.headers)).json()
        assert me["display_name"] == "Ada King"
        assert me["preferences"]["temperature"] == 0.3
        assert me["preferences"]["system_prompt"] == "Answer in French."

        password = page.locator("section", has_text="Change password")
        await password.get_by_label("Current password").fill("not my password at all")
        await password.get_by_label("New password").fill("a violet kettle hums at dawn 7")
        await password.get_by_role("button", name="Change password").click()
        await expect(password.locator(".form-error")).to_be_visible()
        await password.get_by_label("Current password").fill(user.password)
        await password.get_by_label("New password").fill("password1234")
        await password.get_by_role("button", name="Change password").click()
        await expect(password.locator(".field-error")).to_contain_text("too easy to guess")
        new_password = "a violet kettle hums at dawn 7"
        await password.get_by_label("New password").fill(new_password)
        await password.get_by_role("button", name="Change password").click()
        await expect(page.locator("#notice")).to_contain_text("password is changed")
        # The earlier errors go with the success.
        await expect(password.locator(".form-error, .field-error")).to_have_count(0)

        removal = page.locator("section", has_text="Delete account")
        await removal.get_by_label("Password").fill(new_password)
        await removal.get_by_label("I understand").check()
        await removal.get_by_role("button", name="Delete my account").click()
        await expect(page).to_have_url(re.compile(r"/signup$"))
        await expect(page.locator("#notice")).to_contain_text("account is deleted")
        gone = await web.http.post(
            "/api/auth/login", json={"email": user.email, "password": new_password}
        )
        assert gone.status_code == 401


class TestForgottenPassword:
    async def test_the_mailed_reset_link_opens_the_page_that_sets_a_new_password(
        self, browsing: Browsing, web: Web
    ) -> None:
        browsing.watch.allow(r"status of 422")  # the weak password, refused on purpose
        user = await web.user()
        page = await browsing.page()
        await page.goto("/signin")
        await page.get_by_role("link", name="Forgot your password?").click()
        await page.get_by_label("Email").fill(user.email)
        await page.get_by_role("button", name="Send me a link").click()
        await expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

        mail = await web.smtp.wait_for(lambda m: "reset-password" in m.text, to=user.email)
        link = extract_url(mail.text)
        assert link.startswith(f"{web.base_url}/reset-password?token=")
        await page.goto(link)
        assert "token" not in page.url
        await page.get_by_label("New password").fill("password1234")
        await page.get_by_role("button", name="Set password").click()
        await expect(page.locator(".field-error")).to_contain_text("too easy to guess")
        new_password = "seven quiet herons over the weir"
        await page.get_by_label("New password").fill(new_password)
        await page.get_by_role("button", name="Set password").click()
        await expect(page.get_by_role("status")).to_contain_text("password is changed")
        await screenshot(page, "reset-password")
        await page.get_by_role("link", name="Sign in").last.click()
        await sign_in(page, user.email, new_password)
