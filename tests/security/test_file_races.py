"""Sandbox on: the file tools, skill mirroring and identity seeding cannot be raced.

The attack (issue 15): a loop in the workspace swaps a folder with a symlink pointing out
(to ``/``, to another user's workspace) while the agent reads or writes through that
folder. With "check the resolved path, then open it again", ``read d/shadow`` returned
the host's ``/etc/shadow`` and ``write`` created files outside the workspace; skill
mirroring deleted folders outside, and the identity marker overwrote a file outside.

Here the loop runs on the host, in the user's workspace folder (the same race as a
``bash`` loop in the sandbox), against a real ``serve`` whose model keeps calling the
tools for a few seconds (bounded in rounds too). Nothing outside may ever be read,
created, changed or deleted.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.fake_upstream import Text
from tests.security.conftest import Gateway, Swapper, repeat_calls, tool_results

SECRET = "root:$6$outside-the-workspace-secret"
SECONDS = 5.0  # how long the model keeps calling the tools while the loop swaps
MIN_ROUNDS, MAX_ROUNDS = 12, 300  # at least 108 calls however slow the machine


def _outside(tmp_path: Path) -> Path:
    """A folder outside every workspace, shaped like the target (``shadow`` in it)."""
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "shadow").write_text(SECRET)
    (outside / "victim").mkdir()
    (outside / "victim" / "keep.txt").write_text("keep")
    return outside


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def test_reads_through_a_folder_swapped_for_a_link_never_leave_the_workspace(
        gateway: Gateway, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    name, token = gateway.user("reader")
    ws = gateway.workspace(name)
    (ws / "d").mkdir(parents=True)
    (ws / "d" / "shadow").write_text("inside")
    gateway.scripts["race-read"] = repeat_calls(
        lambda n: [("read", {"path": "d/shadow"})] * 9, SECONDS, MIN_ROUNDS, MAX_ROUNDS)
    chat = gateway.chat(token)

    with Swapper(ws / "d", [str(outside), os.path.relpath(outside, ws)]) as swapper:
        events = asyncio.run(gateway.turn(token, chat, "race-read: go"))

    results = tool_results(events)
    assert len(results) >= 100 and swapper.swaps >= 100
    assert not [r for r in results if SECRET in r["content"]]
    # The race did happen: some reads found the folder, some a link (refused) or nothing.
    assert any(r["content"] == "inside" for r in results)
    assert any(r["is_error"] for r in results)


def test_writes_and_edits_through_a_swapped_folder_create_nothing_outside(
        gateway: Gateway, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    before = _tree(outside)
    name, token = gateway.user("writer")
    victim, _ = gateway.user("victim")
    ws, other = gateway.workspace(name), gateway.workspace(victim)
    (ws / "d").mkdir(parents=True)
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("bob's")
    gateway.scripts["race-write"] = repeat_calls(lambda n: [
        ("write", {"path": "d/planted.txt", "content": "pwned"}),
        ("write", {"path": f"d/new{n}/planted.txt", "content": "pwned"}),
        ("edit", {"path": "d/shadow", "old_string": SECRET, "new_string": "pwned"}),
    ] * 3, SECONDS, MIN_ROUNDS, MAX_ROUNDS)
    chat = gateway.chat(token)

    with Swapper(ws / "d", [str(outside), f"../{victim}"]) as swapper:
        events = asyncio.run(gateway.turn(token, chat, "race-write: go"))

    results = tool_results(events)
    assert len(results) >= 100 and swapper.swaps >= 100
    assert _tree(outside) == before
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    assert any(not r["is_error"] for r in results)  # writes inside did land
    assert (ws / "d" / "planted.txt").read_text() == "pwned"


SKILL = "---\nname: pdf\ndescription: Work with PDF files.\n---\n# PDF\n"


def test_skill_mirroring_into_a_swapped_folder_deletes_and_writes_nothing_outside(
        gateway: Gateway, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    (outside / "pdf").mkdir()
    (outside / "pdf" / "SKILL.md").write_text("the host's own file")
    before = _tree(outside)
    (gateway.skills / "pdf").mkdir(exist_ok=True)
    (gateway.skills / "pdf" / "SKILL.md").write_text(SKILL)
    name, token = gateway.user("skiller")
    ws = gateway.workspace(name)
    (ws / ".skills" / "pdf").mkdir(parents=True)
    gateway.scripts["race-skills"] = lambda body: Text("ok")
    chats = [gateway.chat(token) for _ in range(2)]

    async def turns() -> int:
        count, deadline = 0, asyncio.get_running_loop().time() + SECONDS
        while (asyncio.get_running_loop().time() < deadline or count < 6) and count < 60:
            await asyncio.gather(*(gateway.turn(token, c, "race-skills: hi") for c in chats))
            count += len(chats)
        return count

    # The mirror's root and one skill's folder both flip between a folder and a link out.
    with Swapper(ws / ".skills", [str(outside)]) as outer:
        done = asyncio.run(turns())
    with Swapper(ws / ".skills" / "pdf", [str(outside / "victim"),
                                          os.path.relpath(outside / "victim",
                                                          ws / ".skills")]) as inner:
        done += asyncio.run(turns())

    assert done >= 12 and outer.swaps >= 10 and inner.swaps >= 10
    assert _tree(outside) == before


def test_the_identity_marker_swapped_for_a_link_never_writes_outside(
        gateway: Gateway, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    before = _tree(outside)
    name, token = gateway.user("marker")
    ws = gateway.workspace(name)
    ws.mkdir(parents=True)
    gateway.scripts["race-marker"] = lambda body: Text("ok")
    chat = gateway.chat(token)
    stop = asyncio.Event()

    async def keep_linking() -> int:
        """Put a link to a file outside where the marker is, over and over."""
        n = 0
        while not stop.is_set():
            tmp = ws / f".marker-link{n}"
            tmp.symlink_to(outside / "shadow")
            os.replace(tmp, ws / ".identity-seeded")
            n += 1
            await asyncio.sleep(0)
        return n

    async def attack() -> tuple[int, int]:
        linker = asyncio.create_task(keep_linking())
        turns = 0
        deadline = asyncio.get_running_loop().time() + SECONDS / 2
        while (asyncio.get_running_loop().time() < deadline or turns < 4) and turns < 30:
            await gateway.turn(token, chat, "race-marker: hi")
            turns += 1
        stop.set()
        return turns, await linker

    turns, links = asyncio.run(attack())

    assert turns >= 4 and links >= 10
    assert _tree(outside) == before
