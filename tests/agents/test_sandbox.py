"""Tests for agents/sandbox.py - real bubblewrap, every promise proved by an escape attempt.

Run: python -m pytest -p no:cacheprovider -q tests/agents/test_sandbox.py
If bwrap is missing/unusable the sandbox tests are skipped, unless CI=true (then they fail).

The sandbox's promises are proved twice, through the fixture ``run``: on the cold path
(``agents.sandbox.run_command``, a new sandbox per call) and in a warm sandbox
(``agents.warm.run_command``, one kept per chat; its own behaviour is in
``test_warm_sandbox.py``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from functools import partial
from pathlib import Path

import pytest

from agents import sandbox as sb
from agents import warm
from agents.sandbox import CommandResult, SandboxPolicy, format_result, run_command

pytestmark = pytest.mark.asyncio

SECRETS = {
    "SECRET_KEY": "django-insecure-s3cr3t-value",
    "OPENAI_API_KEY": "sk-test-openai-key-123",
    "DATABASE_URL": "postgres://u:pw@db/gateway",
    "GATEWAY_ADMIN_TOKEN": "gw-admin-token-xyz",
}
ON = SandboxPolicy(enabled=True)
PLAIN = SandboxPolicy(enabled=False)


# --------------------------------------------------------------------------- fixtures


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
def tree(tmp_path: Path) -> dict[str, Path]:
    """data/workspaces/{alice,bob} + data/db.sqlite3; alice is the workspace under test."""
    data = tmp_path / "data"
    alice = data / "workspaces" / "alice"
    bob = data / "workspaces" / "bob"
    alice.mkdir(parents=True)
    bob.mkdir(parents=True)
    (bob / "secret.txt").write_text("BOB-PRIVATE\n")
    (data / "db.sqlite3").write_text("SQLITE-DB-CONTENT\n")
    (alice / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    return {"data": data, "ws": alice, "bob": bob, "db": data / "db.sqlite3"}


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    return SECRETS


@pytest.fixture(params=["cold", "warm"])
async def run(request: pytest.FixtureRequest):
    """The sandboxed runner under test: the cold path, or the warm sandbox of a chat
    (``key``); warm sandboxes end with the test."""
    mode = request.param

    async def runner(cmd: str, ws: Path, policy: SandboxPolicy, *, key: str = "chat",
                     **kw) -> CommandResult:
        if mode == "cold":
            return await run_command(cmd, ws, policy, **kw)
        before = warm.stats()["warm_calls"]
        res = await warm.run_command(cmd, ws, policy, key=key, **kw)
        if policy.enabled and (sb._status_cache or {}).get("available"):
            assert warm.stats()["warm_calls"] > before, "the call did not run warm"
        return res

    runner.mode = mode
    yield runner
    await warm.close_all()


async def sandboxed(run, cmd: str, ws: Path, policy: SandboxPolicy = ON, *,
                    timeout: float = 10, **kw) -> CommandResult:
    res = await run(cmd, ws, policy, timeout=timeout, **kw)
    assert res.error is None, res.error
    return res


# --------------------------------------------------------------------------- network


def _host_address() -> str | None:
    """A non-loopback address of this host (the one a default route would use)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        addr = probe.getsockname()[0]
    return None if addr.startswith("127.") else addr


async def test_network_reaches_outside_but_never_the_hosts_loopback(run, status, tree):
    """Off: nothing is reachable.  On: a listener on a non-loopback host address answers
    through slirp4netns, while the same kind of listener on 127.0.0.1 stays unreachable."""
    if not status["network"]:
        pytest.skip("slirp4netns not installed")
    host = _host_address()
    if host is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    hits: list[str] = []

    def handler(tag: str):
        async def on_conn(reader, writer):
            hits.append(tag)
            writer.write(f"hello-from-{tag}\n".encode())
            await writer.drain()
            writer.close()
        return on_conn

    local = await asyncio.start_server(handler("loopback"), "127.0.0.1", 0)
    outside = await asyncio.start_server(handler("outside"), host, 0)
    lport = local.sockets[0].getsockname()[1]
    oport = outside.sockets[0].getsockname()[1]
    probe = (
        "python3 -c \"import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 3); "
        "print(s.recv(100).decode().strip())\" %s %d"
    )
    net_on = SandboxPolicy(enabled=True, network_enabled=True)
    try:
        blocked = await sandboxed(run, probe % (host, oport), tree["ws"])
        assert blocked.exit_code != 0
        assert "unreachable" in blocked.output.lower()

        reached = await sandboxed(run, probe % (host, oport), tree["ws"], net_on)
        assert reached.exit_code == 0, reached.output
        assert "hello-from-outside" in reached.output

        for target in ("127.0.0.1", "10.0.2.2"):  # own loopback; slirp's host alias
            refused = await sandboxed(run, probe % (target, lport), tree["ws"], net_on)
            assert refused.exit_code != 0, refused.output
            assert "hello-from-loopback" not in refused.output
        assert hits == ["outside"]
    finally:
        for server in (local, outside):
            server.close()
            await server.wait_closed()


