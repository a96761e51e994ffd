"""Warm sandboxes: one bubblewrap sandbox kept running per chat, one command per call.

Self-contained like ``agents.sandbox`` (plain Python + asyncio, no Django). The cold path,
:func:`agents.sandbox.run_command`, pays for bubblewrap, the namespaces, the cgroup join
and a new shell on every call. Here the first sandboxed call of a chat starts a sandbox
exactly as the cold path would build it (same ``bwrap`` arguments, network, pids cgroup)
but with a small supervisor (``agents/sandbox_supervisor.py``) as its pid 1; every call
after that is one request to it over a Unix socket, and the supervisor forks
``bash -c <command>`` with that call's limits.

Public API
----------
* :func:`run_command` - :func:`agents.sandbox.run_command` with a ``key`` (the chat):
  same arguments, same :class:`~agents.sandbox.CommandResult`, warm when it can be.
* :func:`close_all` / :func:`close` - end warm sandboxes (shutdown, tests).
* :func:`enabled`, :func:`idle_seconds` - the settings ``GATEWAY_SANDBOX_WARM`` (default
  true) and ``GATEWAY_SANDBOX_WARM_IDLE`` (seconds, default 90), read on every call.

Per call (what the cold path promises, the warm path keeps)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
* Limits: the supervisor's child sets RLIMIT_AS/CPU/FSIZE/NPROC/CORE/NICE to the numbers
  ``prlimit`` gets on the cold path and switches to SCHED_IDLE before it execs bash; the
  pids cgroup (gateway as root) or the watchdog caps the sandbox as a whole, with the same
  count as on the cold path (the supervisor stands for bwrap's init).
* Clean environment, ``/workspace`` as cwd, stdin ``/dev/null``, stdout+stderr on one
  pipe, the first ``output_limit`` bytes kept and the rest counted and dropped.
* Timeout, exit, cancel: the supervisor ``kill(-1, SIGKILL)``s everything in the
  sandbox but itself and reaps until no child is left (as pid 1 it inherits every
  orphan, ``setsid`` or not), so nothing of a call outlives it or counts against the
  next call's process cap. Only then does it answer, and only then are the workspace's
  setuid/setgid bits cleared and device files removed (rw workspaces), as on the cold
  path. ``/tmp`` and ``/dev/shm`` are emptied after each call; a call that leaves SysV
  IPC objects, or more in ``/tmp`` than can be cleared in 2 s, retires the sandbox.
* The supervisor is the sandbox's init and non-dumpable: sandboxed code can neither
  kill it nor ptrace it nor reach its socket. What it sends is still parsed as
  untrusted (sizes, types); a frame that does not fit ends the sandbox.
* A backstop on the host: no answer within the timeout plus 5 s, and the sandbox is
  killed (its pid namespace dies with it).

Lifetime
~~~~~~~~
One sandbox per ``key`` (the chat; the workspace when no key is given), keyed also by a
fingerprint of everything it was built from (the whole policy, the workspace folder's
identity, the probe's findings): a call whose fingerprint differs (the sandbox config
changed, the workspace was replaced) retires the old sandbox and starts a new one. A
sandbox ends after ``idle_seconds()`` without a call, when its supervisor dies (the next
call starts a fresh one; a call whose request the supervisor never took is retried there),
with :func:`close_all`, at interpreter exit, and with the gateway process
(``--die-with-parent``). At most :data:`MAX_WARM` are kept; the least recently used idle
one makes room. A second call while one runs (same key) runs on the cold path, and so
does every call when a sandbox cannot be started (for a minute, then it is tried again)
or ``GATEWAY_SANDBOX_WARM=false``.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from agents import sandbox as sb
from agents.sandbox import CommandResult, SandboxPolicy

__all__ = ["run_command", "close_all", "close", "enabled", "idle_seconds", "stats", "MAX_WARM"]

logger = logging.getLogger(__name__)

SUPERVISOR_SOURCE = Path(__file__).with_name("sandbox_supervisor.py").read_text()
# What ``ps`` in the sandbox shows of the supervisor; the source comes through a pipe.
_BOOTSTRAP = ("import os,sys;exec(compile(os.fdopen(int(sys.argv[1]),'rb').read(),"
              "'sandbox-supervisor','exec'))")
DEFAULT_IDLE_SECONDS = 90.0
MAX_WARM = 32  # warm sandboxes per gateway process
_HEADER = struct.Struct(">I")
_START_TIMEOUT = 15.0   # bwrap + the supervisor's "ready"
_ACK_TIMEOUT = 10.0     # the supervisor takes a request (it may be clearing /tmp)
_GRACE = 5.0            # beyond a call's timeout, before the host kills the sandbox
_RETRY_AFTER_FAILURE = 60.0
_FRAME_SLACK = 64 * 1024
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# --------------------------------------------------------------------------- settings


def enabled() -> bool:
    """``GATEWAY_SANDBOX_WARM`` (default true): false sends every call the cold way."""
    raw = os.environ.get("GATEWAY_SANDBOX_WARM", "").strip().lower()
    if raw in _FALSE:
        return False
    if raw and raw not in _TRUE:
        logger.warning("GATEWAY_SANDBOX_WARM=%r is not a boolean; warm sandboxes stay on", raw)
    return True


def idle_seconds() -> float:
    """``GATEWAY_SANDBOX_WARM_IDLE``: seconds a warm sandbox waits for its next call."""
    raw = os.environ.get("GATEWAY_SANDBOX_WARM_IDLE", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_IDLE_SECONDS
    except ValueError:
        logger.warning("GATEWAY_SANDBOX_WARM_IDLE=%r is not a number; using %g", raw,
                       DEFAULT_IDLE_SECONDS)
        return DEFAULT_IDLE_SECONDS
    return max(1.0, value)


# --------------------------------------------------------------------------- the pool

_pool: dict[str, WarmSandbox] = {}
_ending: set[WarmSandbox] = set()  # out of the pool, being closed in the background
_failed: dict[str, float] = {}  # fingerprint -> when to try starting one again
_counts = {"warm_calls": 0, "cold_calls": 0, "started": 0, "start_failures": 0}


def stats() -> dict[str, int]:
    """Counters of this process: sandboxed calls run warm / cold, sandboxes started,
    starts that failed, and how many are warm now."""
    return {**_counts, "alive": len(_pool)}


class _Gone(Exception):
    """The supervisor ended before it took the request: nothing ran, retry elsewhere."""


class _StartError(Exception):
    """A warm sandbox could not be started."""


def _python() -> str | None:
    """The host distribution's Python under /usr (visible inside the sandbox)."""
    found = sb._find_tool("python3")
    real = os.path.realpath(found) if found else None
    return real if real and real.startswith("/usr/") else None


