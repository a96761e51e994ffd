"""Issue 15: inside the sandbox, ``cp /usr/bin/bash sbash; chmod 4755 sbash`` left a
setuid-root binary in the workspace that another host user ran to get euid 0. No
setuid/setgid bit made in the sandbox survives on the host."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.security.sandbox_serve import (
    add_member,
    need_bubblewrap,
    run_bash,
    start_server,
    user_id,
)

ATTACK = ("cp /usr/bin/bash sbash && chmod 4755 sbash && mkdir -p kit && chmod 2777 kit && "
          "cp /usr/bin/bash kit/gbash && chmod 6755 kit/gbash && "
          "stat -c '%a %n' sbash kit kit/gbash")


def test_setuid_and_setgid_files_made_in_the_sandbox_are_plain_on_the_host(tmp_path, upstream):
    need_bubblewrap()
    server = start_server(tmp_path / "data", upstream)
    try:
        token = add_member(server, "mallory")
        result = run_bash(server, upstream, token, ATTACK)
        workspace = Path(server.data_dir, "workspaces", f"@{user_id(server, 'mallory')}")
    finally:
        server.stop()
    # The bits were really set inside the sandbox, while the call ran...
    assert result["content"].splitlines() == ["4755 sbash", "2777 kit", "6755 kit/gbash"]
    # ...and none of them is left on the host once it is over.
    for rel in ("sbash", "kit", "kit/gbash"):
        mode = (workspace / rel).stat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID), (rel, oct(mode))
    assert (workspace / "sbash").stat().st_mode & 0o777 == 0o755  # otherwise left alone
