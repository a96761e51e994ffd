"""Issue 15: inside the sandbox, ``cp /usr/bin/bash sbash; chmod 4755 sbash`` left a
setuid-root binary in the workspace that another host user ran to get euid 0. No
setuid/setgid bit made in the sandbox survives on the host: not on the cold path (a new
sandbox per call), and not in a warm sandbox (one kept per chat, ``agents.warm``), where
a process the call left behind to set the bit later is killed with the call."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

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
# The bit set after the call has ended, by a process it left behind.
LATE = "cp /usr/bin/bash late; (sleep 1; chmod 4755 late) & echo started"
PID1 = "tr '\\0' ' ' < /proc/1/cmdline"


@pytest.mark.parametrize("path", ["warm", "cold"])
def test_setuid_and_setgid_files_made_in_the_sandbox_are_plain_on_the_host(
        tmp_path, upstream, path):
    need_bubblewrap()
    server = start_server(tmp_path / "data", upstream,
                          env={"GATEWAY_SANDBOX_WARM": "true" if path == "warm" else "false"})
    try:
        token = add_member(server, "mallory")
        result = run_bash(server, upstream, token, ATTACK)
        late = run_bash(server, upstream, token, LATE)
        init = run_bash(server, upstream, token, PID1)
        time.sleep(2)  # past the late chmod, had its process lived
        workspace = Path(server.data_dir, "workspaces", f"@{user_id(server, 'mallory')}")
    finally:
        server.stop()
    # the path under test really ran the calls (the warm sandbox's init is its supervisor)
    assert ("sandbox-supervisor" in init["content"]) == (path == "warm"), init
    # The bits were really set inside the sandbox, while the call ran...
    assert result["content"].splitlines() == ["4755 sbash", "2777 kit", "6755 kit/gbash"]
    # ...and none of them is left on the host once it is over.
    for rel in ("sbash", "kit", "kit/gbash"):
        mode = (workspace / rel).stat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID), (rel, oct(mode))
    assert (workspace / "sbash").stat().st_mode & 0o777 == 0o755  # otherwise left alone
    assert late["content"] == "started"
    assert not (workspace / "late").stat().st_mode & (stat.S_ISUID | stat.S_ISGID)
