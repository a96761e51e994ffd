"""The client's pure parts, in-process: configuration, rendering helpers, turn tracking."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import pytest
from rich.console import Console

from gateway_cli import config as cfg
from gateway_cli import render
from gateway_cli.printmode import read_prompt
from gateway_cli.turns import TurnWatch


def test_flags_beat_env_beats_the_config_file(tmp_path: Path):
    file = tmp_path / "c.toml"
    file.write_text('url = "http://file:1/"\ntoken = "gw_file"\n')
    env = {"HOME": str(tmp_path), "GATEWAY_CLI_CONFIG": str(file)}
    assert cfg.load(env=env) == cfg.Config("http://file:1", "gw_file", str(file))
    env.update(GATEWAY_URL="https://env:2/gw", GATEWAY_TOKEN="gw_env")
    loaded = cfg.load(env=env)
    assert (loaded.url, loaded.token, loaded.ws_base) == ("https://env:2/gw", "gw_env",
                                                          "wss://env:2/gw")
    loaded = cfg.load("http://flag:3", "gw_flag", env=env)
    assert (loaded.url, loaded.token, loaded.ws_base) == ("http://flag:3", "gw_flag",
                                                          "ws://flag:3")


def test_config_errors(tmp_path: Path):
    home = {"HOME": str(tmp_path)}
    assert cfg.load(env={**home, "GATEWAY_TOKEN": "t"}).url == cfg.DEFAULT_URL
    with pytest.raises(cfg.ConfigError, match="no token"):
        cfg.load(env=home)
    with pytest.raises(cfg.ConfigError, match="not an http"):
        cfg.load("localhost:8000", "t", env=home)
    with pytest.raises(cfg.ConfigError, match="does not exist"):
        cfg.load(env={**home, "GATEWAY_CLI_CONFIG": str(tmp_path / "missing.toml")})
    bad = tmp_path / "bad.toml"
    bad.write_text("url = \n")
    with pytest.raises(cfg.ConfigError, match="cannot read"):
        cfg.load(env={**home, "GATEWAY_CLI_CONFIG": str(bad)})


def test_default_paths_follow_xdg(tmp_path: Path):
    assert cfg.config_path({"HOME": "/h"}) == Path("/h/.config/gateway-cli/config.toml")
    assert cfg.data_dir({"HOME": "/h"}) == Path("/h/.local/share/gateway-cli")
    assert cfg.data_dir({"HOME": "/h", "XDG_DATA_HOME": "/x"}) == Path("/x/gateway-cli")


def test_state_remembers_the_last_chat_per_url(tmp_path: Path):
    state = cfg.State(tmp_path / "d")
    assert state.last_chat("http://a") is None
    state.set_last_chat("http://a", "chat-a")
    state.set_last_chat("http://b", "chat-b")
    again = cfg.State(tmp_path / "d")
    assert (again.last_chat("http://a"), again.last_chat("http://b")) == ("chat-a", "chat-b")
    (tmp_path / "d" / "state.json").write_text("{not json")
    assert again.last_chat("http://a") is None


def test_stable_split_keeps_open_blocks_and_fences_out():
    assert render.stable_split("one paragraph") == 0
    assert render.stable_split("para one\n\npara t") == len("para one\n\n")
    fence = "```\ncode\n\nmore code\n"
    assert render.stable_split(fence) == 0
    assert render.stable_split(fence + "```\n\nafter") == len(fence + "```\n\n")
    assert render.stable_split("- item\n\n  continued") == 0


def test_streamed_markdown_looks_like_the_whole(tmp_path: Path):
    text = "# Title\n\nSome **bold** text.\n\n- a\n- b\n\n```python\nx = 1\n```\n\nEnd."
    whole = Console(width=60, record=True, file=open(tmp_path / "w", "w"))
    whole.print(render.markdown(text))
    streamed = Console(width=60, record=True, file=open(tmp_path / "s", "w"))
    stream = render.MarkdownStream(streamed)
    for i in range(0, len(text), 3):
        stream.feed(text[i:i + 3])
    stream.finish()
    assert streamed.export_text() == whole.export_text()


async def test_the_live_region_is_drawn_from_the_event_loop_alone():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=60, height=20)
    stream = render.MarkdownStream(console)
    threads = threading.active_count()
    stream.feed("| key | value |\n|---|---|\n")
    stream.feed("| row-1 | x |\n")  # right after a frame: the loop's timer draws it
    assert threading.active_count() == threads  # no refresh thread of rich's
    for _ in range(250):
        if "row-1" in out.getvalue():
            break
        await asyncio.sleep(0.02)
    assert "row-1" in out.getvalue(), "the last delta was never drawn"
    stream.finish()
    assert threading.active_count() == threads


def test_context_bar_marks_the_compaction_threshold():
    report = {"current_tokens": 4096, "context_window": 8192, "compaction_threshold": 0.75,
              "percent_used": 50.0}
    text = render.context_bar(report, width=40).plain
    bar = text[text.index("[") + 1:text.index("]")]
    assert bar.index("│") == 30 and bar.count("█") == 20
    assert "50.0%" in text and "4,096 of 8,192 tokens" in text and "75%" in text


def test_turn_watch_skips_a_turn_that_started_before_the_send():
    watch = TurnWatch()
    assert not watch.feed({"type": "agent.text_delta", "data": {"text": "other"}})
    assert not watch.feed({"type": "agent.turn_complete", "data": {"stop_reason": "end_turn"}})
    assert not watch.feed({"type": "agent.turn_started", "data": {}})
    assert not watch.feed({"type": "agent.error", "data": {"code": "upstream_error"}})
    assert watch.feed({"type": "agent.turn_complete", "data": {"stop_reason": "error"}})
    assert watch.failed
    rejected = TurnWatch()
    assert rejected.feed({"type": "agent.error", "data": {"code": "invalid_event"}})
    assert rejected.failed


def test_read_prompt_takes_the_argument_then_a_pipe(tmp_path: Path):
    piped = tmp_path / "in.txt"
    piped.write_text("from the file\n")
    with open(piped) as fh:
        assert read_prompt("question", fh) == "question\n\nfrom the file"
    with open(piped) as fh:
        assert read_prompt("", fh) == "from the file"
    with open("/dev/null") as fh:  # a character device is not read
        assert read_prompt("only this", fh) == "only this"


def test_the_client_imports_nothing_from_the_server():
    root = Path(__file__).resolve().parents[2] / "cli" / "gateway_cli"
    server_packages = ("django", "rest_framework", "channels", "chats", "agents", "profiles",
                       "permissions", "gateway_project", "gateway", "mcp_servers", "dashboard",
                       "tests")
    for source in root.glob("*.py"):
        for line in source.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert words[1].split(".")[0] not in server_packages, (source.name, line)
