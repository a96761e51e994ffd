"""An imported Clotho chat goes on with a new turn on a real ``serve``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import websockets

from tests.clotho_import.home import CHAT_ID, build
from tests.e2e.server import ROOT, ServeProcess
from tests.fake_upstream import Text
from tests.jobs.conftest import FAST, START_TIMEOUT, client

pytestmark = pytest.mark.timeout(600)


def import_clotho(server: ServeProcess, home: Path) -> str:
    done = subprocess.run([sys.executable, "manage.py", "import_clotho", str(home),
                           "--user", "admin", "--timezone", "UTC"],
                          cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def one_turn(server: ServeProcess, text: str) -> list[dict]:
    url = f"{server.ws_url}/ws/{CHAT_ID}?token={server.admin_token}"
    async with websockets.connect(url) as ws:
        await asyncio.wait_for(ws.recv(), 60)  # agent.state
        await ws.send(json.dumps({"type": "user_message", "content": text}))
        events = []
        while not events or events[-1]["type"] != "agent.turn_complete":
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
        return events


def test_the_imported_chat_continues_and_a_second_import_changes_nothing(tmp_path, upstream):
    home = build(tmp_path / ".clotho", upstream.url)
    server = ServeProcess(tmp_path / "data", FAST).start(timeout=START_TIMEOUT)
    try:
        first = import_clotho(server, home)
        assert "chats: 2 imported" in first and "profiles: 1 imported" in first
        upstream.enqueue(Text("Still two files."))
        events = asyncio.run(one_turn(server, "How many files again?"))
        assert events[-1]["data"]["stop_reason"] == "end_turn", events
        sent = upstream.requests[-1]["messages"]
        assert upstream.auth_headers[-1] == "Bearer sk-clotho-9876"
        assert any(c["id"] == "tu_1" for m in sent for c in m.get("tool_calls") or [])
        assert "SUMMARY" in json.dumps(sent) and "OLD-" not in json.dumps(sent)
        with client(server) as http:
            before = http.get(f"/api/chats/{CHAT_ID}").json()["messages"]
            second = import_clotho(server, home)
            after = http.get(f"/api/chats/{CHAT_ID}").json()["messages"]
            jobs = http.get("/api/jobs").json()["jobs"]
        assert "0 imported" in second and " 1 imported" not in second
        assert after == before and after[-1]["content"] == "Still two files."
        assert sorted(j["name"] for j in jobs) == ["daily-standup", "nightly"]
    finally:
        server.stop()
