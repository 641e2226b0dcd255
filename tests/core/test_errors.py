"""The one error shape, request ids, and 4xx (never 5xx) for bad input on every endpoint."""

import json
import logging

import httpx
import pytest

from tests.support.api import assert_error
from tests.support.app import start_app


class TestErrorShape:
    async def test_unknown_path_is_404_in_the_error_shape(self, client):
        assert_error(await client.get("/api/nope"), 404, "not_found")

    async def test_wrong_method_is_405_in_the_error_shape(self, client):
        assert_error(await client.delete("/api/auth/me"), 405, "method_not_allowed")

    async def test_malformed_json_is_400(self, client):
        response = await client.post(
            "/api/auth/login",
            content=b'{"email": "a@example.com", "password": ',
            headers={"Content-Type": "application/json"},
        )
        assert_error(response, 400, "malformed_json")

    async def test_validation_error_lists_each_field(self, client):
        response = await client.post("/api/auth/register", json={"email": 5})
        error = assert_error(response, 422, "validation_error")
        fields = {detail["field"] for detail in error["details"]}
        assert {"body.email", "body.display_name", "body.password"} <= fields

    async def test_unexpected_exception_is_500_without_internals(self, settings, capsys):
        app, lifespan = await start_app(settings)

        async def explode() -> None:
            raise RuntimeError("secret internal detail /srv/app/file.py")

        app.add_api_route("/test-only/explode", explode)

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                response = await http.get("/test-only/explode")
        finally:
            await lifespan.__aexit__(None, None, None)
        error = assert_error(response, 500, "internal_error")
        assert "secret" not in response.text and "/srv" not in response.text
        logged = capsys.readouterr().out
        assert "Traceback" in logged and error["request_id"] in logged


class TestRequestId:
    async def test_a_given_request_id_is_echoed(self, client):
        response = await client.get("/health", headers={"X-Request-ID": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"

    async def test_a_request_id_is_made_when_missing_or_unsafe(self, client):
        made = await client.get("/health")
        unsafe = await client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
        assert len(made.headers["x-request-id"]) == 32
        assert unsafe.headers["x-request-id"] != "bad id\nwith newline"


class TestAccessLog:
    async def test_one_json_line_per_request_without_secrets(self, client, user, capsys):
        capsys.readouterr()
        logging.getLogger("parley.access").setLevel(logging.INFO)
        await client.post(
            "/api/auth/login",
            json={"email": user.email, "password": user.password},
            headers={"X-Request-ID": "log-test-1"},
        )
        out = capsys.readouterr().out
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        access = [line for line in lines if line.get("request_id") == "log-test-1"]
        assert access and access[-1]["path"] == "/api/auth/login"
        assert access[-1]["status"] == 200 and "duration_ms" in access[-1]
        assert user.password not in out and user.refresh_token not in out


def _openapi_operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [
        (method.upper(), path, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]


class TestBadInputSweep:
    """Every endpoint answers garbage with a 4xx in the error shape, never a 5xx."""

    @pytest.mark.parametrize(
        "body",
        [
            b"{not json",
            b"[]",
            b'{"email": 1, "password": ["x"], "content": {}, "title": 5}',
            b'{"content": "' + b"x" * 300_000 + b'"}',
            b"null",
        ],
        ids=["malformed", "array", "wrong-types", "oversized", "null"],
    )
    async def test_bad_bodies(self, app, client, user, body):
        for method, path, operation in _openapi_operations(app.openapi()):
            if "requestBody" not in operation:
                continue
            url = path.replace("{", "").replace("}", "")  # ids that are not UUIDs
            response = await client.request(
                method,
                url,
                content=body,
                headers={**user.headers, "Content-Type": "application/json"},
            )
            # Bodies of unknown keys are valid for endpoints whose fields are all optional.
            assert response.status_code < 500, (method, path, response.text[:200])
            if response.status_code >= 400:
                assert "error" in response.json(), (method, path)

    async def test_bad_tokens(self, app, client):
        for method, path, operation in _openapi_operations(app.openapi()):
            if not operation.get("security"):
                continue
            url = path.replace("{", "").replace("}", "")
            for token in ("garbage", "a.b.c", "x" * 10_000):
                response = await client.request(
                    method, url, headers={"Authorization": f"Bearer {token}"}
                )
                assert response.status_code in (401, 404, 422), (method, path, response.text)
                assert "error" in response.json()
