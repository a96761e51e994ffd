"""Issue 15: ``gateway.sqlite3`` was 0644 and workspaces 0755, and a user created as
``user-4`` shared the workspace of user 4, whose name had no safe folder name.

The data dir is 0700, what the server writes in it 0600 (directories 0700), and each
workspace is named by the user's immutable id."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.e2e.server import ServeProcess
from tests.security.sandbox_serve import (
    add_member,
    need_bubblewrap,
    run_bash,
    start_server,
    user_id,
)


def server_files(data: Path) -> list[Path]:
    """Everything under the data dir but the test harness's own serve log."""
    found = []
    for root, dirs, files in os.walk(data):
        for name in dirs + files:
            if not (Path(root) == data and name.startswith("serve-")):
                found.append(Path(root, name))
    return found


def test_the_data_dir_is_private_and_so_is_all_the_server_writes(tmp_path, upstream):
    need_bubblewrap()
    # serve creates the database itself (not the test harness's migrated copy).
    server = start_server(tmp_path / "data", upstream, from_template=False)
    try:
        token = add_member(server, "alice")
        run_bash(server, upstream, token, "echo notes > notes.txt; mkdir -p src")
    finally:
        server.stop()
    data = server.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("secret_key", "gateway.sqlite3"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    for path in server_files(data):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        assert mode & 0o077 == 0, (str(path), oct(mode))  # nothing for group or others


def test_an_existing_data_dir_is_tightened_at_start_up(tmp_path, upstream):
    data = tmp_path / "data"
    ServeProcess(data).start(timeout=120).stop()
    data.chmod(0o755)
    for name in ("secret_key", "gateway.sqlite3"):
        (data / name).chmod(0o644)
    ServeProcess(data).start(timeout=120).stop()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("secret_key", "gateway.sqlite3"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name


def test_two_users_whose_names_looked_alike_get_different_workspaces(tmp_path, upstream):
    need_bubblewrap()
    server = start_server(tmp_path / "data", upstream)
    try:
        first = add_member(server, "no safe/name")  # used to get the folder user-<id>
        second = add_member(server, f"user-{user_id(server, 'no safe/name')}")
        run_bash(server, upstream, first, "echo first-secret > mine.txt")
        seen = run_bash(server, upstream, second, "cat mine.txt; ls -a")["content"]
        ids = [user_id(server, "no safe/name"),
               user_id(server, f"user-{user_id(server, 'no safe/name')}")]
    finally:
        server.stop()
    assert "first-secret" not in seen
    folders = [server.data_dir / "workspaces" / f"@{pk}" for pk in ids]
    assert folders[0] != folders[1]
    assert (folders[0] / "mine.txt").read_text() == "first-secret\n"
    assert not (folders[1] / "mine.txt").exists()
