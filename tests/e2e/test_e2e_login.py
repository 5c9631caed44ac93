"""Logging in: the form, the one-click link, a wrong password, logging out."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from conftest import LAPTOP, NewPage, shoot
from support import LiveServer


async def test_login_form_then_logout(server: LiveServer, new_page: NewPage) -> None:
    await server.add_user("carol", "correct horse battery", "member", ["demo"])
    page: Any = await new_page()
    await expect(page.get_by_role("heading", name="agent-portal")).to_be_visible()
    await shoot(page, "login")

    await page.get_by_label("Username").fill("carol")
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Invalid username or password")

    await page.get_by_label("Password").fill("correct horse battery")
    await page.get_by_label("Password").press("Enter")
    await expect(page.get_by_test_id("current-user")).to_have_text("carol")
    card = page.locator("[data-project=demo]")
    await expect(card).to_be_visible()
    await expect(card.locator("[data-state]")).to_have_attribute("data-state", "IDLE")
    await expect(page.locator("[data-connection=live]")).to_be_visible()
    # The token lives in this tab's sessionStorage: a reload stays logged in.
    await page.reload()
    await expect(page.get_by_test_id("current-user")).to_have_text("carol")

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_label("Username")).to_be_visible()
    assert not page.errors


async def test_one_click_link_logs_in_and_cleans_the_address(server: LiveServer, new_page: NewPage) -> None:
    page: Any = await new_page("admin", "admin", viewport=LAPTOP)
    await expect(page.get_by_test_id("current-user")).to_have_text("admin")
    assert "token=" not in page.url
    await expect(page.get_by_role("link", name="Admin")).to_be_visible()
    # The dashboard's health charts fill from system_metrics (every second here).
    await expect(page.locator("[data-metric=CPU] .spark-value")).not_to_have_text("—", timeout=5_000)
    await expect(page.locator("[data-metric=Connections] polyline")).to_be_attached(timeout=5_000)
    await page.wait_for_timeout(3000)  # a few more samples for the screenshot
    await shoot(page, "dashboard")
    await page.emulate_media(color_scheme="dark")
    await shoot(page, "dashboard-dark")
    assert not page.errors


async def test_a_bad_link_lands_on_the_login_form(server: LiveServer, new_page: NewPage) -> None:
    page: Any = await new_page(route="token=not-a-jwt")
    await expect(page.get_by_label("Username")).to_be_visible()
