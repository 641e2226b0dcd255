import random
import uuid

import pytest

from app.chats.errors import (
    MessageNotEditable,
    MessageNotFound,
    MessageNotRegenerable,
)
from app.chats.models import MessageStatus
from tests.chats.conftest import add_turns, chat_service, ids, load_chat, new_chat
from tests.support.api import assert_error


async def get_page(client, user, chat_id, **params):
    response = await client.get(
        f"/api/chats/{chat_id}/messages", params=params, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def walk(client, user, chat_id, cursor, key, limit):
    """Follows older_cursor or newer_cursor until it runs out; returns the pages."""
    pages = []
    while cursor:
        page = await get_page(client, user, chat_id, limit=limit, cursor=cursor)
        pages.append(ids(page["items"]))
        cursor = page[key]
    return pages


def as_ids(messages):
    return [str(m.id) for m in messages]


class TestListMessages:
    async def test_empty_chat(self, client, user, chat):
        page = await get_page(client, user, chat["id"])
        assert page == {"items": [], "leaf_id": None, "older_cursor": None, "newer_cursor": None}

    async def test_fields_and_order(self, client, user, chat, app):
        added = await add_turns(app, user, chat["id"], 2)
        page = await get_page(client, user, chat["id"])
        assert ids(page["items"]) == as_ids(added)
        question, answer = page["items"][:2]
        assert question["role"] == "user" and question["content"] == "turn question 0"
        assert question["parent_id"] is None and answer["parent_id"] == question["id"]
        assert answer["role"] == "assistant" and answer["model"] == "echo"
        assert answer["status"] == "complete" and answer["usage_estimated"] is False
        assert answer["sibling_ids"] == [answer["id"]] and answer["sibling_index"] == 0
        assert page["leaf_id"] == str(added[-1].id)
        assert page["older_cursor"] is None and page["newer_cursor"] is None

    async def test_newest_page_first_then_older_pages(self, client, user, chat, app):
        added = as_ids(await add_turns(app, user, chat["id"], 6))  # 12 messages
        first = await get_page(client, user, chat["id"], limit=5)
        assert ids(first["items"]) == added[7:]
        assert first["newer_cursor"] is None
        older = await walk(client, user, chat["id"], first["older_cursor"], "older_cursor", 5)
        assert older == [added[2:7], added[:2]]

    async def test_newer_pages_lead_back_to_the_leaf(self, client, user, chat, app):
        added = as_ids(await add_turns(app, user, chat["id"], 5))
        first = await get_page(client, user, chat["id"], limit=3)
        older = await get_page(client, user, chat["id"], limit=3, cursor=first["older_cursor"])
        oldest = await get_page(client, user, chat["id"], limit=3, cursor=older["older_cursor"])
        assert ids(oldest["items"]) == added[1:4]
        newer = await walk(client, user, chat["id"], oldest["newer_cursor"], "newer_cursor", 3)
        assert newer == [added[4:7], added[7:]]

    async def test_concurrent_inserts_neither_duplicate_nor_skip(self, client, user, chat, app):
        added = as_ids(await add_turns(app, user, chat["id"], 5))
        first = await get_page(client, user, chat["id"], limit=4)
        late = as_ids(await add_turns(app, user, chat["id"], 2, text="late"))
        older = await walk(client, user, chat["id"], first["older_cursor"], "older_cursor", 4)
        seen = [m for page in reversed(older) for m in page] + ids(first["items"])
        assert seen == added
        # Paging forward from the oldest page reaches the messages added meanwhile.
        oldest = await get_page(client, user, chat["id"], limit=4, cursor=first["older_cursor"])
        oldest = await get_page(client, user, chat["id"], limit=4, cursor=oldest["older_cursor"])
        newer = await walk(client, user, chat["id"], oldest["newer_cursor"], "newer_cursor", 4)
        forward = ids(oldest["items"]) + [m for page in newer for m in page]
        assert forward == added + late

    async def test_current_thread_follows_the_newest_branch(self, client, user, chat, app):
        q0, a0, q1, _a1 = await add_turns(app, user, chat["id"], 2)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            edited = await service.edit_user_message(loaded, q1.id, "second question, edited")
            reply = await service.add_assistant_message(
                loaded, edited.id, content="new answer", status=MessageStatus.COMPLETE
            )
        page = await get_page(client, user, chat["id"])
        assert ids(page["items"]) == as_ids([q0, a0, edited, reply])
        shown = page["items"][2]
        assert shown["sibling_ids"] == as_ids([q1, edited]) and shown["sibling_index"] == 1

    async def test_leaf_id_selects_a_branch_down_to_its_newest_message(
        self, client, user, chat, app
    ):
        q0, a0, q1, a1 = await add_turns(app, user, chat["id"], 2)
        later = await add_turns(app, user, chat["id"], 1, parent_id=a1.id, text="old branch")
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            await service.edit_user_message(loaded, q1.id, "edited")
        # The old version of q1 is sibling 0; asking for it shows its whole branch.
        page = await get_page(client, user, chat["id"], leaf_id=str(q1.id))
        assert ids(page["items"]) == as_ids([q0, a0, q1, a1, *later])
        assert page["leaf_id"] == str(later[-1].id)
        assert page["items"][2]["sibling_index"] == 0
        assert len(page["items"][2]["sibling_ids"]) == 2

    async def test_branch_pages_stay_on_their_branch(self, client, user, chat, app):
        root = await add_turns(app, user, chat["id"], 1)
        old = as_ids(await add_turns(app, user, chat["id"], 4, parent_id=root[1].id, text="a"))
        new = as_ids(await add_turns(app, user, chat["id"], 4, parent_id=root[1].id, text="b"))
        first = await get_page(client, user, chat["id"], limit=3, leaf_id=old[0])
        older = await walk(client, user, chat["id"], first["older_cursor"], "older_cursor", 3)
        seen = [m for page in reversed(older) for m in page] + ids(first["items"])
        assert seen == as_ids(root) + old
        current = await get_page(client, user, chat["id"], limit=100)
        assert ids(current["items"]) == as_ids(root) + new

    async def test_regenerated_replies_are_siblings(self, client, user, chat, app):
        question, answer = await add_turns(app, user, chat["id"], 1)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            parent = await service.prepare_regenerate(loaded, answer.id)
            second = await service.add_assistant_message(
                loaded, parent.id, content="take two", status=MessageStatus.COMPLETE
            )
        page = await get_page(client, user, chat["id"])
        assert ids(page["items"]) == as_ids([question, second])
        assert page["items"][1]["sibling_ids"] == as_ids([answer, second])
        old = await get_page(client, user, chat["id"], leaf_id=str(answer.id))
        assert ids(old["items"]) == as_ids([question, answer])

    async def test_edited_first_message_gives_sibling_roots(self, client, user, chat, app):
        q0, _a0 = await add_turns(app, user, chat["id"], 1)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            root = await service.edit_user_message(loaded, q0.id, "hello again")
        page = await get_page(client, user, chat["id"])
        assert ids(page["items"]) == [str(root.id)]
        assert page["items"][0]["parent_id"] is None
        assert page["items"][0]["sibling_ids"] == as_ids([q0, root])

    @pytest.mark.parametrize("cursor", ["nope", "e30", "eyJrIjoiY2hhdHMifQ"])
    async def test_bad_cursor_is_400(self, client, user, chat, cursor):
        response = await client.get(
            f"/api/chats/{chat['id']}/messages", params={"cursor": cursor}, headers=user.headers
        )
        assert_error(response, 400, "invalid_cursor")

    async def test_cursor_of_another_chat_is_400(self, client, user, chat, app):
        other = await new_chat(client, user)
        await add_turns(app, user, other["id"], 3)
        page = await get_page(client, user, other["id"], limit=2)
        response = await client.get(
            f"/api/chats/{chat['id']}/messages",
            params={"cursor": page["older_cursor"]},
            headers=user.headers,
        )
        assert_error(response, 400, "invalid_cursor")

    async def test_unknown_leaf_is_404(self, client, user, chat):
        response = await client.get(
            f"/api/chats/{chat['id']}/messages",
            params={"leaf_id": str(uuid.uuid4())},
            headers=user.headers,
        )
        assert_error(response, 404, "message_not_found")

    async def test_long_thread_pages_match_the_full_path(self, client, user, chat, app):
        # Long unbranched stretches take the depth-range shortcut; a branch in the middle
        # must not change the answer.
        head = await add_turns(app, user, chat["id"], 5)
        await add_turns(app, user, chat["id"], 1, parent_id=head[-1].id, text="abandoned")
        tail = await add_turns(app, user, chat["id"], 10, parent_id=head[-1].id, text="kept")
        first = await get_page(client, user, chat["id"], limit=7)
        older = await walk(client, user, chat["id"], first["older_cursor"], "older_cursor", 7)
        seen = [m for page in reversed(older) for m in page] + ids(first["items"])
        assert seen == as_ids(head + tail)


class TestMessageTree:
    """The service methods generation builds on."""

    async def test_add_user_message_defaults_to_the_current_leaf(self, client, user, chat, app):
        _q0, a0 = await add_turns(app, user, chat["id"], 1)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            message = await service.add_user_message(loaded, "next")
            assert message.parent_id == a0.id
            assert message.role == "user" and message.status == "complete"
            assert loaded.last_message_at == message.created_at

    async def test_add_user_message_under_a_given_parent(self, client, user, chat, app):
        q0, a0, _q1, _a1 = await add_turns(app, user, chat["id"], 2)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            fork = await service.add_user_message(loaded, "fork", parent_id=a0.id)
            thread = await service.thread(loaded)
        assert fork.parent_id == a0.id
        assert as_ids(thread) == as_ids([q0, a0, fork])

    async def test_parent_from_another_chat_is_refused(self, client, user, chat, app):
        other = await new_chat(client, user)
        [foreign, *_] = await add_turns(app, user, other["id"], 1)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            with pytest.raises(MessageNotFound):
                await service.add_user_message(loaded, "x", parent_id=foreign.id)

    async def test_first_message_is_a_root(self, client, user, chat, app):
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            message = await service.add_user_message(loaded, "hello")
        assert message.parent_id is None and message.depth == 0

    async def test_edit_keeps_the_old_version_as_a_sibling(self, client, user, chat, app):
        q0, a0, q1, a1 = await add_turns(app, user, chat["id"], 2)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            edited = await service.edit_user_message(loaded, q1.id, "better question")
            thread = await service.thread(loaded)
            old_thread = await service.thread(loaded, a1.id)
        assert edited.parent_id == q1.parent_id and edited.id != q1.id
        assert edited.content == "better question"
        assert as_ids(thread) == as_ids([q0, a0, edited])
        assert as_ids(old_thread) == as_ids([q0, a0, q1, a1])

    async def test_only_user_messages_can_be_edited(self, client, user, chat, app):
        _q0, a0 = await add_turns(app, user, chat["id"], 1)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            with pytest.raises(MessageNotEditable):
                await service.edit_user_message(loaded, a0.id, "rewrite the reply")

    async def test_prepare_regenerate_returns_the_question(self, client, user, chat, app):
        q0, a0 = await add_turns(app, user, chat["id"], 1)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            assert (await service.prepare_regenerate(loaded, a0.id)).id == q0.id
            assert (await service.prepare_regenerate(loaded, q0.id)).id == q0.id

    async def test_prepare_regenerate_refuses_orphan_replies(self, client, user, chat, app):
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            system = await service._add(loaded, None, role="system", content="rules")
            with pytest.raises(MessageNotRegenerable):
                await service.prepare_regenerate(loaded, system.id)
            with pytest.raises(MessageNotFound):
                await service.prepare_regenerate(loaded, uuid.uuid4())

    async def test_children_are_always_newer_than_parents(self, client, user, chat, app):
        added = await add_turns(app, user, chat["id"], 20)
        times = [m.created_at for m in added]
        assert times == sorted(times) and len(set(times)) == len(times)

    async def test_thread_of_a_chat_without_messages_is_empty(self, client, user, chat, app):
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            assert await service.thread(loaded) == []
            with pytest.raises(MessageNotFound):
                await service.thread(loaded, uuid.uuid4())

    async def test_repository_thread_root_to_leaf(self, client, user, chat, app):
        added = await add_turns(app, user, chat["id"], 3)
        async with chat_service(app) as service:
            thread = await service.messages.thread(uuid.UUID(chat["id"]), added[3].id)
        assert as_ids(thread) == as_ids(added[:4])


class TestThreadPaths:
    """The shortcuts for long threads against the plain definition, on random trees."""

    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_random_trees_match_parent_links(self, client, user, chat, app, seed):
        rng = random.Random(seed)
        async with chat_service(app) as service:
            loaded = await load_chat(service, user, chat["id"])
            messages = [await service.add_user_message(loaded, "root")]
            for index in range(60):
                # Mostly extend the newest message; sometimes branch from an older one.
                parent = messages[-1] if rng.random() < 0.7 else rng.choice(messages)
                messages.append(
                    await service._add(loaded, parent, role="user", content=f"m{index}")
                )
            by_id = {m.id: m for m in messages}

            def path_to(message):
                path = [message]
                while path[-1].parent_id is not None:
                    path.append(by_id[path[-1].parent_id])
                return path[::-1]

            def newest_below(message):
                below = [m for m in messages if message in path_to(m)]
                return max(below, key=lambda m: (m.created_at, m.id))

            for anchor in rng.sample(messages, 25):
                low = rng.randrange(anchor.depth + 1)
                high = rng.randrange(low, anchor.depth + 1)
                segment = await service.messages.path_segment(anchor, low, high)
                assert as_ids(segment) == as_ids(path_to(anchor)[low : high + 1])
                newest = await service.messages.newest_descendant(anchor)
                assert newest.id == newest_below(anchor).id
