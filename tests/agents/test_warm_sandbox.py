"""Warm sandboxes (agents/warm.py): one kept per chat, real bubblewrap, real supervisor.

What the cold path promises is proved for both paths in ``test_sandbox.py`` (the ``run``
fixture); here is what only the warm path has to get right: the sandbox is really
reused, nothing of one call reaches the next (processes, their count, /tmp, SysV IPC),
a dead or hostile supervisor costs at most the call it was running, a second call of
the chat runs safely beside the first, a changed config or workspace gets a new sandbox,
and idle, closed or orphaned sandboxes end.

If bwrap is missing/unusable the tests are skipped, unless CI=true (then they fail).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agents import sandbox as sb
from agents import warm
from agents.sandbox import SandboxPolicy, format_result

pytestmark = pytest.mark.asyncio

ON = SandboxPolicy(enabled=True)
ROOT = Path(__file__).resolve().parents[2]
PID1 = "tr '\\0' ' ' < /proc/1/cmdline"  # what runs as the sandbox's init


@pytest.fixture(scope="module")
def status() -> dict:
    st = sb.sandbox_status(refresh=True)
    if not st["available"]:
        msg = f"bubblewrap sandbox unusable here: {st['reason']}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return st


@pytest.fixture
async def ws(tmp_path: Path, status: dict):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    yield workspace
    await warm.close_all()


async def run(cmd: str, ws: Path, policy: SandboxPolicy = ON, *, key: str = "chat-1",
              timeout: float = 10, **kw) -> sb.CommandResult:
    res = await warm.run_command(cmd, ws, policy, timeout=timeout, key=key, **kw)
    assert res.error is None, res.error
    return res


def supervisor(key: str = "chat-1") -> int:
    """Host pid of the supervisor of ``key``'s warm sandbox."""
    pid = warm._pool[key].supervisor_pid
    assert pid is not None
    return pid


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


async def eventually(check, what: str, seconds: float = 20.0) -> None:
    """Wait until ``check()`` holds (a bound, not a speed test)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- reuse


async def test_the_calls_of_a_chat_share_one_sandbox_and_chats_do_not(ws):
    before = warm.stats()
    first = await run(f"echo $$; {PID1}", ws)
    pid = supervisor()
    for _ in range(4):
        again = await run(PID1, ws)
        assert "sandbox-supervisor" in again.output
    assert supervisor() == pid and warm._pool["chat-1"].calls == 5
    assert "sandbox-supervisor" in first.output
    await run("true", ws, key="chat-2")
    assert supervisor("chat-2") != pid
    after = warm.stats()
    assert after["warm_calls"] - before["warm_calls"] == 6
    assert after["started"] - before["started"] == 2 and after["alive"] == 2


async def test_commands_run_with_the_calls_limits_and_a_clean_start(ws):
    policy = SandboxPolicy(enabled=True, memory_limit_mb=300, cpu_seconds=7,
                           max_file_size_mb=5, max_processes=50)
    res = await run("cat /proc/self/limits; chrt -p $$; pwd; env | sort; ls -l /proc/self/fd",
                    ws, policy, env={"EXTRA": "1"})
    limits = {line[:26].strip(): line[26:].split()[:2] for line in res.output.splitlines()
              if line.startswith("Max ")}
    assert limits["Max address space"] == [str(300 * 1024 * 1024)] * 2
    assert limits["Max cpu time"] == ["7", "8"]
    assert limits["Max file size"] == [str(5 * 1024 * 1024)] * 2
    assert limits["Max processes"] == ["50", "50"]
    assert limits["Max core file size"] == ["0", "0"]
    assert limits["Max nice priority"] == ["0", "0"]
    assert "SCHED_IDLE" in res.output
    assert "\n/workspace\n" in res.output and "EXTRA=1" in res.output
    # stdin /dev/null, stdout+stderr the output pipe, nothing of the supervisor's
    fds = [line.split()[-3:] for line in res.output.splitlines() if " -> " in line]
    assert [fd[0] for fd in fds] == ["0", "1", "2", "3"], res.output  # 3: ls's own dir
    assert fds[0][2] == "/dev/null" and fds[1][2] == fds[2][2]


# --------------------------------------------------------------------------- nothing carries over


async def test_background_processes_never_reach_the_next_call(ws, status):
    """Left behind (also after setsid), they die at the end of their call: they are not
    there, and do not count against the next call's process cap."""
    policy = SandboxPolicy(enabled=True, max_processes=14)
    left = await run("for i in $(seq 9); do sleep 60 & done; setsid sleep 60 & echo left",
                     ws, policy)
    assert left.output == "left\n" and left.exit_code == 0
    seen = await run("ps -eo comm=", ws, policy)
    assert "sleep" not in seen.output, seen.output
    if status["process_limit"] != "rlimit":  # RLIMIT_NPROC counts the host user's processes
        # bwrap + supervisor + bash + 10: fits the cap only if nothing was left over
        again = await run("for i in $(seq 10); do sleep 0.2 & done; wait; echo ok", ws,
                          policy)
        assert again.output == "ok\n", again.output
    late = await run("cp /usr/bin/bash late; (sleep 0.5; chmod 4755 late) & echo started",
                     ws)
    assert late.output == "started\n"
    await asyncio.sleep(1.5)
    assert not (ws / "late").stat().st_mode & 0o6000  # the chmod never ran


