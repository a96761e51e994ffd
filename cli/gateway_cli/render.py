"""Terminal rendering with ``rich``: streamed Markdown, tool calls, the context bar."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Optional

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.spinner import Spinner
from rich.text import Text

CODE_THEME = "monokai"


def markdown(text: str) -> Markdown:
    return Markdown(text, code_theme=CODE_THEME)


def stable_split(text: str) -> int:
    """How much of ``text`` is made of finished Markdown blocks.

    A block is finished when a blank line is followed by a line that starts a new block
    (not indented, so not a continuation of a list item) outside a code fence.
    """
    split = 0
    pos = 0
    in_fence = False
    prev_blank = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if not in_fence and prev_blank and stripped and line[0] not in " \t":
            split = pos
        complete = line.endswith("\n")
        if complete and (stripped.startswith("```") or stripped.startswith("~~~")):
            in_fence = not in_fence
        prev_blank = complete and not stripped
        pos += len(line)
    return split


class _Lines:
    """Lines ``skip`` onwards of a Markdown rendering, at most the last ``max_lines``."""

    def __init__(self, text: str, skip: int = 0, max_lines: Optional[int] = None) -> None:
        self.text = text
        self.skip = skip
        self.max_lines = max_lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(markdown(self.text), options, pad=False)[self.skip:]
        if self.max_lines is not None:
            lines = lines[-max(1, self.max_lines):]
        for line in lines:
            yield from line
            yield Segment.line()


class MarkdownStream:
    """Streamed text rendered as Markdown.

    The whole text is rendered each time, so it looks as it would all at once. Lines of
    finished blocks are printed for good as soon as they are complete; the block being
    written is shown in a small live region redrawn as deltas arrive. A status line with a
    spinner (``thinking…``) can stand in for text that has not come yet.

    Every frame is drawn from the caller's thread (the event loop's): the live region does
    not refresh itself from rich's refresh thread. That thread drew frames while a finished
    block was being printed above the region; each write moved the cursor by the height of
    a frame the other had not written yet, so rows were erased or left twice on the screen.
    Frames are drawn at most every ``REFRESH`` seconds; a timer on the running event loop
    draws the last one (and turns the spinner) when no delta comes.
    """

    REFRESH = 1 / 15

    def __init__(self, console: Console) -> None:
        self.console = console
        self.text = ""  # all text of this segment
        self.stable = 0  # how much of it is finished blocks
        self.printed = 0  # lines of the rendering printed for good
        self.status: Optional[str] = None
        self.live: Optional[Live] = None
        self._drawn_at = 0.0  # time.monotonic() of the last frame
        self._behind = False  # the live region shows less than it should
        self._loop: Optional[asyncio.AbstractEventLoop] = None  # draws late frames
        self._timer: Optional[asyncio.TimerHandle] = None

    def _renderable(self) -> Any:
        if self.text[self.stable:].strip():
            return _Lines(self.text, self.printed, self.console.size.height - 2)
        if self.status and not self.text.strip():
            return Spinner("dots", Text(self.status, style="dim"))
        return Text("")

    def _ensure_live(self) -> None:
        if self.live is None:
            self.live = Live(self._renderable(), console=self.console, auto_refresh=False,
                             transient=True, redirect_stdout=False, redirect_stderr=False)
            self.live.start()
            self._drawn_at = 0.0  # the first frame is drawn at once
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a plain script): every update is drawn
                self._loop = None
            self._tick_later()

    def _draw(self) -> None:
        assert self.live is not None
        self.live.refresh()
        self._drawn_at = time.monotonic()
        self._behind = False

    def _show(self, now: bool = False) -> None:
        """Put the current state in the live region: drawn at once when ``now``, when the
        last frame is old enough, or when there is no event loop to draw it later."""
        assert self.live is not None
        self.live.update(self._renderable())
        if now or self._loop is None or time.monotonic() - self._drawn_at >= self.REFRESH:
            self._draw()
        else:
            self._behind = True

    def _tick_later(self) -> None:
        if self._loop is not None:
            self._timer = self._loop.call_later(self.REFRESH, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.live is None:
            return
        if self._behind or isinstance(self.live.renderable, Spinner):
            self._draw()
        self._tick_later()

    def _print_upto(self, end: int) -> None:
        """Print the rendering of ``text[:end]`` past what is already printed."""
        doc = self.text[:end]
        if not doc.strip():
            return
        total = len(self.console.render_lines(markdown(doc), self.console.options, pad=False))
        if total > self.printed:
            self.console.print(_Lines(doc, self.printed))
            self.printed = total

    def set_status(self, status: Optional[str]) -> None:
        self.status = status
        if status is not None and not self.text.strip():
            self._ensure_live()
        if self.live is not None:
            self._show(now=True)

    def feed(self, text: str) -> None:
        if not text:
            return
        self.text += text
        split = stable_split(self.text)
        block_done = split > self.stable
        if block_done:
            self.stable = split
            self._print_upto(split)
        self._ensure_live()
        # After a print the region below it shows an old frame: draw the new one at once.
        self._show(now=block_done)

    def finish(self) -> str:
        """Stop the live region and print the rest; returns the segment's text."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.live is not None:
            self.live.update(self._renderable())
            self.live.stop()
            self.live = None
        text = self.text
        self._print_upto(len(text))
        self.text, self.stable, self.printed, self.status = "", 0, 0, None
        return text

    def note(self, renderable: Any) -> None:
        """Print a line above the live region (or plainly when there is none)."""
        if self.live is not None:
            self.live.console.print(renderable)
        else:
            self.console.print(renderable)


