"""POST /api/chats/import on exports built in the real formats of ChatGPT, Claude, Open WebUI
and Parley itself."""

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from app.chats.models import MessageStatus
from app.chats.transfer.reader import MAX_NESTING
from app.chats.transfer.tree import MAX_DEPTH
from tests.chats.conftest import add_turns, chat_service, load_chat, new_chat
from tests.support.api import SignedInUser, assert_error, register
from tests.support.app import serving
from tests.support.exports import (
    T0,
    ChatGPTConversation,
    chatgpt_trip,
    claude_conversation,
    openwebui_chat,
    to_json,
    zipped,
)
from tests.support.settings import make_settings

NOTE = "[Attachment not included in the import: {}]"
BOUNDARY = "import-boundary"


async def import_file(
    client: httpx.AsyncClient,
    user: SignedInUser,
    data: bytes,
    name: str = "conversations.json",
) -> httpx.Response:
    return await client.post(
        "/api/chats/import", files={"file": (name, data)}, headers=user.headers
    )


async def imported(
    client: httpx.AsyncClient, user: SignedInUser, data: bytes, name: str = "conversations.json"
) -> dict[str, Any]:
    response = await import_file(client, user, data, name)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def all_chats(client: httpx.AsyncClient, user: SignedInUser) -> list[dict[str, Any]]:
    response = await client.get("/api/chats", params={"limit": 100}, headers=user.headers)
    assert response.status_code == 200
    return list(response.json()["items"])


