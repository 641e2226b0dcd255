"""Browser tests: Parley on a real uvicorn (its own database, the fake upstream, a real SMTP
server) driven by Chromium through Playwright.

Debian's `chromium` package is used (`CHROMIUM`, default /usr/bin/chromium): Playwright's own
browser download cannot work on an air-gapped machine. `make test` installs it when it runs as
root. Without it the tests skip with a loud reason, except under CI=true, where they fail.

Every page is watched: a console error, an uncaught exception, a CSP violation or a request to
any host but Parley fails the test (a test may allow the HTTP errors it provokes). All browser
tests run on one xdist worker (`xdist_group`, with `--dist loadgroup`): one browser, one server.
"""

import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import PASSWORD, SignedInUser, register
from tests.support.database import IN_CI, create_database, migrate, run_in_thread
from tests.support.fake_upstream import FakeState, FakeUpstream, run_fake_upstream
from tests.support.live import free_port, live_server
from tests.support.mcp_server import running_mcp_server
from tests.support.settings import smtp_settings
from tests.support.smtp_server import SMTPTestServer, running_smtp_server
from tests.support.upstream_fixtures import parley_settings
from tests.support.wait import wait_until

try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

    # The machine running the suite is busy with the other tests: generous waits for conditions.
    expect.set_options(timeout=10_000)
except ImportError:  # pragma: no cover - the dev extras install it
    async_playwright = None  # type: ignore[assignment]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
ARTIFACTS = os.environ.get("TEST_ARTIFACTS")
# Replies containing it are stopped by the output check (similar-questions mode only).
BLOCKED_WORD = "zorblax"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.xdist_group("browser"))


def _no_browser(reason: str) -> None:
    message = (
        f"\n{'!' * 72}\nBROWSER TESTS NOT RUN: {reason}\n"
        "Install it with `apt-get install chromium` (make test does so as root).\n"
        f"{'!' * 72}"
    )
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator["Browser"]:
    if async_playwright is None:
        _no_browser("the playwright package is not installed (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _no_browser(f"no Chromium at {CHROMIUM}")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Web:
    """Parley serving the web client, with what it talks to."""

    base_url: str
    fake: FakeUpstream
    smtp: SMTPTestServer
    http: httpx.AsyncClient

    async def user(self, **fields: Any) -> SignedInUser:
        """A new account made through the API (quicker than the sign-up page)."""
        return await register(self.http, **fields)


@pytest.fixture(scope="session")
def web_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # A database of its own: other tests in this worker empty theirs between tests.
    db, drop = create_database(tmp_path_factory.mktemp("web-db"))
    try:
        migrate(db.url)
        yield db
    finally:
        run_in_thread(drop)


@pytest.fixture(scope="session")
async def web(browser: "Browser", web_database: Any) -> AsyncIterator[Web]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    async with run_fake_upstream() as fake:
        with running_smtp_server() as smtp, running_mcp_server("calc") as calc:
            overrides = {
                # Tools: a real MCP server; `add` asks the user first.
                "mcp_servers": {"calc": {"url": calc.url, "approve": ["add"]}},
                **smtp_settings(smtp),
                # FRONTEND_URL unset: the mailed links open this server's own pages.
                "public_base_url": base_url,
                "llm_first_token_timeout": 5.0,
                "llm_idle_timeout": 5.0,
                "stream_checkpoint_seconds": 0.1,
                "llm_vision": True,  # the image mode and image attachments
                # Knowledge: the fake upstream serves the embeddings (as in tests/knowledge). On
                # the suite's Postgres (no pgvector) retrieval is full text only, which the UI
                # does not mind.
                "embedding_base_url": fake.base_url,
                "embedding_model": "fake-embed",
                "embedding_dimensions": 64,
                "rag_min_similarity": 0.35,
                "rag_top_k": 3,
                "rag_query_rewrite": False,
                # Replies are checked for BLOCKED_WORD in the similar-questions mode only (no
                # other browser test streams in it): the other modes keep streaming unheld.
                "blocked_patterns": [BLOCKED_WORD],
                "guardrails_output": ["blocked_patterns"],
                "guardrails_modes": {
                    mode: {"output": []} for mode in ("chat", "email", "summarize", "image")
                },
            }
            settings = parley_settings(web_database, fake, **overrides)
            from app.main import create_app

            with live_server(create_app(settings), port=port):
                async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
                    yield Web(base_url=base_url, fake=fake, smtp=smtp, http=http)


@pytest.fixture
def fake(web: Web) -> FakeUpstream:
    """The shared fake upstream with its knobs back to their defaults for this test."""
    web.fake.state = FakeState()
    return web.fake


@dataclass
class PageWatch:
    """What the pages of a context logged; checked when the test ends."""

    problems: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Tolerate console errors matching `pattern` (HTTP errors a test provokes on purpose)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]


