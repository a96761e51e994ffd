"""Files from the command line: ``-p --file`` uploads and attaches, the REPL's ``/attach``
does the same for the next message and ``/get`` downloads a workspace file."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import run_cli
from tests.cli.test_repl import spawn
from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream, Text


def attached_paths(request: dict) -> list[str]:
    blocks = request["messages"][-1]["content"]
    return [b["text"] for b in blocks if b["text"].startswith("[Attached file:")]


def test_print_mode_uploads_and_attaches_files(cli_env, upstream: FakeUpstream,
                                               tmp_path: Path, gateway: ServeProcess):
    local = tmp_path / "data.csv"
    local.write_bytes(b"a,b\n" * 300_000)  # 1.2 MB: more than one part
    upstream.enqueue(Text("got it"))

    done = run_cli(cli_env, "-p", "look at this", "--file", str(local), "--json")

    assert done.returncode == 0, done.stderr
    notes = attached_paths(upstream.requests[-1])
    assert len(notes) == 1 and "/data.csv (1200000 bytes" in notes[0]
    path = notes[0].split()[2]  # "[Attached file: <path> (...)"
    with gateway.client() as http:
        back = http.get("/api/files/content", params={"path": path})
    assert back.content == local.read_bytes()


def test_a_missing_file_exits_before_sending(cli_env, upstream: FakeUpstream, tmp_path: Path):
    done = run_cli(cli_env, "-p", "x", "--file", str(tmp_path / "nope"))

    assert done.returncode != 0 and "not a file" in done.stderr
    assert upstream.requests == []


def test_the_repl_attaches_and_gets(cli_env, upstream: FakeUpstream, tmp_path: Path,
                                    gateway: ServeProcess):
    local = tmp_path / "notes.txt"
    local.write_text("repl notes\n")
    with gateway.client() as http:
        assert http.put("/api/files/content", params={"path": "made/by-agent.txt"},
                        content=b"written by the agent\n").status_code == 201
    term = spawn(cli_env, "--new")
    try:
        term.expect(r"new chat ([0-9a-f-]{36})")
        term.prompt()
        term.send_line(f"/attach {local}")
        term.expect(r"attached uploads/[0-9a-f-]{36}/notes\.txt")
        term.prompt()
        upstream.enqueue(Text("seen"))
        term.send_line("what is attached?")
        term.expect(r"seen")
        term.prompt()
        assert len(attached_paths(upstream.requests[-1])) == 1
        target = tmp_path / "got.txt"
        term.send_line(f"/get made/by-agent.txt {target}")
        term.expect(r"saved\s+\S*got\.txt\s+\(21 bytes\)")  # a long path wraps
        assert target.read_text() == "written by the agent\n"
        term.send_line("/get ../escape.txt")
        term.expect(r"outside the workspace")
    finally:
        term.child.terminate(force=True)
