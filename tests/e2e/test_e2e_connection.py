"""The connection status: live, reconnecting after a drop, live again; the token refreshed before expiry."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from conftest import NewPage
from support import LiveServer

SESSION_KEY = "agent-portal.session"


async def test_a_dropped_connection_shows_reconnecting_then_live(
    server: LiveServer, new_page: NewPage
) -> None:
    page: Any = await new_page("dana", "member", ["demo"], route="/project/demo")
    await expect(page.locator("[data-connection=live]")).to_be_visible()

    namespace = "/project/demo"
    sids = list(server.app.sio.manager.rooms.get(namespace, {}).get(None, {}))
    assert sids
    for sid in sids:
        await server.app.sio.disconnect(sid, namespace=namespace)

    await expect(page.locator("[data-connection=retrying]")).to_contain_text("Reconnecting (attempt 1)")
    await expect(page.locator("[data-connection=live]")).to_be_visible(timeout=10_000)
    # Live again means live: a state change made now reaches the page.
    chat = await server.client("/chat/demo", server.token("erin", "member", ["demo"]))
    await chat.call("send_message", {"content": '/epic "After the drop"', "type": "command"})
    await expect(page.locator(".page-head [data-state]")).to_have_attribute("data-state", "BACKLOG_READY")
    assert not page.errors


async def test_the_token_is_refreshed_before_it_expires(server: LiveServer, browser: Any) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{server.url}/#token={server.token('fay', 'member', ['demo'], ttl=65)}")
    await expect(page.get_by_test_id("current-user")).to_have_text("fay")
    first = await page.evaluate(f"sessionStorage.getItem('{SESSION_KEY}')")
    # A 65 s token is refreshed 60 s before expiry, i.e. after about 5 s.
    await page.wait_for_function(f"sessionStorage.getItem('{SESSION_KEY}') !== {first!r}", timeout=15_000)
    await expect(page.get_by_test_id("current-user")).to_have_text("fay")
    await expect(page.locator("[data-connection=live]")).to_be_visible()
