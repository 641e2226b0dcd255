"""Share links: a chat's branch as it was when shared, readable by anyone with the token and
nothing more; revoked at once; continued by a signed-in reader into a chat of their own."""

import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.files import samples
from tests.files.conftest import uploaded
from tests.generation.test_replies import send
from tests.support.api import SignedInUser, assert_error, register
from tests.support.upstream_fixtures import Parley, new_chat


async def share(parley: Parley, user: SignedInUser, chat: dict[str, Any]) -> dict[str, Any]:
    response = await parley.http.post(f"/api/chats/{chat['id']}/share", headers=user.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def shared(parley: Parley, token: str) -> httpx.Response:
    """As a reader with no account: no cookies, no token."""
    async with httpx.AsyncClient(base_url=parley.base_url) as anonymous:
        return await anonymous.get(f"/api/shared/{token}")


async def said(parley: Parley, user: SignedInUser, chat: dict[str, Any], text: str, **body: Any):
    response = await send(parley, user, chat, text, **body)
    assert response.status_code == 200, response.text
    return response.json()


def contents(snapshot: dict[str, Any]) -> list[str]:
    return [message["content"] for message in snapshot["messages"]]


class TestShareChat:
    async def test_anyone_with_the_link_reads_the_branch(self, parley, author, chat):
        await parley.http.patch(
            f"/api/chats/{chat['id']}", json={"title": "Lisbon"}, headers=author.headers
        )
        await said(parley, author, chat, "Where to eat?")

        link = await share(parley, author, chat)

        assert len(link["token"]) >= 43  # 256 bits, base64url
        assert link["url"].endswith(f"/s/{link['token']}")
        response = await shared(parley, link["token"])
        assert response.status_code == 200, response.text
        assert response.headers["x-robots-tag"].startswith("noindex")
        assert response.headers["cache-control"] == "no-store"
        snapshot = response.json()
        assert snapshot["title"] == "Lisbon"
        assert contents(snapshot) == ["Where to eat?", "Hello, world!"]
        assert [m["role"] for m in snapshot["messages"]] == ["user", "assistant"]

    async def test_the_token_is_not_stored_only_its_hash(self, parley, author, chat, clean_db):
        link = await share(parley, author, chat)
        async with clean_db.connect() as connection:
            [row] = (await connection.execute(text("SELECT * FROM chat_share"))).mappings().all()
        assert link["token"] not in str(dict(row))
        assert row["token_hash"] == hashlib.sha256(link["token"].encode()).hexdigest()

    async def test_the_owner_is_never_in_it(self, parley, author, chat):
        await said(parley, author, chat, "Hi")
        link = await share(parley, author, chat)
        body = (await shared(parley, link["token"])).text
        assert author.email not in body
        assert author.user_id not in body
        assert chat["id"] not in body

    async def test_later_turns_stay_private_until_shared_again(self, parley, author, chat):
        await said(parley, author, chat, "first")
        link = await share(parley, author, chat)
        await said(parley, author, chat, "second")

        assert contents((await shared(parley, link["token"])).json()) == [
            "first",
            "Hello, world!",
        ]

        again = await share(parley, author, chat)
        assert again["token"] == link["token"]
        assert contents((await shared(parley, link["token"])).json()) == [
            "first",
            "Hello, world!",
            "second",
            "Hello, world!",
        ]

    async def test_other_branches_are_left_out(self, parley, author, chat):
        first = await said(parley, author, chat, "first")
        await said(parley, author, chat, "abandoned branch")
        # A new branch from the first reply: now the current one.
        await said(parley, author, chat, "kept branch", parent_id=first["id"])

        link = await share(parley, author, chat)

        snapshot = (await shared(parley, link["token"])).json()
        assert contents(snapshot) == ["first", "Hello, world!", "kept branch", "Hello, world!"]
        assert "abandoned" not in str(snapshot)

    async def test_an_empty_chat_shares_no_messages(self, parley, author, chat):
        link = await share(parley, author, chat)
        assert (await shared(parley, link["token"])).json()["messages"] == []

    async def test_another_users_chat_is_404(self, parley, author, chat):
        intruder = await register(parley.http)
        path = f"/api/chats/{chat['id']}/share"
        assert_error(await parley.http.post(path, headers=intruder.headers), 404, "chat_not_found")
        assert_error(
            await parley.http.delete(path, headers=intruder.headers), 404, "chat_not_found"
        )


class TestReadShared:
    async def test_a_guessed_token_is_404(self, parley, author, chat):
        await share(parley, author, chat)
        for guess in ["x", "A" * 43, "%2e%2e", "a" * 500]:
            response = await shared(parley, guess)
            assert_error(response, 404, "share_not_found")

    async def test_a_revoked_link_is_404_at_once(self, parley, author, chat):
        await said(parley, author, chat, "Hi")
        link = await share(parley, author, chat)
        response = await parley.http.delete(
            f"/api/chats/{chat['id']}/share", headers=author.headers
        )
        assert response.status_code == 204
        assert_error(await shared(parley, link["token"]), 404, "share_not_found")

        renewed = await share(parley, author, chat)
        assert renewed["token"] != link["token"]
        assert_error(await shared(parley, link["token"]), 404, "share_not_found")
        assert (await shared(parley, renewed["token"])).status_code == 200

    async def test_a_chat_in_the_trash_is_404(self, parley, author, chat):
        link = await share(parley, author, chat)
        await parley.http.delete(f"/api/chats/{chat['id']}", headers=author.headers)
        assert_error(await shared(parley, link["token"]), 404, "share_not_found")
        await parley.http.post(f"/api/chats/{chat['id']}/restore", headers=author.headers)
        assert (await shared(parley, link["token"])).status_code == 200


class TestSharedImages:
    async def test_images_in_the_thread_and_nothing_else(self, parley, author, chat):
        photo = await uploaded(parley.http, author, "photo.png", samples.image())
        notes = await uploaded(parley.http, author, "notes.txt", b"private notes")
        unrelated = await uploaded(parley.http, author, "other.png", samples.image(size=(8, 8)))
        await said(parley, author, chat, "Look", attachments=[photo["id"], notes["id"]])
        link = await share(parley, author, chat)

        snapshot = (await shared(parley, link["token"])).json()

        [image] = snapshot["messages"][0]["images"]
        assert image["id"] == photo["id"] and image["name"] == "photo.png"
        assert "notes.txt" not in str(snapshot)
        async with httpx.AsyncClient(base_url=parley.base_url) as anonymous:
            response = await anonymous.get(image["url"])
            assert response.status_code == 200
            assert response.headers["content-type"] == "image/png"
            assert response.content == samples.image()
            assert response.headers["x-robots-tag"].startswith("noindex")
            for other in (notes["id"], unrelated["id"]):
                response = await anonymous.get(f"/api/shared/{link['token']}/files/{other}")
                assert_error(response, 404, "shared_file_not_found")
            response = await anonymous.get(f"/api/shared/{'A' * 43}/files/{photo['id']}")
            assert_error(response, 404, "share_not_found")


class TestListShares:
    async def test_my_shares_with_their_links(self, parley, author, chat):
        other_chat = await new_chat(parley.http, author, title="Other")
        first = await share(parley, author, chat)
        second = await share(parley, author, other_chat)
        intruder = await register(parley.http)

        response = await parley.http.get("/api/shares", headers=author.headers)

        assert [(s["chat_id"], s["token"]) for s in response.json()] == [
            (other_chat["id"], second["token"]),
            (chat["id"], first["token"]),
        ]
        response = await parley.http.get("/api/shares", headers=intruder.headers)
        assert response.json() == []


class TestContinueSharedChat:
    async def test_a_reader_gets_a_copy_of_their_own(self, parley, author, chat):
        await said(parley, author, chat, "first")
        link = await share(parley, author, chat)
        await said(parley, author, chat, "private")
        reader = await register(parley.http)

        response = await parley.http.post(
            f"/api/shared/{link['token']}/continue", headers=reader.headers
        )

        assert response.status_code == 201, response.text
        copy = response.json()
        assert copy["id"] != chat["id"]
        messages = await parley.http.get(
            f"/api/chats/{copy['id']}/messages", headers=reader.headers
        )
        assert [m["content"] for m in messages.json()["items"]] == ["first", "Hello, world!"]
        # The reader carries on in their copy; the owner's chat is untouched.
        await said(parley, reader, copy, "and then?")
        owners = await parley.http.get(f"/api/chats/{chat['id']}/messages", headers=author.headers)
        assert "and then?" not in str(owners.json())

    async def test_it_needs_an_account(self, parley, author, chat):
        link = await share(parley, author, chat)
        async with httpx.AsyncClient(base_url=parley.base_url) as anonymous:
            response = await anonymous.post(f"/api/shared/{link['token']}/continue")
        assert_error(response, 401)


@pytest.mark.parametrize(
    "parley_overrides", [{"rate_limit_shared": "3/minute", "auto_title": False}]
)
class TestRateLimit:
    async def test_reading_shared_chats_is_limited_per_client(self, parley, author, chat):
        link = await share(parley, author, chat)
        for _ in range(3):
            assert (await shared(parley, link["token"])).status_code == 200
        response = await shared(parley, "guess")
        assert_error(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) >= 1
