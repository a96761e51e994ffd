"""Markdown tables streamed in many small deltas end up whole on the REPL's screen.

The screen is what a terminal shows after every cursor move and erasure: ``pyte`` plays
the client's output the way a terminal does. Text with the control sequences stripped
would not do: a row that was printed and then erased, or a half-drawn frame that was
never erased, must count. One REPL (and one ``serve``) runs many turns, since the fault
this guards against (two threads drawing the live region) showed in some runs only.
"""

from __future__ import annotations

import io
import sys

import pexpect
import pyte
import pytest
from rich.console import Console
from rich.markdown import Markdown

from tests.cli.term import Term
from tests.e2e.server import ROOT
from tests.fake_upstream import FakeUpstream, Text

RUNS = 50
ROWS, COLS = 200, 120  # tall enough that a whole answer stays on the screen
TABLES, TABLE_ROWS = 4, 3
RUNS_PER_CHAT = 10  # fewer tokens than the fake profile's window: no compaction


def answer(run: int) -> str:
    """A paragraph, then tables with a short paragraph after each."""
    out = f"Tables of run {run}.\n\n"
    for t in range(TABLES):
        rows = "".join(f"| r{run}-{t}{i} | value {i} of run {run} |\n"
                       for i in range(1, TABLE_ROWS + 1))
        out += f"| key | value |\n|---|---|\n{rows}\nAfter table {t}.\n\n"
    return out + f"End of run {run}."


def row_keys(run: int) -> list[str]:
    return [f"r{run}-{t}{i}" for t in range(TABLES) for i in range(1, TABLE_ROWS + 1)]


def at_once(text: str) -> list[str]:
    """The lines of ``text`` rendered as Markdown in one go, as the client renders it."""
    console = Console(width=COLS, record=True, file=io.StringIO())
    console.print(Markdown(text))
    return _trim([line.rstrip() for line in console.export_text().splitlines()])


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[0]:
        lines = lines[1:]
    while lines and not lines[-1]:
        lines = lines[:-1]
    return lines


@pytest.mark.slow
def test_streamed_tables_keep_every_row_on_the_screen(cli_env, upstream: FakeUpstream):
    env = {**cli_env, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm-256color"}
    term = Term(pexpect.spawn(sys.executable, ["-m", "gateway_cli", "--new"], env=env,
                              cwd=str(ROOT), encoding="utf-8", dimensions=(ROWS, COLS),
                              timeout=10))
    screen = pyte.Screen(COLS, ROWS)
    player = pyte.Stream(screen)
    played = 0
    wrong: list[str] = []
    try:
        term.expect(r"new chat [0-9a-f-]{36}")
        term.prompt()
        for run in range(RUNS):
            if run and run % RUNS_PER_CHAT == 0:
                term.send_line("/chat new")
                term.expect(r"new chat [0-9a-f-]{36}")
                term.prompt()
            upstream.enqueue(Text(answer(run), chunk_size=3))
            term.send_line(f"tables for run {run}")
            term.expect(rf"End of run {run}\.")
            term.expect(r"fake-model · \d+ in, \d+ out")
            term.prompt()

            player.feed(term.raw[played:])
            played = len(term.raw)
            lines = [line.rstrip() for line in screen.display]
            asked = max(i for i, line in enumerate(lines)
                        if line.startswith(f"› tables for run {run}"))
            foot = max(i for i, line in enumerate(lines) if line.startswith("fake-model · "))
            shown = _trim(lines[asked + 1:foot])
            text = "\n".join(shown)
            missing = [key for key in row_keys(run) if text.count(f"{key} ") != 1]
            if missing or shown != at_once(answer(run)):
                wrong.append(f"run {run}: rows missing or repeated: {missing}; the answer "
                             "on the screen:\n" + text)
        term.child.sendeof()
        assert term.wait_exit() == 0
    finally:
        term.child.close(force=True)
    assert not wrong, (f"{len(wrong)} of {RUNS} answers were not shown as rendered at once; "
                       f"the first:\n{wrong[0]}")
