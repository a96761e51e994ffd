"""Run the agent's ``bash`` tool commands, plainly or inside a bubblewrap sandbox.

Self-contained: plain Python + asyncio, no Django / Channels / DRF imports.

Public API
----------
* :class:`SandboxPolicy`  - how (and whether) to sandbox.
* :class:`CommandResult`  - what happened.
* :func:`run_command`     - run ``bash -c <command>`` in a workspace (async).
* :func:`sandbox_status`  - is bubblewrap usable here? (probed once per process).
* :func:`format_result`   - the text handed back to the model.

Both modes
~~~~~~~~~~
``bash -c <command>`` (not ``-l``), cwd = the workspace, stdin = /dev/null, a clean
environment (PATH, HOME, LANG=C.UTF-8, TERM=dumb + caller's ``env``), its own session /
process group.  stdout and stderr share one pipe (interleaved).  The pipe is read
incrementally by an asyncio protocol; only the first ``output_limit`` bytes are kept,
the rest is *drained and discarded* (the command keeps running normally, it is not
killed for being chatty; the timeout still bounds it).  On timeout, cancellation or
normal completion, the whole process tree is killed: no process outlives the call
(in plain mode via ``killpg(SIGKILL)``; in the sandbox the PID namespace dies with
bwrap's init, plus the pids cgroup is emptied when one is in use).

Sandbox mode (``policy.enabled``)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
bubblewrap with new user/pid/ipc/uts/cgroup/net namespaces, read-only ``/usr``, a
hand-picked minimum of ``/etc``, synthesized ``/etc/passwd``, ``/etc/group`` and
``/etc/hosts``, fresh ``/proc`` (with ``/proc/sys`` read-only), ``/dev``, size-limited
tmpfs ``/tmp``, the workspace at ``/workspace`` and a read-only root.  The command runs
as uid/gid 1000 *inside* the user namespace (no capabilities, no_new_privs).

Resource limits are applied with util-linux ``prlimit`` wrapped around ``bwrap`` (so no
``preexec_fn`` runs Python code between fork and exec in a threaded server); they are
inherited by everything in the sandbox: RLIMIT_AS (memory), RLIMIT_CPU (per process),
RLIMIT_FSIZE, RLIMIT_CORE=0, RLIMIT_NICE=0 and RLIMIT_NPROC.

RLIMIT_NPROC is ignored by the kernel for processes whose real uid is host root (even
inside ``--unshare-user`` with ``--uid 1000``: the kernel uid is still 0).  So when the
gateway runs as root the process count is capped with a *pids cgroup* (v2 if a delegated
subtree with the pids controller is available, else v1 ``/sys/fs/cgroup/pids``); if no
writable pids cgroup exists a best-effort *watchdog* counts the processes of the
sandbox's PID namespace every 25 ms and kills the sandbox when the cap is exceeded.
``sandbox_status()["process_limit"]`` says which mechanism is in force.

The sandboxed command itself runs with the SCHED_IDLE scheduling policy (``chrt``,
sticky thanks to RLIMIT_NICE=0), so CPU hogs and fork bombs cannot starve the gateway.

If bwrap is missing or cannot create namespaces, sandboxed calls return
``error="sandbox unavailable: ..."`` and run nothing - there is never a fallback to
running unsandboxed.

No privilege leaves the sandbox
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Files the sandbox writes in the workspace are owned by the server's host uid (host root
when the gateway runs as root), and a process inside may ``chmod 4755`` them.  Inside,
every bind mount is ``nosuid``; on the host, after every sandboxed call (once its whole
process tree is dead) :func:`strip_privileges` walks the workspace through directory fds
without following links, clears every setuid/setgid bit and deletes device files.  The
code around this module keeps the data dir 0700, so no other host user reaches a
workspace at all, even during a call.

Network (``network_enabled``)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
The sandbox always gets its own network namespace.  With ``network_enabled`` a
``slirp4netns --disable-host-loopback`` user-mode stack is attached to it before the
command starts (bwrap waits on ``--block-fd`` until the interface is up): outbound
TCP/UDP goes out from the host as ordinary sockets, while the host's loopback (the
gateway's own port, a local Redis / PostgreSQL / upstream) is unreachable; the sandbox's
127.0.0.1 is its own.  Without slirp4netns a call with ``network_enabled`` fails; it
never falls back to sharing the host's network.

Warm sandboxes
~~~~~~~~~~~~~~
This module is the *cold* path: a new sandbox per call.  ``agents.warm`` keeps one per
chat, built from the same parts (``_build_bwrap_argv`` with a supervisor as pid 1,
``_process_cap``, ``_Network``, ``_rlimits``) and falls back to :func:`run_command`;
the ``bash`` tool goes through it.  See docs/sandbox.md.

Caveats (for the code around this module)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
* The sandbox can create symlinks in the workspace pointing anywhere; host-side file
  tools must resolve paths and refuse to follow links out of the workspace.
* With ``network_enabled``, services the host binds to a non-loopback address are
  reachable like from any other machine on that network.
* Plain mode is not isolation: killpg cannot catch a child that calls setsid().
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import itertools
import os
import shutil
import json
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SandboxPolicy",
    "CommandResult",
    "run_command",
    "sandbox_status",
    "format_result",
    "strip_privileges",
    "INSTALL_HINT",
]

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# Where helper binaries (bwrap, prlimit, bash, sh) are looked up on the host.
_HOST_TOOL_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

SANDBOX_WORKDIR = "/workspace"
SANDBOX_HOSTNAME = "sandbox"
SANDBOX_UID = 1000
SANDBOX_GID = 1000
SANDBOX_USER = "sandbox"

# Grace period to collect the remaining output after the command ended / was killed.
_DRAIN_GRACE_SECONDS = 2.0
_WATCHDOG_INTERVAL = 0.025
_PROBE_TIMEOUT = 15.0
_CGROUP_PARENT_NAME = "agent-sandbox"
# Sandboxed processes run with the SCHED_IDLE policy (see _sched_args).
SANDBOX_SCHED_IDLE = True

# Top-level host paths that may be symlinks into /usr (merged-/usr) or real dirs.
_ROOT_LINK_CANDIDATES = ("bin", "sbin", "lib", "lib64", "lib32", "libx32")

# The minimum of /etc the sandbox needs (all optional: --ro-bind-try).
#  ld.so.*      dynamic linker cache / config
#  alternatives awk -> mawk, editor, pager, ... (Debian alternatives symlinks)
#  localtime    `date`, python's time.localtime
#  nsswitch.conf, python3*/ (Debian's sitecustomize), os-release, mime.types, magic
_ETC_ALWAYS = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "timezone",
    "nsswitch.conf",
    "os-release",
    "debian_version",
    "mime.types",
    "magic",
    "python3",
    "python3.11",
    "python3.12",
    "python3.13",
)
# Only with network_enabled: name resolution and TLS trust store (NOT /etc/ssl/private).
# resolv.conf is synthesized (the slirp4netns DNS forwarder), never the host's.
_ETC_NETWORK = (
    "host.conf",
    "gai.conf",
    "ssl/certs",
    "ssl/openssl.cnf",
)

_PASSWD = (
    f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_GID}:{SANDBOX_USER}:{SANDBOX_WORKDIR}:/bin/bash\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
_GROUP = f"{SANDBOX_USER}:x:{SANDBOX_GID}:\nnogroup:x:65534:\n"
# What the operator is told when bash cannot run sandboxed.
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or have the "
    "operator set GATEWAY_UNSANDBOXED_TOOLS=true to run tools unconfined"
)
NETWORK_HINT = "install slirp4netns (Debian/Ubuntu: apt-get install slirp4netns)"
# The slirp4netns defaults: the sandbox is 10.0.2.100, its DNS forwarder 10.0.2.3.
SLIRP_DNS = "10.0.2.3"
SLIRP_TAP = "tap0"
_NETWORK_SETUP_TIMEOUT = 10.0
_NS_GET_USERNS = 0xB701  # ioctl on a namespace fd: the user namespace that owns it
_RESOLV = f"nameserver {SLIRP_DNS}\n"
_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    f"127.0.1.1\t{SANDBOX_HOSTNAME}\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
)


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class SandboxPolicy:
    """How a command is isolated.

    ``enabled=False`` means plain mode (clean env, cwd, timeout; no isolation).
    ``memory_limit_mb`` -> RLIMIT_AS of every sandboxed process, and the size of /tmp.
    ``cpu_seconds`` -> RLIMIT_CPU (per process).  ``timeout_seconds`` is what the caller
    is expected to pass as ``run_command(timeout=...)`` when the sandbox is on.
    ``workspace_mode``: ``"rw"`` or ``"ro"`` bind of the workspace at /workspace.
    ``max_processes`` -> pids cgroup / RLIMIT_NPROC / watchdog cap (tasks incl. threads).
    ``max_file_size_mb`` -> RLIMIT_FSIZE.
    """

    enabled: bool = False
    memory_limit_mb: int = 512
    cpu_seconds: int = 30
    timeout_seconds: int = 30
    network_enabled: bool = False
    workspace_mode: str = "rw"  # "rw" | "ro"
    max_processes: int = 256
    max_file_size_mb: int = 1024


@dataclass
class CommandResult:
    """Outcome of :func:`run_command`.

    ``output``: stdout+stderr interleaved, utf-8 (errors replaced), at most
    ``output_limit`` bytes.  ``exit_code`` is None when the command was killed by the
    timeout or never started; negative (-N) when killed by signal N in plain mode.
    ``error`` is set only when the command could not run at all.
    ``killed`` says why this module killed the command other than by timeout
    (e.g. the process-count watchdog).  ``timeout``/``duration`` are in seconds;
    ``output_bytes`` is the total the command wrote (including discarded bytes).
    """

    output: str
    exit_code: int | None
    timed_out: bool = False
    truncated: bool = False
    error: str | None = None
    killed: str | None = None
    timeout: float | None = None
    duration: float = 0.0
    output_bytes: int = 0


# --------------------------------------------------------------------------- host lookups


def _find_bwrap() -> str | None:
    """Path of the bubblewrap binary, or None.  (Tests monkeypatch this.)"""
    return shutil.which("bwrap", path=_HOST_TOOL_PATH)


def _find_tool(name: str) -> str | None:
    return shutil.which(name, path=_HOST_TOOL_PATH)


# --------------------------------------------------------------------------- pids cgroup


@dataclass(frozen=True)
class _PidsCgroupParent:
    """A directory in which per-run pids cgroups can be created."""

    path: Path
    version: int  # 1 or 2


def _read_text(path: str | Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _cgroup_mounts() -> list[tuple[str, str, str, str]]:
    """(fstype, mount_point, root_in_hierarchy, super_options) of cgroup mounts."""
    out = []
    try:
        lines = _read_text("/proc/self/mountinfo").splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        if rf[0] in ("cgroup", "cgroup2"):
            out.append((rf[0], lf[4], lf[3], rf[2]))
    return out


def _own_cgroups() -> dict[str, str]:
    """controller-list -> path, from /proc/self/cgroup ('' key = cgroup v2)."""
    result = {}
    try:
        for line in _read_text("/proc/self/cgroup").splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3:
                result[parts[1]] = parts[2]
    except OSError:
        pass
    return result


def _join_cgroup_path(mount_point: str, mount_root: str, own: str) -> Path:
    rel = own
    if mount_root not in ("", "/") and own.startswith(mount_root):
        rel = own[len(mount_root):]
    return Path(mount_point) / rel.lstrip("/")


def _try_parent_dir(parent: Path, enable_v2_pids: bool = False) -> bool:
    """Create (if needed) and verify a writable parent for run cgroups."""
    try:
        parent.mkdir(exist_ok=True)
        if enable_v2_pids:
            # The parent we create holds no processes, so pids can be enabled below it.
            (parent / "cgroup.subtree_control").write_text("+pids")
        probe = parent / f"probe-{os.getpid()}-{next(_counter)}"
        probe.mkdir()
        ok = (probe / "pids.max").exists() and (probe / "cgroup.procs").exists()
        probe.rmdir()
        return ok
    except OSError:
        return False


def _detect_pids_cgroup() -> _PidsCgroupParent | None:
    """Find a place where per-run pids cgroups can be created, or None.

    v2: only inside our own cgroup when the pids controller is already enabled in its
    ``cgroup.subtree_control`` (a delegated subtree); we never move the gateway's own
    processes around.  v1: a child of our cgroup in the ``pids`` hierarchy.
    """
    own = _own_cgroups()
    mounts = _cgroup_mounts()
    for fstype, mnt, root, _opts in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        base = _join_cgroup_path(mnt, root, own[""])
        try:
            if "pids" not in _read_text(base / "cgroup.subtree_control").split():
                continue
        except OSError:
            continue
        parent = base / _CGROUP_PARENT_NAME
        if _try_parent_dir(parent, enable_v2_pids=True):
            return _PidsCgroupParent(parent, 2)
    for fstype, mnt, root, opts in mounts:
        if fstype != "cgroup" or "pids" not in opts.split(","):
            continue
        own_path = next(
            (p for ctrls, p in own.items() if "pids" in ctrls.split(",")), "/"
        )
        parent = _join_cgroup_path(mnt, root, own_path) / _CGROUP_PARENT_NAME
        if _try_parent_dir(parent):
            return _PidsCgroupParent(parent, 1)
    return None


def _cgroup_kill_all(cg: Path) -> None:
    """SIGKILL everything in a run cgroup (v2 ``cgroup.kill`` or by pid)."""
    kill_file = cg / "cgroup.kill"
    if kill_file.exists():
        with contextlib.suppress(OSError):
            kill_file.write_text("1")
            return
    for _ in range(3):
        try:
            pids = [int(p) for p in _read_text(cg / "cgroup.procs").split()]
        except (OSError, ValueError):
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


async def _cgroup_remove(cg: Path) -> None:
    """Kill what is left in the run cgroup and remove it (retrying while tasks exit)."""
    deadline = time.monotonic() + 3.0
    while True:
        _cgroup_kill_all(cg)
        try:
            cg.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                return
        await asyncio.sleep(0.01)


def _cleanup_stale_cgroups(parent: _PidsCgroupParent) -> None:
    """Remove run cgroups left behind by dead gateway processes (best effort)."""
    with contextlib.suppress(OSError):
        for child in parent.path.iterdir():
            name = child.name
            if not child.is_dir() or not name.startswith(("run-", "probe-")):
                continue
            try:
                owner = int(name.split("-")[1])
            except (IndexError, ValueError):
                continue
            if owner == os.getpid() or _pid_alive(owner):
                continue
            _cgroup_kill_all(child)
            with contextlib.suppress(OSError):
                child.rmdir()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_counter = itertools.count()


# --------------------------------------------------------------------------- status / probe

_status_lock = threading.Lock()
_status_cache: dict | None = None


def sandbox_status(refresh: bool = False) -> dict:
    """Whether the bubblewrap sandbox can be used in this process.

    Returns ``{"available": bool, "bwrap": path | None, "reason": str | None,
    "process_limit": "rlimit" | "cgroup-v1" | "cgroup-v2" | "watchdog" | None,
    "prlimit": path | None, "chrt": path | None, "network": slirp4netns path | None}``.
    The probe (a trivial ``bwrap ... bash -c true`` with
    the same namespaces as real runs) runs once per process; ``refresh=True`` re-probes.
    Blocking (runs a subprocess): from async code the first call should go through
    ``asyncio.to_thread`` - :func:`run_command` does that.
    """
    return {k: v for k, v in _full_status(refresh).items() if not k.startswith("_")}


def _full_status(refresh: bool = False) -> dict:
    """Cached probe result including private keys (``_cgroup``)."""
    global _status_cache
    with _status_lock:
        if _status_cache is None or refresh:
            _status_cache = _probe()
        return dict(_status_cache)


def _probe() -> dict:
    status = {
        "available": False,
        "bwrap": None,
        "reason": None,
        "process_limit": None,
        "prlimit": None,
        "chrt": None,
        "network": None,
        "_cgroup": None,
    }
    bwrap = _find_bwrap()
    status["bwrap"] = bwrap
    if not bwrap:
        status["reason"] = "bwrap (bubblewrap) not found on PATH"
        return status
    prlimit = _find_tool("prlimit")
    status["prlimit"] = prlimit
    if not prlimit:
        status["reason"] = "prlimit (util-linux) not found; cannot apply resource limits"
        return status
    status["chrt"] = _find_tool("chrt")  # optional (SCHED_IDLE)
    status["network"] = _find_tool("slirp4netns")  # optional (network_enabled)
    if not (_find_tool("bash") and _find_tool("sh")):
        status["reason"] = "bash/sh not found"
        return status
    if not _bash_under_usr():
        status["reason"] = "bash is not under /usr (not visible inside the sandbox)"
        return status

    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as tmp:
        fds: list[int] = []
        try:
            argv, fds = _build_bwrap_argv(
                bwrap, "true", Path(tmp), SandboxPolicy(enabled=True), extra_env=None,
                chrt=status["chrt"],
            )
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=_launcher_env(),
                pass_fds=fds,
                timeout=_PROBE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            status["reason"] = f"bwrap probe timed out after {_PROBE_TIMEOUT:.0f}s"
            return status
        except OSError as exc:
            status["reason"] = f"cannot execute bwrap: {exc}"
            return status
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
    if proc.returncode != 0:
        msg = proc.stdout.decode("utf-8", "replace").strip().splitlines()
        why = msg[-1] if msg else "no output"
        status["reason"] = f"bwrap cannot create the sandbox (exit {proc.returncode}): {why}"
        return status

    if os.geteuid() != 0:
        status["process_limit"] = "rlimit"
    else:
        cg = _detect_pids_cgroup()
        if cg is not None:
            _cleanup_stale_cgroups(cg)
            status["process_limit"] = f"cgroup-v{cg.version}"
            status["_cgroup"] = cg
        else:
            status["process_limit"] = "watchdog"
    status["available"] = True
    return status


def _bash_under_usr() -> bool:
    bash = _find_tool("bash")
    return bool(bash) and os.path.realpath(bash).startswith("/usr/")


# --------------------------------------------------------------------------- argv building


def _launcher_env() -> dict[str, str]:
    """Environment for the host-side helper processes (sh / prlimit / bwrap)."""
    return {"PATH": SAFE_PATH, "LANG": "C.UTF-8"}


def _command_env(home: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {"PATH": SAFE_PATH, "HOME": home, "LANG": "C.UTF-8", "TERM": "dumb"}
    if extra:
        for key, value in extra.items():
            key, value = str(key), str(value)
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise ValueError(f"invalid environment variable {key!r}")
            env[key] = value
    return env


def _data_fd(data: str) -> int:
    """A pipe read end pre-filled with ``data`` (for bwrap --ro-bind-data)."""
    raw = data.encode()
    if len(raw) > 32768:  # must fit in the pipe buffer: we write before bwrap reads
        raise ValueError("bind data too large")
    r, w = os.pipe()
    try:
        os.write(w, raw)
    finally:
        os.close(w)
    return r


def _build_bwrap_argv(
    bwrap: str,
    command: str,
    workspace: Path,
    policy: SandboxPolicy,
    *,
    extra_env: Mapping[str, str] | None,
    chrt: str | None = None,
    sync_fds: tuple[int, int] | None = None,
    entry: list[str] | None = None,
) -> tuple[list[str], list[int]]:
    """The bwrap argv (without the prlimit/cgroup launcher) and the fds it reads.

    ``sync_fds`` = (info write end, block read end): bwrap reports the sandbox's pid on
    the first and waits on the second before running the command (network set-up).
    ``entry``: run this argv as the sandbox's pid 1 instead of ``bash -c command`` under
    bwrap's own init (the warm sandbox's supervisor, ``agents.warm``).
    The caller must close the returned fds after spawning.
    """
    args: list[str] = [
        bwrap,
        "--unshare-user",
        "--unshare-pid",
        *(["--as-pid-1"] if entry is not None else []),
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--unshare-net",  # always: network_enabled attaches slirp4netns to this netns
    ]
    if sync_fds is not None:
        args += ["--info-fd", str(sync_fds[0]), "--block-fd", str(sync_fds[1])]
    args += [
        "--disable-userns",  # no nested user namespaces (kernel attack surface)
        "--die-with-parent",
        "--new-session",
        "--uid", str(SANDBOX_UID),  # non-zero in-ns uid: bwrap drops all capabilities
        "--gid", str(SANDBOX_GID),
        "--hostname", SANDBOX_HOSTNAME,
        "--ro-bind", "/usr", "/usr",
    ]
    for name in _ROOT_LINK_CANDIDATES:
        host = f"/{name}"
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    args += [
        "--proc", "/proc",
        # Sandboxed processes have kernel uid 0, and sysctl write permission is checked
        # against the *global* root uid: /proc/sys must be read-only or they could e.g.
        # set kernel.core_pattern.  bwrap only covers the dirs it deems writable.
        "--ro-bind", "/proc/sys", "/proc/sys",
        "--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger",
        "--dev", "/dev",
        "--size", str(64 * 1024 * 1024), "--tmpfs", "/dev/shm",
        "--remount-ro", "/dev",
        "--size", str(max(1, policy.memory_limit_mb) * 1024 * 1024), "--tmpfs", "/tmp",
        "--dir", "/etc",
    ]
    etc = list(_ETC_ALWAYS) + (list(_ETC_NETWORK) if policy.network_enabled else [])
    for rel in etc:
        args += ["--ro-bind-try", f"/etc/{rel}", f"/etc/{rel}"]
    fds: list[int] = []
    try:
        data = {"/etc/passwd": _PASSWD, "/etc/group": _GROUP, "/etc/hosts": _HOSTS}
        if policy.network_enabled:
            data["/etc/resolv.conf"] = _RESOLV
        for dest, content in data.items():
            fd = _data_fd(content)
            fds.append(fd)
            args += ["--perms", "0644", "--ro-bind-data", str(fd), dest]
        bind = "--ro-bind" if policy.workspace_mode == "ro" else "--bind"
        args += [bind, str(workspace), SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR]
        # Read-only root tmpfs: nothing can be created in / (and it cannot eat RAM).
        args += ["--remount-ro", "/"]
        args.append("--clearenv")
        for key, value in _command_env(SANDBOX_WORKDIR, extra_env).items():
            args += ["--setenv", key, value]
        if entry is not None:
            args += ["--", *entry]
        else:
            bash = os.path.realpath(_find_tool("bash") or "/usr/bin/bash")
            args += ["--", *_sched_args(chrt), bash, "-c", command]
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return args, fds


def _sched_args(chrt: str | None) -> list[str]:
    """Run the sandboxed command as SCHED_IDLE: it only gets CPU the host does not
    want, so busy loops / fork bombs cannot starve the gateway (or its watchdog).  With
    RLIMIT_NICE=0 and no capabilities the sandbox cannot switch back.  Applied *inside*
    bwrap (chrt is under /usr), so bwrap's init stays SCHED_OTHER and dies promptly -
    taking the PID namespace with it - when killed while a fork bomb saturates the CPU.
    """
    if not (chrt and SANDBOX_SCHED_IDLE and os.path.realpath(chrt).startswith("/usr/")):
        return []
    return [os.path.realpath(chrt), "--idle", "0"]


def _rlimits(policy: SandboxPolicy) -> dict[str, tuple[int, int]]:
    """The resource limits of a sandboxed call: name -> (soft, hard)."""
    mem = max(1, policy.memory_limit_mb) * 1024 * 1024
    cpu = max(1, policy.cpu_seconds)
    fsize = max(1, policy.max_file_size_mb) * 1024 * 1024
    nproc = max(1, policy.max_processes)
    return {
        "as": (mem, mem),
        "cpu": (cpu, cpu + 1),  # SIGXCPU at soft, SIGKILL one second later
        "fsize": (fsize, fsize),
        "nproc": (nproc, nproc),
        "core": (0, 0),
        "nice": (0, 0),  # RLIMIT_NICE: cannot leave SCHED_IDLE / raise priority
    }


def _prlimit_args(prlimit: str, policy: SandboxPolicy) -> list[str]:
    limits = _rlimits(policy)
    return [prlimit, *(f"--{name}={soft}:{hard}" for name, (soft, hard) in limits.items()),
            "--"]


# Joins the run cgroup, then execs the rest (prlimit ... bwrap ...).  $0 = cgroup.procs.
_CGROUP_LAUNCHER = (
    'echo $$ > "$0" || { echo "sandbox: cannot join the pids cgroup" >&2; exit 125; }; '
    'exec "$@"'
)


# --------------------------------------------------------------------------- output reader


class _Collector(asyncio.Protocol):
    """Stores the first ``limit`` bytes of the pipe, drains (discards) the rest."""

    def __init__(self, limit: int, done: asyncio.Future) -> None:
        self.limit = max(0, limit)
        self.buf = bytearray()
        self.total = 0
        self.done = done

    @property
    def truncated(self) -> bool:
        return self.total > len(self.buf)

    def data_received(self, data: bytes) -> None:
        self.total += len(data)
        room = self.limit - len(self.buf)
        if room > 0:
            self.buf += data[:room]

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def text(self) -> str:
        data = bytes(self.buf)
        if self.truncated:
            data = _trim_partial_utf8(data)
        return data.decode("utf-8", errors="replace")


def _trim_partial_utf8(data: bytes) -> bytes:
    """Drop an incomplete multi-byte sequence cut off at the end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # continuation byte, keep looking for the lead
            continue
        if byte & 0x80 == 0:
            return data
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return data[:-back] if need > back else data
    return data


