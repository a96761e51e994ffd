"""Issue 15: with the sandbox off by default, one member's ``bash`` read ``../../secret_key``
and the SQLite file and made himself admin. A fresh server now sandboxes every member's
``bash`` with no configuration, says so in ``/health``, and only runs tools unconfined when
the operator says so in plain words (``GATEWAY_UNSANDBOXED_TOOLS=true``), loudly."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream
from tests.security.sandbox_serve import add_member, need_bubblewrap, run_bash, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           upstream_server: FakeUpstream) -> Iterator[ServeProcess]:
    need_bubblewrap()
    proc = start_server(tmp_path_factory.mktemp("fresh") / "data", upstream_server)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def member(server: ServeProcess) -> str:
    return add_member(server, "mallory")


def test_a_fresh_server_says_its_tools_run_sandboxed(server):
    sandbox = httpx.get(server.url + "/health").json()["sandbox"]
    assert sandbox["tools"] == "sandboxed"
    assert sandbox["available"] is True


def test_a_members_bash_runs_in_the_sandbox_with_no_configuration(server, member, upstream):
    result = run_bash(server, upstream, member, "echo host=$(hostname) home=$HOME pwd=$(pwd)")
    assert result["is_error"] is False, result
    assert result["content"] == "host=sandbox home=/workspace pwd=/workspace"


def test_a_members_bash_runs_in_a_warm_sandbox_by_default(server, member, upstream):
    """One sandbox kept per chat (``agents.warm``): its init is the supervisor."""
    result = run_bash(server, upstream, member, "tr '\\0' ' ' < /proc/1/cmdline")
    assert "sandbox-supervisor" in result["content"], result


def test_a_members_bash_cannot_read_the_secret_key_or_the_database(server, member, upstream):
    data = server.data_dir
    secret = (data / "secret_key").read_text().strip()
    attack = (
        f"cat ../../secret_key {data}/secret_key; "
        f"python3 -c \"print(open('{data}/gateway.sqlite3','rb').read(16))\"; "
        f"head -c 16 ../../gateway.sqlite3; ls -a {data} ../..; echo attack-ran"
    )
    result = run_bash(server, upstream, member, attack)
    output = result["content"]
    assert "attack-ran" in output  # the command did run...
    assert secret not in output  # ...and saw neither the secret...
    assert "SQLite format 3" not in output  # ...nor the database
    assert "No such file or directory" in output


def test_an_admins_own_chats_are_sandboxed_too(server, upstream):
    result = run_bash(server, upstream, server.admin_token, "hostname; cat ../../secret_key")
    assert result["content"].splitlines()[0] == "sandbox"
    assert (server.data_dir / "secret_key").read_text().strip() not in result["content"]


def test_running_tools_unconfined_takes_a_plain_setting_and_is_loud(tmp_path, upstream):
    proc = start_server(tmp_path / "data", upstream, env={"GATEWAY_UNSANDBOXED_TOOLS": "true"})
    try:
        assert httpx.get(proc.url + "/health").json()["sandbox"]["tools"] == "unsandboxed"
        result = run_bash(proc, upstream, add_member(proc, "trent"), "hostname")
        assert result["content"].strip() != "sandbox"
    finally:
        proc.stop()
    log = proc.log()
    assert "WARNING" in log and "GATEWAY_UNSANDBOXED_TOOLS" in log
    assert "unconfined" in log
