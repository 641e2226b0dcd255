"""Restricted models on every entry point: for a user outside the groups that list a model it is
not listed (GET /api/models, /v1/models) and naming it answers exactly as a model that does not
exist (404 `unknown_model`, or /v1's 404 `model_not_found`), with a session or an API key; the
groups' members and administrators use it; access follows group changes at once."""

from typing import Any

import httpx

from tests.groups.conftest import add_member, create_group, restrict
from tests.keys.helpers import create_key, with_key
from tests.support.api import SignedInUser, assert_error
from tests.support.fake_upstream import FakeUpstream
from tests.support.upstream_fixtures import Parley, new_chat

RESTRICTED = "fake-model"
MISSING = "no-such-model"
HELLO = [{"role": "user", "content": "Say hello"}]


async def model_names(parley: Parley, headers: dict[str, str]) -> list[str]:
    response = await parley.http.get("/api/models", headers=headers)
    assert response.status_code == 200, response.text
    return [m["name"] for m in response.json()]


async def v1_model_ids(parley: Parley, headers: dict[str, str]) -> list[str]:
    response = await parley.http.get("/v1/models", headers=headers)
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["data"]]


async def attempts(
    parley: Parley, user: SignedInUser, headers: dict[str, str], model: str
) -> list[httpx.Response]:
    """Every way to ask for `model`: chats (start, send, edit, regenerate, summarize, a chat
    whose setting names it), /api/generate, and /v1 (chat completions, responses)."""
    http = parley.http
    chat = await new_chat(http, user, model="echo")
    first = await http.post(
        f"/api/chats/{chat['id']}/messages", json={"content": "Hi"}, headers=headers
    )
    assert first.status_code == 200, first.text
    reply = first.json()
    url = f"/api/chats/{chat['id']}/messages"
    set_in_chat = await new_chat(http, user, model=model)
    return [
        await http.post(
            "/api/chats/start", json={"content": "Hi", "model": model}, headers=headers
        ),
        await http.post(url, json={"content": "Hi", "model": model}, headers=headers),
        await http.post(
            f"/api/chats/{set_in_chat['id']}/messages", json={"content": "Hi"}, headers=headers
        ),
        await http.patch(
            f"{url}/{reply['parent_id']}",
            json={"content": "Hello", "model": model},
            headers=headers,
        ),
        await http.post(f"{url}/{reply['id']}/regenerate", json={"model": model}, headers=headers),
        await http.post(
            f"/api/chats/{chat['id']}/summarize", json={"model": model}, headers=headers
        ),
        await http.post("/api/generate", json={"prompt": "Hi", "model": model}, headers=headers),
    ]


async def v1_attempts(parley: Parley, headers: dict[str, str], model: str) -> list[httpx.Response]:
    return [
        await parley.http.post(
            "/v1/chat/completions", json={"model": model, "messages": HELLO}, headers=headers
        ),
        await parley.http.post(
            "/v1/responses", json={"model": model, "input": "Say hello"}, headers=headers
        ),
    ]


