"""How Parley serves the web client, over HTTP (no browser needed): the shell on every page path
under its own CSP, the API's CSP left as it was, the modules, and the first-load budget."""

import importlib.util
import re
from pathlib import Path

import httpx
import pytest

from app.web.router import PAGES, STATIC_DIRECTORY, WEB_CSP, WEB_DIRECTORY

BENCH = Path(__file__).resolve().parents[2] / "bench" / "web_size.py"


class TestPages:
    @pytest.mark.parametrize("path", [*PAGES, "/chats/0b7a6c1e-2f0e-4c55-9d2a-2f6e0f0f0a01"])
    async def test_every_page_path_serves_the_shell_under_the_page_csp(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == WEB_CSP
        assert '<script type="module" src="/static/app.js">' in response.text

    async def test_the_mailed_link_paths_are_pages(self, client: httpx.AsyncClient) -> None:
        for path in ("/verify-email?token=abc", "/reset-password?token=abc"):
            response = await client.get(path)
            assert response.status_code == 200
            assert response.headers["referrer-policy"] == "no-referrer"

    async def test_the_shared_chat_page_is_never_indexed_nor_leaks_its_token(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/s/some-token_value")
        assert response.status_code == 200
        assert response.headers["content-security-policy"] == WEB_CSP
        assert response.headers["x-robots-tag"].startswith("noindex")
        assert response.headers["referrer-policy"] == "no-referrer"
        assert '<script type="module" src="/static/app.js">' in response.text

    async def test_the_api_keeps_its_own_csp(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/models")
        assert response.headers["content-security-policy"].startswith("default-src 'none'")

    async def test_modules_and_styles_are_served_with_their_types(
        self, client: httpx.AsyncClient
    ) -> None:
        script = await client.get("/static/app.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        style = await client.get("/static/style.css")
        assert style.headers["content-type"].startswith("text/css")
        assert (await client.get("/static/nothing.js")).status_code == 404

    async def test_modules_are_revalidated_on_every_load(self, client: httpx.AsyncClient) -> None:
        first = await client.get("/static/chats.js")
        assert first.headers["cache-control"] == "no-cache"
        again = await client.get(
            "/static/chats.js", headers={"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304


class TestPolicy:
    def test_the_page_csp_allows_no_inline_code_no_eval_and_no_other_host(self) -> None:
        assert "unsafe" not in WEB_CSP
        assert "default-src 'self'" in WEB_CSP
        assert not re.search(r"https?:|\*", WEB_CSP)

    def test_no_inline_script_or_style_in_the_shell(self) -> None:
        shell = (WEB_DIRECTORY / "index.html").read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", shell)
        assert "<style" not in shell and "style=" not in shell
        assert not re.search(r"\son[a-z]+=", shell)

    def test_the_client_never_parses_html_or_evaluates_code(self) -> None:
        for path in STATIC_DIRECTORY.glob("*.js"):
            source = path.read_text()
            for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function"):
                assert risky not in source, f"{path.name} uses {risky}"
            assert "localStorage" not in source, f"{path.name} uses localStorage"

    def test_first_load_is_within_the_150_kb_budget(self) -> None:
        spec = importlib.util.spec_from_file_location("web_size", BENCH)
        assert spec and spec.loader
        web_size = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(web_size)
        rows = web_size.sizes()
        assert {
            "app.js",
            "style.css",
            "chats.js",
            "markdown.js",
            "vendor/markdown-it.js",
            "vendor/purify.js",
            "vendor/highlight/core.js",
        } <= {name for name, *_ in rows}
        assert sum(compressed for *_, compressed in rows) <= web_size.BUDGET


class TestVendoredLibraries:
    def test_the_files_match_their_manifest_and_keep_their_licences(self) -> None:
        # The same check as `scripts/vendor.py --check` (no network): what is served is what
        # `make vendor` fetched from npm, byte for byte.
        script = Path(__file__).resolve().parents[2] / "scripts" / "vendor.py"
        spec = importlib.util.spec_from_file_location("vendor", script)
        assert spec and spec.loader
        vendor = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(vendor)
        assert vendor.check() == 0
        for package in vendor.PACKAGES:
            assert any(name.startswith("LICENSE") for name in package.files.values())

    def test_axe_core_is_for_the_tests_only(self) -> None:
        assert not list(STATIC_DIRECTORY.rglob("axe*"))
