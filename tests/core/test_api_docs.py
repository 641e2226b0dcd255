"""Swagger UI and ReDoc served by Parley itself: no CDN, no inline script, a CSP with no other host.

A browser test comes with the web client (issue 18); these check what HTTP can: every asset a
page names is same-origin and served, and the policy the browser gets forbids anything else.
"""

import json
import re
from html.parser import HTMLParser
from importlib.metadata import version
from urllib.parse import urlsplit

import pytest

from app.core.apidocs import REDOC_LOGO, VENDOR_FILES, vendor_directory


class AssetCollector(HTMLParser):
    """Every URL a page loads (scripts, styles, icons) and the text of every inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self.attributes: dict[str, dict[str, str | None]] = {}
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.attributes[values["id"]] = values  # type: ignore[index]
        if tag == "redoc":
            self.attributes["redoc"] = values
        for name in ("src", "href", "spec-url"):
            if values.get(name):
                self.urls.append(values[name])  # type: ignore[arg-type]
        self._in_script = tag == "script"
        for name in values:
            assert not name.startswith("on"), f"inline event handler {name} on <{tag}>"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def parse(html: str) -> AssetCollector:
    collector = AssetCollector()
    collector.feed(html)
    return collector


def directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def content_type_for(url: str) -> str:
    return next(kind for suffix, kind in CONTENT_TYPES.items() if url.endswith(suffix))


class TestDocsPages:
    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    async def test_page_loads_only_same_origin_assets(self, client, path):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        page = parse(response.text)
        assert page.urls, "the page loads nothing"
        for url in page.urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, f"{path} loads {url} from elsewhere"
            assert url.startswith("/"), url
        assert page.inline_scripts == []
        assert "cdn" not in response.text.lower()

    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    async def test_every_asset_is_served_with_its_type(self, client, path):
        page = parse((await client.get(path)).text)
        assets = [url for url in page.urls if url != "/openapi.json"]
        assert any(url.endswith(".js") for url in assets)
        for url in assets:
            response = await client.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"].startswith(content_type_for(url)), url
            assert len(response.content) > 0

    async def test_swagger_ui_is_configured_from_data_attributes(self, client):
        page = parse((await client.get("/docs")).text)
        root = page.attributes["swagger-ui"]
        assert root["data-openapi-url"] == "/openapi.json"
        config = json.loads(root["data-parameters"] or "")
        assert config["persistAuthorization"] is True
        assert config["validatorUrl"] is None
        init = await client.get("/docs-assets/swagger-init.js")
        assert "data-parameters" in init.text
        assert "SwaggerUIBundle(" in init.text

    async def test_redoc_reads_the_schema_from_this_server(self, client):
        page = parse((await client.get("/redoc")).text)
        assert page.attributes["redoc"]["spec-url"] == "/openapi.json"

    async def test_the_schema_offers_the_password_flow_to_authorize(self, client):
        schema = (await client.get("/openapi.json")).json()
        flows = [
            scheme["flows"]
            for scheme in schema["components"]["securitySchemes"].values()
            if scheme["type"] == "oauth2"
        ]
        assert flows == [{"password": {"scopes": {}, "tokenUrl": "/api/auth/token"}}]

    async def test_redoc_loads_no_image_from_elsewhere(self, client):
        bundle = (await client.get("/docs-assets/redoc.standalone.js")).text
        assert "SwaggerUIBundle" not in bundle
        assert "redoc" in bundle[:5000].lower()
        images = re.findall(r'"https?://[^"]+\.(?:svg|png|gif|jpe?g)"', bundle)
        assert images == []

    async def test_unknown_asset_is_404(self, client):
        response = await client.get("/docs-assets/vendor/no-such-file.js")
        assert response.status_code == 404


class TestDocsPolicy:
    @pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs-assets/swagger-init.js"])
    async def test_policy_names_no_other_host_and_no_inline_script(self, client, path):
        policy = (await client.get(path)).headers["content-security-policy"]
        assert not re.search(r"https?:|//|\*", policy), policy
        parsed = directives(policy)
        assert parsed["script-src"] == ["'self'"]
        assert "'unsafe-eval'" not in policy
        assert parsed["default-src"] == ["'none'"]
        assert parsed["connect-src"] == ["'self'"]
        assert parsed["frame-ancestors"] == ["'none'"]


class TestVendorPackagePin:
    """pyproject.toml pins fastapi-offline; Parley serves its static files by name."""

    def test_the_package_ships_every_file_parley_serves(self):
        directory = vendor_directory()
        missing = [name for name in VENDOR_FILES if not (directory / name).is_file()]
        assert not missing, (
            f"fastapi-offline {version('fastapi-offline')} no longer ships {missing} in "
            f"{directory}; app/core/apidocs.py serves them: adapt it or keep the pinned range."
        )

    def test_redoc_still_names_the_logo_parley_replaces(self):
        bundle = (vendor_directory() / "redoc.standalone.js").read_text()
        assert REDOC_LOGO in bundle, (
            f"fastapi-offline {version('fastapi-offline')}: ReDoc no longer loads {REDOC_LOGO}; "
            "check what app/core/apidocs.py must replace for /redoc to load nothing remote."
        )

    def test_the_bundles_are_swagger_ui_and_redoc(self):
        directory = vendor_directory()
        assert "SwaggerUIBundle" in (directory / "swagger-ui-bundle.js").read_text()[:2000]
        assert "redoc" in (directory / "redoc.standalone.js").read_text()[:5000].lower()
