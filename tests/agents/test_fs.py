"""agents.fs: every path resolves beneath the workspace, in the kernel, with either
resolver (openat2, and the O_NOFOLLOW walk used where openat2 is missing)."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from agents import fs


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "openat2" and not fs.HAVE_OPENAT2:
        pytest.skip("this kernel has no openat2")
    monkeypatch.setattr(fs, "HAVE_OPENAT2", request.param == "openat2")
    return request.param


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


@pytest.fixture
def ws(tmp_path: Path, outside: Path, resolver: str) -> Iterator[fs.Workspace]:
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("inside a\n")
    (root / "in_link").symlink_to("sub")
    (root / "file_link").symlink_to("a.txt")
    (root / "out_link").symlink_to("../outside")
    (root / "abs_link").symlink_to(outside)
    (root / "sub" / "up_link").symlink_to("../../outside/secret.txt")
    (root / "loop").symlink_to("loop")
    with fs.Workspace(root) as workspace:
        yield workspace


def _code(call, *args, **kwargs) -> str:
    with pytest.raises(fs.FsError) as caught:
        call(*args, **kwargs)
    return caught.value.code


def test_clean_maps_the_sandbox_path_and_refuses_absolute_ones() -> None:
    assert fs.clean("/workspace/sub/x") == "sub/x"
    assert fs.clean(" /workspace ") == "."
    for raw, code in (("/etc/passwd", "outside"), ("~/x", "outside"), ("", "invalid"),
                      ("a\x00b", "invalid"), (None, "invalid"), (3, "invalid")):
        assert _code(fs.clean, raw) == code


def test_links_inside_work_and_links_out_are_refused(ws: fs.Workspace) -> None:
    assert ws.read_text("file_link", 100).text == "inside a\n"
    ws.write_bytes("in_link/new.txt", b"n")
    assert (ws.root / "sub" / "new.txt").read_bytes() == b"n"
    for path in ("out_link/secret.txt", "abs_link/secret.txt", "sub/up_link",
                 "../outside/secret.txt", "sub/../../outside/secret.txt"):
        assert _code(ws.read_text, path, 100) == "outside"
        assert _code(ws.write_bytes, path, b"x") == "outside"
    assert _code(ws.read_text, "loop", 100) == "loop"
    assert ws.kind("out_link", follow=False) == "link" and ws.kind("out_link") is None


def test_a_write_through_a_link_inside_replaces_its_target_not_the_link(
        ws: fs.Workspace) -> None:
    ws.write_bytes("file_link", b"new a")

    assert (ws.root / "file_link").is_symlink()
    assert (ws.root / "a.txt").read_bytes() == b"new a"


def test_nothing_outside_is_created_changed_or_removed(ws: fs.Workspace,
                                                       outside: Path) -> None:
    for call in (lambda: ws.mkdir("out_link/made"), lambda: ws.remove("out_link/secret.txt"),
                 lambda: ws.rename("a.txt", "out_link/a.txt"),
                 lambda: ws.create_exclusive("abs_link/new", b"x"),
                 lambda: ws.edit_text("sub/up_link", "secret", "x")):
        assert _code(call) == "outside"
    ws.remove("out_link")  # the link goes, not what it points to
    ws.remove("sub")  # holds a link out: removed by fds, the target stays

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"
    assert not (ws.root / "sub").exists() and not (ws.root / "out_link").exists()


def test_special_files_are_refused_at_once(ws: fs.Workspace) -> None:
    os.mkfifo(ws.root / "f.fifo")

    assert _code(ws.read_text, "f.fifo", 100) == "not_regular"  # would block if opened
    assert _code(ws.write_bytes, "f.fifo", b"x") == "not_regular"
    assert _code(ws.edit_text, "f.fifo", "a", "b") == "not_regular"
    assert stat.S_ISFIFO(os.lstat(ws.root / "f.fifo").st_mode)
    assert _code(ws.read_text, "sub", 100) == "is_dir"


def test_reading_streams_lines_across_chunks(ws: fs.Workspace,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fs, "CHUNK", 7)  # lines straddle many chunks
    text = "".join(f"line {i} é\n" for i in range(50))
    (ws.root / "lines.txt").write_text(text)
    lines = text.splitlines(keepends=True)

    assert ws.read_text("lines.txt", 10_000).text == text
    assert ws.read_text("lines.txt", 10_000, offset=5, limit=3).text == "".join(lines[4:7])
    assert ws.read_text("lines.txt", 10_000, offset=49).text == "".join(lines[48:])
    assert ws.read_text("lines.txt", 10_000, offset=500).text == ""
    cut = ws.read_text("lines.txt", 20)
    assert cut.text == text[:20] and cut.truncated and cut.size == len(text.encode())


def test_a_binary_file_is_refused_and_a_big_one_is_never_loaded(ws: fs.Workspace) -> None:
    with open(ws.root / "sparse", "wb") as out:
        out.write(b"text\n")
        out.truncate(10 * 1024 ** 3)
    with open(ws.root / "zeros", "wb") as out:
        out.truncate(1024 ** 3)

    assert _code(ws.read_text, "zeros", 100) == "binary"
    assert _code(ws.edit_text, "sparse", "text", "x", max_bytes=1024) == "too_large"
    assert _code(ws.read_bytes, "sparse", 1024) == "too_large"


def test_a_scan_past_its_deadline_stops(ws: fs.Workspace) -> None:
    with open(ws.root / "sparse", "wb") as out:
        out.write(b"text\n" * 4000)
        out.truncate(1024 ** 3)

    assert _code(ws.read_text, "sparse", 100, offset=2,
                 deadline=time.monotonic() - 1) == "timeout"


def test_writes_are_atomic_capped_and_never_setuid(ws: fs.Workspace) -> None:
    assert ws.write_bytes("deep/er/new.txt", [b"a", b"b"]) == 2
    assert stat.S_IMODE(os.stat(ws.root / "deep" / "er" / "new.txt").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ws.root / "deep").st_mode) == 0o700
    os.chmod(ws.root / "a.txt", 0o4755)
    ws.write_bytes("a.txt", b"again")
    assert stat.S_IMODE(os.stat(ws.root / "a.txt").st_mode) == 0o755  # kept, minus setuid
    assert _code(ws.write_bytes, "a.txt", [b"x" * 10] * 3, max_bytes=15) == "too_large"
    assert (ws.root / "a.txt").read_bytes() == b"again"  # the old content stays whole
    assert not [p for p in ws.root.iterdir() if p.name.endswith(".tmp")]
    assert _code(ws.write_bytes, "sub", b"x") == "is_dir"


def test_create_exclusive_never_writes_through_anything(ws: fs.Workspace) -> None:
    (ws.root / "dangling").symlink_to("sub/nothing")

    assert ws.create_exclusive("fresh.txt", b"x") is True
    assert ws.create_exclusive("fresh.txt", b"y") is False
    assert ws.create_exclusive("dangling", b"y") is False
    assert not (ws.root / "sub" / "nothing").exists()


def test_edit_replaces_once_or_everywhere(ws: fs.Workspace) -> None:
    ws.write_bytes("e.txt", b"x y x")

    assert _code(ws.edit_text, "e.txt", "x", "z") == "ambiguous"
    assert _code(ws.edit_text, "e.txt", "q", "z") == "no_match"
    assert ws.edit_text("e.txt", "y", "w") == 1
    assert ws.edit_text("e.txt", "x", "z", replace_all=True) == 2
    assert (ws.root / "e.txt").read_text() == "z w z"


def test_listing_renaming_and_usage(ws: fs.Workspace) -> None:
    with open(ws.root / "sub" / "holey", "wb") as out:
        out.truncate(1024 ** 2)

    kinds = {e.name: e.kind for e in ws.listdir()}
    assert kinds["sub"] == "dir" and kinds["a.txt"] == "file" and kinds["out_link"] == "link"
    assert _code(ws.rename, "a.txt", "file_link") == "exists"
    ws.rename("a.txt", "sub/b.txt")
    ws.rename("sub/b.txt", "in_link/holey", replace=True)
    assert (ws.root / "sub" / "holey").read_text() == "inside a\n"
    usage = ws.usage()
    assert usage.files == 1 and usage.bytes == len("inside a\n")


def test_the_runner_times_out_and_keeps_to_its_own_threads() -> None:
    runner = fs.FileRunner(workers=1, timeout=0.3)
    release = threading.Event()

    async def scenario() -> tuple[str, str, str]:
        blocked = asyncio.ensure_future(runner.run(lambda deadline: release.wait(10)))
        queued = asyncio.ensure_future(runner.run(lambda deadline: "never ran in time"))
        other = await asyncio.to_thread(lambda: "the shared pool still serves")
        outcomes = await asyncio.gather(blocked, queued, return_exceptions=True)
        return other, *(o.code if isinstance(o, fs.FsError) else o for o in outcomes)

    try:
        other, first, second = asyncio.run(scenario())
    finally:
        release.set()
        runner.shutdown()

    assert other == "the shared pool still serves"
    assert first == second == "timeout"