def v1_error(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()["error"]["code"]


class TestRestrictModel:
    async def test_an_administrator_restricts_and_opens_a_model(
        self, parley: Parley, admin: SignedInUser
    ) -> None:
        await create_group(parley.http, admin, models=[RESTRICTED])
        assert await restrict(parley.http, admin, RESTRICTED) == {
            "name": RESTRICTED,
            "restricted": True,
            "groups": ["research"],
        }
        listed = await parley.http.get("/api/admin/models", headers=admin.headers)
        assert listed.json() == [
            {"name": "echo", "restricted": False, "groups": []},
            {"name": RESTRICTED, "restricted": True, "groups": ["research"]},
        ]
        assert (await restrict(parley.http, admin, RESTRICTED, False))["restricted"] is False

    async def test_an_unknown_model_is_404_and_bad_input_422(
        self, parley: Parley, admin: SignedInUser
    ) -> None:
        unknown = await parley.http.patch(
            f"/api/admin/models/{MISSING}", json={"restricted": True}, headers=admin.headers
        )
        assert_error(unknown, 404, "unknown_model")
        bad = await parley.http.patch(
            f"/api/admin/models/{RESTRICTED}", json={"restricted": "yes"}, headers=admin.headers
        )
        assert_error(bad, 422, "validation_error")

    async def test_a_user_is_403(self, parley: Parley, member: SignedInUser) -> None:
        response = await parley.http.patch(
            f"/api/admin/models/{RESTRICTED}", json={"restricted": True}, headers=member.headers
        )
        assert_error(response, 403, "forbidden")
        listed = await parley.http.get("/api/admin/models", headers=member.headers)
        assert_error(listed, 403, "forbidden")


class TestGatedEverywhere:
    async def test_an_outsider_gets_the_answer_of_a_model_that_does_not_exist(
        self,
        parley: Parley,
        admin: SignedInUser,
        member: SignedInUser,
        outsider: SignedInUser,
        fake_upstream: FakeUpstream,
    ) -> None:
        group = await create_group(parley.http, admin, models=[RESTRICTED])
        await add_member(parley.http, admin, group, member)
        await restrict(parley.http, admin, RESTRICTED)
        key = (await create_key(parley.http, outsider))["key"]
        for headers in (outsider.headers, with_key(key)):
            assert RESTRICTED not in await v1_model_ids(parley, headers)
            assert "echo" in await v1_model_ids(parley, headers)
        assert await model_names(parley, outsider.headers) == ["echo"]
        called = len(fake_upstream.state.requests)
        restricted = await attempts(parley, outsider, outsider.headers, RESTRICTED)
        missing = await attempts(parley, outsider, outsider.headers, MISSING)
        assert len(restricted) == len(missing) == 7
        for refused, nowhere in zip(restricted, missing, strict=True):
            assert_error(refused, 404, "unknown_model")
            assert_error(nowhere, 404, "unknown_model")
        for headers in (outsider.headers, with_key(key)):
            gated = await v1_attempts(parley, headers, RESTRICTED)
            absent = await v1_attempts(parley, headers, MISSING)
            assert [v1_error(r) for r in gated] == [v1_error(r) for r in absent]
            assert [v1_error(r) for r in gated] == [(404, "model_not_found")] * 2
        assert len(fake_upstream.state.requests) == called

    async def test_members_and_administrators_use_it(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser
    ) -> None:
        group = await create_group(parley.http, admin, models=[RESTRICTED])
        await add_member(parley.http, admin, group, member)
        await restrict(parley.http, admin, RESTRICTED)
        key = (await create_key(parley.http, member))["key"]
        for user in (member, admin):
            assert RESTRICTED in await model_names(parley, user.headers)
            chat = await new_chat(parley.http, user)
            sent = await parley.http.post(
                f"/api/chats/{chat['id']}/messages",
                json={"content": "Hi", "model": RESTRICTED},
                headers=user.headers,
            )
            assert sent.status_code == 200, sent.text
            assert sent.json()["content"] == "Hello, world!"
        assert RESTRICTED in await v1_model_ids(parley, with_key(key))
        for response in await v1_attempts(parley, with_key(key), RESTRICTED):
            assert response.status_code == 200, response.text


class TestAccessFollowsChanges:
    async def send(self, parley: Parley, user: SignedInUser) -> httpx.Response:
        return await parley.http.post(
            "/api/generate", json={"prompt": "Hi", "model": RESTRICTED}, headers=user.headers
        )

    async def test_leaving_deleting_or_unlisting_removes_access(
        self, parley: Parley, admin: SignedInUser, member: SignedInUser
    ) -> None:
        await restrict(parley.http, admin, RESTRICTED)
        group = await create_group(parley.http, admin, models=[RESTRICTED])
        url = f"/api/admin/groups/{group['id']}"
        assert_error(await self.send(parley, member), 404, "unknown_model")
        await add_member(parley.http, admin, group, member)
        assert (await self.send(parley, member)).status_code == 200
        # The group no longer lists the model.
        await parley.http.patch(url, json={"models": []}, headers=admin.headers)
        assert_error(await self.send(parley, member), 404, "unknown_model")
        await parley.http.patch(url, json={"models": [RESTRICTED]}, headers=admin.headers)
        assert (await self.send(parley, member)).status_code == 200
        # The member leaves.
        await parley.http.delete(f"{url}/members/{member.user_id}", headers=admin.headers)
        assert_error(await self.send(parley, member), 404, "unknown_model")
        await add_member(parley.http, admin, group, member)
        assert (await self.send(parley, member)).status_code == 200
        # The group is deleted.
        assert (await parley.http.delete(url, headers=admin.headers)).status_code == 204
        assert_error(await self.send(parley, member), 404, "unknown_model")
        assert RESTRICTED not in await model_names(parley, member.headers)

    async def test_opening_a_model_gives_it_back_to_everyone(
        self, parley: Parley, admin: SignedInUser, outsider: SignedInUser
    ) -> None:
        await restrict(parley.http, admin, RESTRICTED)
        assert_error(await self.send(parley, outsider), 404, "unknown_model")
        await restrict(parley.http, admin, RESTRICTED, False)
        assert (await self.send(parley, outsider)).status_code == 200
        assert RESTRICTED in await model_names(parley, outsider.headers)