def _fingerprint(ws: Path, policy: SandboxPolicy, status: dict) -> str:
    st = os.stat(ws)
    cgroup = status.get("_cgroup")
    parts = {
        "policy": dataclasses.asdict(policy),
        "workspace": [str(ws), st.st_dev, st.st_ino],
        "status": [status.get("bwrap"), status.get("network"), status.get("process_limit"),
                   str(cgroup.path) if cgroup else None],
        "sched_idle": sb.SANDBOX_SCHED_IDLE,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


async def run_command(
    command: str,
    workspace: Path,
    policy: SandboxPolicy,
    *,
    timeout: float,
    output_limit: int = 64_000,
    env: Mapping[str, str] | None = None,
    key: str | None = None,
) -> CommandResult:
    """:func:`agents.sandbox.run_command`, in the warm sandbox of ``key`` when it can be.

    Plain mode, ``GATEWAY_SANDBOX_WARM=false``, a sandbox that cannot start, an unusable
    sandbox (the cold path then says why) and a second call while ``key``'s sandbox is
    busy all take the cold path.
    """
    def cold() -> asyncio.Future:
        if policy.enabled:
            _counts["cold_calls"] += 1
        return sb.run_command(command, workspace, policy, timeout=timeout,
                              output_limit=output_limit, env=env)

    if not policy.enabled or not enabled():
        return await cold()
    checked = sb._check_inputs(command, workspace, timeout)
    if isinstance(checked, CommandResult):
        return checked
    ws, timeout = checked
    if sb._validate_policy(policy) is not None:
        return await cold()
    status = sb._status_cache
    if status is None or (status["bwrap"] and not os.access(status["bwrap"], os.X_OK)):
        status = await asyncio.to_thread(sb._full_status, status is not None)
    if not status["available"] or (policy.network_enabled and not status["network"]):
        return await cold()
    try:
        call_env = sb._command_env(sb.SANDBOX_WORKDIR, env)
    except ValueError as exc:
        return sb._error(f"cannot build sandbox: {exc}", timeout)
    try:
        fingerprint = _fingerprint(ws, policy, status)
    except OSError:
        return await cold()
    for _ in range(2):
        box = await _acquire(key or f"workspace:{ws}", fingerprint, ws, policy, status)
        if box is None:
            break
        try:
            return await box.run(command, call_env, timeout, max(0, int(output_limit)))
        except _Gone:
            continue  # died between calls: a fresh one (once), else cold
    return await cold()


async def _acquire(key: str, fingerprint: str, ws: Path, policy: SandboxPolicy,
                   status: dict) -> WarmSandbox | None:
    """The free warm sandbox of ``key`` (started if need be), taken; None: go cold."""
    loop = asyncio.get_running_loop()
    for other in [b for b in _pool.values() if b.loop.is_closed()]:
        _pool.pop(other.key, None)  # its loop ended (tests): its idle timer never will
        other.retire()
    for other in [b for b in _ending if b.loop.is_closed()]:
        other.end_now()  # its background close ended with its loop
    box = _pool.get(key)
    if box is not None and (box.dead or box.loop is not loop or box.fingerprint != fingerprint):
        _pool.pop(key, None)
        box.retire()
        box = None
    if box is not None:
        if box.busy:
            return None  # a call of this chat runs: this one runs beside it, cold
        box.take()
        return box
    now = time.monotonic()
    if _failed.get(fingerprint, 0) > now:
        return None
    if len(_pool) >= MAX_WARM and not _evict_one():
        return None
    box = WarmSandbox(key, fingerprint, ws, policy, status)
    _pool[key] = box
    try:
        await box.start()
    except (_StartError, OSError, ValueError, asyncio.TimeoutError, sb._NetworkError) as exc:
        if _pool.get(key) is box:
            del _pool[key]
        await box.close()
        for stale in [fp for fp, until in _failed.items() if until <= now]:
            del _failed[stale]
        _failed[fingerprint] = now + _RETRY_AFTER_FAILURE
        _counts["start_failures"] += 1
        logger.warning("cannot start a warm sandbox (bash calls run cold for %.0f s): %s",
                       _RETRY_AFTER_FAILURE, exc)
        return None
    except BaseException:
        if _pool.get(key) is box:
            del _pool[key]
        box.kill_now()
        box.end_later()
        raise
    _failed.pop(fingerprint, None)
    _counts["started"] += 1
    return box


def _evict_one() -> bool:
    idle = [b for b in _pool.values() if not b.busy]
    if not idle:
        return False
    oldest = min(idle, key=lambda b: b.last_used)
    _pool.pop(oldest.key, None)
    oldest.retire()
    return True


async def close(key: str) -> None:
    """End the warm sandbox of ``key`` (a call in it is killed)."""
    box = _pool.pop(key, None)
    if box is not None:
        await box.close()


async def close_all() -> None:
    """End every warm sandbox of this process, and wait until nothing of them runs
    (server shutdown, tests)."""
    boxes = [*_pool.values(), *_ending]
    _pool.clear()
    loop = asyncio.get_running_loop()
    for box in boxes:
        if box.loop is loop:
            await box.close()
        else:
            box.end_now()


@atexit.register
def _kill_all_now() -> None:
    """At exit: SIGKILL what is left and remove its run cgroups (after a crash, the next
    start's probe removes those)."""
    boxes = [*_pool.values(), *_ending]
    _pool.clear()
    for box in boxes:
        box.kill_now()
    for box in boxes:
        box.end_now()


# --------------------------------------------------------------------------- one sandbox


class _Frames(asyncio.Protocol):
    """Length-prefixed JSON frames from the supervisor into a queue (``None``: closed)."""

    def __init__(self, queue: asyncio.Queue) -> None:
        self.queue = queue
        self.buf = bytearray()
        self.max_frame = _FRAME_SLACK
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self.buf)
            if size > self.max_frame:
                self._broken(f"a frame of {size} bytes")
                return
            if len(self.buf) < _HEADER.size + size:
                return
            raw = bytes(self.buf[_HEADER.size:_HEADER.size + size])
            del self.buf[:_HEADER.size + size]
            try:
                msg = json.loads(raw)
            except ValueError:
                msg = None
            if not isinstance(msg, dict):
                self._broken("a frame that is not a JSON object")
                return
            self.queue.put_nowait(msg)

    def _broken(self, what: str) -> None:
        logger.warning("warm sandbox: the supervisor sent %s; ending it", what)
        self.buf.clear()
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)