async def test_network_on_has_an_interface_with_a_default_route(run, status, tree):
    if not status["network"]:
        pytest.skip("slirp4netns not installed")
    res = await sandboxed(
        run, "cat /proc/net/route; cat /etc/resolv.conf", tree["ws"],
        SandboxPolicy(enabled=True, network_enabled=True),
    )
    assert res.exit_code == 0, res.output
    routes = [line.split() for line in res.output.splitlines()[1:] if line.startswith(sb.SLIRP_TAP)]
    assert any(fields[1] == "00000000" for fields in routes), res.output  # default route
    assert f"nameserver {sb.SLIRP_DNS}" in res.output


async def test_dns_resolution_fails(run, status, tree):
    res = await sandboxed(
        run, "python3 -c \"import socket; print(socket.getaddrinfo('example.com', 80))\"", tree["ws"]
    )
    assert res.exit_code != 0
    assert "gaierror" in res.output


# --------------------------------------------------------------------------- filesystem


async def test_cannot_write_system_paths(run, status, tree):
    cmd = (
        "for p in /usr/pwned /usr/bin/pwned /etc/pwned /etc/passwd /pwned /bin/pwned; do "
        "  if echo x > $p; then echo WROTE:$p; fi; done; "
        "mkdir /newdir && echo WROTE:/newdir; "
        # /proc/sys must be read-only (sandbox processes are host uid 0): write back the
        # current value so that even a failure of this test changes nothing.
        "v=$(cat /proc/sys/vm/stat_interval); echo \"$v\" > /proc/sys/vm/stat_interval "
        "  && echo WROTE:sysctl; true"
    )
    res = await sandboxed(run, cmd, tree["ws"])
    assert "WROTE" not in res.output, res.output
    assert res.output.count("Read-only file system") >= 7, res.output
    for p in ("/usr/pwned", "/usr/bin/pwned", "/etc/pwned", "/pwned"):
        assert not Path(p).exists()


async def test_no_privileges_in_sandbox(run, status, tree):
    cmd = (
        "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status; id -u; "
        "unshare -U true && echo USERNS-OK; "          # --disable-userns
        "mount -t tmpfs none /tmp 2>/dev/null && echo MOUNT-OK; "
        "chrt -p $$; chrt -o -p 0 $$ && echo SCHED-ESCAPED; true"  # SCHED_IDLE is sticky
    )
    res = await sandboxed(run, cmd, tree["ws"])
    assert "CapEff:\t0000000000000000" in res.output and "CapPrm:\t0000000000000000" in res.output
    assert "NoNewPrivs:\t1" in res.output
    assert "\n1000\n" in res.output
    if status.get("chrt"):
        assert "SCHED_IDLE" in res.output
    for marker in ("USERNS-OK", "MOUNT-OK", "SCHED-ESCAPED"):
        assert marker not in res.output, res.output


