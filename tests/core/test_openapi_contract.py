"""The OpenAPI document tells the truth: what the server refuses before a route runs is listed
on every operation, in the one error shape, and inputs are described as tightly as checked."""

import pytest

from app.core.config import Settings
from app.main import create_app
from tests.support.api import assert_error, register


@pytest.fixture(scope="module")
def openapi() -> dict:
    return create_app(Settings(_env_file=None, environment="test")).openapi()


def operations(openapi: dict):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


class TestDocumentedErrors:
    def test_every_operation_with_a_body_lists_broken_json_and_size(self, openapi):
        for name, operation in operations(openapi):
            if "requestBody" not in operation:
                continue
            responses = operation["responses"]
            assert "`malformed_json`" in responses["400"]["description"], name
            assert "`payload_too_large`" in responses["413"]["description"], name

    def test_every_error_response_has_the_one_error_shape(self, openapi):
        for name, operation in operations(openapi):
            for status, response in operation["responses"].items():
                # Readiness answers 503 with the state of each dependency, for load balancers.
                if int(status) < 400 or name == "GET /health/ready":
                    continue
                schema = response["content"]["application/json"]["schema"]
                # Under /v1, OpenAI's shape (its SDKs read it).
                shape = "OpenAIErrorResponse" if " /v1/" in name else "ErrorResponse"
                assert schema == {"$ref": f"#/components/schemas/{shape}"}, (name, status)
        assert "HTTPValidationError" not in openapi["components"]["schemas"]

    @pytest.mark.parametrize(
        "name",
        [
            "POST /api/chats/{chat_id}/messages",
            "PATCH /api/chats/{chat_id}/messages/{message_id}",
            "POST /api/chats/{chat_id}/messages/{message_id}/regenerate",
            "POST /api/chats/{chat_id}/stop",
            "POST /api/chats/{chat_id}/summarize",
        ],
    )
    def test_chat_operations_list_chat_not_found(self, openapi, name):
        described = dict(operations(openapi))[name]["responses"]["404"]["description"]
        assert "`chat_not_found`" in described


class TestInputsAreDescribedAsChecked:
    def test_emails_are_emails(self, openapi):
        schemas = openapi["components"]["schemas"]
        assert schemas["RegisterRequest"]["properties"]["email"]["format"] == "email"
        assert schemas["LoginRequest"]["properties"]["email"]["format"] == "email"

    def test_mode_params_are_one_of_the_modes_schemas(self, openapi):
        mode_params = openapi["components"]["schemas"]["ChatCreate"]["properties"]["mode_params"]
        branches = mode_params["anyOf"]
        assert all(branch["additionalProperties"] is False for branch in branches)
        assert any("purpose" in branch["properties"] for branch in branches)

    def test_cursors_are_described_by_their_alphabet(self, openapi):
        parameters = dict(operations(openapi))["GET /api/chats"]["parameters"]
        cursor = next(p for p in parameters if p["name"] == "cursor")
        assert cursor["schema"]["anyOf"][0]["pattern"] == "^[A-Za-z0-9_-]+$"


class TestBodiesThatAreNotJson:
    async def test_invalid_utf8_is_malformed_json_like_broken_json(self, client):
        for body in (b'{"email": "\xff\xfe"}', b'{"email": '):
            response = await client.post(
                "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
            )
            assert_error(response, 400, "malformed_json")

    async def test_a_boolean_is_not_a_number(self, client):
        user = await register(client)
        for body in ({"temperature": True}, {"max_tokens": "5"}, {"pinned": 1}):
            response = await client.post("/api/chats", json=body, headers=user.headers)
            assert_error(response, 422, "validation_error")
        listed = await client.get("/api/chats", headers=user.headers)
        assert listed.json()["items"] == []
