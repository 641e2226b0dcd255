"""NUL characters, which Postgres text cannot hold, are a 422 wherever text comes in."""

import re
from typing import Annotated

from pydantic import StringConstraints, TypeAdapter, ValidationError

from app.core.text import NOT_BLANK_PATTERN, NoNul
from tests.support.api import assert_error


class TestNulCharacters:
    async def test_refused_in_chat_fields_and_search(self, client, user):
        created = await client.post("/api/chats", json={"title": "a\x00b"}, headers=user.headers)
        assert_error(created, 422, "validation_error")
        search = await client.get("/api/chats", params={"q": "a\x00"}, headers=user.headers)
        assert_error(search, 422, "validation_error")

    async def test_refused_in_messages_and_prompts(self, client, user):
        chat = (await client.post("/api/chats", json={}, headers=user.headers)).json()
        sent = await client.post(
            f"/api/chats/{chat['id']}/messages", json={"content": "x\x00"}, headers=user.headers
        )
        assert_error(sent, 422, "validation_error")
        generated = await client.post(
            "/api/generate", json={"prompt": "x\x00"}, headers=user.headers
        )
        assert_error(generated, 422, "validation_error")
        mode = await client.post(
            "/api/chats",
            json={"mode": "similar_questions", "mode_params": {"question": "why\x00"}},
            headers=user.headers,
        )
        assert_error(mode, 422)


class TestNotBlankPattern:
    """The schema's pattern for stripped fields must refuse whatever pydantic strips to nothing,
    read as clients read it (ECMA-262), or fuzzers and clients send values that fail with 422."""

    # ECMA-262's \s: WhiteSpace and LineTerminator (Zs, and a few others).
    ECMA_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

    def test_no_character_pydantic_strips_matches_it(self):
        stripped = TypeAdapter(
            Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), NoNul]
        )
        pattern = re.compile(NOT_BLANK_PATTERN.replace("\\s", self.ECMA_SPACE))
        accepted_by_schema_refused_by_server = []
        for code_point in range(1, 0x3001):
            character = chr(code_point)
            if not pattern.match(character):
                continue
            try:
                stripped.validate_python(character)
            except ValidationError:
                accepted_by_schema_refused_by_server.append(hex(code_point))
        assert accepted_by_schema_refused_by_server == []

    def test_the_schema_refuses_exactly_what_stripping_removes(self):
        """The OpenAPI pattern of trimmed fields names, one by one, the characters str.strip()
        removes: a newer Python with a newer Unicode would fail here, not in a client."""
        pattern = re.compile(NOT_BLANK_PATTERN)
        blank = [chr(c) for c in range(0x110000) if chr(c).isspace()]
        assert not any(pattern.match(c) for c in blank)
        assert all(pattern.match(c) for c in ("a", "\ufeff", "\u200b", " a "))
        assert not pattern.match("a\x00")