async def test_tmp_and_dev_shm_are_empty_for_every_call(ws):
    await run("echo x > /tmp/a; mkdir -p /tmp/d/e; touch /tmp/d/e/f; chmod 000 /tmp/d; "
              "ln -s /workspace /tmp/link; echo y > /dev/shm/b", ws)
    (ws / "keep").write_text("kept")
    res = await run("ls -A /tmp /dev/shm; cat keep", ws)
    assert res.output == "/dev/shm:\n\n/tmp:\nkept", res.output
    assert warm._pool["chat-1"].calls == 2


async def test_a_tmp_too_full_to_clear_in_time_retires_its_sandbox(ws, monkeypatch):
    """The supervisor gives up clearing /tmp after a while and ends: the next call gets a
    fresh sandbox (and an empty /tmp), transparently."""
    source = warm.SUPERVISOR_SOURCE.replace("WIPE_SECONDS = 2.0", "WIPE_SECONDS = 0.0")
    assert source != warm.SUPERVISOR_SOURCE
    monkeypatch.setattr(warm, "SUPERVISOR_SOURCE", source)
    await run("true", ws)
    pid = supervisor()
    await run("touch /tmp/one", ws)  # an empty /tmp is cleared in no time, this one not
    res = await run("ls -A /tmp; echo listed", ws)
    assert res.output == "listed\n" and supervisor() != pid


async def test_sysv_ipc_left_by_a_call_retires_its_sandbox(ws):
    make = ("python3 -c \"import ctypes; libc = ctypes.CDLL(None); "
            "print(libc.shmget(0, 4096, 0o1600) >= 0)\"")
    res = await run(make, ws)
    assert res.output == "True\n"
    assert "chat-1" not in warm._pool  # not handed to the next call
    fresh = await run("tail -n +2 /proc/sysvipc/shm | wc -l", ws)
    assert fresh.output == "0\n"


# --------------------------------------------------------------------------- the supervisor


async def test_the_supervisor_can_be_neither_killed_nor_traced_from_inside(ws):
    attack = textwrap.dedent("""\
        kill -KILL 1; kill -STOP 1; kill -TERM 1; kill -INT 1; kill -SEGV 1; kill -CHLD 1
        kill -KILL -1
        for f in /proc/1/fd/*; do (exec 9<>"$f") 2>/dev/null && echo OPENED:$f; done
        cat /proc/1/environ /proc/1/mem 2>/dev/null && echo READ
        python3 -c "import ctypes; print('PTRACE', ctypes.CDLL(None).ptrace(16, 1, 0, 0))"
        echo survived""")
    await run("true", ws)
    pid = supervisor()
    res = await run(attack, ws)
    assert "OPENED" not in res.output and "READ" not in res.output, res.output
    assert "PTRACE -1" in res.output
    after = await run("echo alive", ws)
    assert after.output == "alive\n" and supervisor() == pid


async def test_a_supervisor_killed_between_calls_is_replaced_transparently(ws):
    await run("true", ws)
    old = supervisor()
    os.kill(old, signal.SIGKILL)  # at once, before the gateway can have noticed
    res = await run("echo fresh", ws)
    assert res.output == "fresh\n" and res.exit_code == 0
    assert supervisor() != old
    await eventually(lambda: not alive(old), "the old supervisor is gone")


