"""Print mode (``gateway-cli -p``) as scripts use it: output, JSON lines, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.conftest import run_cli, run_many
from tests.e2e.server import ROOT, ServeProcess
from tests.fake_upstream import FakeUpstream, HttpError, Text, ToolCalls


def test_prints_the_streamed_answer(cli_env, upstream: FakeUpstream):
    upstream.enqueue(Text("Hello from the **fake** model.", chunk_size=4))
    done = run_cli(cli_env, "-p", "say hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello from the **fake** model.\n"
    assert upstream.requests[-1]["messages"][-1] == {"role": "user", "content": "say hello"}


def test_json_prints_every_event_as_a_line(cli_env, upstream: FakeUpstream):
    upstream.enqueue(Text("one two three", chunk_size=3))
    done = run_cli(cli_env, "-p", "count", "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "agent.state"
    assert "agent.turn_started" in types and types[-1] == "agent.turn_complete"
    assert "".join(e["data"]["text"] for e in events
                   if e["type"] == "agent.text_delta") == "one two three"
    seqs = [e["seq"] for e in events[1:]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert events[-1]["data"]["stop_reason"] == "end_turn"


def test_reads_the_prompt_from_stdin(cli_env, upstream: FakeUpstream):
    done = run_cli(cli_env, input="a prompt from a pipe\n")  # no -p: stdin is the prompt
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo: a prompt from a pipe\n"
    done = run_cli(cli_env, "-p", "summarise:", input="piped text\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo: summarise:\n\npiped text\n"


def test_chat_goes_on_in_the_same_chat(cli_env, gateway: ServeProcess, upstream):
    first = run_cli(cli_env, "-p", "first question", "-v")
    assert first.returncode == 0, first.stderr
    chat_id = re.search(r"chat ([0-9a-f-]{36})", first.stderr).group(1)
    second = run_cli(cli_env, "-p", "second question", "--chat", chat_id)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "echo: second question\n"
    with gateway.client() as http:
        chat = http.get(f"/api/chats/{chat_id}").json()
    assert chat["title"] == "first question"
    assert [m["content"] for m in chat["messages"] if m["role"] == "user"] == [
        "first question", "second question"]


def test_tool_requests_are_denied_unless_allowed(cli_env, upstream: FakeUpstream):
    upstream.enqueue(ToolCalls([("t1", "bash", {"command": "echo print-mode-tool"})]),
                     Text("no tool then"))
    denied = run_cli(cli_env, "-p", "use a tool")
    assert denied.returncode == 0, denied.stderr
    assert "denied tool call bash" in denied.stderr and "--allow-tools" in denied.stderr
    assert denied.stdout == "no tool then\n"
    assert "print-mode-tool" not in json.dumps(upstream.requests[-1]["messages"][-1])

    upstream.enqueue(ToolCalls([("t2", "bash", {"command": "echo print-mode-tool"})]),
                     Text("the tool ran"))
    allowed = run_cli(cli_env, "-p", "use a tool", "--allow-tools")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout == "the tool ran\n"
    tool_message = upstream.requests[-1]["messages"][-1]
    assert tool_message["role"] == "tool" and "print-mode-tool" in str(tool_message["content"])


def test_an_upstream_error_exits_1(cli_env, upstream: FakeUpstream):
    upstream.enqueue(HttpError(500))
    done = run_cli(cli_env, "-p", "this fails")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "upstream_error" in done.stderr
    upstream.enqueue(HttpError(500))
    as_json = run_cli(cli_env, "-p", "this fails too", "--json")
    assert as_json.returncode == 1
    last = json.loads(as_json.stdout.splitlines()[-1])
    assert last["type"] == "agent.turn_complete" and last["data"]["stop_reason"] == "error"


def test_a_timeout_exits_3_and_cancels_the_turn(cli_env, gateway: ServeProcess,
                                                 upstream: FakeUpstream):
    slow = Text("a b c d e f", pause_after=2)
    upstream.enqueue(slow)
    try:
        started = time.monotonic()
        done = run_cli(cli_env, "-p", "take your time", "--timeout", "1.5", "-v")
        assert done.returncode == 3, (done.stdout, done.stderr)
        assert time.monotonic() - started < 10
        assert "timed out after 1.5 s" in done.stderr
        assert done.stdout == "a b \n"
        chat_id = re.search(r"chat ([0-9a-f-]{36})", done.stderr).group(1)
        with gateway.client() as http:
            deadline = time.monotonic() + 5
            while http.get(f"/api/chats/{chat_id}").json()["running"]:
                assert time.monotonic() < deadline, "the timed-out turn was not cancelled"
                time.sleep(0.1)
    finally:
        slow.release.set()


def test_auth_and_connection_failures_exit_4(cli_env):
    bad_token, no_chat, unreachable = run_many(
        ({**cli_env, "GATEWAY_TOKEN": "gw_" + "0" * 64}, ["-p", "hello"]),
        (cli_env, ["-p", "hello", "--chat", "00000000-0000-0000-0000-000000000000"]),
        ({**cli_env, "GATEWAY_URL": "http://127.0.0.1:9"}, ["-p", "hello"]))
    assert bad_token.returncode == 4 and "authentication failed" in bad_token.stderr
    assert no_chat.returncode == 4 and "404" in no_chat.stderr
    assert unreachable.returncode == 4 and "cannot reach the gateway" in unreachable.stderr


def test_usage_and_config_errors_exit_2(cli_env):
    no_token = {k: v for k, v in cli_env.items() if k != "GATEWAY_TOKEN"}
    runs = run_many((no_token, ["-p", "hello"]),
                    (cli_env, ["-p", "hi", "--url", "ftp://x"]),
                    (cli_env, ["-p"]),  # no prompt at all
                    (cli_env, ["-p", "hi", "--timeout", "0"]),
                    (cli_env, ["--bogus"]))
    assert [r.returncode for r in runs] == [2] * 5, [r.stderr for r in runs]
    assert "no token" in runs[0].stderr and "not an http" in runs[1].stderr
    assert "no prompt" in runs[2].stderr


def test_url_and_token_from_a_config_file(cli_env, gateway: ServeProcess, tmp_path: Path):
    config = tmp_path / "cli.toml"
    config.write_text(f'url = "{gateway.url}"\ntoken = "{gateway.admin_token}"\n')
    env = {k: v for k, v in cli_env.items() if k not in ("GATEWAY_URL", "GATEWAY_TOKEN")}
    # the default place, ~/.config/gateway-cli/config.toml
    default = Path(env["HOME"]) / ".config" / "gateway-cli" / "config.toml"
    default.parent.mkdir(parents=True)
    default.write_text(config.read_text())
    named, in_home, flagged = run_many(
        ({**env, "GATEWAY_CLI_CONFIG": str(config)}, ["-p", "configured"]),
        (env, ["-p", "found at home"]),
        (env, ["-p", "x", "--token", "gw_" + "1" * 64]))  # a flag beats the file
    assert named.returncode == 0, named.stderr
    assert named.stdout == "echo: configured\n"
    assert in_home.stdout == "echo: found at home\n"
    assert flagged.returncode == 4


def test_continue_goes_on_in_the_most_recently_active_chat(cli_env, gateway: ServeProcess,
                                                           upstream):
    first = run_cli(cli_env, "-p", "remember the word teapot", "-v")
    assert first.returncode == 0, first.stderr
    chat_id = re.search(r"chat ([0-9a-f-]{36})", first.stderr).group(1)

    again = run_cli(cli_env, "-p", "which word?", "--continue", "-v")

    assert again.returncode == 0, again.stderr
    assert f"chat {chat_id}" in again.stderr
    with gateway.client() as http:
        chat = http.get(f"/api/chats/{chat_id}").json()
    assert [m["content"] for m in chat["messages"] if m["role"] == "user"] == [
        "remember the word teapot", "which word?"]


def test_chat_and_continue_together_are_a_usage_error(cli_env):
    done = run_cli(cli_env, "-p", "x", "--continue", "--chat", "abc")
    assert done.returncode == 2 and "exclude" in done.stderr


def test_a_reader_that_leaves_early_is_not_an_error(cli_env, upstream: FakeUpstream,
                                                    tmp_path: Path):
    lines = "".join(f"line {n}\n" for n in range(400))
    upstream.enqueue(Text(lines, chunk_size=20, delay=0.002))
    err = tmp_path / "stderr.txt"
    done = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m gateway_cli -p "many lines" 2>"{err}" '
                       '| head -n 2; echo "cli=${PIPESTATUS[0]}"'],
        env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert done.stdout.splitlines() == ["line 0", "line 1", "cli=0"]
    assert "Traceback" not in err.read_text() and "BrokenPipe" not in err.read_text()