async def test_other_workspaces_db_and_host_dirs_invisible(run, status, tree):
    paths = [
        tree["bob"] / "secret.txt",
        tree["db"],
        tree["data"],
        tree["ws"],  # the host path of the own workspace is not mounted either
        "/workspace/../bob/secret.txt",
        "/root",
        "/root/.pyenv",
        "/home",
        "/work",
        "/etc/shadow",
        "/etc/ssl/private",
        "/sys/fs/cgroup",
        "/var",
        "/run",
    ]
    checks = "; ".join(f"test -e '{p}' && echo VISIBLE:{p}" for p in paths)
    cmd = (
        f"{checks}; cat ../bob/secret.txt; cat '{tree['db']}'; "
        "echo ROOT: $(ls /workspace/..); "
        "python3 -c 'import sys; print(\"PY:\", sys.executable, sys.prefix)'"
    )
    res = await sandboxed(run, cmd, tree["ws"])
    assert "VISIBLE" not in res.output, res.output
    assert "BOB-PRIVATE" not in res.output and "SQLITE-DB-CONTENT" not in res.output
    lines = res.output.splitlines()
    # ls /workspace/.. lists the sandbox root, not data/workspaces
    assert "ROOT: bin dev etc lib lib64 proc sbin tmp usr workspace" in lines, res.output
    # debian's python, not the host's /root/.pyenv one
    assert "PY: /usr/bin/python3 /usr" in lines, res.output


async def test_gateway_env_not_visible(run, status, tree, secrets_env):
    res = await sandboxed(run, "env", tree["ws"], env={"EXTRA_VAR": "extra-ok"})
    for key, value in secrets_env.items():
        assert key not in res.output and value not in res.output
    names = {line.split("=", 1)[0] for line in res.output.splitlines() if "=" in line}
    assert names <= {"PATH", "HOME", "LANG", "TERM", "PWD", "SHLVL", "_", "EXTRA_VAR"}, names
    assert "HOME=/workspace" in res.output
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in res.output
    assert "EXTRA_VAR=extra-ok" in res.output


async def test_workspace_ro_and_rw(run, status, tree):
    ro = await sandboxed(
        run, "echo data > /workspace/ro.txt; echo more >> notes.txt; rm -f notes.txt; echo done",
        tree["ws"], SandboxPolicy(enabled=True, workspace_mode="ro"),
    )
    assert "Read-only file system" in ro.output
    assert not (tree["ws"] / "ro.txt").exists()
    assert (tree["ws"] / "notes.txt").read_text() == "alpha\nbeta\ngamma\n"

    rw = await sandboxed(run, "mkdir -p sub && echo written-inside > sub/rw.txt && echo hi >> notes.txt",
                         tree["ws"])
    assert rw.exit_code == 0, rw.output
    assert (tree["ws"] / "sub" / "rw.txt").read_text() == "written-inside\n"
    assert (tree["ws"] / "notes.txt").read_text().endswith("hi\n")


