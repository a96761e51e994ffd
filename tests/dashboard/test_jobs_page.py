"""The Jobs page in headless Chromium against a real ``serve`` and the fake upstream
(issue 21): a member creates a job, runs it now, sees the run succeed (and its result
reach his destination), opens its chat, pauses, changes and deletes it; and any chat's
"Notify" control, which sends a turn's answer to one of his destinations. Screenshots go
to ``test-artifacts/screenshots/jobs-*.png`` (desktop and phone) and ``chat-notify.png``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.dashboard.test_dashboard import (  # noqa: F401 - browser is a fixture
    CHAT_READY, PHONE, Pages, browser, open_chat, send, shot)
from tests.e2e.server import ServeProcess
from tests.e2e.test_team_admin import START_TIMEOUT, member_token
from tests.fake_upstream import FakeUpstream, Text
from tests.notifications.receivers import Receiver

pytestmark = pytest.mark.timeout(300)
PROMPT = "Write the standup report."


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as hook:
        yield hook


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream,
           receiver: Receiver) -> Iterator[ServeProcess]:
    """A gateway with a profile on the fake upstream, a member (mia), and a job and a
    destination of the admin's that mia must not see. Destinations may point at the
    test's local receiver."""
    env = {"GATEWAY_UPSTREAM_RETRIES": "0", "GATEWAY_NOTIFY_UNSAFE_ANY_HOST": "1",
           "GATEWAY_NOTIFY_POLL_SECONDS": "0.5"}
    proc = ServeProcess(Path(tmp_path_factory.mktemp("jobs-page")) / "data", env=env)
    proc.start(timeout=START_TIMEOUT)
    try:
        with proc.client() as http:
            assert http.post("/api/profiles", json={"name": "fake", "profile": {
                "provider": "openai", "model": "fake-model", "base_url": upstream_server.url,
                "api_key": "sk-jobs-page-1"}}).status_code == 201
            assert http.post("/api/jobs", json={
                "name": "admins-own", "prompt": "secret", "enabled": False,
                "schedule": {"kind": "interval", "seconds": 3600}}).status_code == 201
            assert http.post("/api/notifications/destinations", json={
                "name": "admins-mail", "kind": "email", "target": "root@example.com",
            }).status_code == 201
        proc.member = member_token(proc, "mia")  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def pages(browser: Any, server: ServeProcess) -> Iterator[Pages]:  # noqa: F811
    opened = Pages(browser, server)
    yield opened
    opened.close()
    assert opened.errors == []


def jobs_of(server: ServeProcess) -> list[dict]:
    with server.client(server.member) as http:  # type: ignore[attr-defined]
        return http.get("/api/jobs").json()["jobs"]


