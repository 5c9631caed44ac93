"""Admin: live config in two browser contexts, the audit log, and a viewer kept out."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from conftest import NewPage, shoot
from support import LiveServer


async def test_config_change_arrives_in_a_second_context(server: LiveServer, new_page: NewPage) -> None:
    first: Any = await new_page("admin", "admin", route="/admin")
    second: Any = await new_page("admin2", "admin", route="/admin")
    field = "[name='max_concurrent_cycles']"
    await expect(first.locator(field)).to_have_value("3")
    await expect(second.locator(field)).to_have_value("3")

    await first.locator(field).fill("5")
    await first.get_by_label("Reason").fill("more parallel cycles")
    await first.get_by_role("button", name="Save (1)").click()

    await expect(second.locator(field)).to_have_value("5")
    await expect(second.get_by_test_id("config-changed")).to_contain_text("Changed by admin")
    await expect(second.get_by_test_id("config-changed")).to_contain_text("more parallel cycles")
    audit = second.get_by_test_id("audit-log")
    await expect(audit.locator("tr").filter(has_text="config")).not_to_have_count(0)

    # The other forms: agent settings per agent type, security limits; the keyboard moves between tabs.
    await second.get_by_role("tab", name="System").focus()
    await second.keyboard.press("ArrowLeft")
    await expect(second.get_by_role("tab", name="Agents")).to_have_attribute("aria-selected", "true")
    await expect(second.locator("[name='CodeAgent.max_retries']")).to_be_visible()
    await second.get_by_role("tab", name="Security").click()
    await expect(second.locator("[name='events_per_second']")).to_have_value("10")
    await second.get_by_role("tab", name="System").click()
    await shoot(second, "admin")
    assert not first.errors and not second.errors


async def test_viewer_is_denied_the_admin_page(server: LiveServer, new_page: NewPage) -> None:
    page: Any = await new_page("vic", "viewer", ["demo"], route="/admin")
    await expect(page.get_by_role("heading", name="Admins only")).to_be_visible()
    await expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    await expect(page.locator("[name='max_concurrent_cycles']")).to_have_count(0)
    await shoot(page, "admin-denied")

    # A viewer reads the chat but has no composer.
    await page.goto(f"{server.url}/#/project/demo/chat")
    await expect(page.get_by_text("You can read this chat")).to_be_visible()
    await expect(page.get_by_role("combobox", name="Message")).to_have_count(0)