# --------------------------------------------------------------------------- watchdog


def _sandbox_init_pid(bwrap_pid: int) -> int | None:
    try:
        children = _read_text(f"/proc/{bwrap_pid}/task/{bwrap_pid}/children").split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _count_sandbox_tasks(init_pid: int, host_proc_dev: int) -> int | None:
    """Tasks (processes) in the sandbox's PID namespace, via its own /proc."""
    proc_dir = f"/proc/{init_pid}/root/proc"
    try:
        if os.stat(proc_dir).st_dev == host_proc_dev:
            return None  # sandbox /proc not mounted yet
        return sum(1 for name in os.listdir(proc_dir) if name.isdigit())
    except OSError:
        return None


async def _watchdog(proc: asyncio.subprocess.Process, limit: int, state: dict) -> None:
    """Best-effort process cap when neither RLIMIT_NPROC nor a pids cgroup works."""
    host_proc_dev = os.stat("/proc").st_dev
    init_pid = None
    while proc.returncode is None:
        if init_pid is None:
            init_pid = _sandbox_init_pid(proc.pid)
        if init_pid is not None:
            count = _count_sandbox_tasks(init_pid, host_proc_dev)
            if count is not None and count > limit:
                state["killed"] = f"process limit ({limit}) exceeded"
                with contextlib.suppress(OSError):
                    os.kill(init_pid, signal.SIGKILL)  # PID namespace dies with its init
                _kill_group(proc.pid)
                return
        await asyncio.sleep(_WATCHDOG_INTERVAL)


