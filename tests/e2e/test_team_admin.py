"""Running the gateway for a team, end to end: a real ``serve``, real sockets, the real
``openai`` client against the fake upstream. The ledger, budgets, model access, the
audit log of tool calls and of configuration changes, and invite links."""

from __future__ import annotations

import asyncio
import decimal
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import websockets

from tests.e2e.server import ROOT, ServeProcess
from tests.fake_upstream import FakeUpstream, Text, ToolCalls

# A generous start budget: the machine is shared, and a loaded one starts slowly.
START_TIMEOUT = 240


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream
           ) -> Iterator[ServeProcess]:
    env = {"GATEWAY_UPSTREAM_RETRIES": "0", "GATEWAY_APPROVAL_TIMEOUT": "20"}
    proc = ServeProcess(tmp_path_factory.mktemp("team") / "data", env=env)
    proc.start(timeout=START_TIMEOUT)
    try:
        with proc.client() as http:
            for name, model in (("fake", "fake-model"), ("premium", "premium-model")):
                assert http.post("/api/profiles", json={"name": name, "profile": {
                    "provider": "openai", "model": model, "base_url": upstream_server.url,
                    "api_key": f"sk-{name}-key-0001"}}).status_code == 201
            assert http.put("/api/permissions", json={
                "mode": "interactive", "tool_overrides": {"write": "deny"}}).status_code == 200
        yield proc
    finally:
        proc.stop()


def member_token(server: ServeProcess, username: str) -> str:
    """A member and his token, made the way an operator does it (``issue_token``)."""
    run = subprocess.run([sys.executable, "manage.py", "issue_token", username], cwd=ROOT,
                         env=server.env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1]


async def read_until(ws: Any, event_type: str) -> list[dict]:
    got = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 30))
        got.append(event)
        if event["type"] == event_type:
            return got


def turn(server: ServeProcess, token: str, chat_id: str, content: str,
         approve: dict[str, str] | None = None) -> list[dict]:
    """One user message on a socket to the end of its turn (approving when asked)."""

    async def scenario() -> list[dict]:
        async with websockets.connect(f"{server.ws_url}/ws/{chat_id}?token={token}") as ws:
            assert json.loads(await ws.recv())["type"] == "agent.state"
            await ws.send(json.dumps({"type": "user_message", "content": content}))
            if approve is None:
                return await read_until(ws, "agent.turn_complete")
            got = await read_until(ws, "agent.tool_request")
            await ws.send(json.dumps({"type": "tool_approval", "verdicts": approve}))
            return got + await read_until(ws, "agent.turn_complete")

    return asyncio.run(scenario())


def new_chat(server: ServeProcess, token: str, **body: Any) -> str:
    with server.client(token) as http:
        response = http.post("/api/chats", json=body)
    assert response.status_code == 201, response.text
    return response.json()["chat_id"]


def of_type(events: list[dict], event_type: str) -> list[dict]:
    return [e["data"] for e in events if e["type"] == event_type]


def test_the_ledger_matches_the_upstreams_usage_exactly(server, upstream):
    with server.client() as http:
        assert http.put("/api/prices/fake", json={"input_per_million": "2.50",
                                                  "output_per_million": "10"}).status_code == 200
    upstream.enqueue(ToolCalls([("l1", "bash", {"command": "echo ledger"})], usage=(1234, 56)),
                     Text("Done.", usage=(1300, 7)))
    chat_id = new_chat(server, server.admin_token, title="ledger")
    events = turn(server, server.admin_token, chat_id, "count me", approve={"l1": "allow"})
    assert len(upstream.requests) == 2
    complete = of_type(events, "agent.turn_complete")[0]
    assert complete["usage"] == {"input_tokens": 2534, "output_tokens": 63}

    with server.client() as http:
        body = http.get("/api/usage", params={"user": "admin"}).json()
        by_chat = [r for r in body["records"] if r["chat_id"] == chat_id]
        csv_text = http.get("/api/usage/export").text
    assert sorted((r["input_tokens"], r["output_tokens"]) for r in by_chat) == \
        [(1234, 56), (1300, 7)]
    assert {r["profile"] for r in by_chat} == {"fake"}
    assert {r["model"] for r in by_chat} == {"fake-model"}
    # 2.5 per million input and 10 per million output, to the millionth.
    expected = [decimal.Decimal("0.003320"), decimal.Decimal("0.003645")]
    assert sorted(decimal.Decimal(r["cost"]) for r in by_chat) == expected
    assert all(r["duration_ms"] >= 0 for r in by_chat)
    assert chat_id in csv_text and "1234" in csv_text


