"""Drive a program in a pseudo-terminal (``pexpect``) and read its screen as text."""

from __future__ import annotations

import re
import time
from typing import Optional

import pexpect

# CSI / OSC sequences, keypad modes, backspaces and carriage returns.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>()][0-9A-Za-z]?|[\x08\r]")
PROMPT_START = "\x1b[?2004h"  # prompt_toolkit turns bracketed paste on for every prompt


def plain(raw: str) -> str:
    return _CONTROL.sub("", raw)


def _plain_with_map(raw: str) -> tuple[str, list[int]]:
    """The plain text and, for each of its characters, its offset in ``raw``."""
    out: list[str] = []
    where: list[int] = []
    last = 0
    for m in _CONTROL.finditer(raw):
        out.append(raw[last:m.start()])
        where.extend(range(last, m.start()))
        last = m.end()
    out.append(raw[last:])
    where.extend(range(last, len(raw)))
    return "".join(out), where


class Term:
    """``expect`` matches a regex in the output with terminal control sequences removed,
    from where the previous match ended."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.raw = ""
        self.pos = 0  # in plain(raw)
        self.raw_pos = 0
        self.eof = False

    def _pump(self, wait: float) -> None:
        if self.eof:
            time.sleep(wait)
            return
        try:
            self.raw += self.child.read_nonblocking(65536, timeout=wait)
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            self.eof = True

    def screen(self, last: int = 3000) -> str:
        return plain(self.raw)[-last:]

    def expect(self, pattern: str, timeout: float = 10) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text, where = _plain_with_map(self.raw)
            match = regex.search(text, self.pos)
            if match:
                self.pos = match.end()
                self.raw_pos = where[match.end() - 1] + 1 if match.end() else 0
                return match
            if time.monotonic() > deadline or self.eof:
                raise AssertionError(f"{pattern!r} did not appear within {timeout}s "
                                     f"(eof={self.eof}); the screen ends with:\n"
                                     f"{text[-2500:]}")
            self._pump(0.05)

    def prompt(self, timeout: float = 10) -> None:
        """Wait until a new prompt is shown (after the last match)."""
        deadline = time.monotonic() + timeout
        while True:
            at = self.raw.find(PROMPT_START, self.raw_pos)
            if at >= 0:
                self.raw_pos = at + len(PROMPT_START)
                self.pos = len(plain(self.raw[: self.raw_pos]))
                # let the prompt finish drawing
                self._pump(0.05)
                return
            if time.monotonic() > deadline or self.eof:
                raise AssertionError(f"no prompt within {timeout}s (eof={self.eof}); the "
                                     f"screen ends with:\n{self.screen()}")
            self._pump(0.05)

    def send_line(self, text: str) -> None:
        self.child.send(text + "\r")

    def wait_exit(self, timeout: float = 10) -> Optional[int]:
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._pump(0.1)
        self.child.close()
        return self.child.exitstatus
