"""Only regular files are read or written: FIFOs, sockets and devices are refused at once.

The attack (issue 15): ``mkfifo`` and then ``write f.fifo`` in 8 chats blocked every
thread of the shared pool with no timeout, and every other user's turn hung until
someone opened the FIFOs on the host. Now each file is opened non-blocking and checked
with ``fstat`` before use, on a pool of its own: every such call ends with a tool error,
the FIFO stays a FIFO, and another user's turn completes meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from pathlib import Path
from typing import Iterator

import pytest

from tests.fake_upstream import Text, ToolCalls
from tests.security.conftest import Gateway, tool_results

CHATS = 8


def _special_calls(name: str) -> list[tuple[str, dict]]:
    return [("write", {"path": name, "content": "x" * 100_000}),
            ("read", {"path": name}),
            ("edit", {"path": name, "old_string": "a", "new_string": "b"})]


def _script(names: list[str]):
    def reply(body: dict) -> object:
        if (body.get("messages") or [{}])[-1].get("role") == "tool":
            return Text("done")
        calls = [call for name in names for call in _special_calls(name)]
        return ToolCalls([(f"s{i}", tool, args) for i, (tool, args) in enumerate(calls)])
    return reply


@contextlib.contextmanager
def _released(fifos: list[Path]) -> Iterator[None]:
    """Whatever happens, open the FIFOs at the end so that a blocked server thread (the
    old behaviour) is let go and the server can stop."""
    try:
        yield
    finally:
        for fifo in fifos:
            for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_RDWR | os.O_NONBLOCK):
                with contextlib.suppress(OSError):
                    os.close(os.open(fifo, flags))


def test_fifos_in_eight_chats_fail_fast_while_another_users_turn_completes(
        gateway: Gateway) -> None:
    name, token = gateway.user("fifo")
    other, other_token = gateway.user("bystander")
    ws = gateway.workspace(name)
    ws.mkdir(parents=True)
    fifos = [ws / f"f{i}.fifo" for i in range(CHATS)]
    for fifo in fifos:
        os.mkfifo(fifo)
    for i, fifo in enumerate(fifos):
        gateway.scripts[f"fifo{i}"] = _script([fifo.name])
    gateway.scripts["bystander"] = lambda body: Text("still here")
    chats = [gateway.chat(token) for _ in range(CHATS)]
    other_chat = gateway.chat(other_token)

    async def everyone() -> list[list[dict]]:
        attacks = [gateway.turn(token, chat, f"fifo{i}: go") for i, chat in enumerate(chats)]
        return await asyncio.gather(*attacks, gateway.turn(other_token, other_chat,
                                                           "bystander: hello"))

    with _released(fifos):
        *attacked, bystander = asyncio.run(everyone())

    for events in attacked:
        results = tool_results(events)
        assert len(results) == 3 and all(r["is_error"] for r in results), results
        assert all("not a regular file" in r["content"] for r in results), results
    text = "".join(e["data"]["text"] for e in bystander if e["type"] == "agent.text_delta")
    assert text == "still here"
    assert all(stat.S_ISFIFO(os.lstat(fifo).st_mode) for fifo in fifos)


def test_sockets_and_devices_are_refused(gateway: Gateway) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    name, token = gateway.user("nodes")
    ws = gateway.workspace(name)
    ws.mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(ws / "s.sock"))
    os.mknod(ws / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: endless
    gateway.scripts["nodes"] = _script(["s.sock", "zero"])
    chat = gateway.chat(token)

    try:
        events = asyncio.run(gateway.turn(token, chat, "nodes: go"))
    finally:
        listener.close()

    results = tool_results(events)
    assert len(results) == 6 and all(r["is_error"] for r in results), results
    assert all("not a regular file" in r["content"] for r in results), results
    assert stat.S_ISSOCK(os.lstat(ws / "s.sock").st_mode)
    assert stat.S_ISCHR(os.lstat(ws / "zero").st_mode)
