"""Sample the gateway process with py-spy while a benchmark part runs, and summarise.

``python3 bench/run.py --profile DIR`` records one collapsed-stack file per part
(``DIR/<part>.txt``, the format of ``py-spy record --format raw``; open it in
speedscope or flamegraph.pl) and puts the hottest functions of each part in the JSON.
With ``--profile-gil`` only the thread holding the interpreter is sampled.
``python3 bench/profile.py FILE [--top N] [--filter TEXT]`` prints the summary of a file.

py-spy must be installed (``pip install py-spy``) and allowed to ptrace (root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def available() -> str | None:
    return shutil.which("py-spy")


@contextlib.contextmanager
def record(pid: int, out: Path, rate: int = 200, gil: bool = False) -> Iterator[None]:
    """py-spy on ``pid`` for the duration of the block (no-op without py-spy). ``gil``:
    only the thread holding the interpreter is sampled (where a GIL-bound process spends
    it; waits of database threads drop out)."""
    exe = available()
    if not exe:
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate),
                             "--format", "raw", "--output", str(out), "--nonblocking",
                             *(["--gil"] if gil else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.3)  # let it attach
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _short(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (pkg/file.py)`` without the line."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "lib/python3":
                path = "stdlib:" + path.split("/", 1)[-1]
            break
    return f"{m.group('func')} ({path})"


def summarize(path: Path, top: int = 25, name_filter: str = "",
              exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Self and inclusive sample shares of the hottest functions in a collapsed file
    (stacks containing any of ``exclude``, e.g. a one-time import, are left out)."""
    self_count: collections.Counter[str] = collections.Counter()
    incl_count: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        if any(text in stack for text in exclude):
            continue
        frames = [_short(f) for f in stack.split(";") if f.strip()]
        if frames and frames[0].startswith("process ") or frames and frames[0].startswith(
                "thread "):
            frames = frames[1:]
        if not frames:
            continue
        total += n
        self_count[frames[-1]] += n
        for frame in set(frames):
            incl_count[frame] += n

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        rows = [(k, v) for k, v in counter.most_common() if name_filter in k]
        return [(k, round(100.0 * v / total, 1)) for k, v in rows[:top]] if total else []

    return {"samples": total, "self_pct": share(self_count), "inclusive_pct": share(incl_count)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Summarise a py-spy collapsed-stack file.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--filter", default="", help="only functions containing this")
    parser.add_argument("--exclude", action="append", default=[],
                        help="leave out stacks containing this (repeatable)")
    args = parser.parse_args(argv)
    got = summarize(args.file, args.top, args.filter, tuple(args.exclude))
    print(f"{got['samples']} samples")
    for title, key in (("self", "self_pct"), ("inclusive", "inclusive_pct")):
        print(f"\n{title}:")
        for name, pct in got[key]:
            try:
                print(f"  {pct:5.1f}%  {name}")
            except BrokenPipeError:
                return


if __name__ == "__main__":
    sys.exit(main())
