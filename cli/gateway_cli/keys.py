"""One key press from the terminal, without Enter (the REPL's tool approval question).

While the key is awaited the terminal is non-canonical (a key arrives without Enter),
without echo, and without signals (Ctrl-C arrives as the character ``"\\x03"``, so the
caller decides what it means instead of a ``KeyboardInterrupt`` in the middle of the read).
The previous settings come back on every way out: a key, end of input, an error, or the
waiting task being cancelled.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Optional

try:
    import termios
except ImportError:  # pragma: no cover - Windows: questions are answered with Enter
    termios = None  # type: ignore[assignment]

CTRL_C, CTRL_D = "\x03", "\x04"


def is_terminal(fd: Optional[int]) -> bool:
    """Whether ``fd`` is a terminal that ``KeyMode`` can read key by key."""
    return termios is not None and fd is not None and os.isatty(fd)


class KeyMode:
    """``with KeyMode(fd) as term:`` the terminal ``fd`` in key mode; ``await term.read()``
    for each key. Enter the mode *before* the question is shown: a key pressed as soon as
    it is on the screen is then read as a key (in line mode it would wait for Enter, and
    a Ctrl-C would still be a signal). Keys typed before entering are discarded: text
    typed ahead while an answer streamed must not answer a question not yet shown."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: Optional[list[Any]] = None

    def __enter__(self) -> "KeyMode":
        self.saved = termios.tcgetattr(self.fd)
        raw = termios.tcgetattr(self.fd)
        raw[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        raw[6][termios.VMIN] = 1
        raw[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSAFLUSH, raw)  # TCSAFLUSH: drop typed-ahead
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            return
        try:
            termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
        except termios.error:  # the terminal is gone: nothing to restore
            pass
        self.saved = None

    async def read(self) -> str:
        """The next key press (its first character); end of input, or a terminal that
        went away, reads as Ctrl-D."""
        loop = asyncio.get_running_loop()
        pressed: asyncio.Future[bytes] = loop.create_future()

        def readable() -> None:
            try:
                data = os.read(self.fd, 64)  # one key may be several bytes (UTF-8, arrows)
            except OSError:
                data = b""
            if not pressed.done():
                pressed.set_result(data)

        loop.add_reader(self.fd, readable)
        try:
            data = await pressed
        finally:
            loop.remove_reader(self.fd)
        return data.decode("utf-8", errors="replace")[:1] or CTRL_D


async def read_key(fd: int) -> str:
    """One key press on the terminal ``fd`` (see ``KeyMode``)."""
    with KeyMode(fd) as term:
        return await term.read()
