"""The REPL in a pseudo-terminal against a real ``serve`` process and the fake upstream."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pexpect
import websockets

from tests.cli.term import Term
from tests.e2e.server import ROOT, ServeProcess
from tests.fake_upstream import FakeUpstream, Text, ToolCalls


def spawn(env: dict[str, str], *args: str) -> Term:
    env = {**env, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm-256color"}
    child = pexpect.spawn(sys.executable, ["-m", "gateway_cli", *args], env=env, cwd=str(ROOT),
                          encoding="utf-8", dimensions=(40, 120), timeout=10)
    return Term(child)


def test_a_session_streams_answers_tools_and_commands(cli_env, gateway: ServeProcess,
                                                       upstream: FakeUpstream):
    term = spawn(cli_env)
    try:
        chat_id = term.expect(r"new chat ([0-9a-f-]{36})").group(1)
        term.prompt()

        # a streamed answer, rendered as Markdown (the ** are gone)
        upstream.enqueue(Text("Streaming **works** here.\n\n- first\n- second",
                              chunk_size=3, delay=0.01))
        term.send_line("hello there")
        term.expect(r"Streaming works here\.")
        term.expect(r"• first\s+• second")
        term.expect(r"fake-model · \d+ in, \d+ out")
        term.prompt()

        # a tool request answered inline with y
        upstream.enqueue(ToolCalls([("r1", "bash", {"command": "echo from-the-repl"})]),
                         Text("The tool printed from-the-repl."))
        term.send_line("run a tool")
        term.expect(r"⚙ bash\s+\$ echo from-the-repl")
        term.expect(r"Allow\? \[y\]es / \[n\]o / \[a\]lways for this chat")
        term.child.send("y")  # one key, no Enter
        term.expect(r"⎿ from-the-repl")
        term.expect(r"The tool printed from-the-repl\.")
        term.prompt()
        tool_msg = upstream.requests[-1]["messages"][-1]
        assert tool_msg["role"] == "tool" and tool_msg["content"].strip() == "from-the-repl"

        # "always for this chat": the next call of that tool is not asked about
        upstream.enqueue(ToolCalls([("r2", "bash", {"command": "echo always-1"})]),
                         Text("first done"),
                         ToolCalls([("r3", "bash", {"command": "echo always-2"})]),
                         Text("second done"))
        term.send_line("again")
        term.expect(r"Allow\?")
        term.child.send("a")
        term.expect(r"⎿ always-1")
        term.expect("first done")
        term.prompt()
        term.send_line("and again")
        term.expect(r"⎿ always-2")
        term.expect("second done")
        term.prompt()
        assert "Allow?" not in term.screen(400)

        # /chats lists this chat, titled after its first message
        term.send_line("/chats")
        term.expect(rf"\*\s+{chat_id[:8]}\s+hello there")
        term.prompt()

        # /context draws a bar with the compaction mark
        term.send_line("/context")
        match = term.expect(r"Context \[([█░│]+)\]\s+([\d.]+)%")
        bar = match.group(1)
        assert len(bar) == 41 and bar.index("│") == 30  # 75% of 40 cells
        term.expect(r"compaction at 75%")
        term.prompt()

        # /profiles, /profile use, /permissions
        term.send_line("/profiles")
        term.expect(r"fake\s+openai\s+fake-model.*default")
        term.prompt()
        term.send_line("/profile use fake")
        term.expect("this chat now uses profile fake")
        term.prompt()
        term.send_line("/permissions")
        term.expect("mode interactive")
        term.prompt()

        # Ctrl-C cancels the running turn
        slow = Text("one two three four five six seven", pause_after=3)
        upstream.enqueue(slow)
        try:
            term.send_line("a long answer please")
            term.expect("one two three")
            assert slow.paused.wait(5)
            term.child.sendcontrol("c")
            term.expect("cancelled")
            term.prompt()
        finally:
            slow.release.set()
        with gateway.client() as http:
            assert http.get(f"/api/chats/{chat_id}").json()["running"] is False

        # /cancel with nothing running
        term.send_line("/cancel")
        term.expect("no turn is running")
        term.prompt()

        # a tool request can cancel the turn too
        upstream.enqueue(ToolCalls([("r4", "write", {"path": "x.txt", "content": "hi"})]))
        term.send_line("write a file")
        term.expect(r"⚙ write\s+x\.txt")
        term.expect(r"Allow\?")
        term.child.send("c")
        term.expect(r"⨯ cancelled")
        term.prompt()

        # /compact answers (compacted, or nothing to compact yet) and the REPL goes on
        term.send_line("/compact")
        term.expect(r"compacted|nothing to compact", timeout=20)
        term.prompt(timeout=20)

        # Ctrl-D leaves
        term.child.sendeof()
        assert term.wait_exit() == 0
    finally:
        term.child.close(force=True)

    # the history and the chat survive a restart
    term = spawn(cli_env)
    try:
        term.expect(rf"resumed chat {chat_id}\s+hello there")
        term.expect(r"second done")  # the last messages are shown again
        term.prompt()
        term.child.send("\x1b[A")  # up arrow: the last line typed before the restart
        term.expect(r"/compact")
        term.child.sendcontrol("c")  # clears the line
        term.child.sendcontrol("c")  # on an empty line: a hint
        term.expect(r"press Ctrl-C again")
        term.prompt()
        term.child.sendcontrol("c")
        assert term.wait_exit() == 0
    finally:
        term.child.close(force=True)
    history = Path(cli_env["HOME"]) / ".local" / "share" / "gateway-cli" / "history"
    assert "+hello there" in history.read_text()
    state = json.loads((history.parent / "state.json").read_text())
    assert state["last_chat"][gateway.url] == chat_id


def test_a_tool_question_is_answered_with_one_key(cli_env, upstream: FakeUpstream):
    term = spawn(cli_env, "--new")
    try:
        term.expect(r"new chat [0-9a-f-]{36}")
        term.prompt()

        upstream.enqueue(ToolCalls([("k1", "bash", {"command": "echo pressed-y"})]),
                         Text("ran it"))
        term.send_line("run it")
        term.expect(r"Allow\? .* the turn: ")
        term.child.send("y")  # no Enter
        term.expect(r"(?<=the turn: )yes\b")  # the answer, after the question
        term.expect(r"⎿ pressed-y")
        term.expect("ran it")
        term.prompt()
        assert upstream.requests[-1]["messages"][-1]["content"].strip() == "pressed-y"

        upstream.enqueue(ToolCalls([("k2", "bash", {"command": "echo pressed-n"})]),
                         Text("did not run it"))
        term.send_line("run another")
        term.expect(r"Allow\? .* the turn: ")
        term.child.send("x")  # not an answer: the question stays
        term.child.send("n")
        term.expect(r"(?<=the turn: )no\b")  # the answer, after the question
        term.expect("did not run it")
        term.prompt()
        tool_message = upstream.requests[-1]["messages"][-1]
        assert tool_message["role"] == "tool" and tool_message["content"].startswith("Denied")

        # Ctrl-C at the question cancels the turn; the prompt reads lines again afterwards
        upstream.enqueue(ToolCalls([("k3", "bash", {"command": "echo never"})]))
        term.send_line("one more")
        term.expect(r"Allow\? .* the turn: ")
        term.child.sendcontrol("c")
        term.expect(r"(?<=the turn: )cancel\b")  # the answer, after the question
        term.expect(r"⨯ cancelled")
        term.prompt()
        term.send_line("after the question")
        term.expect("echo: after the question")
        term.prompt()
        term.child.sendeof()
        assert term.wait_exit() == 0
    finally:
        term.child.close(force=True)


def test_a_turn_started_elsewhere_is_shown_and_the_typed_line_kept(
        cli_env, gateway: ServeProcess, upstream: FakeUpstream):
    term = spawn(cli_env, "--new")
    try:
        chat_id = term.expect(r"new chat ([0-9a-f-]{36})").group(1)
        term.prompt()
        term.child.send("half a line")
        term.expect("half a line")

        async def other_client() -> None:
            async with websockets.connect(f"{gateway.ws_url}/ws/{chat_id}?token="
                                          f"{gateway.admin_token}") as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "user_message",
                                          "content": "sent from the dashboard"}))
                while json.loads(await ws.recv())["type"] != "agent.turn_complete":
                    pass

        asyncio.run(asyncio.wait_for(other_client(), 15))
        term.expect("a turn started from another client")
        term.expect("echo: sent from the dashboard")
        term.prompt()
        term.expect("half a line")  # the prompt is back with what was typed
        term.child.send(" finished\r")
        term.expect("echo: half a line finished")
        term.prompt()
        term.child.sendeof()
        assert term.wait_exit() == 0
    finally:
        term.child.close(force=True)


def test_a_bad_token_ends_the_repl_with_4(cli_env):
    term = spawn({**cli_env, "GATEWAY_TOKEN": "gw_" + "2" * 64})
    try:
        term.expect("authentication failed")
        assert term.wait_exit() == 4
    finally:
        term.child.close(force=True)