class WarmSandbox:
    """One running sandbox and its supervisor (see the module's docstring)."""

    def __init__(self, key: str, fingerprint: str, ws: Path, policy: SandboxPolicy,
                 status: dict) -> None:
        self.key = key
        self.fingerprint = fingerprint
        self.workspace = ws
        self.policy = policy
        self.status = status
        self.loop = asyncio.get_running_loop()
        # A plain Popen, not an asyncio process: no child watcher tied to this loop (a
        # sandbox may outlive the loop in tests); it is reaped in close().
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.frames: _Frames | None = None
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cgroup: Path | None = None
        self.watchdog_limit: int | None = None
        self.network: sb._Network | None = None
        self.pidfd: int | None = None
        self.supervisor_pid: int | None = None
        self.busy = True  # until started and handed out
        self.dead = False
        self.retiring = False
        self.idle_handle: asyncio.TimerHandle | None = None
        self.last_used = time.monotonic()
        self.calls = 0
        self._ids = itertools.count(1)
        self._closed: asyncio.Future | None = None

    # -- start ---------------------------------------------------------------------------
    async def start(self) -> None:
        python = _python()
        if python is None:
            raise _StartError("no python3 under /usr for the supervisor")
        bash = os.path.realpath(sb._find_tool("bash") or "/usr/bin/bash")
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = parent
        fds: list[int] = []
        try:
            if self.policy.network_enabled:
                self.network = sb._Network(self.status["network"])
                fds += self.network.child_fds()
            source = sb._data_fd(SUPERVISOR_SOURCE)
            fds.append(source)
            entry = [python, "-I", "-S", "-c", _BOOTSTRAP, str(source), str(child.fileno()),
                     bash]
            argv, bwrap_fds = sb._build_bwrap_argv(
                self.status["bwrap"], "", self.workspace, self.policy, extra_env=None,
                sync_fds=self.network.child_fds() if self.network else None, entry=entry)
            fds += bwrap_fds
            argv, self.cgroup, self.watchdog_limit = sb._process_cap(
                self.status, self.policy, argv)
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd="/", env=sb._launcher_env(),
                start_new_session=True, pass_fds=[*fds, child.fileno()])
        finally:
            child.close()
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        _, self.frames = await self.loop.create_unix_connection(
            lambda: _Frames(self.queue), sock=parent)
        if self.network is not None:
            await self.network.attach(sb._NETWORK_SETUP_TIMEOUT)
        async with asyncio.timeout(_START_TIMEOUT):  # not wait_for: see ``_next``
            ready = await self.queue.get()
        if ready is None or ready.get("op") != "ready":
            raise _StartError("the supervisor ended before it was ready")
        if ready.get("error"):
            raise _StartError(f"the supervisor cannot run: {ready['error']}")
        self.supervisor_pid = sb._sandbox_init_pid(self.proc.pid)
        if self.supervisor_pid is not None:
            with contextlib.suppress(OSError, AttributeError):
                self.pidfd = os.pidfd_open(self.supervisor_pid)

    # -- a call --------------------------------------------------------------------------
    def take(self) -> None:
        self.busy = True
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None

    def _send(self, msg: dict) -> None:
        data = json.dumps(msg, separators=(",", ":")).encode()
        assert self.frames is not None and self.frames.transport is not None
        self.frames.transport.write(_HEADER.pack(len(data)) + data)

    async def _next(self, call_id: int, op: str, timeout: float) -> dict | None:
        """The next frame ``op`` of call ``call_id``; None when the supervisor is gone.
        ``asyncio.TimeoutError`` after ``timeout``."""
        deadline = self.loop.time() + timeout
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when
            # the task is cancelled in the step the frame arrives, and a cancelled turn
            # went on waiting for its command (the "started" frame races the user's cancel).
            async with asyncio.timeout(max(0.0, deadline - self.loop.time())):
                msg = await self.queue.get()
            if msg is None:
                self.queue.put_nowait(None)  # stays closed for whoever asks next
                return None
            if msg.get("id") == call_id and msg.get("op") == op:
                return msg

    async def run(self, command: str, env: dict[str, str], timeout: float,
                  output_limit: int) -> CommandResult:
        """One call; the sandbox is taken (``busy``) and released at the end."""
        if (self.dead or self.queue.qsize() or self.proc is None
                or self.proc.poll() is not None):
            self._abandon()
            raise _Gone  # died since the last call: the caller starts a fresh one
        call_id = next(self._ids)
        assert self.frames is not None
        self.frames.max_frame = 4 * output_limit // 3 + _FRAME_SLACK
        started = time.monotonic()
        state: dict = {}
        reply: dict | None = None
        watchdog: asyncio.Future | None = None
        try:
            self._send({"op": "run", "id": call_id, "command": command, "env": env,
                        "timeout": timeout, "limit": output_limit,
                        "rlimits": sb._rlimits(self.policy),
                        "sched_idle": sb.SANDBOX_SCHED_IDLE})
            try:
                ack = await self._next(call_id, "started", _ACK_TIMEOUT)
            except asyncio.TimeoutError:
                ack = {}
                state["killed"] = "the warm sandbox did not take the command in time"
            if ack is None:
                self._abandon()
                raise _Gone  # it ended before it took the request: nothing ran
            if ack:
                if self.watchdog_limit is not None and self.supervisor_pid is not None:
                    watchdog = asyncio.ensure_future(self._watchdog(self.watchdog_limit, state))
                try:
                    reply = await self._next(call_id, "result", timeout + _GRACE)
                except asyncio.TimeoutError:
                    state["timed_out"] = True
        except _Gone:
            raise
        except BaseException:
            # Cancelled: the supervisor kills the call; the sandbox stays if it answers.
            with contextlib.suppress(Exception):
                self._send({"op": "kill", "id": call_id})
            sb._spawn_background(self._after_cancel(call_id))
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
        result = self._result(reply, state, timeout, output_limit)
        if reply is None or self.dead:
            await self.close()  # every process of the call dies with the sandbox
        if self.policy.workspace_mode == "rw":
            await asyncio.to_thread(sb.strip_privileges, self.workspace)
        result.duration = time.monotonic() - started
        self.calls += 1
        _counts["warm_calls"] += 1
        self._release(recycle=reply is None or bool(reply.get("recycle")))
        return result

    def _result(self, reply: dict | None, state: dict, timeout: float,
                limit: int) -> CommandResult:
        if reply is None:
            if state.get("timed_out"):
                return CommandResult(output="", exit_code=None, timed_out=True,
                                     timeout=timeout)
            return CommandResult(output="", exit_code=None, timeout=timeout,
                                 killed=state.get("killed")
                                 or "the sandbox ended during the call")
        if reply.get("error"):
            return sb._error(str(reply["error"])[:500], timeout)
        try:
            out = base64.b64decode(reply.get("output", ""), validate=True)[:limit]
            total = max(int(reply.get("total", 0)), len(out))
            code = reply.get("exit")
            if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
                raise ValueError(f"exit {code!r}")
        except (binascii.Error, TypeError, ValueError) as exc:
            logger.warning("warm sandbox: a malformed result (%s); ending it", exc)
            self.kill_now()
            return CommandResult(output="", exit_code=None, timeout=timeout,
                                 killed="the sandbox's supervisor failed")
        truncated = total > len(out)
        text = (sb._trim_partial_utf8(out) if truncated else out).decode("utf-8", "replace")
        timed_out = bool(reply.get("timed_out"))
        return CommandResult(output=text, exit_code=None if timed_out else code,
                             timed_out=timed_out, truncated=truncated, timeout=timeout,
                             output_bytes=total)

    async def _after_cancel(self, call_id: int) -> None:
        """After a cancelled call: wait for the supervisor to have killed it, clear the
        workspace's privileges, and hand the sandbox out again (or end it)."""
        reply = None
        with contextlib.suppress(asyncio.TimeoutError):
            reply = await self._next(call_id, "result", _ACK_TIMEOUT + _GRACE)
        if reply is None or self.dead:
            await self.close()
        if self.policy.workspace_mode == "rw":
            await asyncio.to_thread(sb.strip_privileges, self.workspace)
        self._release(recycle=reply is None or bool(reply.get("recycle")))

    async def _watchdog(self, limit: int, state: dict) -> None:
        """The process cap when neither RLIMIT_NPROC nor a pids cgroup works (as on the
        cold path: the sandbox's own /proc is counted, the supervisor included)."""
        host_proc_dev = os.stat("/proc").st_dev
        while not self.dead:
            count = sb._count_sandbox_tasks(self.supervisor_pid, host_proc_dev)  # type: ignore[arg-type]
            if count is not None and count > limit:
                state["killed"] = f"process limit ({limit}) exceeded"
                self.kill_now()
                return
            await asyncio.sleep(sb._WATCHDOG_INTERVAL)

    def _release(self, recycle: bool) -> None:
        self.last_used = time.monotonic()
        if recycle or self.retiring or self.dead:
            self._discard()
            self.end_later()
            return
        self.busy = False
        self.idle_handle = self.loop.call_later(idle_seconds(), self._on_idle)

    def _on_idle(self) -> None:
        self.idle_handle = None
        if not self.busy:
            self._discard()
            self.end_later()

    def _discard(self) -> None:
        """Out of the pool (a later call starts a fresh one)."""
        if _pool.get(self.key) is self:
            del _pool[self.key]

    def _abandon(self) -> None:
        """Out of the pool, killed, cleaned up in the background."""
        self._discard()
        self.kill_now()
        self.end_later()

    # -- the end -------------------------------------------------------------------------
    def retire(self) -> None:
        """Out of use: end it now if idle, after its call otherwise."""
        self.retiring = True
        if self.loop is not _running_loop() or self.loop.is_closed():
            self.end_now()  # its loop is gone (tests): no await possible
        elif not self.busy:
            self.end_later()

    def end_later(self) -> None:
        """Close in the background (``close_all`` waits for it too)."""
        if self._closed is None or not self._closed.done():
            _ending.add(self)
            sb._spawn_background(self.close())

    def end_now(self) -> None:
        """Kill and clean up without awaiting (its loop is not this one)."""
        self.kill_now()
        _ending.discard(self)
        if self.cgroup is not None:
            _remove_cgroup_now(self.cgroup)

    def kill_now(self) -> None:
        """SIGKILL the sandbox (synchronous): bwrap, the supervisor, the cgroup."""
        self.dead = True
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        if self.proc is not None and self.proc.poll() is None:
            sb._kill_group(self.proc.pid)
        if self.cgroup is not None:
            sb._cgroup_kill_all(self.cgroup)
        if self.frames is None or self.frames.transport is None:
            if self.sock is not None:  # never connected (a failed start)
                self.sock.close()
        else:
            if self.loop.is_closed():  # the transport cannot close: the socket itself
                if self.sock is not None:
                    self.sock.close()
            else:
                self.frames.transport.close()

    async def close(self) -> None:
        """End the sandbox and wait until nothing of it runs (idempotent)."""
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        self._closed = self.loop.create_future()
        try:
            self._discard()
            self.kill_now()
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(self.proc.wait, 10)
            if self.cgroup is not None:
                await sb._cgroup_remove(self.cgroup)
            if self.network is not None:
                await self.network.close()
            if self.pidfd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.pidfd)
                self.pidfd = None
        finally:
            _ending.discard(self)
            self._closed.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _remove_cgroup_now(cgroup: Path) -> None:
    deadline = time.monotonic() + 1.0
    while True:
        sb._cgroup_kill_all(cgroup)
        try:
            cgroup.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
        time.sleep(0.01)
