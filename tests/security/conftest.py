"""A real ``serve`` for the attack tests, with a fake upstream that plays one script per
chat, and helpers to run a turn over a real WebSocket and to make users.

Each test uses its own users (so its own workspaces) and tags its messages
``<tag>: ...``; the upstream answers a request with the script registered for the tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import websockets

from tests.e2e.server import ROOT, TOKEN_LINE, ServeProcess
from tests.fake_upstream import FakeUpstream, Reply, Text, ToolCalls, last_user_text

Script = Callable[[dict], Reply]
# One user, so one workspace, per attack.
USERS = ["reader", "writer", "victim", "skiller", "marker", "fifo", "bystander", "nodes",
         "big", "huge"]


class Gateway:
    """The server, its upstream's scripts and the paths a test needs."""

    def __init__(self, server: ServeProcess, upstream: FakeUpstream) -> None:
        self.server = server
        self.upstream = upstream
        self.scripts: dict[str, Script] = {}
        self.tokens: dict[str, str] = {}
        upstream.default_reply = self._reply

    @property
    def workspaces(self) -> Path:
        return self.server.data_dir / "workspaces"

    def workspace(self, username: str) -> Path:
        """A user's workspace folder: named by the user's id (``@<id>``), never by name."""
        import sqlite3

        with sqlite3.connect(self.server.data_dir / "gateway.sqlite3") as db:
            row = db.execute("select id from auth_user where username = ?",
                             (username,)).fetchone()
        return self.workspaces / f"@{row[0]}"

    @property
    def skills(self) -> Path:
        return self.server.data_dir / "skills"

    def _reply(self, body: dict) -> Reply:
        tag = last_user_text(body).split(":", 1)[0]
        script = self.scripts.get(tag)
        return script(body) if script else Text("no script")

    def make_users(self, names: list[str]) -> None:
        """Members made by ``manage.py issue_token``, all in one process (a Django start
        costs seconds): each prints its token as one line."""
        script = ("from django.core.management import call_command\n"
                  f"for name in {names!r}:\n    call_command('issue_token', name)\n")
        out = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT,
                             env=self.server.env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        tokens = TOKEN_LINE.findall(out.stdout)
        assert len(tokens) == len(names), out.stdout
        self.tokens.update(zip(names, tokens))

    def user(self, name: str) -> tuple[str, str]:
        """One of ``USERS``: (username, token); each test uses its own."""
        return name, self.tokens[name]

    def chat(self, token: str) -> str:
        with self.server.client(token) as http:
            response = http.post("/api/chats", json={"title": "attack"})
            assert response.status_code == 201, response.text
            return response.json()["chat_id"]

    async def turn(self, token: str, chat_id: str, content: str,
                   timeout: float = 25) -> list[dict[str, Any]]:
        """Send one message and return the events up to ``agent.turn_complete``."""
        url = f"{self.server.ws_url}/ws/{chat_id}?token={token}"
        async with websockets.connect(url, max_size=None) as ws:
            await asyncio.wait_for(ws.recv(), 10)  # agent.state
            await ws.send(json.dumps({"type": "user_message", "content": content}))
            events = []
            deadline = time.monotonic() + timeout
            while True:
                raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
                events.append(json.loads(raw))
                if events[-1]["type"] == "agent.turn_complete":
                    return events


def tool_results(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "agent.tool_result"]


def repeat_calls(calls: Callable[[int], list[tuple[str, dict]]], seconds: float,
                 min_rounds: int, max_rounds: int) -> Script:
    """A script that asks for ``calls(round)`` round after round for ``seconds`` and at
    least ``min_rounds`` rounds (a busy machine gets as many tries as an idle one), at
    most ``max_rounds``, then answers "done": bounded in time and in count."""
    started: list[float] = []
    rounds = itertools.count()

    def reply(body: dict) -> Reply:
        now = time.monotonic()
        started.append(now) if not started else None
        n = next(rounds)
        if (now - started[0] > seconds and n >= min_rounds) or n >= max_rounds:
            return Text("done")
        return ToolCalls([(f"c{n}-{i}", name, args)
                          for i, (name, args) in enumerate(calls(n))])
    return reply


class Swapper:
    """Swaps ``path`` between a real folder and symlinks, as fast as it can, in a thread:
    the ``bash`` loop of the attack (``mv`` is a rename, so each state is atomic). A state
    the server removed (the skills mirror replaces links) is made again, and whatever
    the server put at ``path`` meanwhile is moved aside, as a determined loop would."""

    def __init__(self, path: Path, links: list[str]) -> None:
        self.path = path
        self.links = links
        self.states = [path.with_name(path.name + ".dir")]
        self.states += [path.with_name(f"{path.name}.link{i}") for i in range(len(links))]
        if os.path.lexists(path):
            path.rename(self.states[0])
        for i in range(len(self.states)):
            self._make(i)
        self.swaps = 0
        self._strays = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _make(self, i: int) -> None:
        state = self.states[i]
        if os.path.lexists(state):
            return
        if i == 0:
            state.mkdir()
        else:
            state.symlink_to(self.links[i - 1])

    def _aside(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.rename(self.path.with_name(f"{self.path.name}.stray"
                                                 f"{next(self._strays)}"))

    def _loop(self) -> None:
        while not self._stop.is_set():
            for i, state in enumerate(self.states):
                self._make(i)
                try:
                    state.rename(self.path)
                except OSError:  # the server made something there while the name was free
                    self._aside()
                    continue
                self.swaps += 1
                time.sleep(0)
                with contextlib.suppress(FileNotFoundError):
                    self.path.rename(state)

    def __enter__(self) -> "Swapper":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        if os.path.lexists(self.path):
            self._aside()
        # The real folder goes back, unless the server removed it while it stood at the
        # name (mirroring replaces a skill's folder: inside the workspace, its right).
        if os.path.lexists(self.states[0]):
            self.states[0].rename(self.path)


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp("security") / "data"
    (data / "skills").mkdir(parents=True)
    with FakeUpstream() as upstream:
        server = ServeProcess(data, env={
            "DATABASE_URL": "", "REDIS_URL": "", "OPENAI_API_KEY": "",
            "GATEWAY_SKILLS_DIR": str(data / "skills"), "GATEWAY_MAX_TOOL_ROUNDS": "400"})
        try:
            server.start(timeout=120)  # the machine may be busy; this is no speed test
            with server.client() as http:
                assert http.post("/api/profiles", json={"name": "fake", "profile": {
                    "provider": "openai", "model": "fake-model", "base_url": upstream.url,
                    "api_key": "sk-security"}}).status_code == 201
                assert http.put("/api/permissions", json={"mode": "autonomous"}
                                ).status_code == 200
                if shutil.which("bwrap"):  # as in the reports: the sandbox on
                    assert http.put("/api/config/sandbox", json={"enabled": True}
                                    ).status_code == 200
            gateway = Gateway(server, upstream)
            gateway.make_users(USERS)
            yield gateway
        finally:
            server.stop()
