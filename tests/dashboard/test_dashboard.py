"""The browser dashboard end to end: headless Chromium (the Debian package, driven by
Playwright) against a real ``serve`` process and the fake upstream.

Screenshots of the main screens go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import need
from tests.e2e.server import ROOT, ServeProcess
from tests.fake_upstream import FakeUpstream, HttpError, Text, ToolCalls

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# A function, not an expression: the page's CSP forbids the eval an expression would need.
CHAT_READY = "() => window.gatewayDashboard.chat && window.gatewayDashboard.chat.ready"
CAROL_PASSWORD = "carol-likes-long-passwords"

# Records every socket URL a page opens (to see the reconnect's ?since=).
RECORD_SOCKETS = """
window.__socketUrls = [];
const NativeSocket = window.WebSocket;
window.WebSocket = class extends NativeSocket {
  constructor(url, protocols) { super(url, protocols); window.__socketUrls.push(String(url)); }
};
"""

pytestmark = pytest.mark.timeout(60)


# -- fixtures --------------------------------------------------------------------------------

CREATE_CAROL = f"""
from django.contrib.auth import get_user_model
from gateway.auth import create_token
user = get_user_model().objects.create_user("carol", password={CAROL_PASSWORD!r})
print(create_token(user, "test")[1])
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           upstream_server: FakeUpstream) -> Iterator[ServeProcess]:
    # Compaction keeps one exchange verbatim, so two are enough to compact.
    with ServeProcess(tmp_path_factory.mktemp("dashboard") / "data",
                      env={"GATEWAY_COMPACTION_KEEP_EXCHANGES": "1"}) as proc:
        # carol: a member with a password (for Django's login) and a token. Created by a
        # second process while the tests start, as Django takes seconds to start.
        proc.carol = subprocess.Popen(  # type: ignore[attr-defined]
            [sys.executable, "manage.py", "shell", "-c", CREATE_CAROL], cwd=ROOT,
            env=proc.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with proc.client() as http:
            for name, window in (("fake", 8000), ("fake-big", 64000)):
                assert http.post("/api/profiles", json={"name": name, "profile": {
                    "provider": "openai", "model": "fake-model", "base_url": upstream_server.url,
                    "api_key": "sk-dash-1234", "context_window": window}}).status_code == 201
        yield proc
        proc.carol.kill()  # type: ignore[attr-defined]
        proc.carol.communicate()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def carol_token(server: ServeProcess) -> str:
    out, err = server.carol.communicate(timeout=60)  # type: ignore[attr-defined]
    assert server.carol.returncode == 0, err  # type: ignore[attr-defined]
    return out.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need(CHROMIUM.exists(), "chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - requirements.txt has it
        need(False, "the playwright package is not installed")
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)  # CI machines can be slow
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


class Pages:
    """Opens pages in fresh browser contexts and fails the test on any page error."""

    def __init__(self, browser: Any, server: ServeProcess) -> None:
        self.browser = browser
        self.server = server
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    def new(self, viewport: dict[str, int] = DESKTOP, context: Any = None,
            bypass_csp: bool = False) -> Any:
        if context is None:
            context = self.browser.new_context(viewport=viewport, bypass_csp=bypass_csp,
                                               reduced_motion="reduce")
            context.set_default_timeout(10_000)
            context.add_init_script(RECORD_SOCKETS)
            self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        # API errors (a 401 for a wrong token, a 400 shown in place) and sockets failing
        # while offline are expected; a script error or a CSP violation is not.
        page.on("console", lambda msg: msg.type == "error"
                and not msg.text.startswith(("Failed to load resource", "WebSocket connection"))
                and self.errors.append(msg.text))
        return page

    def signed_in(self, token: str, viewport: dict[str, int] = DESKTOP,
                  context: Any = None, bypass_csp: bool = False) -> Any:
        page = self.new(viewport, context, bypass_csp)
        page.goto(self.server.url + "/")
        page.fill("#token-input", token)
        page.press("#token-input", "Enter")
        page.wait_for_selector("#shell:not([hidden])")
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Any, server: ServeProcess) -> Iterator[Pages]:
    opened = Pages(browser, server)
    yield opened
    opened.close()
    assert opened.errors == []


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeUpstream:
    return upstream


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def new_chat(server: ServeProcess, token: str | None = None, title: str = "") -> str:
    with server.client(token) as http:
        return http.post("/api/chats", json={"title": title}).json()["chat_id"]


