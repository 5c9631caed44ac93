"""Browser tests: the built portal in Debian's headless Chromium, driven by Playwright, on a real server.

Nothing here skips: a missing browser or an unbuilt portal is a failure with the command that fixes it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from support import LiveServer, live_server, make_settings

ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = ROOT / "src" / "agent_portal" / "web" / "static"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def _require_prerequisites() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (scripts/bootstrap --browser)", pytrace=False
        )
    if not (STATIC_DIR / "index.html").exists():
        pytest.fail(f"the portal is not built in {STATIC_DIR}: run scripts/bootstrap --portal", pytrace=False)
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("the Python package `playwright` is missing: pip install playwright", pytrace=False)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    _require_prerequisites()
    settings = replace(
        make_settings(tmp_path), static_dir=STATIC_DIR, demo_step_delay=0.05, metrics_interval_seconds=1.0
    )
    async with live_server(settings) as live:
        await live.add_project("demo")
        yield live


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _require_prerequisites()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


NewPage = Callable[..., Awaitable[Any]]


@pytest.fixture
def new_page(browser: Any, server: LiveServer) -> NewPage:
    """A page in a fresh browser context (its own sessionStorage: one user per context), logged in by
    the one-click link when a user is given. Page errors fail the test."""

    async def make(
        user: str | None = None,
        role: str = "member",
        projects: list[str] | None = None,
        route: str = "/",
        viewport: dict[str, int] | None = None,
    ) -> Any:
        context = await browser.new_context(viewport=viewport or LAPTOP)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors
        if user is None:
            await page.goto(f"{server.url}/#{route}")
        else:
            token = server.token(user, role, projects)
            await page.goto(f"{server.url}/#token={token}")
            await page.get_by_test_id("current-user").wait_for()
            if route != "/":
                await page.goto(f"{server.url}/#{route}")
        return page

    return make


async def shoot(page: Any, name: str) -> None:
    """Screenshots at a laptop's and a phone's size (test artifacts, not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    for label, size in (("1280x800", LAPTOP), ("390x844", PHONE)):
        await page.set_viewport_size(size)
        await page.wait_for_timeout(250)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"))
    await page.set_viewport_size(original)


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)
