"""Chats people live in, in headless Chromium against a real ``serve``: an upstream error
kept across a reload and retried; regenerate and edit with the old replies reachable;
copy buttons; search; titles for chats made over the API; a member's own API tokens.

Screenshots go to ``test-artifacts/screenshots/`` (desktop and phone).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any, Iterator

import pytest
from websockets.sync.client import connect

from tests.dashboard.test_dashboard import (  # noqa: F401 - fixtures
    CHAT_READY,
    PHONE,
    Pages,
    browser,
    new_chat,
    open_chat,
    send,
    shot,
    wait_idle,
)
from tests.e2e.server import ROOT, ServeProcess
from tests.fake_upstream import FakeUpstream, HttpError, Text

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           upstream_server: FakeUpstream) -> Iterator[ServeProcess]:
    # No client retries: one scripted upstream failure is one failed turn.
    proc = ServeProcess(tmp_path_factory.mktemp("history") / "data",
                        env={"GATEWAY_UPSTREAM_RETRIES": "0"})
    proc.start(timeout=120)  # a shared, busy CI machine can take long to start Django
    try:
        with proc.client() as http:
            assert http.post("/api/profiles", json={"name": "fake", "profile": {
                "provider": "openai", "model": "fake-model", "base_url": upstream_server.url,
                "api_key": "sk-hist-1234"}}).status_code == 201
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def pages(browser: Any, server: ServeProcess) -> Iterator[Pages]:  # noqa: F811
    opened = Pages(browser, server)
    yield opened
    opened.close()
    assert opened.errors == []


def signed_in(pages: Pages, server: ServeProcess, viewport: dict[str, int] | None = None
              ) -> Any:
    page = pages.signed_in(server.admin_token, **({"viewport": viewport} if viewport else {}))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    return page


def reply_bubbles(page: Any) -> Any:
    return page.locator("#transcript > .msg.assistant .bubble")


def test_an_upstream_error_survives_a_reload_and_retry_answers(pages, server, upstream):
    from playwright.sync_api import expect

    chat_id = new_chat(server)
    page = signed_in(pages, server)
    open_chat(page, server, chat_id)
    upstream.enqueue(HttpError(500))
    send(page, "what is a monad?")
    error = page.locator("#transcript > .note.error")
    expect(error.locator(".error-text")).to_have_text(
        "The model provider had an internal error. Retry in a moment.")
    expect(error.locator(".error-code")).to_have_text("upstream_error")
    expect(error.locator(".error-detail pre")).to_be_hidden()  # folded away
    wait_idle(page)
    shot(page, "30-error-live")

    page.reload()
    page.wait_for_function(CHAT_READY)
    error = page.locator("#transcript > .note.error")
    expect(error.locator(".error-text")).to_have_text(
        "The model provider had an internal error. Retry in a moment.")
    error.locator(".error-detail summary").click()
    expect(error.locator(".error-detail pre")).to_contain_text("HTTP 500")
    shot(page, "31-error-after-reload")
    phone = signed_in(pages, server, PHONE)
    open_chat(phone, server, chat_id)
    expect(phone.locator("#transcript > .note.error .retry")).to_be_visible()
    shot(phone, "32-error-after-reload-phone")

    upstream.enqueue(Text("A monoid in the category of endofunctors."))
    error.locator(".retry").click()
    expect(reply_bubbles(page)).to_have_text(["A monoid in the category of endofunctors."])
    wait_idle(page)
    # The failed attempt stays reachable, folded, with its error.
    old = page.locator("#transcript details.versions")
    expect(old).to_have_count(1)
    old.locator(":scope > summary").click()
    expect(old.locator(".msg.user .bubble")).to_have_text("what is a monad?")
    expect(old.locator(".note.error")).to_contain_text("internal error")
    expect(page.locator("#transcript > .note.error")).to_have_count(0)
    shot(page, "33-retry-succeeded")


def test_regenerate_and_edit_keep_the_old_replies_and_copy_works(pages, server, upstream):
    from playwright.sync_api import expect

    chat_id = new_chat(server)
    page = signed_in(pages, server)
    open_chat(page, server, chat_id)
    code_reply = "Use this:\n\n```python\nprint('hi')\n```\n"
    upstream.enqueue(Text(code_reply, usage=(21, 9)))
    send(page, "how do I greet?")
    wait_idle(page)
    reply = page.locator("#transcript > .msg.assistant").last
    expect(reply.locator(".meta")).to_contain_text("fake-model · 21 in / 9 out")
    reply.locator("pre .copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == "print('hi')"
    reply.locator(".msg-actions .copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == code_reply

    upstream.enqueue(Text("second take"))
    reply.get_by_role("button", name="Regenerate").click()
    expect(reply_bubbles(page)).to_have_text(["second take"])
    wait_idle(page)
    versions = page.locator("#transcript details.versions")
    expect(versions).to_have_count(1)
    versions.first.locator(":scope > summary").click()
    expect(versions.first.locator(".msg.assistant .bubble")).to_contain_text("Use this:")
    shot(page, "34-regenerated")

    upstream.enqueue(Text("answer to the better question"))
    question = page.locator("#transcript > .msg.user").last
    question.get_by_role("button", name="Edit").click()
    question.locator(".edit-input").fill("how do I greet politely?")
    question.get_by_role("button", name="Send edited").click()
    expect(reply_bubbles(page)).to_have_text(["answer to the better question"])
    expect(page.locator("#transcript > .msg.user .bubble")).to_have_text(
        ["how do I greet politely?"])
    wait_idle(page)
    # Both earlier versions are still there.
    page.locator("#transcript details.versions > summary").first.click()
    expect(page.locator("#transcript details.versions .msg.assistant .bubble")) \
        .to_have_count(2)
    shot(page, "35-edited")
    phone = signed_in(pages, server, PHONE)
    open_chat(phone, server, chat_id)
    expect(phone.locator("#transcript details.versions")).to_have_count(2)  # two replacements
    shot(phone, "36-versions-phone")


def _send_over_the_api(server: ServeProcess, chat_id: str, text: str) -> None:
    """A client that is not the dashboard: a socket, one message, until the turn ends.
    (Sync: Playwright's sync API already runs an event loop in this thread.)"""
    with connect(f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}") as ws:
        ws.recv(timeout=10)  # agent.state
        ws.send(json.dumps({"type": "user_message", "content": text}))
        while json.loads(ws.recv(timeout=10))["type"] != "agent.turn_complete":
            pass


def test_search_finds_an_older_chat_and_api_chats_have_titles(pages, server, upstream):
    from playwright.sync_api import expect

    older = new_chat(server)
    upstream.enqueue(Text("Kubernetes rolls the deployment out pod by pod."))
    _send_over_the_api(server, older, "How does a rolling update work?")
    for n in range(3):  # newer chats push the older one down the list
        chat = new_chat(server)
        upstream.enqueue(Text(f"answer {n}"))
        _send_over_the_api(server, chat, f"newer question {n}")

    page = signed_in(pages, server)
    items = page.locator("#chat-list li")
    expect(items.first).to_contain_text("newer question 2")
    expect(page.locator(f"#chat-list li[data-chat-id='{older}']")).to_contain_text(
        "How does a rolling update work?")
    page.fill("#chat-search", "kubern")
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-chat-id", older)
    shot(page, "37-search")
    items.first.locator("a").click()
    page.wait_for_function(CHAT_READY)
    expect(page.locator("#chat-title")).to_have_text("How does a rolling update work?")
    phone = signed_in(pages, server, PHONE)
    phone.click("#nav-toggle")
    phone.fill("#chat-search", "rolling")
    expect(phone.locator("#chat-list li")).to_have_count(1)
    shot(phone, "38-search-phone")


def _member_token(server: ServeProcess, username: str) -> str:
    made = subprocess.run([sys.executable, "manage.py", "issue_token", username], cwd=ROOT,
                          env=server.env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def test_a_member_creates_and_revokes_a_token_in_the_page(pages, server):
    from playwright.sync_api import expect

    dora = _member_token(server, "dora")
    page = pages.signed_in(dora)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page.click("#tokens-link")
    page.fill("#token-name", "my script")
    page.select_option("#token-expiry", "90")
    page.get_by_role("button", name="Create token").click()
    created = page.locator("#new-token")
    expect(created).to_have_text(re.compile(r"^gw_[0-9a-f]{64}$"))
    token = created.inner_text()
    page.locator(".token-once button").click()
    assert page.evaluate("navigator.clipboard.readText()") == token
    row = page.locator("#token-table tr", has_text="my script")
    expect(row).to_have_count(1)
    expect(page.locator("#token-table tr", has_text="this page")
           .get_by_role("button", name="Revoke")).to_be_disabled()
    shot(page, "39-tokens")
    with server.client(token) as http:
        assert http.get("/api/chats").status_code == 200

    row.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    with server.client(token) as http:
        assert http.get("/api/chats").status_code == 401
    # Shown once: the page opened again has no way to see it.
    page.reload()
    page.wait_for_selector("#tokens-view:not([hidden])")
    expect(page.locator("#new-token")).to_have_count(0)
    phone = pages.signed_in(dora, PHONE)
    phone.goto(f"{server.url}/#/tokens")
    expect(phone.locator("#token-table tbody tr")).to_have_count(1)
    shot(phone, "40-tokens-phone")


def test_code_is_highlighted_math_is_rendered_and_both_copy(pages, server, upstream):
    from playwright.sync_api import expect

    chat_id = new_chat(server)
    page = signed_in(pages, server)
    open_chat(page, server, chat_id)
    reply = ("Energy: $E = mc^2$.\n\n$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$\n\n"
             "```python\ndef area(r):\n    return 3.14 * r ** 2\n```\n\n"
             "| a | b |\n|---|---|\n| 1 | 2 |\n")
    upstream.enqueue(Text(reply, chunk_size=9))
    send(page, "show me math and code")
    wait_idle(page)
    bubble = page.locator("#transcript > .msg.assistant .bubble").last
    code = bubble.locator("pre code")
    expect(code).to_have_attribute("data-lang", "python")
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    expect(bubble.locator("math")).to_have_count(2)  # inline and display, as MathML
    expect(bubble.locator("math mfrac")).to_have_count(1)
    expect(bubble.locator(".md-table table td").first).to_have_text("1")
    assert bubble.locator("[style]").count() == 0  # nothing the strict CSP would block
    bubble.locator("pre .copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == \
        "def area(r):\n    return 3.14 * r ** 2"
    shot(page, "41-code-and-math")
    page.reload()  # the same from the saved history
    page.wait_for_function(CHAT_READY)
    expect(page.locator("#transcript > .msg.assistant .bubble math")).to_have_count(2)
    phone = signed_in(pages, server, PHONE)
    open_chat(phone, server, chat_id)
    expect(phone.locator("#transcript .hljs-keyword").first).to_be_visible()
    shot(phone, "42-code-and-math-phone")


def test_an_admin_edits_a_profile_in_place_and_tests_its_connection(pages, server):
    from playwright.sync_api import expect

    page = signed_in(pages, server)
    page.goto(f"{server.url}/#/settings")
    row = page.locator("tr[data-profile='fake']")
    row.get_by_role("button", name="Test connection").click()
    expect(page.locator("#profiles-ok")).to_contain_text("fake: connected")
    row.get_by_role("button", name="Edit").click()
    expect(page.locator("#pf-name")).to_be_disabled()
    expect(page.locator("#pf-models option[value='fake-model']")).to_have_count(1)
    page.fill("#pf-context-window", "12000")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#profiles-ok")).to_have_text("Saved fake.")
    expect(row).to_contain_text("12,000")
    with server.client() as http:
        stored = http.get("/api/profiles/fake").json()["profile"]
    assert stored["context_window"] == 12000 and stored["api_key"] == "...1234"
    expect(page.locator("#sb-status")).to_contain_text("sandbox")
    shot(page, "43-profile-edit")


def test_a_message_of_two_text_blocks_shows_them_as_two_paragraphs(pages, server, upstream):
    """Issue 19: the blocks of a user message are joined with a blank line, not run
    together ("firstsecond"), live in an open page and after a reload."""
    from playwright.sync_api import expect

    chat_id = new_chat(server)
    page = signed_in(pages, server)
    open_chat(page, server, chat_id)
    upstream.enqueue(Text("Two parts read."))
    blocks = [{"type": "text", "text": "First part ends here."},
              {"type": "text", "text": "Second part starts here."}]
    with connect(f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}") as ws:
        ws.recv(timeout=10)  # agent.state
        ws.send(json.dumps({"type": "user_message", "content": blocks}))
        while json.loads(ws.recv(timeout=10))["type"] != "agent.turn_complete":
            pass
    joined = "First part ends here.\n\nSecond part starts here."
    expect(reply_bubbles(page)).to_have_text(["Two parts read."])
    user = page.locator("#transcript > .msg.user .bubble")
    assert user.inner_text() == joined  # sent from another client: shown live
    page.reload()
    page.wait_for_function(CHAT_READY)
    expect(user).to_have_count(1)
    assert user.inner_text() == joined
    shot(page, "44-two-text-blocks")


def test_several_chats_are_deleted_with_one_confirmation(pages, server):
    """Issue 18: select chats in the list, delete them at once (POST
    /api/chats/bulk-delete); Cancel in the confirmation keeps them."""
    from playwright.sync_api import expect

    erin = _member_token(server, "erin")
    chats = {title: new_chat(server, erin, title) for title in ("alpha", "beta", "gamma")}
    page = pages.signed_in(erin)
    open_chat(page, server, chats["alpha"])
    items = page.locator("#chat-list li")
    expect(items).to_have_count(3)
    expect(page.locator("#chat-list .pick").first).to_be_hidden()

    page.click("#select-chats")
    expect(page.locator("#bulk-delete")).to_be_disabled()
    page.locator(f"#chat-list li[data-chat-id='{chats['alpha']}'] a").click()  # picks it
    page.locator(f"#chat-list li[data-chat-id='{chats['beta']}'] .pick").check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    shot(page, "45-chats-selected")
    page.click("#bulk-delete")
    expect(page.locator("#confirm-delete-text")).to_contain_text("these 2 chats")
    page.get_by_role("button", name="Cancel").click()
    expect(items).to_have_count(3)

    page.click("#bulk-delete")
    page.locator("#confirm-delete").get_by_role("button", name="Delete").click()
    expect(page.locator("#list-info")).to_have_text("Deleted 2 chats.")
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-chat-id", chats["gamma"])
    expect(page.locator("#home-view")).to_be_visible()  # the open chat was one of them
    with server.client(erin) as http:
        assert [c["title"] for c in http.get("/api/chats").json()["chats"]] == ["gamma"]

    phone = pages.signed_in(erin, PHONE)
    phone.click("#nav-toggle")
    phone.click("#select-chats")
    phone.click("#bulk-all")
    expect(phone.locator("#bulk-count")).to_have_text("1 selected")
    shot(phone, "46-chats-selected-phone")
    phone.click("#select-chats")  # Done: the selection is dropped
    expect(phone.locator("#bulk-bar")).to_be_hidden()
    expect(phone.locator("#chat-list .pick").first).not_to_be_checked()