def open_chat(page: Any, server: ServeProcess, chat_id: str) -> None:
    page.goto(f"{server.url}/#/chats/{chat_id}")
    page.wait_for_selector("#chat-view:not([hidden])")
    page.wait_for_function(CHAT_READY)


def send(page: Any, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


def assistant_texts(page: Any) -> list[str]:
    # innerText ends a rendered block (a paragraph) with a line break: not the reply's text
    return [text.strip() for text in
            page.locator("#transcript .msg.assistant .bubble").all_inner_texts()]


def wait_idle(page: Any) -> None:
    """The turn is over: no Stop button, nothing queued."""
    page.wait_for_selector("#cancel-btn", state="hidden")
    page.wait_for_function("() => !document.querySelector('#queued .msg')")


# -- sign-in -----------------------------------------------------------------------------

def test_a_token_user_signs_in_chats_and_sees_the_answer_stream(pages, server, fake):
    from playwright.sync_api import expect

    page = pages.new()
    page.goto(server.url + "/")
    shot(page, "01-sign-in")
    page.fill("#token-input", "gw_" + "0" * 64)
    page.press("#token-input", "Enter")
    expect(page.locator("#token-error")).to_contain_text("not valid")
    page.fill("#token-input", server.admin_token)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#whoami")).to_have_text("admin (admin)")
    assert page.evaluate("sessionStorage.getItem('gateway.token')") == server.admin_token
    assert page.evaluate("localStorage.length") == 0

    page.click("#new-chat")
    page.wait_for_function(CHAT_READY)
    reply = Text("Here is **the answer** you asked for, streamed in small pieces.",
                 chunk_size=6, pause_after=3)
    fake.enqueue(reply)
    page.fill("#message-input", "first line")
    page.press("#message-input", "Shift+Enter")
    page.type("#message-input", "second line")
    assert page.input_value("#message-input") == "first line\nsecond line"
    page.press("#message-input", "Enter")
    assert reply.paused.wait(5)
    live = page.locator("#transcript .msg.assistant.live .bubble")
    expect(live).to_have_text("Here is **the answ")  # the bold is not closed yet
    expect(page.locator("#cancel-btn")).to_be_visible()
    shot(page, "02-chat-streaming")
    reply.release.set()
    expect(page.locator("#transcript .msg.assistant .bubble strong")).to_have_text("the answer")
    wait_idle(page)
    assert assistant_texts(page) == [
        "Here is the answer you asked for, streamed in small pieces."]
    assert page.locator("#transcript .msg.user .bubble").all_inner_texts() == [
        "first line\nsecond line"]
    # An untitled chat is named after its first message; the list shows it first.
    expect(page.locator("#chat-title")).to_have_text("first line")
    expect(page.locator("#chat-list li").first).to_contain_text("first line")
    expect(page.locator("#meter-text")).to_contain_text("/ 8,000 tokens")
    shot(page, "03-chat-desktop")


def test_a_password_user_signs_in_and_out_and_the_page_token_is_revoked(
        pages, server, carol_token):
    from playwright.sync_api import expect

    page = pages.new()
    page.goto(server.url + "/login/")
    page.fill("#id_username", "carol")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("enter a correct username and password")
    page.fill("#id_password", CAROL_PASSWORD)
    shot(page, "04-password-sign-in")
    page.click("button[type=submit]")
    expect(page.locator("#whoami")).to_have_text("carol")
    expect(page.locator("#settings-link")).to_be_hidden()  # a member
    token = page.evaluate("sessionStorage.getItem('gateway.token')")
    assert token and token != carol_token
    with server.client(token) as http:
        assert http.get("/api/chats").status_code == 200
        minted = [t for t in http.get("/api/tokens").json()["tokens"] if t["current"]]
        assert minted[0]["name"] == "dashboard" and minted[0]["expiry"]

    page.click("#signout")
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('gateway.token')") is None
    with server.client(token) as http:
        assert http.get("/api/chats").status_code == 401
    page.reload()  # the session is gone too: no new token is minted
    expect(page.locator("#signin")).to_be_visible()


# -- tools -------------------------------------------------------------------------------

def test_tool_calls_are_approved_denied_and_allowed_for_the_chat(pages, server, fake):
    from playwright.sync_api import expect

    chat_id = new_chat(server, title="tools")
    page = pages.signed_in(server.admin_token)
    open_chat(page, server, chat_id)

    fake.enqueue(ToolCalls([("call-allow", "bash", {"command": "echo from-dashboard"})]),
                 Text("The command printed from-dashboard."))
    send(page, "run it")
    card = page.locator('.tool[data-call-id="call-allow"]')
    expect(card.locator(".approval")).to_be_visible()
    expect(card.locator(".tool-args")).to_contain_text('"command": "echo from-dashboard"')
    for label in ("Allow", "Deny", "Allow for this chat"):
        expect(card.get_by_role("button", name=label, exact=True)).to_be_visible()
    shot(page, "05-tool-approval")
    card.get_by_role("button", name="Allow", exact=True).click()
    expect(card.locator(".tool-result")).to_have_text("from-dashboard")
    expect(card.locator(".approval")).to_be_hidden()
    expect(page.locator("#transcript .msg.assistant .bubble").last).to_have_text(
        "The command printed from-dashboard.")
    wait_idle(page)

    fake.enqueue(ToolCalls([("call-deny", "bash", {"command": "rm -rf /tmp/nothing"})]),
                 Text("Understood, I did not run it."))
    send(page, "now delete things")
    denied = page.locator('.tool[data-call-id="call-deny"]')
    denied.get_by_role("button", name="Deny").click()
    expect(denied.locator(".badge")).to_have_text("denied")
    expect(denied.locator(".tool-result")).to_contain_text("Denied")
    expect(page.locator("#transcript .msg.assistant .bubble").last).to_have_text(
        "Understood, I did not run it.")
    wait_idle(page)

    fake.enqueue(ToolCalls([("call-chat", "bash", {"command": "echo once"})]), Text("once"),
                 ToolCalls([("call-auto", "bash", {"command": "echo again"})]), Text("again"))
    send(page, "allow bash here")
    page.locator('.tool[data-call-id="call-chat"]').get_by_role(
        "button", name="Allow for this chat").click()
    expect(page.locator('.tool[data-call-id="call-chat"] .tool-result')).to_have_text("once")
    wait_idle(page)
    send(page, "and again")
    auto = page.locator('.tool[data-call-id="call-auto"]')
    expect(auto.locator(".tool-result")).to_have_text("again")
    expect(auto.locator(".approval")).to_be_hidden()
    # No request event carried its arguments: they come from the history after the turn.
    expect(auto.locator(".tool-args")).to_contain_text("echo again")
    auto.locator("summary").click()
    shot(page, "06-tool-results")

    with server.client() as http:
        tools = [m for m in http.get(f"/api/chats/{chat_id}").json()["messages"]
                 if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["is_error"]) for m in tools] == [
        ("call-allow", False), ("call-deny", True), ("call-chat", False), ("call-auto", False)]


