"""Swagger UI at /docs and ReDoc at /redoc, served entirely by Parley: offline (air-gapped
servers are common for self-hosted LLM stacks) and under a CSP that names no other host and
allows no inline script.

The Swagger UI and ReDoc bundles come from the `fastapi-offline` package (pinned in
pyproject.toml; tests/core/test_api_docs.py checks the files it ships). FastAPI's own pages start
Swagger UI with an inline script, so /docs starts it from /docs-assets/swagger-init.js, which
reads its configuration from the page's data attributes. ReDoc starts itself from its
`<redoc spec-url>` element.
"""

import asyncio
import json
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import swagger_ui_default_parameters
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

DOCS_ASSETS = "/docs-assets"
VENDOR = f"{DOCS_ASSETS}/vendor"
# The files Parley serves from the package; the test of the pin checks that each one is there.
VENDOR_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")

# ReDoc's sidebar always shows Redocly's logo from their CDN. Under the docs CSP the browser
# blocks it and logs a violation, so Parley serves the bundle with a blank image in its place.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
BLANK_IMAGE = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"

SWAGGER_INIT_JS = """\
"use strict";
// Starts Swagger UI from a file so that /docs needs no inline script (see app/core/apidocs.py).
(function () {
  var root = document.getElementById("swagger-ui");
  var parameters = JSON.parse(root.getAttribute("data-parameters"));
  parameters.url = root.getAttribute("data-openapi-url");
  parameters.dom_id = "#swagger-ui";
  parameters.presets = [SwaggerUIBundle.presets.apis];
  window.ui = SwaggerUIBundle(parameters);
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="{vendor}/favicon.png">
{head}
</head>
<body>
{body}
</body>
</html>
"""


def vendor_directory() -> Path:
    """Where the installed fastapi-offline package keeps the Swagger UI and ReDoc bundles."""
    return Path(str(files("fastapi_offline"))) / "static"


def swagger_ui_page(*, title: str, openapi_url: str, parameters: dict[str, Any]) -> str:
    config = {
        **swagger_ui_default_parameters,
        # Swagger UI would load a validity badge from validator.swagger.io.
        "validatorUrl": None,
        **parameters,
    }
    return PAGE.format(
        title=escape(title),
        vendor=VENDOR,
        head=f'<link rel="stylesheet" href="{VENDOR}/swagger-ui.css">',
        body=(
            f'<div id="swagger-ui" data-openapi-url="{escape(openapi_url)}" '
            f'data-parameters="{escape(json.dumps(config))}"></div>\n'
            f'<script src="{VENDOR}/swagger-ui-bundle.js"></script>\n'
            f'<script src="{DOCS_ASSETS}/swagger-init.js"></script>'
        ),
    )


def redoc_page(*, title: str, openapi_url: str) -> str:
    return PAGE.format(
        title=escape(title),
        vendor=VENDOR,
        head="",
        body=(
            f'<redoc spec-url="{escape(openapi_url)}"></redoc>\n'
            f'<script src="{DOCS_ASSETS}/redoc.standalone.js"></script>'
        ),
    )


def redoc_bundle() -> bytes:
    """ReDoc's bundle with its one remote image replaced (read from disk: call in a thread)."""
    source = (vendor_directory() / "redoc.standalone.js").read_text(encoding="utf-8")
    return source.replace(REDOC_LOGO, BLANK_IMAGE).encode()


def install_api_docs(app: FastAPI) -> None:
    """Serves /docs, /redoc and their assets; the app must be built with docs_url=None and
    redoc_url=None so that FastAPI's CDN pages are not served as well."""
    openapi_url = app.openapi_url or "/openapi.json"
    swagger = swagger_ui_page(
        title=f"{app.title} - Swagger UI",
        openapi_url=openapi_url,
        parameters=app.swagger_ui_parameters or {},
    )
    redoc = redoc_page(title=f"{app.title} - ReDoc", openapi_url=openapi_url)
    redoc_js: list[bytes] = []  # read on first use, then kept

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger)

    @app.get("/redoc", include_in_schema=False)
    async def redoc_ui() -> HTMLResponse:
        return HTMLResponse(redoc)

    @app.get(f"{DOCS_ASSETS}/swagger-init.js", include_in_schema=False)
    async def swagger_init() -> Response:
        return Response(SWAGGER_INIT_JS, media_type="text/javascript")

    @app.get(f"{DOCS_ASSETS}/redoc.standalone.js", include_in_schema=False)
    async def redoc_script() -> Response:
        if not redoc_js:
            redoc_js.append(await asyncio.to_thread(redoc_bundle))
        return Response(redoc_js[0], media_type="text/javascript")

    app.mount(VENDOR, StaticFiles(directory=vendor_directory()), name="docs-vendor")
