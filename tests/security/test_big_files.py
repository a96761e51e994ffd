"""A big file costs the server no memory beyond the output cap.

The attack (issue 15): ``read``/``edit`` loaded the whole file into the server: a 400 MB
sparse file took it from 251 to 660 MB, and without the sandbox ``truncate -s 50G`` would
exhaust memory. Now ``read`` streams at most the tool-output limit, ``edit`` refuses a file
over its size cap before loading it, and the server's peak resident memory (``VmHWM``,
which a freed buffer cannot hide) grows by far less than the file.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.fake_upstream import Text, ToolCalls
from tests.security.conftest import Gateway, tool_results

MB = 1024 * 1024
SIZE = 400 * MB
OUTPUT_LIMIT = 64_000  # GATEWAY_TOOL_OUTPUT_LIMIT's default, the server's
# The bound: a 1 MiB read chunk per pool thread, several copies of each result of at most
# OUTPUT_LIMIT characters (JSON, database, events, socket) and allocator slack; about 1 MB
# is measured. Loading the file once would cost all 400 MB.
GROWTH_CAP = 24 * MB


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc")


def _sparse(path: Path, head: bytes, size: int) -> None:
    with open(path, "wb") as out:
        out.write(head)
        out.truncate(size)


def _calls(*calls: tuple[str, dict]):
    def reply(body: dict) -> object:
        if (body.get("messages") or [{}])[-1].get("role") == "tool":
            return Text("done")
        return ToolCalls([(f"b{i}", tool, args) for i, (tool, args) in enumerate(calls)])
    return reply


LINE = b"a line of text that repeats, long enough to matter\n"


def _files(ws: Path, prefix: str, size: int) -> None:
    """Text then a hole; all hole (``truncate -s``)."""
    _sparse(ws / f"{prefix}.txt", LINE * (2 * MB // len(LINE)), size)
    _sparse(ws / f"{prefix}-zeros.bin", b"", size)


def _script(prefix: str):
    text, zeros = f"{prefix}.txt", f"{prefix}-zeros.bin"
    return _calls(
        ("read", {"path": text}),
        ("read", {"path": text, "offset": 10 ** 9}),  # skips through the whole file
        ("read", {"path": text, "offset": 1000, "limit": 10 ** 6}),
        ("edit", {"path": text, "old_string": "a line", "new_string": "b line"}),
        ("read", {"path": zeros}),
        ("edit", {"path": zeros, "old_string": "x", "new_string": "y"}),
    )


def test_reading_and_editing_a_huge_sparse_file_costs_no_memory_growth(
        gateway: Gateway) -> None:
    name, token = gateway.user("big")
    ws = gateway.workspace(name)
    ws.mkdir(parents=True)
    # The same calls first on files of a few MB (every code path runs once), then on
    # 400 MB ones: only the size differs between the two turns.
    _files(ws, "small", 4 * MB)
    _files(ws, "big", SIZE)
    gateway.scripts["warm"] = _script("small")
    gateway.scripts["big"] = _script("big")
    pid = gateway.server.proc.pid
    asyncio.run(gateway.turn(token, gateway.chat(token), "warm: first"))
    before = _peak_kb(pid)

    events = asyncio.run(gateway.turn(token, gateway.chat(token), "big: go"))

    growth = (_peak_kb(pid) - before) * 1024
    results = {r["tool_use_id"]: r for r in tool_results(events)}
    assert growth < GROWTH_CAP, f"peak memory grew by {growth // MB} MB"
    full = results["b0"]
    assert not full["is_error"] and len(full["content"]) <= OUTPUT_LIMIT + 100
    assert full["content"].startswith("a line of text") and "truncated" in full["content"]
    assert results["b1"]["content"] == ""  # no line 10**9: nothing, after a bounded scan
    assert len(results["b2"]["content"]) <= OUTPUT_LIMIT + 100
    for refused in ("b3", "b5"):  # over the edit cap, refused before loading
        assert results[refused]["is_error"] and "limit" in results[refused]["content"]
    assert results["b4"]["is_error"] and "binary" in results["b4"]["content"]
    assert os.path.getsize(ws / "big.txt") == SIZE  # nothing was rewritten


def test_a_50_gb_sparse_file_is_read_up_to_the_cap_and_never_loaded(
        gateway: Gateway) -> None:
    """``truncate -s 50G``: loading it would exhaust the server's memory."""
    name, token = gateway.user("huge")
    ws = gateway.workspace(name)
    ws.mkdir(parents=True)
    _sparse(ws / "huge.txt", LINE * 200, 50 * 1024 * MB)  # 10 KB of text, then the hole
    gateway.scripts["huge"] = _calls(
        ("read", {"path": "huge.txt"}),
        ("read", {"path": "huge.txt", "offset": 150, "limit": 10}),
        ("edit", {"path": "huge.txt", "old_string": "a line", "new_string": "b line"}))

    events = asyncio.run(gateway.turn(token, gateway.chat(token), "huge: go"))

    read, lines, edit = tool_results(events)
    assert read["content"].startswith("a line of text") and not read["is_error"]
    assert len(read["content"]) <= OUTPUT_LIMIT + 100 and "truncated" in read["content"]
    assert lines["content"] == LINE.decode() * 10
    assert edit["is_error"] and "limit" in edit["content"]