async def tree(client: httpx.AsyncClient, user: SignedInUser, chat_id: str) -> dict[str, Any]:
    """The chat's JSON export: every message of every branch, with parent ids."""
    response = await client.get(
        f"/api/chats/{chat_id}/export", params={"format": "json"}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return dict(json.loads(response.content))


async def thread(client: httpx.AsyncClient, user: SignedInUser, chat_id: str) -> list[Any]:
    response = await client.get(f"/api/chats/{chat_id}/messages", headers=user.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def by_content(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {message["content"].split("\n")[0]: message for message in document["messages"]}


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class TestChatGPT:
    async def test_the_mapping_tree_with_branches_and_tool_nodes(self, client, user):
        conversation, _nodes = chatgpt_trip()
        summary = await imported(client, user, to_json([conversation]))
        assert summary == {
            "format": "chatgpt",
            "conversations": 1,
            "imported": 1,
            "unchanged": 0,
            "failed": 0,
            "messages": 5,
            # The hidden system note, the code-interpreter call and its output.
            "skipped_messages": 3,
            "failures": [],
        }
        [chat] = await all_chats(client, user)
        assert chat["title"] == "Lisbon trip" and chat["mode"] == "chat"
        document = await tree(client, user, chat["id"])
        messages = by_content(document)
        question = messages["What should I see in Lisbon?"]
        first = messages["Belém Tower and the Alfama."]
        second = messages["Try the Alfama, Belém and a tram ride."]
        photo = messages["What is this building?"]
        answer = messages["That is the Belém Tower."]
        assert question["parent_id"] is None and question["role"] == "user"
        # The regenerated answer is a sibling of the first.
        assert first["parent_id"] == second["parent_id"] == question["id"]
        assert (first["model"], second["model"]) == ("gpt-4", "gpt-4o")
        assert photo["parent_id"] == second["id"]
        # The tool call and its output are left out; the answer hangs from the question.
        assert answer["parent_id"] == photo["id"] and answer["role"] == "assistant"
        assert NOTE.format("tower.jpg") in photo["content"]
        assert NOTE.format("itinerary.pdf") in photo["content"]
        # Timestamps kept: the root system node took 7 s, the question 7 more.
        assert datetime.fromisoformat(question["created_at"]) == at(T0 + 14)
        assert datetime.fromisoformat(answer["created_at"]) == at(T0 + 56)
        assert datetime.fromisoformat(chat["created_at"]) == at(T0)
        shown = await thread(client, user, chat["id"])
        assert [m["content"].split("\n")[0] for m in shown] == [
            "What should I see in Lisbon?",
            "Try the Alfama, Belém and a tram ride.",
            "What is this building?",
            "That is the Belém Tower.",
        ]
        assert shown[1]["sibling_ids"] == [first["id"], second["id"]]
        # Search finds imported messages (the full-text index is kept by the bulk insert).
        found = await client.get("/api/chats", params={"q": "tram ride"}, headers=user.headers)
        assert [c["id"] for c in found.json()["items"]] == [chat["id"]]

    async def test_the_whole_zip_export(self, client, user):
        conversation, _nodes = chatgpt_trip("From the zip")
        data = zipped(
            {
                "conversations.json": to_json([conversation]),
                "user.json": b'{"id": "user-1"}',
                "chat.html": b"<html></html>",
                "file-Photo123-tower.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
            }
        )
        summary = await imported(client, user, data, "export.zip")
        assert (summary["format"], summary["imported"]) == ("chatgpt", 1)
        assert [chat["title"] for chat in await all_chats(client, user)] == ["From the zip"]

    async def test_importing_again_changes_nothing(self, client, user):
        trip, _nodes = chatgpt_trip()
        other = ChatGPTConversation("Second")
        other.add("user", ["Hello"])
        other.add("assistant", ["Hi!"])
        data = to_json([trip, other.export()])
        first = await imported(client, user, data)
        assert first["imported"] == 2
        chats = await all_chats(client, user)
        documents = [await tree(client, user, chat["id"]) for chat in chats]
        again = await imported(client, user, data)
        assert (again["imported"], again["unchanged"], again["messages"]) == (0, 2, 0)
        # And the same conversations inside the zip export: still nothing new.
        zip_again = await imported(client, user, zipped({"conversations.json": data}), "x.zip")
        assert zip_again["unchanged"] == 2
        assert await all_chats(client, user) == chats
        after = [await tree(client, user, chat["id"]) for chat in chats]
        assert [doc["messages"] for doc in after] == [doc["messages"] for doc in documents]

    async def test_another_user_imports_the_same_conversation_for_themselves(
        self, client, user, other_user
    ):
        trip, _nodes = chatgpt_trip()
        await imported(client, user, to_json([trip]))
        summary = await imported(client, other_user, to_json([trip]))
        assert summary["imported"] == 1
        assert len(await all_chats(client, user)) == 1
        assert len(await all_chats(client, other_user)) == 1


class TestClaude:
    async def test_chat_messages_with_attachments(self, client, user):
        summary = await imported(client, user, to_json([claude_conversation()]))
        assert (summary["format"], summary["imported"], summary["messages"]) == ("claude", 1, 4)
        [chat] = await all_chats(client, user)
        assert chat["title"] == "Rust lifetimes"
        shown = await thread(client, user, chat["id"])
        assert [m["role"] for m in shown] == ["user", "assistant", "user", "assistant"]
        question = shown[0]["content"]
        assert question.startswith("Why does this not compile?")
        # The attachment's text came with the export; the screenshot did not.
        assert "Attached file main.rs:\n\nfn longest(a: &str, b: &str) -> &str { a }" in question
        assert NOTE.format("screenshot.png") in question
        assert shown[1]["content"] == "It needs a lifetime parameter."
        assert shown[3]["content"].startswith("fn longest<'a>")
        assert datetime.fromisoformat(shown[1]["created_at"]) == datetime(
            2024, 11, 2, 10, 0, 10, tzinfo=UTC
        )
        assert (await imported(client, user, to_json([claude_conversation()])))["imported"] == 1
        conversation = claude_conversation("Once")
        await imported(client, user, to_json([conversation]))
        assert (await imported(client, user, to_json([conversation])))["unchanged"] == 1


class TestOpenWebUI:
    async def test_history_with_parent_ids(self, client, user):
        summary = await imported(client, user, to_json([openwebui_chat()]), "chat-export.json")
        assert (summary["format"], summary["imported"], summary["messages"]) == (
            "openwebui",
            1,
            5,
        )
        [chat] = await all_chats(client, user)
        assert chat["title"] == "Soup recipes"
        messages = by_content(await tree(client, user, chat["id"]))
        question = messages["A soup for a cold day?"]
        assert NOTE.format("pantry.txt") in question["content"]
        first, second = messages["Minestrone."], messages["Caldo verde."]
        assert first["parent_id"] == second["parent_id"] == question["id"]
        assert second["model"] == "llama3:8b"
        shown = await thread(client, user, chat["id"])
        assert [m["content"] for m in shown][1:] == [
            "Caldo verde.",
            "How long does it take?",
            "About forty minutes.",
        ]
        assert datetime.fromisoformat(shown[-1]["created_at"]) == at(1_730_000_040)


class TestParley:
    async def test_a_chats_export_round_trips_to_another_account(
        self, client, user, other_user, app
    ):
        chat = await new_chat(client, user, title="Round trip", system_prompt="Be brief.")
        q0, *_rest = await add_turns(app, user, chat["id"], 2)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            await service.add_assistant_message(
                loaded, q0.id, content="another answer", status=MessageStatus.COMPLETE
            )
        exported = await tree(client, user, chat["id"])
        # Into the same account: it is that chat, so nothing changes.
        again = await imported(client, user, to_json(exported), "parley-round-trip.json")
        assert (again["format"], again["imported"], again["unchanged"]) == ("parley", 0, 1)
        assert len(await all_chats(client, user)) == 1
        summary = await imported(client, other_user, to_json(exported), "parley-round-trip.json")
        assert (summary["imported"], summary["messages"]) == (1, 5)
        [copy] = await all_chats(client, other_user)
        assert copy["id"] != chat["id"]
        assert (copy["title"], copy["system_prompt"]) == ("Round trip", "Be brief.")
        document = await tree(client, other_user, copy["id"])
        original_ids = {m["id"]: i for i, m in enumerate(exported["messages"])}

        def shape(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
            index = {m["id"]: i for i, m in enumerate(doc["messages"])}
            return [
                (m["role"], m["content"], index.get(m["parent_id"]), m["created_at"], m["model"])
                for m in doc["messages"]
            ]

        assert shape(document) == shape(exported)
        assert len(original_ids) == 5
        assert [document["messages"][i]["content"] for i in range(5)] == [
            m["content"] for m in exported["messages"]
        ]
        assert (await imported(client, other_user, to_json(exported)))["unchanged"] == 1


class TestBadInput:
    async def test_empty_and_wrong_format_files_are_422(self, client, user):
        cases = {
            "empty.json": b"",
            "blank.json": b"   \n",
            "list.json": b"[]",
            "other.json": b'{"hello": "world"}',
            "items.json": b'[{"foo": 1}, {"bar": 2}]',
            "picture.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "notes.txt": b"just some notes",
            "empty.zip": zipped({"readme.txt": b"hello"}),
            "broken.zip": b"PK\x03\x04 this is not a zip",
        }
        for name, data in cases.items():
            response = await import_file(client, user, data, name)
            error = assert_error(response, 422, "unsupported_import")
            assert "ChatGPT" in error["message"] and "Open WebUI" in error["message"], name
        assert await all_chats(client, user) == []

    async def test_no_file_part(self, client, user):
        response = await client.post(
            "/api/chats/import", data={"other": "x"}, files={"x": ("a", b"1")}, headers=user.headers
        )
        assert_error(response, 422, "file_missing")

    async def test_over_the_size_limit(self, database, clean_db):
        settings = make_settings(database, import_max_bytes=50_000)
        async with serving(settings) as (_app, client):
            user = await register(client)
            read = 0

            async def declared():
                nonlocal read
                for _ in range(20):
                    read += 1
                    yield b"x" * 10_000

            response = await client.post(
                "/api/chats/import",
                content=declared(),
                headers={
                    **user.headers,
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                    "Content-Length": str(200_000),
                },
            )
            error = assert_error(response, 413, "import_too_large")
            assert "50000 bytes" in error["message"]
            assert read == 0  # refused before a byte of it was read
            sent = 0

            async def chunked():
                # No Content-Length: the limit is found while the body streams in.
                nonlocal sent
                yield (
                    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                    'filename="conversations.json"\r\n\r\n['
                ).encode()
                for _ in range(50):
                    sent += 1
                    yield b" " * 10_000

            response = await client.post(
                "/api/chats/import",
                content=chunked(),
                headers={
                    **user.headers,
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                },
            )
            assert_error(response, 413, "import_too_large")
            assert sent < 50
            # Just under the limit is fine.
            trip, _nodes = chatgpt_trip()
            assert (await import_file(client, user, to_json([trip]))).status_code == 200

    async def test_a_broken_conversation_is_reported_and_the_others_imported(self, client, user):
        good, _nodes = chatgpt_trip("Good one")
        cyclic = ChatGPTConversation("Going round")
        a = cyclic.add("user", ["one"])
        b = cyclic.add("assistant", ["two"])
        cyclic.mapping[a]["parent"] = b  # a <-> b: no root reaches them
        no_mapping = {"title": "No mapping", "mapping": {"x": "not a node"}}
        last = ChatGPTConversation("Last one")
        last.add("user", ["still here"])
        data = to_json([good, cyclic.export(), no_mapping, last.export()])
        response = await import_file(client, user, data)
        assert response.status_code == 207, response.text
        summary = response.json()
        assert (summary["conversations"], summary["imported"], summary["failed"]) == (4, 2, 2)
        failures = summary["failures"]
        assert [(f["index"], f["title"]) for f in failures] == [
            (1, "Going round"),
            (2, "No mapping"),
        ]
        assert "cycle" in failures[0]["reason"]
        titles = sorted(chat["title"] for chat in await all_chats(client, user))
        assert titles == ["Good one", "Last one"]  # nothing of the failed ones

    async def test_a_file_cut_short_keeps_what_came_before(self, client, user):
        first = ChatGPTConversation("Before the cut")
        first.add("user", ["hello"])
        data = to_json([first.export(), first.export() | {"id": "x", "conversation_id": "x"}])
        response = await import_file(client, user, data[: len(data) - 40])
        assert response.status_code == 207, response.text
        summary = response.json()
        assert summary["imported"] == 1
        [failure] = summary["failures"]
        assert failure["index"] == 1 and "Nothing after it was read" in failure["reason"]


class TestAdversarial:
    async def test_a_self_parented_node_and_an_unknown_role(self, client, user):
        loop = ChatGPTConversation("Self loop")
        node = loop.add("user", ["me"])
        loop.mapping[node]["parent"] = node
        odd = ChatGPTConversation("Odd roles")
        odd.add("user", ["question"])
        odd.add("critic", ["a role nobody knows"])
        odd.add("assistant", ["answer"])
        openwebui = openwebui_chat("Web roles")
        for message in openwebui["chat"]["history"]["messages"].values():
            if message["content"] == "Minestrone.":
                message["role"] = "wizard"
        response = await import_file(client, user, to_json([loop.export(), odd.export()]))
        assert response.status_code == 207
        assert response.json()["failures"][0]["title"] == "Self loop"
        chats = {chat["title"]: chat for chat in await all_chats(client, user)}
        shown = await thread(client, user, chats["Odd roles"]["id"])
        assert [(m["role"], m["content"]) for m in shown] == [
            ("user", "question"),
            ("assistant", "answer"),
        ]
        summary = await imported(client, user, to_json([openwebui]))
        assert (summary["messages"], summary["skipped_messages"]) == (4, 1)

    async def test_a_100k_deep_chain_is_reported_without_recursion(self, client, user):
        deep = chain("Deep", 100_000)
        response = await import_file(client, user, to_json([chain("Short", 4), deep]))
        assert response.status_code == 207, response.text
        [failure] = response.json()["failures"]
        assert (failure["index"], failure["title"]) == (1, "Deep")
        assert f"more than {MAX_DEPTH} messages" in failure["reason"]
        assert [chat["title"] for chat in await all_chats(client, user)] == ["Short"]

    async def test_json_nested_100k_deep_is_refused_before_it_is_parsed(self, client, user):
        response = await import_file(client, user, b"[" * 100_000 + b"]" * 100_000)
        error = assert_error(response, 422, "unsupported_import")
        assert f"more than {MAX_NESTING} levels deep" in error["message"]
        # In a later conversation: the ones before it are imported and reading stops there. (The
        # file is checked as it is read, in chunks of 64 KiB: the ones ending in the chunk where
        # the nesting starts are reported with it.)
        good = ChatGPTConversation("Shallow")
        good.add("user", ['hello \\ [ { " with escapes\n' * 20_000])
        spacer = ChatGPTConversation("Spacer")
        spacer.add("user", ["x" * 200_000])
        head = to_json([good.export(), spacer.export()])[:-1]
        deep = head + b', {"title": "Deep", "mapping": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]"
        response = await import_file(client, user, deep)
        assert response.status_code == 207, response.text
        summary = response.json()
        assert summary["imported"] >= 1
        [failure] = summary["failures"]
        assert failure["index"] == summary["imported"]
        assert "levels deep" in failure["reason"]
        assert (await all_chats(client, user))[-1]["title"] == "Shallow"

    async def test_brackets_quotes_and_escapes_inside_text_are_only_text(self, client, user):
        # 300 KB of brackets, escaped quotes and backslashes inside strings, across many of the
        # chunks the nesting check reads: none of it counts as nesting.
        text = '[[{{ "quoted" \\ back\\slash \\" [{' * 8_000
        conversation = ChatGPTConversation("Brackets " + "[" * 150)
        conversation.add("user", [text])
        conversation.add("assistant", ["}" * 5_000 + '"\\'])
        summary = await imported(client, user, to_json([conversation.export()]))
        assert summary["messages"] == 2
        [chat] = await all_chats(client, user)
        shown = await thread(client, user, chat["id"])
        assert [m["content"] for m in shown] == [text, "}" * 5_000 + '"\\']

    async def test_the_deepest_branch_imported_can_be_deleted(self, client, user):
        summary = await imported(client, user, to_json([chain("Longest", MAX_DEPTH)]))
        assert summary["messages"] == MAX_DEPTH
        [chat] = await all_chats(client, user)
        shown = await thread(client, user, chat["id"])
        assert shown[-1]["content"] == f"m{MAX_DEPTH - 1}"
        assert shown[-1]["parent_id"] == shown[-2]["id"]
        response = await client.delete(
            f"/api/chats/{chat['id']}", params={"permanent": "true"}, headers=user.headers
        )
        assert response.status_code == 204
        too_deep = await import_file(client, user, to_json([chain("Deeper", MAX_DEPTH + 1)]))
        assert too_deep.status_code == 207


def chain(title: str, depth: int) -> dict[str, Any]:
    """A ChatGPT conversation that is one branch `depth` messages long."""
    mapping: dict[str, Any] = {"root": {"id": "root", "message": None, "parent": None}}
    parent = "root"
    for index in range(depth):
        node = f"n{index}"
        mapping[node] = {
            "id": node,
            "parent": parent,
            "children": [],
            "message": {
                "author": {"role": "user" if index % 2 == 0 else "assistant"},
                "create_time": T0 + index,
                "content": {"content_type": "text", "parts": [f"m{index}"]},
                "metadata": {},
                "recipient": "all",
            },
        }
        parent = node
    return {"title": title, "id": title.lower(), "mapping": mapping}


async def test_import_needs_a_signed_in_user(client):
    response = await client.post("/api/chats/import", files={"file": ("conversations.json", b"[]")})
    assert_error(response, 401)


async def test_ids_of_imported_chats_are_new(client, user):
    trip, _nodes = chatgpt_trip()
    await imported(client, user, to_json([trip]))
    [chat] = await all_chats(client, user)
    assert uuid.UUID(chat["id"]) and chat["id"] != trip["id"]


async def test_a_zip_that_expands_too_far_is_cut_off(database, clean_db):
    settings = make_settings(database, import_max_bytes=20_000)
    async with serving(settings) as (_app, client):
        user = await register(client)
        first = ChatGPTConversation("Small")
        first.add("user", ["hello"])
        padding = ChatGPTConversation("Huge")
        padding.add("user", ["x" * 500_000])  # compresses to a few hundred bytes
        data = zipped({"conversations.json": to_json([first.export(), padding.export()])})
        assert len(data) < 20_000
        response = await import_file(client, user, data, "bomb.zip")
        assert response.status_code == 207, response.text
        summary = response.json()
        assert summary["imported"] == 1
        assert "expands to more than" in summary["failures"][0]["reason"]


async def test_two_imports_of_the_same_file_at_once_make_one_chat(client, user):
    trip, _nodes = chatgpt_trip()
    other = ChatGPTConversation("Second")
    other.add("user", ["Hello"])
    data = to_json([trip, other.export()])
    first, second = await asyncio.gather(
        import_file(client, user, data), import_file(client, user, data)
    )
    summaries = [first.json(), second.json()]
    assert [first.status_code, second.status_code] == [200, 200], summaries
    assert sum(s["imported"] for s in summaries) == 2
    assert sum(s["unchanged"] for s in summaries) == 2
    assert len(await all_chats(client, user)) == 2