# --------------------------------------------------------------------------- #
# Pieces
# --------------------------------------------------------------------------- #

def short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_call(call: dict[str, Any]) -> Text:
    """A tool call as the user is asked about it: the name, then its arguments."""
    name = str(call.get("name") or "?")
    args = call.get("arguments")
    out = Text()
    out.append("⚙ ", style="bold cyan")
    out.append(name, style="bold cyan")
    if isinstance(args, dict) and name == "bash" and isinstance(args.get("command"), str):
        out.append("  $ ", style="dim")
        out.append(args["command"])
        return out
    if isinstance(args, dict) and isinstance(args.get("path"), str):
        out.append("  " + args["path"])
        rest = {k: v for k, v in args.items() if k != "path"}
        if rest:
            out.append("\n" + _clip(json.dumps(rest, indent=2, ensure_ascii=False), 12),
                       style="dim")
        return out
    raw = args if isinstance(args, str) else json.dumps(args, indent=2, ensure_ascii=False)
    out.append("\n" + _clip(raw, 12), style="dim")
    return out


def _clip(text: str, max_lines: int) -> str:
    lines = text.splitlines()
    if len(lines) <= max_lines:
        return "\n".join(line[:300] for line in lines)
    kept = [line[:300] for line in lines[:max_lines]]
    return "\n".join(kept + [f"… {len(lines) - max_lines} more lines"])


def tool_result(data: dict[str, Any]) -> Text:
    content = data.get("content")
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    style = "red" if data.get("is_error") else "dim"
    out = Text("  ⎿ ", style="dim")
    body = _clip(content.rstrip() or "(no output)", 6)
    out.append(body.replace("\n", "\n    "), style=style)
    return out


def context_bar(report: dict[str, Any], width: int = 40) -> Text:
    """``[██████░░░░░░░░░░░░░░░░░░░░░░│░░░░░░░░░]  12.3%`` with the compaction mark."""
    used = int(report.get("current_tokens") or 0)
    window = int(report.get("context_window") or 0)
    threshold = float(report.get("compaction_threshold") or 0.75)
    percent = report.get("percent_used")
    if percent is None:
        percent = 100.0 * used / window if window else 0.0
    percent = float(percent)
    filled = max(0, min(width, round(width * percent / 100)))
    mark = max(0, min(width, round(width * threshold)))
    color = "green" if percent < threshold * 100 * 2 / 3 else (
        "yellow" if percent < threshold * 100 else "red")
    bar = Text("Context [")
    for i in range(width + 1):
        if i == mark:
            bar.append("│", style="bold magenta")
        if i < width:
            bar.append("█" if i < filled else "░", style=color if i < filled else "dim")
    bar.append("] ")
    bar.append(f"{percent:.1f}%", style=f"bold {color}")
    bar.append(f"\n        {used:,} of {window:,} tokens · compaction at "
               f"{threshold * 100:.0f}% (│)", style="dim")
    return bar


def message(msg: dict[str, Any]) -> list[Any]:
    """A stored chat message (``GET /api/chats/{id}``) as renderables."""
    role = msg.get("role")
    content = msg.get("content")
    if isinstance(content, list):  # content blocks
        content = "\n".join(str(b.get("text", "")) for b in content
                            if isinstance(b, dict) and b.get("type") == "text")
    content = content or ""
    out: list[Any] = []
    if role == "user":
        out.append(Text("› " + str(content), style="bold"))
    elif role == "assistant":
        if content:
            out.append(markdown(str(content)))
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except ValueError:
                args = fn.get("arguments")
            out.append(tool_call({"name": fn.get("name"), "arguments": args}))
    elif role == "tool":
        out.append(tool_result(msg))
    return out