async def test_a_supervisor_killed_during_a_call_costs_that_call_only(ws):
    await run("true", ws)
    old = supervisor()
    call = asyncio.ensure_future(warm.run_command(
        "echo begun; sleep 30", ws, ON, timeout=20, key="chat-1"))
    await asyncio.sleep(0.5)
    os.kill(old, signal.SIGKILL)
    res = await call
    assert res.exit_code is None and res.killed == "the sandbox ended during the call"
    assert "[killed: the sandbox ended during the call; process tree killed]" in \
        format_result(res)
    nxt = await run("echo next", ws)
    assert nxt.output == "next\n" and supervisor() != old


async def test_a_hostile_supervisor_costs_the_call_never_the_gateway(ws, monkeypatch):
    """What the supervisor sends is parsed as untrusted: a huge frame or a malformed
    result ends the sandbox and the call, and the next call gets a fresh one."""
    hostile = textwrap.dedent("""\
        import json, os, struct, sys
        sock = int(sys.argv[2])
        def send(obj):
            data = json.dumps(obj).encode()
            os.write(sock, struct.pack(">I", len(data)) + data)
        send({"op": "ready"})
        n = 0
        while True:
            head = os.read(sock, 4)
            if len(head) < 4:
                break
            req = json.loads(os.read(sock, struct.unpack(">I", head)[0]))
            send({"op": "started", "id": req["id"]})
            n += 1
            if req["command"] == "huge":
                os.write(sock, struct.pack(">I", 1 << 30) + b"x" * 1000)
            else:
                send({"op": "result", "id": req["id"], "exit": "zero", "output": "!!"})
        """)
    monkeypatch.setattr(warm, "SUPERVISOR_SOURCE", hostile)
    huge = await warm.run_command("huge", ws, ON, timeout=5, key="chat-1")
    assert huge.exit_code is None and huge.killed == "the sandbox ended during the call"
    bad = await warm.run_command("bad", ws, ON, timeout=5, key="chat-1")
    assert bad.exit_code is None and bad.killed == "the sandbox's supervisor failed"
    assert "chat-1" not in warm._pool
    monkeypatch.undo()
    assert (await run("echo fine", ws)).output == "fine\n"


async def test_a_sandbox_that_cannot_start_leaves_the_calls_to_the_cold_path(ws, monkeypatch):
    monkeypatch.setattr(warm, "_python", lambda: None)
    before = warm.stats()
    first = await run(PID1, ws)
    second = await run(PID1, ws)
    after = warm.stats()
    assert "sandbox-supervisor" not in first.output + second.output
    assert "bwrap" in first.output and first.exit_code == 0
    assert after["start_failures"] - before["start_failures"] == 1  # not retried at once
    assert after["cold_calls"] - before["cold_calls"] == 2 and "chat-1" not in warm._pool


# --------------------------------------------------------------------------- concurrency, cancel


async def test_two_calls_of_a_chat_at_once_both_run_safely(ws):
    await run("true", ws)
    cmd = "sleep 0.5; echo {n} > out{n}; " + PID1
    both = await asyncio.gather(*(run(cmd.format(n=n), ws) for n in (1, 2)))
    assert all(res.exit_code == 0 for res in both)
    assert sorted("sandbox-supervisor" in res.output for res in both) == [False, True]
    assert (ws / "out1").read_text() == "1\n" and (ws / "out2").read_text() == "2\n"


async def test_a_cancelled_call_is_killed_and_the_sandbox_stays_warm(ws):
    await run("true", ws)
    pid = supervisor()
    call = asyncio.ensure_future(warm.run_command(
        "(sleep 1; echo late > late) & sleep 30", ws, ON, timeout=20, key="chat-1"))
    await asyncio.sleep(0.4)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await eventually(lambda: not warm._pool["chat-1"].busy, "the sandbox is free again")
    res = await run("ps -eo comm=", ws)
    assert "sleep" not in res.output and supervisor() == pid
    await asyncio.sleep(1.2)
    assert not (ws / "late").exists()


# --------------------------------------------------------------------------- lifetime


async def test_a_changed_config_starts_a_new_sandbox(ws, status):
    await run("true", ws)
    first = supervisor()
    ro = await run("touch x", ws, SandboxPolicy(enabled=True, workspace_mode="ro"))
    assert "Read-only file system" in ro.output and not (ws / "x").exists()
    second = supervisor()
    assert second != first
    await eventually(lambda: not alive(first), "the sandbox of the old config ended")
    if status["network"]:
        net = await run("grep -c tap0 /proc/net/route", ws,
                        SandboxPolicy(enabled=True, network_enabled=True))
        assert net.output != "0\n" and supervisor() not in (first, second)
        off = await run("grep -c tap0 /proc/net/route", ws)
        assert off.output == "0\n"