async def test_common_tools_work(run, status, tree):
    cmd = (
        "python3 -c 'print(1+1)'; ls; grep beta notes.txt; sed -n 3p notes.txt; "
        "awk 'NR==1{print toupper($0)}' notes.txt; cat notes.txt | wc -l; "
        "echo $HOME; pwd; whoami; date +%Y >/dev/null && echo date-ok; "
        "printf 'tmp-ok' > /tmp/t && cat /tmp/t"
    )
    res = await sandboxed(run, cmd, tree["ws"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[:6] == ["2", "notes.txt", "beta", "gamma", "ALPHA", "3"], res.output
    assert lines[6:9] == ["/workspace", "/workspace", "sandbox"]
    assert "date-ok" in res.output and res.output.endswith("tmp-ok")


# --------------------------------------------------------------------------- resource limits

BOUNDED_FORK_BOMB = """python3 -c '
import os, time
n = 0
for i in range({n}):
    try:
        pid = os.fork()
    except OSError as e:
        print("FORK-FAILED after", n, e.errno, flush=True)
        break
    if pid == 0:
        time.sleep(4)
        os._exit(0)
    n += 1
else:
    print("ALL-FORKED", n, flush=True)
'"""


async def test_fork_bomb_is_capped(run, status, tree):
    policy = SandboxPolicy(enabled=True, max_processes=40)
    t0 = time.monotonic()
    res = await sandboxed(run, BOUNDED_FORK_BOMB.format(n=300), tree["ws"], policy, timeout=8)
    assert time.monotonic() - t0 < 6
    assert "ALL-FORKED" not in res.output, (status["process_limit"], res.output)
    if status["process_limit"] == "watchdog":
        assert res.killed and "process limit" in res.killed
    else:
        assert "FORK-FAILED" in res.output
        forked = int(res.output.split("FORK-FAILED after")[1].split()[0])
        assert forked < 40
    # the host is fine and nothing is left behind
    leftovers = await run_command("echo alive", tree["ws"], PLAIN, timeout=5)
    assert leftovers.output.strip() == "alive"
    await warm.close_all()  # a warm sandbox keeps its cgroup while it lives
    cg = status.get("process_limit", "")
    if cg.startswith("cgroup"):
        parent = sb._full_status()["_cgroup"].path
        assert not [p for p in parent.iterdir() if p.name.startswith(f"run-{os.getpid()}-")]


async def test_fork_bomb_watchdog_fallback(run, status, tree, monkeypatch):
    """Root without a usable pids cgroup: the watchdog kills the sandbox."""
    if os.geteuid() != 0:
        pytest.skip("watchdog is only used when running as root")
    full = sb._full_status()
    monkeypatch.setattr(sb, "_status_cache", {**full, "process_limit": "watchdog", "_cgroup": None})
    t0 = time.monotonic()
    res = await sandboxed(run, BOUNDED_FORK_BOMB.format(n=400), tree["ws"],
                          SandboxPolicy(enabled=True, max_processes=40), timeout=8)
    assert time.monotonic() - t0 < 6
    assert res.killed == "process limit (40) exceeded", res
    assert res.exit_code is None and not res.timed_out
    assert "process limit" in format_result(res)
    # ... and does not fire below the cap
    ok = await sandboxed(run, "for i in $(seq 20); do sleep 0.3 & done; wait; echo fine", tree["ws"],
                         SandboxPolicy(enabled=True, max_processes=40), timeout=8)
    assert ok.killed is None and ok.exit_code == 0 and ok.output == "fine\n"


async def test_memory_limit(run, status, tree):
    policy = SandboxPolicy(enabled=True, memory_limit_mb=256)
    big = await sandboxed(run, "python3 -c 'x = bytearray(600*1024*1024); print(\"ALLOCATED\")'",
                          tree["ws"], policy)
    assert big.exit_code != 0
    assert "MemoryError" in big.output and "ALLOCATED" not in big.output
    small = await sandboxed(run, "python3 -c 'x = bytearray(64*1024*1024); print(\"ALLOCATED\")'",
                            tree["ws"], policy)
    assert small.exit_code == 0 and "ALLOCATED" in small.output


async def test_cpu_limit(run, status, tree):
    t0 = time.monotonic()
    res = await sandboxed(run, "python3 -c 'while True: pass'", tree["ws"],
                          SandboxPolicy(enabled=True, cpu_seconds=1), timeout=10)
    assert not res.timed_out
    assert res.exit_code not in (0, None)
    assert time.monotonic() - t0 < 5


# --------------------------------------------------------------------------- timeouts / children


async def test_timeout_and_exit_kill_children_both_modes(run, status, tree):
    """A backgrounded `sleep` that writes a file later must never write it."""
    ws = tree["ws"]
    late = "(sleep 1; echo late > {name}) & "
    cases = {
        "sb_timeout": (ON, late.format(name="sb_timeout") + "sleep 30", 0.5),
        "sb_exit": (ON, late.format(name="sb_exit") + "echo started", 5),
        "plain_timeout": (PLAIN, late.format(name="plain_timeout") + "sleep 30", 0.5),
        "plain_exit": (PLAIN, late.format(name="plain_exit") + "echo started", 5),
        # a process that detaches into its own process group (still inside the sandbox)
        "sb_setsid": (ON, "setsid sh -c 'sleep 1; echo late > sb_setsid' & sleep 30", 0.5),
    }
    t0 = time.monotonic()
    results = await asyncio.gather(  # one chat (warm sandbox) per sandboxed case
        *(run(cmd, ws, pol, timeout=to, key=name) if pol.enabled else
          run_command(cmd, ws, pol, timeout=to) for name, (pol, cmd, to) in cases.items())
    )
    assert time.monotonic() - t0 < 4
    res = dict(zip(cases, results))
    for name in ("sb_timeout", "plain_timeout", "sb_setsid"):
        assert res[name].timed_out and res[name].exit_code is None, (name, res[name])
        assert format_result(res[name]).endswith("[timed out after 0.5 s; process tree killed]")
    for name in ("sb_exit", "plain_exit"):
        assert res[name].exit_code == 0 and res[name].output.strip() == "started"
        assert res[name].duration < 2  # did not wait for the background child
    await asyncio.sleep(1.6)
    written = [n for n in cases if (ws / n).exists()]
    assert written == []


async def test_cancellation_kills_tree(run, status, tree):
    ws = tree["ws"]
    tasks = [
        asyncio.ensure_future(run("(sleep 1; echo late > c_sb) & sleep 30", ws, ON, timeout=20)),
        asyncio.ensure_future(run_command("(sleep 1; echo late > c_pl) & sleep 30", ws, PLAIN, timeout=20)),
    ]
    await asyncio.sleep(0.4)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with pytest.raises(asyncio.CancelledError):
            await t
    await asyncio.sleep(1.3)
    assert not (ws / "c_sb").exists() and not (ws / "c_pl").exists()


# --------------------------------------------------------------------------- output


@pytest.mark.parametrize("policy", [ON, PLAIN], ids=["sandbox", "plain"])
async def test_output_cap_and_exit_code(run, status, tree, policy):
    res = await run("head -c 200000 /dev/zero | tr '\\0' a; echo tail-marker >&2; exit 3",
                            tree["ws"], policy, timeout=10, output_limit=1000)
    assert res.truncated and res.output == "a" * 1000
    assert res.exit_code == 3 and res.output_bytes > 200000
    text = format_result(res)
    assert "[output truncated: showing the first 1000 of 200012 bytes]" in text
    assert text.endswith("[exit code 3]")

    # stderr is interleaved; a multibyte char cut at the limit is dropped, not mangled
    res = await run("echo out; echo err >&2; printf 'é%.0s' $(seq 100)", tree["ws"],
                    policy, timeout=10, output_limit=11)
    assert res.output == "out\nerr\né" and res.truncated


async def test_a_command_killed_by_a_signal_reports_128_plus_the_signal(run, status, tree):
    res = await sandboxed(run, "echo before; kill -TERM $$; echo after", tree["ws"])
    assert res.output == "before\n" and res.exit_code == 128 + 15
    assert format_result(res).endswith("[exit code 143 (128+SIGTERM)]")


async def test_plain_mode_env_cwd(tree, secrets_env):
    res = await run_command("pwd; echo HOME=$HOME; env", tree["ws"], PLAIN, timeout=10,
                            env={"EXTRA_VAR": "1"})
    lines = res.output.splitlines()
    assert lines[0] == str(tree["ws"].resolve())
    assert lines[1] == f"HOME={tree['ws'].resolve()}"
    for key, value in secrets_env.items():
        assert key not in res.output and value not in res.output
    names = {line.split("=", 1)[0] for line in lines[2:] if "=" in line}
    assert names <= {"PATH", "HOME", "LANG", "TERM", "PWD", "SHLVL", "_", "EXTRA_VAR"}, names
    assert res.exit_code == 0


# --------------------------------------------------------------------------- unavailable


async def test_missing_bwrap_runs_nothing(run, tree, monkeypatch):
    monkeypatch.setattr(sb, "_find_bwrap", lambda: None)
    try:
        st = sb.sandbox_status(refresh=True)
        assert st["available"] is False and st["bwrap"] is None and "bwrap" in st["reason"]
        res = await run("touch proof.txt", tree["ws"], ON, timeout=5)
        assert res.error and res.error.startswith("sandbox unavailable: ")
        assert res.exit_code is None and res.output == ""
        assert format_result(res).startswith("[error: sandbox unavailable:")
        assert not (tree["ws"] / "proof.txt").exists()
        # the plain mode is unaffected and would have created the file
        await run_command("touch proof.txt", tree["ws"], PLAIN, timeout=5)
        assert (tree["ws"] / "proof.txt").exists()
    finally:
        monkeypatch.undo()
        sb.sandbox_status(refresh=True)


async def test_bad_inputs(tree):
    assert (await run_command("true", tree["ws"] / "nope", PLAIN, timeout=5)).error
    assert (await run_command("true", tree["ws"], PLAIN, timeout=0)).error
    bad = SandboxPolicy(enabled=True, workspace_mode="rwx")
    res = await run_command("touch x", tree["ws"], bad, timeout=5)
    assert res.error and "workspace_mode" in res.error and not (tree["ws"] / "x").exists()


async def test_format_result_variants():
    assert format_result(CommandResult(output="", exit_code=0)) == "(no output)"
    assert format_result(CommandResult(output="ok\n", exit_code=0)) == "ok"
    assert format_result(CommandResult(output="x", exit_code=2)) == "x\n[exit code 2]"
    assert format_result(CommandResult(output="", exit_code=-9)) == "[killed by SIGKILL]"
    assert (format_result(CommandResult(output="p", exit_code=None, timed_out=True, timeout=30))
            == "p\n[timed out after 30 s; process tree killed]")
    assert format_result(CommandResult(output="", exit_code=None, error="boom")) == "[error: boom]"


# --------------------------------------------------------------------------- timing (info only)


async def test_overhead_timing(status, tree, capsys):
    async def median_ms(policy: SandboxPolicy, runner=run_command) -> float:
        samples = []
        for _ in range(20):
            t0 = time.perf_counter()
            res = await runner("echo hi", tree["ws"], policy, timeout=10)
            samples.append((time.perf_counter() - t0) * 1000)
            assert res.output == "hi\n"
        return statistics.median(samples)

    plain = await median_ms(PLAIN)
    boxed = await median_ms(ON)
    try:
        kept = await median_ms(ON, partial(warm.run_command, key="timing"))
    finally:
        await warm.close_all()
    with capsys.disabled():
        print(f"\n[sandbox timing] echo hi, median of 20: plain {plain:.1f} ms, "
              f"sandboxed {boxed:.1f} ms (cold), {kept:.1f} ms (warm), overhead "
              f"{boxed - plain:.1f} / {kept - plain:.1f} ms "
              f"(process limit: {status['process_limit']})")


# --------------------------------------------------------------------------- privileges


async def test_setuid_and_setgid_bits_made_inside_do_not_survive_on_the_host(run, status, tree):
    res = await sandboxed(
        run, "cp /usr/bin/bash sbash && chmod 4755 sbash && mkdir -p d && chmod 2775 d && "
        "cp /usr/bin/bash d/gbash && chmod 2755 d/gbash && stat -c '%a %n' sbash d d/gbash",
        tree["ws"],
    )
    assert res.exit_code == 0, res.output
    assert "4755 sbash" in res.output  # the bits were set inside, during the call...
    for rel in ("sbash", "d", "d/gbash"):  # ...and are gone once the call is over
        mode = (tree["ws"] / rel).stat().st_mode
        assert mode & 0o6000 == 0, (rel, oct(mode))


def test_strip_privileges_never_follows_a_link_out_of_the_workspace(tmp_path):
    outside = tmp_path / "outside-suid"
    outside.write_text("x")
    outside.chmod(0o4755)
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "link").symlink_to(outside)
    (ws / "sub" / "dirlink").symlink_to(tmp_path)
    inside = ws / "sub" / "own"
    inside.write_text("y")
    inside.chmod(0o6755)
    assert sb.strip_privileges(ws) == 1
    assert inside.stat().st_mode & 0o7777 == 0o755
    assert outside.stat().st_mode & 0o7777 == 0o4755


async def test_without_bubblewrap_bash_says_how_to_install_it_or_opt_out(run, monkeypatch, tree):
    monkeypatch.setattr(sb, "_find_bwrap", lambda: None)
    monkeypatch.setattr(sb, "_status_cache", None)
    try:
        res = await run("echo ran", tree["ws"], ON, timeout=5)
    finally:
        sb.sandbox_status(refresh=True)
    assert res.exit_code is None and "ran" not in res.output
    text = format_result(res)
    assert "apt-get install bubblewrap" in text
    assert "GATEWAY_UNSANDBOXED_TOOLS=true" in text


def _own_slirp_children() -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "slirp4netns" and int(fields[1]) == os.getpid():
            found.append(int(pid))
    return found


async def test_network_helper_ends_with_a_timed_out_call(run, status, tree):
    if not status["network"]:
        pytest.skip("slirp4netns not installed")
    res = await sandboxed(run, "sleep 30", tree["ws"], SandboxPolicy(enabled=True, network_enabled=True),
                          timeout=1)
    assert res.timed_out
    if run.mode == "warm":  # the warm sandbox keeps its network until it ends
        await warm.close_all()
    assert _own_slirp_children() == []
