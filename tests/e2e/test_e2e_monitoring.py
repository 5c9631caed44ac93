"""The TDD view follows the demo agents' cycles and streams their test output."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from playwright.async_api import expect

from conftest import NewPage, shoot
from support import LiveServer


async def run_sprint_in_background(server: LiveServer) -> asyncio.Task[None]:
    """Drives a sprint through the API (epic, approvals, plan, start) while the browser watches."""
    token = server.token("driver", "member", ["demo"])
    chat = await server.client("/chat/demo", token)
    project = await server.client("/project/demo", token)

    async def approve_pending() -> None:
        reply = await project.call("get_snapshot", {})
        for approval in reply["data"]["pending_approvals"]:
            await project.call("resolve_approval", {"request_id": approval["id"], "approved": True})

    async def drive() -> None:
        await chat.call("send_message", {"content": '/epic "Search for orders"', "type": "command"})
        await project.wait_for("approval_request")
        await approve_pending()
        await project.wait_for("backlog_updated")
        await asyncio.sleep(0.3)
        for command in ("/sprint plan", "/sprint start"):
            await chat.call("send_message", {"content": command, "type": "command"})
        for _ in range(200):  # one phase a second: slow enough to watch
            await approve_pending()
            await asyncio.sleep(1.0)

    return asyncio.create_task(drive())


async def test_tdd_view_streams_test_output(server: LiveServer, new_page: NewPage) -> None:
    page: Any = await new_page("admin", "admin", route="/monitoring")
    await expect(page.get_by_role("heading", name="Monitoring")).to_be_visible()
    await expect(page.locator("[data-connection=live]")).to_be_visible()
    driver = await run_sprint_in_background(server)
    try:
        try:
            await expect(page.locator("[data-cycle]")).to_have_count(3, timeout=20_000)
        except AssertionError:
            if driver.done():
                driver.result()  # the driver's own failure says more
            raise
        output = page.get_by_test_id("test-output")
        # The selected cycle's output grows as the agents work, and the phase moves on.
        await expect(output).to_contain_text("Design notes", timeout=20_000)

        # A page opened mid-sprint fills in the earlier output with get_test_output.
        late: Any = await new_page("admin", "admin", route="/monitoring")
        await expect(late.get_by_test_id("test-output")).to_contain_text("Design notes", timeout=10_000)
        await late.context.close()

        await expect(output).to_contain_text("failed", timeout=20_000)
        await expect(page.locator("#output .phase.now")).not_to_have_text("Design", timeout=20_000)
        await expect(output).to_contain_text("passed", timeout=20_000)
        await expect(page.get_by_test_id("test-results").locator("dd.ok")).not_to_have_text(
            "0", timeout=20_000
        )
        await expect(page.locator("#output .demo-badge")).to_be_visible()
        await expect(page.get_by_test_id("activity").locator("li").first).to_be_visible()
        # Following the stream: the terminal is scrolled to its end.
        at_end = await output.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight < 40")
        assert at_end
        await shoot(page, "monitoring")
        assert not page.errors
    finally:
        driver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await driver