# Reported to the console, so a violation fails the test even where Chromium would only warn.
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


class Browsing:
    """Opens watched browser contexts for one test and checks them at its end."""

    def __init__(self, browser: "Browser", web: Web) -> None:
        self.browser = browser
        self.web = web
        self.watch = PageWatch()
        self.contexts: list[BrowserContext] = []

    async def page(self, *, width: int = 1280, height: int = 800) -> "Page":
        context = await self.browser.new_context(
            base_url=self.web.base_url, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(10_000)
        await context.add_init_script(CSP_REPORTER)
        self.contexts.append(context)
        page = await context.new_page()
        page.on(
            "console",
            lambda message: (
                self.watch.problems.append(f"console {message.type}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: self.watch.problems.append(f"page error: {error}"))
        # Watched, not intercepted: Chromium's request interception can lose cookies that a
        # response sets (Playwright issue 41428), and nothing must change what the page sees.
        page.on("request", self._check_host)
        return page

    def _check_host(self, request: Any) -> None:
        if not request.url.startswith((self.web.base_url, "data:", "blob:")):
            self.watch.problems.append(f"request to another host: {request.url}")

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def browsing(browser: "Browser", web: Web, fake: FakeUpstream) -> AsyncIterator[Browsing]:
    session = Browsing(browser, web)
    try:
        yield session
    finally:
        await session.close()
    unexpected = session.watch.unexpected()
    assert not unexpected, "the page logged errors:\n" + "\n".join(unexpected)


# Resolves once an <img> has loaded: true when it decoded to a picture, false when it failed.
IMAGE_LOADED = """
img => img.complete
  ? img.naturalWidth > 0
  : new Promise((resolve) => {
      img.addEventListener("load", () => resolve(img.naturalWidth > 0));
      img.addEventListener("error", () => resolve(false));
    })
"""


async def screenshot(page: "Page", name: str) -> None:
    """Saves the page under $TEST_ARTIFACTS/web/ when that is set."""
    if ARTIFACTS:
        path = Path(ARTIFACTS) / "web" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(path), full_page=True, animations="disabled")


async def sign_in(page: "Page", email: str, password: str = PASSWORD) -> None:
    await page.goto("/signin")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("link", name="Account").wait_for()
    await signed_in_cookies(page)


async def signed_in_cookies(page: "Page") -> None:
    """Waits for the session cookies to reach the browser's cookie store: Chromium writes them a
    moment after the page has its answer, and a navigation at once would go without them."""

    async def stored() -> bool:
        names = {cookie.get("name") for cookie in await page.context.cookies()}
        return {"parley_access", "parley_refresh", "parley_csrf"} <= names

    await wait_until(stored, timeout=5)


async def chat_action(page: "Page", title: str, action: str) -> None:
    """Picks `action` from the "⋯" menu of the chat titled `title` in the sidebar."""
    await page.get_by_role("button", name=f"Actions for {title}", exact=True).click()
    await page.get_by_role("menuitem", name=action, exact=True).click()