def test_a_member_over_his_daily_budget_is_refused_before_any_upstream_call(server, upstream):
    token = member_token(server, "dora")
    with server.client() as http:
        assert http.post("/api/budgets", json={"user": "dora", "period": "day",
                                               "limit_tokens": 100}).status_code == 201
    chat_id = new_chat(server, token)
    upstream.enqueue(Text("A first answer.", usage=(120, 30)))
    first = turn(server, token, chat_id, "first")
    assert of_type(first, "agent.error") == []
    sent = len(upstream.requests)

    second = turn(server, token, chat_id, "second")
    error = of_type(second, "agent.error")[0]
    assert error["code"] == "budget_exceeded"
    assert error["remaining"] == {"tokens": 0, "cost": None}
    assert re.match(r"^\d{4}-\d\d-\d\dT00:00:00Z$", error["resets_at"])
    assert of_type(second, "agent.turn_complete")[0]["stop_reason"] == "error"
    assert len(upstream.requests) == sent  # the upstream never heard of the second turn
    with server.client(token) as http:
        mine = http.get("/api/budgets").json()["budgets"]
        assert http.get("/api/usage", params={"user": "admin"}).status_code == 403
    assert mine[0]["used_tokens"] == 150 and mine[0]["remaining"]["tokens"] == 0


def test_a_member_can_neither_pick_nor_use_a_profile_outside_his_access(server, upstream):
    token = member_token(server, "erin")
    with server.client() as http:
        assert http.post("/api/groups", json={"name": "research"}).status_code == 201
        assert http.patch("/api/users/erin", json={"groups": ["research"]}).status_code == 200
        assert http.put("/api/access/premium", json={"groups": ["research"]}).status_code == 200
        assert http.put("/api/profiles/default", json={"name": "premium"}).status_code == 200
    try:
        # While in the group she may use premium, and starts a chat on it.
        premium_chat = new_chat(server, token, profile="premium")
        with server.client() as http:
            assert http.patch("/api/users/erin", json={"groups": []}).status_code == 200
        with server.client(token) as http:
            listing = http.get("/api/profiles").json()
            refused = http.post("/api/chats", json={"profile": "premium"})
            other = http.post("/api/chats").json()["chat_id"]
            switch = http.put(f"/api/chats/{other}/profile", json={"name": "premium"})
            detail = http.get("/api/profiles/premium")
            default = http.get("/api/profiles/default").json()
        assert set(listing["profiles"]) == {"fake"} and listing["default"] == "fake"
        assert default == {"default": "fake"}  # the first allowed, not the gateway's
        assert refused.status_code == 400 and refused.json()["error"] == "profile_not_allowed"
        assert switch.status_code == 400 and switch.json()["error"] == "profile_not_allowed"
        assert detail.status_code == 404

        # Over the socket: the chat on premium is refused before any upstream call...
        sent = len(upstream.requests)
        events = turn(server, token, premium_chat, "on premium")
        assert of_type(events, "agent.error")[0]["code"] == "profile_not_allowed"
        assert len(upstream.requests) == sent
        # ...and a chat without a profile runs on the first one she may use.
        upstream.enqueue(Text("From the fallback."))
        turn(server, token, other, "on the default")
        assert upstream.requests[-1]["model"] == "fake-model"
    finally:
        with server.client() as http:
            http.put("/api/profiles/default", json={"name": "fake"})


def test_every_tool_call_of_a_turn_is_audited_once_with_its_approver(server, upstream):
    upstream.enqueue(ToolCalls([("a1", "bash", {"command": "echo audited"}),
                                ("a2", "write", {"path": "x.txt", "content": "no"})]),
                     Text("Finished."))
    chat_id = new_chat(server, server.admin_token, title="audited")
    turn(server, server.admin_token, chat_id, "two tools", approve={"a1": "allow"})
    with server.client() as http:
        events = http.get("/api/audit", params={"kind": "tool_call", "chat": chat_id}).json()
    calls = {e["data"]["id"]: e for e in events["events"]}
    assert sorted(calls) == ["a1", "a2"] and len(events["events"]) == 2
    approved = calls["a1"]
    assert approved["actor"] == "admin" and approved["action"] == "bash"
    assert approved["data"]["arguments"] == {"command": "echo audited"}
    assert approved["data"]["decision"] == "ask" and approved["data"]["verdict"] == "allow"
    assert approved["data"]["approver"] == "admin" and approved["data"]["socket"]
    assert approved["data"]["approver_client"].startswith("127.0.0.1:")
    assert approved["data"]["status"] == "ok" and approved["data"]["duration_ms"] >= 0
    denied = calls["a2"]["data"]
    assert denied["decision"] == "deny" and denied["status"] == "not_run"
    assert "approver" not in denied