def delivered(server: ServeProcess, timeout: float = 60) -> list[dict]:
    """Mia's deliveries once none is waiting to be sent (or what there is at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        with server.client(server.member) as http:  # type: ignore[attr-defined]
            rows = http.get("/api/notifications/deliveries").json()["deliveries"]
        if (rows and all(d["status"] in ("delivered", "failed") for d in rows)) \
                or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def open_jobs(page: Any, server: ServeProcess) -> None:
    page.click("#jobs-link")
    page.wait_for_selector("#jobs-view:not([hidden]) #job-form")


def test_a_member_creates_a_job_runs_it_now_and_opens_its_chat(pages, server, upstream,
                                                              receiver):
    from playwright.sync_api import expect

    page = pages.signed_in(server.member)
    open_jobs(page, server)
    expect(page.locator("#jobs-table tbody")).to_contain_text("No jobs yet")
    expect(page.locator("#jobs-table")).not_to_contain_text("admins-own")
    expect(page.locator("#destinations-table")).not_to_contain_text("admins-mail")

    # A destination first: the job form offers it at once, without a reload.
    page.select_option("#dest-kind", "discord")
    page.fill("#dest-name", "team-chat")
    page.fill("#dest-target", receiver.url + "/hook")
    page.click("#destination-form button[type=submit]")
    expect(page.locator("#destinations-ok")).to_have_text("Added team-chat.")
    expect(page.locator("#destinations-table tr[data-destination=team-chat]")).to_contain_text(
        "discord")
    expect(page.locator("#destinations-table")).not_to_contain_text("/hook")  # a secret

    page.fill("#job-name", "standup")
    page.select_option("#job-kind", "cron")
    page.fill("#job-cron", "0 9 * * 1-5")
    page.fill("#job-timezone", "Europe/Paris")
    page.fill("#job-prompt", PROMPT)
    page.select_option("#job-profile", "fake")
    page.locator("#job-tools label", has_text="read").locator("input").check()
    page.locator("#job-destinations label", has_text="team-chat").locator("input").check()
    page.click("#job-form button[type=submit]")
    expect(page.locator("#job-form-ok")).to_contain_text("Created standup")
    row = page.locator("#jobs-table tr[data-job=standup]")
    expect(row).to_contain_text("cron 0 9 * * 1-5 (Europe/Paris)")
    expect(row.locator("td").nth(3)).to_have_text("active")
    expect(row.locator(".last-run")).to_have_text("never")
    [job] = jobs_of(server)
    assert job["schedule"] == {"kind": "cron", "cron": "0 9 * * 1-5",
                               "timezone": "Europe/Paris"}
    assert job["profile"] == "fake" and job["allowed_tools"] == ["read"]
    assert job["destinations"] == ["team-chat"] and job["next_fire_at"]
    # The job's chat is in the chat list at once.
    expect(page.locator(f"#chat-list li[data-chat-id='{job['chat_id']}']")) \
        .to_contain_text("Job: standup")

    upstream.enqueue(Text("Standup: all green."))
    row.get_by_role("button", name="Run now").click()
    run = page.locator("#runs-table tbody tr").first
    expect(run).to_have_attribute("data-status", "succeeded")
    expect(run).to_contain_text("manual")
    expect(run.locator("td").nth(4)).to_contain_text(" in / ")  # the turn's usage
    expect(row.locator(".last-run")).to_contain_text("succeeded")
    shot(page, "jobs-run-succeeded")
    assert [d["status"] for d in delivered(server)] == ["delivered"]
    assert "Standup: all green." in receiver.json(0)["content"]
    page.reload()
    page.wait_for_selector("#jobs-view:not([hidden]) #job-form")
    expect(page.locator("#deliveries-table tbody tr").first).to_have_attribute(
        "data-status", "delivered")
    row.get_by_role("button", name="Runs").click()  # after a reload, the runs on demand
    expect(run).to_have_attribute("data-status", "succeeded")

    run.get_by_role("link", name="Open chat").click()
    page.wait_for_function(CHAT_READY)
    expect(page.locator("#chat-title")).to_have_text("Job: standup")
    expect(page.locator("#transcript .msg.user .bubble")).to_have_text([PROMPT])
    expect(page.locator("#transcript .msg.assistant .bubble")).to_have_text(
        ["Standup: all green."])
    shot(page, "jobs-run-chat")

    phone = pages.signed_in(server.member, PHONE)
    open_jobs(phone, server)
    phone_row = phone.locator("#jobs-table tr[data-job=standup]")
    expect(phone_row.locator(".last-run")).to_contain_text("succeeded")
    phone_row.get_by_role("button", name="Runs").click()
    expect(phone.locator("#runs-table tbody tr").first).to_have_attribute(
        "data-status", "succeeded")
    phone.locator("#jobs-heading").scroll_into_view_if_needed()
    shot(phone, "jobs-phone")
    phone_row.get_by_role("button", name="Edit").click()
    expect(phone.locator("#job-timezone")).to_have_value("Europe/Paris")
    phone.locator("#job-form-heading").scroll_into_view_if_needed()
    shot(phone, "jobs-phone-form")


def test_a_member_pauses_changes_and_deletes_a_job(pages, server):
    from playwright.sync_api import expect

    with server.client(server.member) as http:  # type: ignore[attr-defined]
        assert http.post("/api/jobs", json={
            "name": "nightly", "prompt": "Check the backups.",
            "schedule": {"kind": "cron", "cron": "0 3 * * *"}}).status_code == 201
    page = pages.signed_in(server.member)
    open_jobs(page, server)
    row = page.locator("#jobs-table tr[data-job=nightly]")
    expect(row).to_contain_text("cron 0 3 * * * (UTC)")

    row.get_by_role("button", name="Pause").click()
    expect(row.locator("td").nth(3)).to_have_text("paused")
    expect(row.locator("td").nth(2)).to_have_text("–")
    assert next(j for j in jobs_of(server) if j["name"] == "nightly")["enabled"] is False
    row.get_by_role("button", name="Resume").click()
    expect(row.locator("td").nth(3)).to_have_text("active")

    row.get_by_role("button", name="Edit").click()
    expect(page.locator("#job-form-heading")).to_have_text("Change “nightly”")
    expect(page.locator("#job-prompt")).to_have_value("Check the backups.")
    page.select_option("#job-kind", "interval")
    page.fill("#job-every", "2")
    page.select_option("#job-unit", "3600")
    page.click("#job-form button[type=submit]")
    expect(row).to_contain_text("every 2 hours")
    nightly = next(j for j in jobs_of(server) if j["name"] == "nightly")
    assert nightly["schedule"] == {"kind": "interval", "seconds": 7200}
    assert nightly["prompt"] == "Check the backups."

    row.get_by_role("button", name="Edit").click()
    page.select_option("#job-kind", "once")
    page.fill("#job-at", "2031-01-02T03:04")
    page.click("#job-form button[type=submit]")
    expect(row).to_contain_text("once, ")
    local = page.evaluate("() => new Date('2031-01-02T03:04').toISOString()")
    nightly = next(j for j in jobs_of(server) if j["name"] == "nightly")
    assert nightly["schedule"]["kind"] == "once"
    assert nightly["schedule"]["at"].replace("+00:00", "") == local.replace(".000Z", "")
    page.locator("#jobs-heading").scroll_into_view_if_needed()
    shot(page, "jobs-edited")

    row.get_by_role("button", name="Runs").click()
    expect(page.locator("#runs-table")).to_contain_text("No runs yet.")
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#confirm-delete-text")).to_contain_text("Delete the job “nightly”")
    page.get_by_role("button", name="Cancel").click()
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Delete").click()
    page.locator("#confirm-delete").get_by_role("button", name="Delete").click()
    expect(page.locator("#jobs-ok")).to_have_text("Deleted nightly.")
    expect(row).to_have_count(0)
    expect(page.locator("#job-runs")).to_be_hidden()  # its runs went with it
    assert "nightly" not in [j["name"] for j in jobs_of(server)]


def test_a_bad_schedule_is_explained_in_the_form(pages, server):
    from playwright.sync_api import expect

    page = pages.signed_in(server.member)
    open_jobs(page, server)
    page.fill("#job-name", "broken")
    page.fill("#job-cron", "every day at nine")
    page.fill("#job-prompt", "never runs")
    page.click("#job-form button[type=submit]")
    expect(page.locator("#job-form-error")).to_contain_text("cron")
    assert "broken" not in [j["name"] for j in jobs_of(server)]


def test_a_member_has_a_chats_turns_announced_to_his_destination(pages, server, upstream,
                                                                   receiver):
    """The chat header's Notify control lists only his own destinations; the chosen one
    gets the answer when the turn ends; "off" stops it."""
    from playwright.sync_api import expect

    member = server.member  # type: ignore[attr-defined]
    with server.client(member) as http:
        made = http.post("/api/notifications/destinations", json={
            "name": "mia-slack", "kind": "slack", "target": receiver.url + "/chat-notify"})
        assert made.status_code == 201, made.text
        dest = made.json()["id"]
        chat_id = http.post("/api/chats", json={"title": "Weekend plans"}).json()["chat_id"]
    page = pages.signed_in(member)
    open_chat(page, server, chat_id)
    select = page.locator("#notify-select")
    expect(select).to_be_enabled()
    expect(select).to_have_value("")
    with server.client(member) as http:
        own = http.get("/api/notifications/destinations").json()["destinations"]
    options = select.locator("option").all_inner_texts()
    assert options == ["off", *(f"{d['name']} · {d['kind']}" for d in own)]
    assert "mia-slack · slack" in options
    assert not any(o.startswith("admins-mail") for o in options)  # the admin's own

    select.select_option(label="mia-slack · slack")
    expect(page.locator("#chat-info")).to_have_text(
        "When a turn of this chat ends, its answer goes to mia-slack.")
    with server.client(member) as http:
        assert http.get(f"/api/chats/{chat_id}/notify").json()["destination"] == dest
    upstream.enqueue(Text("Hike on Saturday, museum on Sunday."))
    send(page, "Plan my weekend")
    expect(page.locator("#transcript .msg.assistant").last).to_contain_text("Hike on Saturday")

    def announced() -> list[dict]:
        return [r for r in receiver.requests if r["path"] == "/chat-notify"]

    deadline = time.monotonic() + 60
    while not announced() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [json.loads(r["body"]) for r in announced()] == [
        {"text": "*Weekend plans: turn completed*\nHike on Saturday, museum on Sunday."}]
    shot(page, "chat-notify")
    phone = pages.signed_in(member, viewport=PHONE)
    open_chat(phone, server, chat_id)
    expect(phone.locator("#notify-select")).to_have_value(str(dest))
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "chat-notify-phone")

    # A reload shows the choice; "off" takes it back.
    page.reload()
    page.wait_for_function(CHAT_READY)
    expect(select).to_have_value(str(dest))
    select.select_option(label="off")
    expect(page.locator("#chat-info")).to_have_text(
        "Turns of this chat no longer send a notification.")
    with server.client(member) as http:
        assert http.get(f"/api/chats/{chat_id}/notify").json()["destination"] is None