# -- reconnecting ------------------------------------------------------------------------

def test_a_reload_mid_turn_shows_the_text_so_far_and_the_turn_finishes(pages, server, fake):
    from playwright.sync_api import expect

    chat_id = new_chat(server, title="reload")
    page = pages.signed_in(server.admin_token)
    open_chat(page, server, chat_id)
    reply = Text("One two three four five six seven eight nine ten.", pause_after=4)
    fake.enqueue(reply)
    send(page, "count")
    assert reply.paused.wait(5)
    expect(page.locator("#transcript .msg.assistant.live")).to_have_text("One two three four")

    page.reload()
    page.wait_for_function(CHAT_READY)
    expect(page.locator("#transcript .msg.assistant.live")).to_have_text("One two three four")
    expect(page.locator("#cancel-btn")).to_be_visible()
    assert "since=" not in page.evaluate("window.__socketUrls.join()")
    reply.release.set()
    expect(page.locator("#transcript .msg.assistant .bubble")).to_have_text(
        "One two three four five six seven eight nine ten.")
    wait_idle(page)
    assert assistant_texts(page) == ["One two three four five six seven eight nine ten."]
    assert page.locator("#transcript .msg.user").count() == 1


def test_a_dropped_socket_reconnects_with_since_and_loses_nothing(pages, server, fake):
    from playwright.sync_api import expect

    chat_id = new_chat(server, title="drop")
    page = pages.signed_in(server.admin_token)
    open_chat(page, server, chat_id)
    words = " ".join(f"w{i}" for i in range(40))
    reply = Text(words, pause_after=5)
    fake.enqueue(reply)
    send(page, "talk")
    assert reply.paused.wait(5)
    expect(page.locator("#transcript .msg.assistant.live")).to_have_text("w0 w1 w2 w3 w4")
    seen = page.evaluate("window.gatewayDashboard.chat.lastSeq")

    # The network drops; the rest of the answer streams while the page is away.
    page.context.set_offline(True)
    page.evaluate("window.gatewayDashboard.chat.socket.close()")
    reply.release.set()
    expect(page.locator("#conn-status")).to_contain_text("reconnecting")
    page.wait_for_timeout(800)  # a retry fails while offline
    shot(page, "07-reconnecting")
    page.context.set_offline(False)  # the browser's "online" event: retry at once
    expect(page.locator("#transcript .msg.assistant .bubble")).to_have_text(words)
    wait_idle(page)
    assert assistant_texts(page) == [words]
    urls = page.evaluate("window.__socketUrls")
    assert len(urls) >= 2 and all(url.endswith(f"&since={seen}") for url in urls[1:])
    expect(page.locator("#conn-status")).to_have_text("")


