"""The single-key read of the tool approval question, on a real pseudo-terminal pair.

The test holds the terminal's master side and types into it; ``read_key`` reads the slave
side as the REPL reads its own terminal.
"""

from __future__ import annotations

import asyncio
import io
import os
import select
import sys
import termios
from typing import Iterator

import pytest

from gateway_cli import keys


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    try:
        yield master, slave
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass


async def _waiting(fd: int, saved: list) -> None:
    """Until ``read_key`` has put the terminal in its key mode."""
    while termios.tcgetattr(fd) == saved:
        await asyncio.sleep(0.01)


async def test_one_key_is_read_without_enter_and_the_terminal_comes_back(pty_pair):
    master, slave = pty_pair
    saved = termios.tcgetattr(slave)
    task = asyncio.ensure_future(keys.read_key(slave))
    await asyncio.wait_for(_waiting(slave, saved), 5)
    lflag = termios.tcgetattr(slave)[3]
    assert not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)

    os.write(master, b"y")  # no newline

    assert await asyncio.wait_for(task, 5) == "y"
    assert termios.tcgetattr(slave) == saved


async def test_ctrl_c_is_a_key_not_a_signal(pty_pair):
    master, slave = pty_pair
    saved = termios.tcgetattr(slave)
    task = asyncio.ensure_future(keys.read_key(slave))
    await asyncio.wait_for(_waiting(slave, saved), 5)
    os.write(master, b"\x03")  # with ISIG on, the line discipline would swallow it
    assert await asyncio.wait_for(task, 5) == keys.CTRL_C
    assert termios.tcgetattr(slave) == saved


async def test_cancelling_the_wait_restores_the_terminal(pty_pair):
    master, slave = pty_pair
    saved = termios.tcgetattr(slave)
    task = asyncio.ensure_future(keys.read_key(slave))
    await asyncio.wait_for(_waiting(slave, saved), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert termios.tcgetattr(slave) == saved
    # the cancelled read left no reader behind: the next question gets the next key
    task = asyncio.ensure_future(keys.read_key(slave))
    await asyncio.wait_for(_waiting(slave, saved), 5)
    os.write(master, b"n")
    assert await asyncio.wait_for(task, 5) == "n"


async def test_keys_typed_before_the_question_are_not_an_answer(pty_pair):
    master, slave = pty_pair
    saved = termios.tcgetattr(slave)
    os.write(master, b"yes\n")  # typed ahead, in line mode
    assert select.select([slave], [], [], 5)[0], "the typed line did not arrive"
    task = asyncio.ensure_future(keys.read_key(slave))
    await asyncio.wait_for(_waiting(slave, saved), 5)
    os.write(master, b"n")
    assert await asyncio.wait_for(task, 5) == "n"


async def test_a_terminal_that_goes_away_reads_as_ctrl_d(pty_pair):
    master, slave = pty_pair
    saved = termios.tcgetattr(slave)
    task = asyncio.ensure_future(keys.read_key(slave))
    await asyncio.wait_for(_waiting(slave, saved), 5)
    os.close(master)
    assert await asyncio.wait_for(task, 5) == keys.CTRL_D


def test_only_a_terminal_is_read_key_by_key(pty_pair):
    master, slave = pty_pair
    read_end, write_end = os.pipe()
    try:
        assert keys.is_terminal(slave)
        assert not keys.is_terminal(read_end)
        assert not keys.is_terminal(None)
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_without_a_terminal_the_question_takes_a_line(monkeypatch, tmp_path):
    from prompt_toolkit import PromptSession
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from rich.console import Console

    from gateway_cli.config import Config
    from gateway_cli.repl import Repl

    read_end, write_end = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_end))
    monkeypatch.setenv("HOME", str(tmp_path))
    shown = io.StringIO()
    repl = Repl(Config("http://127.0.0.1:9", "gw_unused"), console=Console(file=shown))
    try:
        with create_pipe_input() as typed:
            repl.asker = PromptSession(input=typed, output=DummyOutput())
            typed.send_text("y")  # a key alone is no answer here: a line is
            typed.send_text("es please\n")
            typed.send_text("n\n")
            assert await asyncio.wait_for(repl.ask_verdict(), 5) == "deny"
        assert "answer y, n, a or c" in shown.getvalue()
    finally:
        sys.stdin.close()
        os.close(write_end)
        await repl.api.close()
