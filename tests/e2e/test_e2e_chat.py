"""Two users in two browser contexts: joining, typing, messages, reactions, threads, attachments;
and history that loads older pages on scroll."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from conftest import NewPage, shoot
from support import LiveServer


async def test_two_users_see_each_other_join_and_type(server: LiveServer, new_page: NewPage) -> None:
    alice: Any = await new_page("alice", "member", ["demo"], route="/project/demo/chat")
    await expect(alice.get_by_test_id("online-users")).to_contain_text("alice")
    bob: Any = await new_page("bob", "member", ["demo"], route="/project/demo/chat")

    # Joining: each sees the other online.
    await expect(alice.get_by_test_id("online-users")).to_contain_text("bob")
    await expect(bob.get_by_test_id("online-users")).to_contain_text("alice")

    # Typing: alice types, bob sees it; sending clears it.
    alice_box = alice.get_by_role("combobox", name="Message")
    await alice_box.press_sequentially("hello bob", delay=20)
    await expect(bob.get_by_test_id("typing")).to_contain_text("alice is typing")
    await alice_box.press("Enter")
    message = bob.locator(".msg").filter(has_text="hello bob")
    await expect(message).to_be_visible()
    await expect(bob.get_by_test_id("typing")).to_have_text("")

    # Reactions go both ways.
    await message.hover()
    await message.get_by_role("button", name="React 👍").click()
    await expect(
        alice.locator(".msg").filter(has_text="hello bob").locator(".reaction").first
    ).to_contain_text("👍 1")

    # A thread on alice's message; bob sees the reply count.
    own = alice.locator(".msg").filter(has_text="hello bob")
    await own.get_by_role("button", name="Reply in thread").click()
    reply_box = alice.get_by_role("combobox", name="Reply")
    await reply_box.fill("a reply in the thread")
    await reply_box.press("Enter")
    await expect(alice.get_by_role("complementary", name="Thread")).to_contain_text("a reply in the thread")
    await expect(bob.locator(".msg").filter(has_text="hello bob")).to_contain_text("1 reply")

    # An attachment, uploaded over HTTP and referenced by the message.
    await bob.locator("input[type=file]").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"release notes\n"}
    )
    await expect(bob.locator(".attachments.pending")).to_contain_text("notes.txt")
    bob_box = bob.get_by_role("combobox", name="Message")
    await bob_box.fill("notes attached")
    await bob_box.press("Enter")
    link = alice.locator(".msg").filter(has_text="notes attached").get_by_role("link", name="notes.txt")
    await expect(link).to_be_visible()
    await shoot(alice, "chat-two-users")
    await alice.emulate_media(color_scheme="dark")
    await shoot(alice, "chat-two-users-dark")

    # Leaving: bob closes his window, alice sees him go.
    await bob.context.close()
    await expect(alice.get_by_test_id("online-users")).not_to_contain_text("bob", timeout=10_000)
    assert not alice.errors


async def test_history_loads_older_messages_on_scroll(server: LiveServer, new_page: NewPage) -> None:
    await server.app.services.config.update(
        "security", {"events_per_second": 1000, "events_per_minute": 60000}, "test", None
    )
    writer = await server.client("/chat/demo", server.token("seeder", "member", ["demo"]))
    for i in range(1, 121):
        await writer.call("send_message", {"content": f"message number {i}", "type": "message"})

    page: Any = await new_page("reader", "member", ["demo"], route="/project/demo/chat")
    messages = page.get_by_test_id("messages")
    await expect(messages).to_contain_text("message number 120")
    await expect(messages.locator(".msg")).to_have_count(50)
    for _ in range(6):
        await messages.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        await page.wait_for_timeout(300)
    await expect(messages).to_contain_text("message number 1\n", timeout=5000)
    await expect(messages.locator(".msg")).to_have_count(120)
    await expect(messages).to_contain_text("Start of the conversation")
