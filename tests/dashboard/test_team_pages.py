"""The team pages of the dashboard in headless Chromium against a real ``serve``: users
(invite, promote, demote, workspace quotas), usage with its charts, and the audit log. Screenshots go to
``test-artifacts/screenshots/team-*.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.dashboard.test_dashboard import (  # noqa: F401 - browser is a fixture
    CHAT_READY, Pages, browser, send, shot)
from tests.e2e.server import ServeProcess
from tests.e2e.test_team_admin import START_TIMEOUT, member_token, new_chat, turn
from tests.fake_upstream import FakeUpstream, Text, ToolCalls

pytestmark = pytest.mark.timeout(300)

CHARTS_DRAWN = "() => window.Chart && Object.keys(window.Chart.instances).length === 2"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream
           ) -> Iterator[ServeProcess]:
    """A gateway with a month of history in one day: an admin turn with an approved tool
    call, a member's turn, a price, and the member's used-up budget."""
    proc = ServeProcess(Path(tmp_path_factory.mktemp("team-pages")) / "data")
    proc.start(timeout=START_TIMEOUT)
    try:
        with proc.client() as http:
            assert http.post("/api/profiles", json={"name": "fake", "profile": {
                "provider": "openai", "model": "fake-model", "base_url": upstream_server.url,
                "api_key": "sk-team-pages-1"}}).status_code == 201
            http.put("/api/prices/fake", json={"input_per_million": "3",
                                               "output_per_million": "15"})
        proc.member = member_token(proc, "mia")  # type: ignore[attr-defined]
        upstream_server.enqueue(
            ToolCalls([("t1", "bash", {"command": "echo charted"})], usage=(900, 40)),
            Text("Done.", usage=(950, 60)), Text("Hello mia.", usage=(400, 25)))
        turn(proc, proc.admin_token, new_chat(proc, proc.admin_token), "tool please",
             approve={"t1": "allow"})
        turn(proc, proc.member, new_chat(proc, proc.member), "hi")  # type: ignore[attr-defined]
        with proc.client() as http:
            http.post("/api/budgets", json={"user": "mia", "period": "day",
                                            "limit_tokens": 300})
        upstream_server.clear()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def pages(browser: Any, server: ServeProcess) -> Iterator[Pages]:  # noqa: F811
    opened = Pages(browser, server)
    yield opened
    opened.close()
    assert opened.errors == []


def open_page(page: Any, server: ServeProcess, route: str) -> None:
    page.goto(f"{server.url}/#/{route}")
    page.wait_for_selector(f"#{route}-view:not([hidden]) h3")


def test_an_admin_invites_promotes_and_demotes_on_the_users_page(pages, server):
    from playwright.sync_api import expect

    page = pages.signed_in(server.admin_token)
    open_page(page, server, "users")
    mia = page.locator("#users-table tr[data-user=mia]")
    expect(mia).to_contain_text("member")
    mia.get_by_role("button", name="Invite link").click()
    expect(page.locator("#invite-link")).to_contain_text("/invite/")
    mia.get_by_role("button", name="Make admin").click()
    expect(page.locator("#users-ok")).to_contain_text("mia is now an admin")
    expect(mia).to_contain_text("admin")
    page.fill("#new-username", "noah")
    page.click("#user-form button[type=submit]")
    expect(page.locator("#users-table tr[data-user=noah]")).to_contain_text("no password")
    shot(page, "team-users")
    mia.get_by_role("button", name="Make member").click()
    expect(page.locator("#users-ok")).to_contain_text("mia is now a member")
    # The admin's own row cannot demote or deactivate him.
    expect(page.locator("#users-table tr[data-user=admin] .row-actions button").first
           ).to_be_disabled()


def test_an_admin_sees_and_sets_a_users_workspace_quota(pages, server):
    """Usage against the quota in each row; the quota form sets mia's own bytes and
    files (the upload API then holds her to them) and goes back to the defaults."""
    from playwright.sync_api import expect

    with server.client(server.member) as http:
        assert http.put("/api/files/content?path=notes.txt",
                        content=b"n" * 3000).status_code == 201
    with server.client() as http:
        quota = http.get("/api/files/quota?user=mia").json()
    assert quota["default"] == {"quota_bytes": 2 * 1024 ** 3, "quota_files": 20_000}
    # Her turn left a few files besides the upload (the workspace's own mirror).
    assert 3000 <= quota["used_bytes"] < 10 * 1024, quota
    used = f"{round(quota['used_bytes'] / 1024, 2):g} KiB"
    files = quota["used_files"]
    page = pages.signed_in(server.admin_token)
    open_page(page, server, "users")
    workspace = page.locator("#users-table tr[data-user=mia] td.workspace .quota-text")
    expect(workspace).to_have_text(f"{used} of 2 GiB · {files} of 20,000 files")
    expect(page.locator("#quota-card")).to_be_hidden()

    page.get_by_role("button", name="Workspace quota of mia").click()
    expect(page.locator("#quota-heading")).to_have_text("Workspace quota of mia")
    expect(page.locator("#quota-usage")).to_have_text(
        f"Uses {used} of 2 GiB · {files} of 20,000 files.")
    expect(page.locator("#quota-bytes")).to_have_value("")
    expect(page.locator("#quota-bytes")).to_have_attribute("placeholder", "default 2")
    expect(page.locator("#quota-reset")).to_be_disabled()
    page.fill("#quota-bytes", "2")
    page.select_option("#quota-unit", label="KiB")
    page.fill("#quota-files", "5")
    page.click("#quota-form button[type=submit]")
    expect(page.locator("#quota-ok")).to_have_text("Saved: mia may keep 2 KiB in 5 files.")
    expect(page.locator("#quota-usage")).to_contain_text("Over the quota")
    expect(workspace).to_have_text(f"{used} of 2 KiB · {files} of 5 files (own quota)")
    expect(workspace).to_have_class("quota-text over-quota")
    with server.client() as http:
        assert http.get("/api/files/quota?user=mia").json()["own"] == {
            "quota_bytes": 2048, "quota_files": 5}
    with server.client(server.member) as http:
        refused = http.put("/api/files/content?path=more.txt", content=b"m")
        assert refused.status_code == 409 and refused.json()["error"] == "quota_exceeded"
    page.locator("#quota-card").scroll_into_view_if_needed()
    shot(page, "team-users-quota")

    # A negative size is stopped by the form itself: nothing is sent.
    page.fill("#quota-bytes", "-1")
    page.click("#quota-form button[type=submit]")
    assert page.eval_on_selector("#quota-bytes", "(input) => input.validity.rangeUnderflow")
    with server.client() as http:
        assert http.get("/api/files/quota?user=mia").json()["own"]["quota_bytes"] == 2048

    page.click("#quota-reset")
    expect(page.locator("#quota-ok")).to_have_text("mia is back to the default quota.")
    expect(workspace).to_have_text(f"{used} of 2 GiB · {files} of 20,000 files")
    expect(page.locator("#quota-bytes")).to_have_value("")
    with server.client() as http:
        assert http.get("/api/files/quota?user=mia").json()["own"] == {
            "quota_bytes": None, "quota_files": None}
        assert http.delete("/api/files/content?path=notes.txt&user=mia").status_code == 204


def test_the_usage_page_charts_usage_over_time_and_by_user(pages, server):
    from playwright.sync_api import expect

    page = pages.signed_in(server.admin_token)
    open_page(page, server, "usage")
    page.wait_for_function(CHARTS_DRAWN)
    expect(page.locator("#usage-totals")).to_contain_text("3 model calls")
    charted = page.evaluate("""() => Object.values(window.Chart.instances).map((chart) => ({
        labels: chart.data.labels,
        tokens: chart.data.datasets.map((d) => d.data.reduce((a, b) => a + b, 0))}))""")
    by_time, by_user = charted
    assert by_time["tokens"] == [900 + 950 + 400, 40 + 60 + 25]
    assert by_user["labels"] == ["admin", "mia"] and by_user["tokens"] == [2250, 125]
    expect(page.locator("#usage-budgets")).to_contain_text("used up")
    page.select_option("#usage-group", "user")
    page.click("#usage-filters button[type=submit]")
    expect(page.locator("#usage-table")).to_contain_text("mia")
    shot(page, "team-usage")


def test_the_audit_page_shows_the_tool_call_with_its_approver(pages, server):
    from playwright.sync_api import expect

    page = pages.signed_in(server.admin_token)
    open_page(page, server, "audit")
    page.select_option("#audit-kind", "tool_call")
    page.click("#audit-filters button[type=submit]")
    row = page.locator("#audit-table tr[data-kind=tool_call]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("allow by admin")
    expect(row).to_contain_text("echo charted")
    page.select_option("#audit-kind", "")
    page.click("#audit-filters button[type=submit]")
    expect(page.locator("#audit-table tr[data-kind=config]").first).to_be_visible()
    shot(page, "team-audit")


def test_a_member_sees_his_own_usage_and_no_admin_pages(pages, server):
    from playwright.sync_api import expect

    page = pages.signed_in(server.member)
    expect(page.locator("#users-link")).to_be_hidden()
    expect(page.locator("#audit-link")).to_be_hidden()
    open_page(page, server, "usage")
    page.wait_for_function(CHARTS_DRAWN)
    expect(page.locator("#usage-heading")).to_have_text("Your usage")
    expect(page.locator("#usage-totals")).to_contain_text("1 model calls")
    expect(page.locator("#usage-budgets")).to_contain_text("turns are refused until")
    shot(page, "team-usage-member")
    page.goto(f"{server.url}/#/audit")
    expect(page.locator("#audit-view")).to_be_hidden()

    # Over budget, a message is refused and the chat says so in words.
    chat_id = new_chat(server, server.member)
    page.goto(f"{server.url}/#/chats/{chat_id}")
    page.wait_for_function(CHAT_READY)
    send(page, "one more?")
    expect(page.locator("#transcript .note.error")).to_contain_text("budget of user mia is "
                                                                     "used up")
    shot(page, "team-budget-refused")