# --------------------------------------------------------------------------- network


class _NetworkError(Exception):
    """The user-mode network could not be attached to the sandbox."""


def _read_child_pid(fd: int) -> int | None:
    """The sandbox's pid from bwrap's ``--info-fd`` JSON (None if bwrap died first)."""
    data = b""
    while b"}" not in data:
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    try:
        return int(json.loads(data[: data.index(b"}") + 1])["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


def _netns_fds(pid: int) -> tuple[int, int]:
    """Fds of the sandbox's network namespace and of the user namespace that owns it.

    ``--disable-userns`` makes bwrap move the sandbox into a nested user namespace, so
    the sandbox's own userns is not the one that owns its netns (slirp4netns's pid mode
    would join the wrong one, racily); the kernel tells us the owner.
    """
    net_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return net_fd, fcntl.ioctl(net_fd, _NS_GET_USERNS)
    except OSError:
        os.close(net_fd)
        raise


async def _wait_for_loopback(pid: int) -> None:
    """bwrap reports the pid before it brings up the sandbox's ``lo``; slirp4netns
    configuring the namespace meanwhile makes bwrap's netlink calls fail. ``::1`` shows
    once ``lo`` is up (give up waiting after a while: IPv6 may be off)."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            if " lo\n" in _read_text(f"/proc/{pid}/net/if_inet6"):
                return
        except FileNotFoundError:
            return  # no IPv6 here, or the sandbox is gone (attaching will tell)
        except OSError:
            return
        await asyncio.sleep(0.001)


class _Network:
    """slirp4netns for one sandboxed call.

    bwrap creates the network namespace, reports the sandbox's pid on the info pipe and
    waits on the block pipe; we attach slirp4netns (``--disable-host-loopback``: the
    host's 127.0.0.0/8 is unreachable through 10.0.2.2) and release the command once the
    interface is configured.  Closing the exit pipe stops slirp4netns.
    """

    def __init__(self, slirp: str) -> None:
        self.slirp = slirp
        self.info_r, self.info_w = os.pipe()
        self.block_r, self.block_w = os.pipe()
        self.exit_w: int | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Future | None = None

    def child_fds(self) -> tuple[int, int]:
        """The ends bwrap gets (the caller closes them after spawning)."""
        return self.info_w, self.block_r

    async def attach(self, timeout: float) -> None:
        """Attach within ``timeout`` (``asyncio.TimeoutError`` otherwise). The work runs
        on as a task even then, never cancelled half-way (it might have spawned
        slirp4netns and not yet recorded it): :meth:`close` finishes it."""
        self.task = asyncio.ensure_future(self._attach())
        async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel
            await asyncio.shield(self.task)

    async def _attach(self) -> None:
        pid = await asyncio.to_thread(_read_child_pid, self.info_r)
        if pid is None:
            raise _NetworkError("bwrap exited before the network could be attached")
        await _wait_for_loopback(pid)
        try:
            net_fd, user_fd = _netns_fds(pid)
        except OSError as exc:
            raise _NetworkError(f"cannot open the sandbox's network namespace: {exc}") from exc
        ready_r, ready_w = os.pipe()
        exit_r, self.exit_w = os.pipe()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                self.slirp, "--configure", "--mtu=65520", "--disable-host-loopback",
                "--enable-sandbox", "--enable-seccomp", "--netns-type=path",
                f"--userns-path=/proc/self/fd/{user_fd}",
                "--ready-fd", str(ready_w), "--exit-fd", str(exit_r),
                f"/proc/self/fd/{net_fd}", SLIRP_TAP,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=_launcher_env(), start_new_session=True,
                pass_fds=(ready_w, exit_r, net_fd, user_fd),
            )
        finally:
            for fd in (ready_w, exit_r, net_fd, user_fd):
                os.close(fd)
        try:
            ready = await asyncio.to_thread(os.read, ready_r, 1)
        finally:
            os.close(ready_r)
        if ready != b"1":
            raise _NetworkError("slirp4netns could not configure the sandbox's network")
        try:
            os.write(self.block_w, b"1")
        except OSError as exc:  # bwrap is gone
            raise _NetworkError(f"the sandbox exited before it could start: {exc}") from exc

    async def close(self) -> None:
        """Stop slirp4netns; call once the sandbox is killed (so pending reads end)."""
        if self.exit_w is not None:
            with contextlib.suppress(OSError):
                os.close(self.exit_w)  # slirp4netns exits; a pending ready-read ends
            self.exit_w = None
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task
        for fd in (self.info_r, self.block_w, self.exit_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.exit_w = None
        if self.proc is not None and self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), _DRAIN_GRACE_SECONDS)
            except asyncio.TimeoutError:
                _kill_group(self.proc.pid)
                await self.proc.wait()


# --------------------------------------------------------------------------- privileges

_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID
_OPEN_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def strip_privileges(workspace: Path) -> int:
    """Clear setuid/setgid bits and delete device files under ``workspace``.

    Run after a sandboxed call, when nothing of it runs any more.  The walk goes through
    directory fds and never follows a link (another call in the same workspace may still
    be swapping entries); each entry is re-checked with ``fstat`` on what was opened, so
    the kernel, not a path string, decides what is changed.  Returns how many entries
    were fixed.
    """
    fixed = 0
    with contextlib.suppress(OSError):
        fixed += _strip_entry(os.fspath(workspace), None)
    for _root, dirs, files, dir_fd in os.fwalk(workspace, follow_symlinks=False):
        for name in [*dirs, *files]:
            with contextlib.suppress(OSError):  # vanished / replaced meanwhile: skip
                fixed += _strip_entry(name, dir_fd)
    return fixed


def _strip_entry(name: str, dir_fd: int | None) -> int:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return 1
    if not (st.st_mode & _SPECIAL_BITS) or not (
        stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
    ):
        return 0
    fd = os.open(name, _OPEN_NOFOLLOW, dir_fd=dir_fd)
    try:
        mode = os.fstat(fd).st_mode
        if mode & _SPECIAL_BITS:
            os.fchmod(fd, stat.S_IMODE(mode) & ~_SPECIAL_BITS)
            return 1
        return 0
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- run_command


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill_tree(pgid: int, cgroup: Path | None) -> None:
    """SIGKILL the process group (and, in the sandbox, everything in the run cgroup).

    In the sandbox the group holds bwrap and its init (pid 1 of the sandbox's PID
    namespace); the kernel kills every process of the namespace when its init dies,
    including those that called setsid().
    """
    _kill_group(pgid)
    if cgroup is not None:
        _cgroup_kill_all(cgroup)


_background: set[asyncio.Task] = set()


def _spawn_background(coro) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _finish_killed(wait_task: asyncio.Future, cgroup: Path | None,
                         network: _Network | None, strip: Path | None) -> None:
    """After a cancelled call: once its processes are gone, clean up what it used."""
    with contextlib.suppress(Exception):
        await wait_task
    if cgroup is not None:
        await _cgroup_remove(cgroup)
    if network is not None:
        await network.close()
    if strip is not None:
        await asyncio.to_thread(strip_privileges, strip)


def _process_cap(status: dict, policy: SandboxPolicy,
                 argv: list[str]) -> tuple[list[str], Path | None, int | None]:
    """How the sandbox's process count is capped: ``(argv, run cgroup, watchdog limit)``.

    With a pids cgroup, ``argv`` is wrapped in a launcher that joins a new run cgroup
    (``pids.max`` = ``max_processes``) before it execs; the caller removes the cgroup.
    With the watchdog (or when the cgroup cannot be made), the limit to watch."""
    mode = status["process_limit"]
    if mode == "watchdog":
        return argv, None, policy.max_processes
    if not (mode and mode.startswith("cgroup")):
        return argv, None, None
    cg_parent: _PidsCgroupParent = status["_cgroup"]
    cgroup = None
    try:
        cgroup = cg_parent.path / f"run-{os.getpid()}-{next(_counter)}"
        cgroup.mkdir()
        (cgroup / "pids.max").write_text(str(policy.max_processes))
    except OSError:
        # Cgroup vanished / not writable any more: keep a cap via the watchdog.
        if cgroup is not None:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        return argv, None, policy.max_processes
    launcher = [_find_tool("sh") or "/bin/sh", "-c", _CGROUP_LAUNCHER,
                str(cgroup / "cgroup.procs")]
    return [*launcher, *argv], cgroup, None


def _error(msg: str, timeout: float | None = None) -> CommandResult:
    return CommandResult(output="", exit_code=None, error=msg, timeout=timeout)


def _validate_policy(policy: SandboxPolicy) -> str | None:
    if policy.workspace_mode not in ("rw", "ro"):
        return f"invalid workspace_mode {policy.workspace_mode!r} (expected 'rw' or 'ro')"
    for name in ("memory_limit_mb", "cpu_seconds", "max_processes", "max_file_size_mb"):
        if int(getattr(policy, name)) < 1:
            return f"invalid sandbox policy: {name} must be >= 1"
    return None


def _check_inputs(command: str, workspace: Path,
                  timeout: float) -> tuple[Path, float] | CommandResult:
    """The resolved workspace and the timeout as a float, or the error result."""
    if not isinstance(command, str) or "\0" in command:
        return _error("invalid command (must be a string without NUL bytes)", timeout)
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        return _error(f"invalid timeout {timeout!r}")
    if not timeout > 0:
        return _error(f"invalid timeout {timeout!r} (must be > 0)", timeout)
    try:
        ws = Path(workspace).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        return _error(f"workspace does not exist: {workspace} ({exc})", timeout)
    if not ws.is_dir():
        return _error(f"workspace is not a directory: {workspace}", timeout)
    if ws == Path("/"):
        return _error("refusing to use / as the workspace", timeout)
    return ws, timeout


async def run_command(
    command: str,
    workspace: Path,
    policy: SandboxPolicy,
    *,
    timeout: float,
    output_limit: int = 64_000,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run ``bash -c command`` in ``workspace``; sandboxed when ``policy.enabled``.

    Never blocks the event loop.  ``timeout`` (seconds) bounds the whole run; on
    expiry the process tree is SIGKILLed, ``timed_out=True`` and ``exit_code=None``.
    Output beyond ``output_limit`` bytes is discarded (``truncated=True``) while the
    command keeps running.  ``env`` adds variables to the clean environment.
    If cancelled, the process tree is killed before the CancelledError propagates.
    """
    checked = _check_inputs(command, workspace, timeout)
    if isinstance(checked, CommandResult):
        return checked
    ws, timeout = checked

    fds: list[int] = []
    cgroup: Path | None = None
    watchdog_limit: int | None = None
    network: _Network | None = None
    if policy.enabled:
        if (bad := _validate_policy(policy)) is not None:
            return _error(bad, timeout)
        status = _status_cache
        if status is None or (status["bwrap"] and not os.access(status["bwrap"], os.X_OK)):
            # First use (or bwrap vanished): probe in a thread, not on the event loop.
            status = await asyncio.to_thread(_full_status, status is not None)
        else:
            status = dict(status)
        if not status["available"]:
            return _error(f"sandbox unavailable: {status['reason']}; {INSTALL_HINT}", timeout)
        if policy.network_enabled:
            if not status["network"]:
                return _error(f"network_enabled needs slirp4netns: {NETWORK_HINT}", timeout)
            network = _Network(status["network"])
        try:
            bw_argv, fds = _build_bwrap_argv(
                status["bwrap"], command, ws, policy, extra_env=env, chrt=status["chrt"],
                sync_fds=network.child_fds() if network else None,
            )
        except (ValueError, OSError) as exc:
            if network is not None:
                await network.close()
            return _error(f"cannot build sandbox: {exc}", timeout)
        if network is not None:
            fds += network.child_fds()
        argv, cgroup, watchdog_limit = _process_cap(
            status, policy, _prlimit_args(status["prlimit"], policy) + bw_argv)
        spawn_env = _launcher_env()
        cwd = "/"
    else:
        bash = _find_tool("bash")
        if not bash:
            return _error("bash not found", timeout)
        try:
            spawn_env = _command_env(str(ws), env)
        except ValueError as exc:
            return _error(str(exc), timeout)
        argv = [bash, "-c", command]
        cwd = str(ws)

    loop = asyncio.get_running_loop()
    started = time.monotonic()
    read_fd, write_fd = os.pipe()
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=cwd,
                env=spawn_env,
                start_new_session=True,
                pass_fds=fds,
            )
        finally:
            os.close(write_fd)
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
    except BaseException as exc:
        os.close(read_fd)
        if cgroup is not None:
            _spawn_background(_cgroup_remove(cgroup))
        if network is not None:
            _spawn_background(network.close())
        if isinstance(exc, OSError):
            return _error(f"cannot start command: {exc}", timeout)
        raise

    read_file = os.fdopen(read_fd, "rb", buffering=0)
    transport: asyncio.BaseTransport | None = None
    watchdog_task: asyncio.Future | None = None
    wait_task = asyncio.ensure_future(proc.wait())
    state: dict = {}
    timed_out = False
    strip = policy.enabled and policy.workspace_mode == "rw"
    try:
        done = loop.create_future()
        transport, collector = await loop.connect_read_pipe(
            lambda: _Collector(output_limit, done), read_file
        )
        if watchdog_limit is not None:
            watchdog_task = asyncio.ensure_future(_watchdog(proc, watchdog_limit, state))
        try:
            if network is not None:
                await network.attach(min(timeout, _NETWORK_SETUP_TIMEOUT))
            left = timeout - (time.monotonic() - started)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when
            # the task is cancelled in the step the command ends, and the cancel is lost.
            async with asyncio.timeout(max(left, 0.001)):
                await asyncio.shield(wait_task)
        except asyncio.TimeoutError:
            timed_out = True
        except _NetworkError as exc:
            state["network_error"] = str(exc)
        # Timeout, or normal exit: nothing may outlive the call (background children).
        _kill_tree(proc.pid, cgroup)
        await wait_task
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(_DRAIN_GRACE_SECONDS):
                await asyncio.shield(done)
    except BaseException:
        # Cancelled (or an unexpected error): kill everything before propagating.
        _kill_tree(proc.pid, cgroup)
        _spawn_background(_finish_killed(wait_task, cgroup, network, ws if strip else None))
        cgroup = network = None
        strip = False
        raise
    finally:
        if transport is not None:
            transport.close()
        else:
            read_file.close()
        if watchdog_task is not None:
            watchdog_task.cancel()
        if cgroup is not None:
            await _cgroup_remove(cgroup)
        if network is not None:
            await network.close()
    if strip:
        await asyncio.to_thread(strip_privileges, ws)
    if "network_error" in state:
        return _error(f"cannot start the sandbox's network: {state['network_error']}", timeout)

    exit_code = None if timed_out or state.get("killed") else proc.returncode
    return CommandResult(
        output=collector.text(),
        exit_code=exit_code,
        timed_out=timed_out,
        truncated=collector.truncated,
        killed=state.get("killed"),
        timeout=timeout,
        duration=time.monotonic() - started,
        output_bytes=collector.total,
    )


# --------------------------------------------------------------------------- formatting


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}"


def format_result(result: CommandResult) -> str:
    """Text given back to the model: the output plus note lines, or the error."""
    if result.error:
        return f"[error: {result.error}]"
    parts = [result.output.rstrip("\n")] if result.output else []
    notes = []
    if result.truncated:
        shown = len(result.output.encode("utf-8", errors="replace"))
        total = f" of {result.output_bytes}" if result.output_bytes else ""
        notes.append(f"[output truncated: showing the first {shown}{total} bytes]")
    if result.timed_out:
        notes.append(
            f"[timed out after {_fmt_seconds(result.timeout)} s; process tree killed]"
        )
    elif result.killed:
        notes.append(f"[killed: {result.killed}; process tree killed]")
    elif result.exit_code is not None and result.exit_code < 0:
        try:
            name = signal.Signals(-result.exit_code).name
        except ValueError:
            name = f"signal {-result.exit_code}"
        notes.append(f"[killed by {name}]")
    elif result.exit_code not in (0, None):
        hint = ""
        if 128 < result.exit_code <= 128 + 64:  # shell / bwrap convention for signals
            with contextlib.suppress(ValueError):
                hint = f" (128+{signal.Signals(result.exit_code - 128).name})"
        notes.append(f"[exit code {result.exit_code}{hint}]")
    if not parts and not notes:
        return "(no output)"
    return "\n".join(parts + notes)