def test_two_pages_on_one_chat_share_the_live_turn(pages, server, fake):
    from playwright.sync_api import expect

    chat_id = new_chat(server, title="two pages")
    first = pages.signed_in(server.admin_token)
    open_chat(first, server, chat_id)
    answer = Text("Both pages see this answer as it streams.", pause_after=3)
    fake.enqueue(ToolCalls([("c-both", "bash", {"command": "echo shared"})]), answer)
    send(first, "do it where both can see")
    expect(first.locator('.tool[data-call-id="c-both"] .approval')).to_be_visible()

    # A phone opens the chat while the turn waits for approval, and answers it.
    second = pages.signed_in(server.admin_token, viewport=PHONE)
    open_chat(second, server, chat_id)
    expect(second.locator("#transcript .msg.user .bubble")).to_have_text(
        "do it where both can see")
    second.locator('.tool[data-call-id="c-both"]').get_by_role(
        "button", name="Allow", exact=True).click()
    for page in (first, second):
        expect(page.locator('.tool[data-call-id="c-both"] .tool-result')).to_have_text("shared")
        expect(page.locator('.tool[data-call-id="c-both"] .approval')).to_be_hidden()
    assert answer.paused.wait(5)
    for page in (first, second):
        expect(page.locator("#transcript .msg.assistant.live")).to_have_text("Both pages see")
    shot(second, "08-second-page-phone")
    answer.release.set()
    for page in (first, second):
        expect(page.locator("#transcript .msg.assistant .bubble")).to_have_text(
            "Both pages see this answer as it streams.")
        wait_idle(page)
        assert page.locator('.tool[data-call-id="c-both"]').count() == 1

    # The next message, sent from the phone, shows on the desktop page too.
    send(second, "and one more")
    for page in (first, second):
        expect(page.locator("#transcript .msg.user .bubble").last).to_have_text("and one more")
        expect(page.locator("#transcript .msg.assistant .bubble").last).to_have_text(
            "echo: and one more")


