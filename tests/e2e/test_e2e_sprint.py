"""A sprint run from the chat with the demo agents, approved from the project view."""

from __future__ import annotations

from typing import Any

from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import expect

from conftest import NewPage, shoot
from support import LiveServer


async def approve_all(project: Any, until_state: str | None = None, rounds: int = 40) -> int:
    """Clicks Approve on the project view's queue until it is empty (and the state reached)."""
    approved = 0
    for _ in range(rounds):
        buttons = project.locator(".approval-actions button.primary:not([disabled])")
        if await buttons.count():
            try:
                await buttons.first.click(timeout=2000)
                approved += 1
            except PlaywrightTimeout:  # resolved meanwhile (the list re-rendered)
                pass
            continue
        state = await project.locator(".page-head [data-state]").get_attribute("data-state")
        if (until_state is None and approved) or (until_state is not None and state == until_state):
            return approved
        await project.wait_for_timeout(200)
    return approved


async def test_sprint_from_chat_with_approvals_in_project_view(server: LiveServer, new_page: NewPage) -> None:
    chat: Any = await new_page("alex", "member", ["demo"], route="/project/demo/chat")
    project: Any = await new_page(
        "alex", "member", ["demo"], route="/project/demo"
    )  # same user, second window
    await expect(project.locator(".page-head [data-state]")).to_have_attribute("data-state", "IDLE")

    # Autocomplete offers the commands allowed now, and keyboard picks one.
    box = chat.get_by_role("combobox", name="Message")
    await box.fill("/ep")
    await expect(chat.get_by_role("listbox")).to_contain_text("/epic")
    await box.press("Tab")
    await expect(box).to_have_value("/epic ")
    await box.fill('/epic "Build a login page"')
    await box.press("Enter")
    await expect(chat.locator(".toast-error")).to_have_count(0)
    card = chat.locator(".msg-response .embed").filter(has_text="/epic")
    await expect(card).to_contain_text("Epic")
    await expect(chat.locator(".msg-command .result-tag.ok")).to_have_count(1)

    # The DesignAgent's decomposition waits for approval in the project view, with a countdown.
    approval = project.locator(".approval").first
    await expect(approval).to_contain_text("DesignAgent")
    await expect(approval.locator(".countdown")).to_contain_text("left")
    await shoot(project, "project-approval")
    await approve_all(project)
    await expect(project.locator("#backlog li")).to_have_count(3, timeout=10_000)
    await expect(project.locator("#backlog .demo-badge").first).to_be_visible()

    for command in ("/sprint plan", "/sprint start"):
        await box.fill(command)
        await box.press("Escape")
        await box.press("Enter")
        await expect(chat.locator(".msg-response .embed").filter(has_text=command)).to_be_visible()

    await expect(project.locator(".page-head [data-state]")).to_have_attribute("data-state", "SPRINT_ACTIVE")
    await expect(project.locator("#tasks .task").first).to_be_visible()
    await shoot(project, "project-sprint")
    await approve_all(project, until_state="SPRINT_REVIEW", rounds=400)
    await expect(project.locator(".page-head [data-state]")).to_have_attribute(
        "data-state", "SPRINT_REVIEW", timeout=20_000
    )
    await expect(project.get_by_test_id("sprint-numbers")).to_contain_text("3/3 done")
    await expect(project.locator(".commands-bar")).to_contain_text("/feedback")

    await box.fill('/feedback "Works well"')
    await box.press("Escape")
    await box.press("Enter")
    await expect(project.locator(".page-head [data-state]")).to_have_attribute(
        "data-state", "IDLE", timeout=10_000
    )
    await shoot(chat, "chat")
    assert not chat.errors


async def test_backlog_add_and_prioritize_from_the_project_view(
    server: LiveServer, new_page: NewPage
) -> None:
    page: Any = await new_page("gus", "member", ["demo"], route="/project/demo")
    other: Any = await new_page("hal", "viewer", ["demo"], route="/project/demo")
    for title in ("Export invoices", "Import contacts"):
        await page.get_by_placeholder("Add a story…").fill(title)
        await page.get_by_role("button", name="Add", exact=True).click()
        await expect(other.locator("#backlog li").filter(has_text=title)).to_be_visible()
    second = page.locator("#backlog li").filter(has_text="Import contacts")
    await second.get_by_label("Priority of Import contacts").select_option("1")
    # Every viewer of the project sees the new priority (and the order) without reloading.
    await expect(other.get_by_label("Priority of Import contacts")).to_have_value("1")
    await expect(other.locator("#backlog li").first).to_contain_text("Import contacts")
    await expect(other.get_by_placeholder("Add a story…")).to_have_count(0)  # viewers only watch