def test_config_changes_are_audited_with_secrets_masked(server):
    secret = "sk-very-secret-7f3a9c"
    with server.client() as http:
        assert http.post("/api/profiles", json={"name": "audited", "profile": {
            "provider": "openai", "model": "m1", "api_key": secret}}).status_code == 201
        assert http.post("/api/mcp/servers", json={
            "name": "gh", "transport": "stdio", "command": "true",
            "env": {"GITHUB_TOKEN": secret}}).status_code in (200, 201)
        assert http.put("/api/config/sandbox", json={"memory_limit_mb": 256}).status_code == 200
        assert http.post("/api/budgets", json={"group": "research", "period": "month",
                                               "limit_cost": "12.5"}).status_code == 201
        response = http.get("/api/audit", params={"kind": "config", "limit": 200})
        refused = [http.delete("/api/audit"), http.post("/api/audit", json={}),
                   http.patch("/api/audit", json={})]
    assert secret not in response.text
    events = response.json()["events"]
    targets = {(e["action"], e["target"].split(" ")[0]) for e in events}
    assert {("created", "profile"), ("created", "mcp_server"), ("changed", "sandbox"),
            ("created", "budget")} <= targets
    profile = next(e for e in events if e["target"].startswith("profile audited"))
    assert profile["actor"] == "admin"
    assert profile["data"]["after"]["api_key_encrypted"] == "********"
    sandbox = next(e for e in events if e["target"].startswith("sandbox"))
    assert sandbox["data"]["before"]["memory_limit_mb"] != 256
    assert sandbox["data"]["after"]["memory_limit_mb"] == 256
    assert [r.status_code for r in refused] == [405, 405, 405]


def test_an_invited_user_signs_in_through_the_link_once(server):
    with server.client() as http:
        created = http.post("/api/users", json={"username": "fiona"})
        assert created.status_code == 201 and created.json()["has_password"] is False
        link = http.post("/api/users/fiona/invite").json()["url"]
    path = link.split("//", 1)[1].split("/", 1)[1]
    with httpx.Client(base_url=server.url, follow_redirects=True, timeout=10) as browser:
        page = browser.get("/" + path)
        assert "Set password and sign in" in page.text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        done = browser.post(str(page.url), data={
            "csrfmiddlewaretoken": csrf, "new_password1": "a long pass phrase 42",
            "new_password2": "a long pass phrase 42"}, headers={"Referer": str(page.url)})
        assert done.status_code == 200 and str(done.url) == server.url + "/"
        csrf = browser.cookies["csrftoken"]
        minted = browser.post("/dashboard/token", headers={"X-CSRFToken": csrf,
                                                           "Referer": server.url + "/"})
        assert minted.status_code == 201  # signed in as fiona
    with httpx.Client(base_url=server.url, follow_redirects=True, timeout=10) as other:
        again = other.get("/" + path)
        assert "invite-invalid" in again.text and "Set password" not in again.text
    with server.client(minted.json()["token"]) as http:
        assert http.get("/dashboard/me").json()["username"] == "fiona"
    with server.client() as http:
        audit = http.get("/api/audit", params={"q": "fiona"}).json()["events"]
    assert {"invited", "invite_used", "signed_in"} <= {e["action"] for e in audit}


def test_a_deactivated_member_loses_the_api_at_once(server):
    token = member_token(server, "gus")
    with server.client(token) as http:
        assert http.get("/api/chats").status_code == 200
    with server.client() as http:
        off = http.patch("/api/users/gus", json={"is_active": False})
        assert off.status_code == 200 and off.json()["is_active"] is False
        myself = http.patch("/api/users/admin", json={"is_active": False})
    assert myself.status_code == 409 and myself.json()["error"] == "would_lock_out"
    with server.client(token) as http:
        assert http.get("/api/chats").status_code == 401