async def test_a_replaced_workspace_folder_gets_a_new_sandbox(ws):
    await run("echo old > f", ws)
    ws.rename(ws.with_name("old-ws"))
    ws.mkdir()
    res = await run("ls -A; echo new > g", ws)
    assert res.output == ""
    assert (ws / "g").read_text() == "new\n"
    assert (ws.with_name("old-ws") / "f").read_text() == "old\n"


async def test_an_idle_sandbox_ends(ws, monkeypatch, status):
    monkeypatch.setenv("GATEWAY_SANDBOX_WARM_IDLE", "1")
    await run("true", ws)
    pid, box = supervisor(), warm._pool["chat-1"]
    await eventually(lambda: "chat-1" not in warm._pool and not alive(pid),
                     "the idle sandbox ended")
    await eventually(lambda: box.proc.poll() is not None, "bwrap ended")
    if box.cgroup is not None:
        await eventually(lambda: not box.cgroup.exists(), "its cgroup is removed")


async def test_the_opt_out_runs_every_call_cold(ws, monkeypatch):
    monkeypatch.setenv("GATEWAY_SANDBOX_WARM", "false")
    res = await run(PID1, ws)
    assert "sandbox-supervisor" not in res.output and "bwrap" in res.output
    assert warm.stats()["alive"] == 0


SHUTDOWN = """
import asyncio, os, signal, sys, tempfile
from pathlib import Path
from agents import warm
from agents.sandbox import SandboxPolicy

async def main():
    ws = Path(tempfile.mkdtemp())
    await warm.run_command("true", ws, SandboxPolicy(enabled=True), timeout=10, key="a")
    await warm.run_command("true", ws, SandboxPolicy(enabled=True, network_enabled=%(net)s),
                           timeout=10, key="b")
    pids = [b.supervisor_pid for b in warm._pool.values()]
    pids += [b.proc.pid for b in warm._pool.values()]
    pids += [b.network.proc.pid for b in warm._pool.values() if b.network]
    print(*pids, flush=True)
    print(*[b.cgroup for b in warm._pool.values() if b.cgroup], flush=True)
    if sys.argv[1] == "wait":
        await asyncio.sleep(60)
    else:  # exits when the test has seen them alive
        await asyncio.to_thread(sys.stdin.readline)

asyncio.run(main())
"""


@pytest.mark.parametrize("end", ["exit", "sigkill"])
async def test_sandboxes_end_with_the_gateway_process(status, end):
    """An orderly exit (atexit) or a crash of the gateway (``--die-with-parent``):
    no supervisor, bwrap or slirp4netns outlives it."""
    script = SHUTDOWN % {"net": bool(status["network"])}
    proc = subprocess.Popen([sys.executable, "-c", script, "wait" if end == "sigkill" else ""],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        pids = [int(p) for p in line.split()]
        assert len(pids) >= 4 and all(alive(p) for p in pids), line
        cgroups = [Path(p) for p in proc.stdout.readline().split()]
        assert all(cg.is_dir() for cg in cgroups)
        if end == "sigkill":
            proc.kill()
        else:
            proc.stdin.write("exit now\n")
            proc.stdin.close()
        await asyncio.to_thread(proc.wait, 60)
        await eventually(lambda: not any(alive(p) for p in pids),
                         "every process of the warm sandboxes ended")
        if end == "exit":  # after a crash the next start's probe removes them
            assert not any(cg.exists() for cg in cgroups)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_cancel_in_the_step_the_awaited_frame_arrives_is_not_lost():
    """Python 3.11's ``asyncio.wait_for`` returns the result when its task is cancelled
    in the step the awaited item arrives: a turn cancelled just as its command's
    "started" frame came went on waiting for the command (30 s of ``sleep 30``). Here the
    frame and the cancel come in one step."""
    from types import SimpleNamespace

    box = SimpleNamespace(loop=asyncio.get_running_loop(), queue=asyncio.Queue())
    waiting = asyncio.ensure_future(warm.WarmSandbox._next(box, 1, "started", 5))
    await asyncio.sleep(0)  # waiting for the queue
    box.queue.put_nowait({"id": 1, "op": "started"})
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