def test_a_reply_with_script_and_html_is_shown_as_text(pages, server, fake):
    from playwright.sync_api import expect

    chat_id = new_chat(server, title="xss")
    # Without the page's Content-Security-Policy: the renderer alone must keep it inert.
    page = pages.signed_in(server.admin_token, bypass_csp=True)
    open_chat(page, server, chat_id)
    evil = ('<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> '
            '[click](javascript:window.__pwned=3) [ok](https://example.com/a)')
    fake.enqueue(Text(evil, chunk_size=7))
    send(page, "say something nasty")
    bubble = page.locator("#transcript .msg.assistant .bubble")
    expect(bubble).to_contain_text('<script>window.__pwned=1</script><img src=x onerror=')
    wait_idle(page)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#transcript script, #transcript img").count() == 0
    links = bubble.locator("a")
    assert links.count() == 1 and links.get_attribute("href") == "https://example.com/a"
    assert "[click](javascript:window.__pwned=3)" in bubble.inner_text()
    page.reload()  # and from the saved history
    page.wait_for_function(CHAT_READY)
    expect(bubble).to_contain_text("<script>window.__pwned=1</script>")
    assert page.evaluate("typeof window.__pwned") == "undefined"


# -- queue, cancel, errors ---------------------------------------------------------------

def test_queued_messages_cancel_and_errors_show_in_place(pages, server, fake):
    from playwright.sync_api import expect

    chat_id = new_chat(server, title="queue")
    page = pages.signed_in(server.admin_token)
    open_chat(page, server, chat_id)
    slow = Text("This will be cut short by the stop button.", pause_after=2)
    fake.enqueue(slow)
    send(page, "long answer please")
    assert slow.paused.wait(5)
    # The page has shown the turn start (its events are handled in order, some after a
    # fetch): until then the message's "sending" bubble is still in the queue too.
    expect(page.locator("#transcript .msg.assistant.live")).to_contain_text("This will")
    send(page, "and then this")
    queued = page.locator("#queued .msg.queued")
    expect(queued.locator(".bubble")).to_have_text("and then this")
    expect(queued.locator(".meta")).to_have_text("queued")
    shot(page, "09-queued")

    fake.enqueue(HttpError(400, {"error": {"message": "the model refused", "type": "x"}}))
    page.click("#cancel-btn")
    expect(page.locator("#transcript .note.cancelled")).to_have_text("The turn was cancelled.")
    # The queued message runs next, and its upstream error shows where it happened.
    expect(page.locator("#transcript .msg.user .bubble").last).to_have_text("and then this")
    expect(page.locator("#transcript .note.error")).to_contain_text("upstream_error")
    wait_idle(page)
    slow.release.set()
    shot(page, "10-cancel-and-error")


# -- chat management ---------------------------------------------------------------------

def test_chats_are_listed_newest_first_paged_renamed_and_deleted(pages, server, carol_token):
    from playwright.sync_api import expect

    with server.client(carol_token) as http:
        ids = [http.post("/api/chats", json={"title": f"chat {n:02d}"}).json()["chat_id"]
               for n in range(22)]
    page = pages.signed_in(carol_token)
    items = page.locator("#chat-list li")
    expect(items).to_have_count(20)
    expect(items.first).to_contain_text("chat 21")
    page.click("#more-chats")
    expect(items).to_have_count(22)
    expect(items.last).to_contain_text("chat 00")
    expect(page.locator("#more-chats")).to_be_hidden()

    items.first.locator("a").click()
    expect(page.locator("#chat-title")).to_have_text("chat 21")
    page.click("#rename-btn")
    page.fill("#rename-input", "Renamed chat")
    page.press("#rename-input", "Enter")
    expect(page.locator("#chat-title")).to_have_text("Renamed chat")
    expect(items.first).to_contain_text("Renamed chat")
    with server.client(carol_token) as http:
        assert http.get(f"/api/chats/{ids[-1]}").json()["title"] == "Renamed chat"

    page.click("#delete-btn")
    dialog = page.locator("#confirm-delete")
    expect(dialog).to_contain_text("Delete “Renamed chat”?")
    shot(page, "11-delete-confirmation")
    dialog.get_by_role("button", name="Cancel").click()
    with server.client(carol_token) as http:
        assert http.get(f"/api/chats/{ids[-1]}").status_code == 200
    page.click("#delete-btn")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#home-view")).to_be_visible()
    expect(items).to_have_count(21)
    with server.client(carol_token) as http:
        assert http.get(f"/api/chats/{ids[-1]}").status_code == 404


