"""Serves the web client: its HTML shell on every page path, its modules and styles under
/static. There is no build step; the browser loads the ES modules as they are on disk.

The shell runs under its own CSP: scripts, styles and connections from Parley only, no inline
script or style, no eval; images also from data: and blob: URLs (the MFA QR code, previews of
attachments). API answers keep their stricter `default-src 'none'` (app/core/middleware.py):
the security middleware leaves a CSP that a route set alone.
"""

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

WEB_DIRECTORY = Path(__file__).resolve().parent
STATIC_DIRECTORY = WEB_DIRECTORY / "static"
STATIC_PREFIX = "/static"

WEB_CSP = (
    "default-src 'self'; "
    "script-src 'self'; "
    "style-src 'self'; "
    "img-src 'self' data: blob:; "
    "connect-src 'self'; "
    "object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

# The client's own pages (History API routes). /verify-email and /reset-password are where the
# mailed links land when FRONTEND_URL is Parley's own address (app/mail/templates.py).
PAGES = (
    "/",
    "/signin",
    "/signup",
    "/forgot-password",
    "/verify-email",
    "/reset-password",
    "/email",
    "/knowledge",
    "/usage",
    "/account",
    "/prompts",
)


class WebStatic(StaticFiles):
    """The modules and styles, revalidated on every load (`no-cache` with their ETag, so a 304
    when unchanged): with no build step there are no hashed file names, and a page must never
    mix modules of two versions after an upgrade."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def install_web_client(app: FastAPI) -> None:
    """Adds the pages and the /static mount to `app`."""
    # Read once while the app is built (before the event loop serves anything): a few KB.
    shell = (WEB_DIRECTORY / "index.html").read_text(encoding="utf-8")
    headers = {"Content-Security-Policy": WEB_CSP, "Cache-Control": "no-cache"}
    router = APIRouter(include_in_schema=False)

    async def page() -> HTMLResponse:
        return HTMLResponse(shell, headers=headers)

    for path in PAGES:
        router.add_api_route(path, page, methods=["GET"], name=f"web:{path}")

    @router.get("/chats/{chat_id}", name="web:chat")
    async def chat_page(chat_id: uuid.UUID) -> HTMLResponse:
        return HTMLResponse(shell, headers=headers)

    # A shared chat's read-only page (app/sharing): the same shell, never indexed, and its token
    # never sent on in a Referer.
    shared_headers = {
        **headers,
        "X-Robots-Tag": "noindex, nofollow",
        "Referrer-Policy": "no-referrer",
    }

    @router.get("/s/{token}", name="web:shared")
    async def shared_page(token: str) -> HTMLResponse:
        return HTMLResponse(shell, headers=shared_headers)

    app.include_router(router)
    app.mount(STATIC_PREFIX, WebStatic(directory=STATIC_DIRECTORY), name="web-static")
