"""Runs of a real ``serve``: the tool policy of unattended runs, deliveries, kill -9."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifications.signing import verify
from tests.e2e.server import ServeProcess
from tests.fake_upstream import Text, ToolCalls
from tests.jobs.conftest import FAST, START_TIMEOUT, add_profile, client, finished, runs_of, \
    wait_for
from tests.notifications.receivers import Receiver

pytestmark = pytest.mark.timeout(600)
SECRET = "hmac-key-" + "x" * 24


@pytest.fixture
def plain(tmp_path: Path, upstream):
    """One ``serve`` on the real clock (these tests use "run now")."""
    proc = ServeProcess(tmp_path / "data", FAST).start(timeout=START_TIMEOUT)
    try:
        with client(proc) as http:
            add_profile(http, upstream)
            assert http.put("/api/permissions", json={"mode": "interactive"}).status_code == 200
        yield proc
    finally:
        proc.stop()


def make_job(http, name: str, **fields) -> dict:
    response = http.post("/api/jobs", json={
        "name": name, "prompt": "Do the check.",
        "schedule": {"kind": "cron", "cron": "0 3 1 1 *"}, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def run_now(http, job: dict) -> dict:
    response = http.post(f"/api/jobs/{job['id']}/run")
    assert response.status_code == 202, response.text
    return wait_for(lambda: finished(r := runs_of(http, job["id"]), 1) and r[0],
                    what="the run to end")


def tool_messages(http, job: dict) -> list[dict]:
    chat = http.get(f"/api/chats/{job['chat_id']}").json()
    return [m for m in chat["messages"] if m["role"] == "tool"]


def test_bash_is_denied_in_a_job_unless_the_job_allows_it(plain, upstream):
    with client(plain) as http:
        upstream.enqueue(ToolCalls([("c1", "bash", {"command": "echo ran-here"})]),
                         Text("could not run it"))
        denied_job = make_job(http, "no-tools")
        run = run_now(http, denied_job)
        assert run["status"] == "succeeded"
        [denied] = tool_messages(http, denied_job)
        assert denied["is_error"] is True and "ran-here" not in denied["content"]
        assert "unattended" in denied["content"]

        upstream.enqueue(ToolCalls([("c2", "bash", {"command": "echo ran-here"})]),
                         Text("it ran"))
        allowed_job = make_job(http, "bash-ok", allowed_tools=["bash"])
        assert run_now(http, allowed_job)["status"] == "succeeded"
        [allowed] = tool_messages(http, allowed_job)
        assert allowed["is_error"] is False and allowed["content"].strip() == "ran-here"


def test_results_reach_discord_slack_and_a_signed_webhook_that_fails_twice(plain, upstream):
    with Receiver() as discord, Receiver() as slack, Receiver(fail_first=2) as hook, \
            client(plain) as http:
        for name, kind, url in [("d", "discord", discord.url), ("s", "slack", slack.url),
                                ("w", "webhook", hook.url)]:
            body = {"name": name, "kind": kind, "target": url + "/hook"}
            if kind == "webhook":
                body["secret"] = SECRET
            created = http.post("/api/notifications/destinations", json=body)
            assert created.status_code == 201, created.text
            assert "/hook" not in created.json()["target"]  # the URL is a secret
        upstream.enqueue(Text("All systems nominal."))
        job = make_job(http, "report", destinations=["d", "s", "w"])
        run = run_now(http, job)
        def delivered() -> list[dict] | None:
            rows = http.get("/api/notifications/deliveries").json()["deliveries"]
            done = len(rows) == 3 and all(d["status"] == "delivered" for d in rows)
            return rows if done else None

        log = wait_for(delivered, what="three deliveries")
    assert "All systems nominal." in discord.json(0)["content"]
    assert "All systems nominal." in slack.json(0)["text"]
    assert len(hook.requests) == 3  # two 500s, then the third try
    assert all(verify(SECRET, r["headers"], r["body"]) for r in hook.requests)
    assert hook.json(2)["run_id"] == run["id"] and hook.json(2)["status"] == "succeeded"
    by_kind = {d["destination"]: d for d in log}
    assert by_kind["w"]["attempts"] == 3 and by_kind["d"]["attempts"] == 1


def test_a_run_killed_mid_turn_is_recovered_and_the_job_goes_on(plain, upstream):
    stuck = Text("never finished", pause_after=1)
    upstream.enqueue(stuck)
    with client(plain) as http:
        job = make_job(http, "crashy")
        assert http.post(f"/api/jobs/{job['id']}/run").status_code == 202
    assert stuck.paused.wait(60)
    plain.kill()
    stuck.release.set()
    restarted = ServeProcess(plain.data_dir, FAST, port=plain.port)
    restarted.admin_token = plain.admin_token
    restarted.start(timeout=START_TIMEOUT)
    try:
        with client(restarted) as http:
            run = wait_for(lambda: finished(r := runs_of(http, job["id"]), 1) and r[0])
            assert run["status"] == "interrupted"
            chat = http.get(f"/api/chats/{job['chat_id']}").json()
            assert chat["messages"][-1]["status"] == "interrupted"
            upstream.enqueue(Text("fine again"))
            assert run_now(http, job)["status"] == "succeeded"
            assert http.get(f"/api/chats/{job['chat_id']}").json()["messages"][-1][
                "content"] == "fine again"
    finally:
        restarted.stop()