def test_context_meter_compact_errors_and_profile_switch(pages, server, fake):
    from playwright.sync_api import expect

    chat_id = new_chat(server, title="context")
    page = pages.signed_in(server.admin_token)
    open_chat(page, server, chat_id)
    send(page, "hello there")  # the echo reply
    expect(page.locator("#transcript .msg.assistant .bubble")).to_have_text("echo: hello there")
    wait_idle(page)
    expect(page.locator("#meter-text")).to_contain_text("/ 8,000 tokens")
    assert page.get_attribute("#meter", "aria-valuenow") != "0"

    page.click("#compact-btn")
    # One exchange is too little to compact: the API's message shows next to the button.
    expect(page.locator("#chat-error")).to_contain_text("compact")

    send(page, "and a second exchange")
    expect(page.locator("#transcript .msg.assistant .bubble").last).to_have_text(
        "echo: and a second exchange")
    wait_idle(page)
    fake.enqueue(Text("The user said hello."))  # the summary
    page.click("#compact-btn")
    expect(page.locator("#chat-info")).to_contain_text("Compacted:")
    expect(page.locator("#chat-error")).to_be_hidden()
    notes = page.locator("#transcript .note.compaction")
    expect(notes.first).to_contain_text("Compacting the context")
    expect(notes.last).to_contain_text("Context compacted:")
    page.reload()
    page.wait_for_function(CHAT_READY)
    expect(page.locator("#transcript details.compacted summary")).to_have_text(
        "2 earlier message(s), compacted")
    expect(page.locator("#transcript .summary-note")).to_contain_text("manual compaction")
    page.locator("#transcript .summary-note summary").click()
    expect(page.locator("#transcript .summary-note .md")).to_have_text("The user said hello.")

    expect(page.locator("#profile-select")).to_have_value("fake")
    page.select_option("#profile-select", "fake-big")
    expect(page.locator("#chat-info")).to_contain_text("fake-big")
    expect(page.locator("#meter-text")).to_contain_text("/ 64,000 tokens")
    with server.client() as http:
        profile = http.get(f"/api/chats/{chat_id}/profile").json()
    assert profile["profile_name"] == "fake-big"
    shot(page, "12-context-and-profile")


# -- layout and admin --------------------------------------------------------------------

def test_the_phone_layout_has_a_drawer_for_the_chat_list(pages, server):
    from playwright.sync_api import expect

    chat_id = new_chat(server, title="on the phone")
    page = pages.signed_in(server.admin_token, viewport=PHONE)
    open_chat(page, server, chat_id)
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    expect(page.locator("#message-input")).to_be_in_viewport()
    shot(page, "13-phone-chat")
    page.click("#nav-toggle")
    expect(page.locator("#sidebar")).to_be_in_viewport()
    expect(page.locator("#nav-toggle")).to_have_attribute("aria-expanded", "true")
    shot(page, "14-phone-chat-list")
    page.locator("#chat-list a", has_text="on the phone").click()
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]


def test_admins_manage_profiles_permissions_and_sandbox(pages, server, carol_token):
    from playwright.sync_api import expect

    page = pages.signed_in(server.admin_token)
    page.click("#settings-link")
    expect(page.locator('tr[data-profile="fake"]')).to_contain_text("default")
    expect(page.locator("#perm-mode")).to_have_value("interactive")
    expect(page.locator("#sb-memory")).not_to_have_value("")
    shot(page, "15-admin-settings")

    page.select_option("#perm-tool-write", "deny")
    page.get_by_role("button", name="Save permissions").click()
    expect(page.get_by_text("Saved the permission policy.")).to_be_visible()
    with server.client() as http:
        assert http.get("/api/permissions").json()["tool_overrides"] == {"write": "deny"}
        http.put("/api/permissions", json={"tool_overrides": {}})

    page.fill("#pf-name", "fake")
    page.fill("#pf-model", "another-model")
    page.get_by_role("button", name="Add profile").click()
    expect(page.locator("#profiles-error")).to_contain_text("exists")  # the API's message

    member = pages.signed_in(carol_token)
    expect(member.locator("#settings-link")).to_be_hidden()
    member.goto(server.url + "/#/settings")
    expect(member.locator("#settings-body")).to_contain_text("Only admins")
