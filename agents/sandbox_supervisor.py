"""The supervisor of a warm sandbox: pid 1 inside bubblewrap, one command at a time.

This file is not imported by the gateway: ``agents.warm`` runs it inside the sandbox as
``/usr/bin/python3 -I -S -c <BOOTSTRAP> <source fd> <socket fd> <bash>``: the host
distribution's Python under ``/usr``, so it uses the standard library only and nothing
newer than Python 3.9; the source comes through a pipe (``ps`` inside shows one short
line).

Protocol: one Unix stream socket to the gateway, frames of a 4-byte big-endian length
and a JSON object.  The supervisor sends ``{"op": "ready"}`` once; then, per request
``{"op": "run", "id", "command", "env", "timeout", "limit", "rlimits", "sched_idle"}``,
``{"op": "started", "id"}`` right after the fork and ``{"op": "result", "id", "exit",
"timed_out", "cancelled", "total", "output" (base64 of the first ``limit`` bytes),
"recycle"}`` once nothing of the call runs any more.  ``{"op": "kill", "id"}`` during a
call ends it (cancel).  End of file on the socket: the supervisor exits, and the kernel
ends the sandbox with it (it is pid 1).

Why pid 1 (``bwrap --as-pid-1``): the kernel drops every signal that processes of the
sandbox send to their namespace's init unless it handles it, SIGKILL and SIGSTOP
always; and orphans are re-parented to it. So after each call ``kill(-1, SIGKILL)``
kills every other process of the sandbox, ``setsid`` or not, and reaping until ECHILD
proves that none is left. The supervisor makes itself non-dumpable, so sandboxed code
(same uid) can neither ptrace it nor open its ``/proc/1/fd`` (its socket).
"""

import base64
import errno
import json
import os
import resource
import select
import signal
import struct
import sys
import time

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
WIPE_SECONDS = 2.0  # longer to clear /tmp: give up, exit, the host starts a fresh one
WIPE_DIRS = ("/tmp", "/dev/shm")
WORKDIR = "/workspace"
RLIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE,
    "nproc": resource.RLIMIT_NPROC,
    "core": resource.RLIMIT_CORE,
    "nice": resource.RLIMIT_NICE,
}


class Gone(Exception):
    """The gateway closed the socket."""


class Conn:
    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()

    def send(self, obj):
        data = json.dumps(obj, separators=(",", ":")).encode()
        view = memoryview(HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fd, view):]

    def recv(self):
        """The next frame (blocking)."""
        while True:
            if len(self.buf) >= HEADER.size:
                (size,) = HEADER.unpack_from(self.buf)
                if size > MAX_FRAME:
                    raise Gone("frame too large")
                if len(self.buf) >= HEADER.size + size:
                    raw = bytes(self.buf[HEADER.size:HEADER.size + size])
                    del self.buf[:HEADER.size + size]
                    return json.loads(raw)
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise Gone("end of file")
            self.buf += chunk


def non_dumpable():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE, 0
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def reap(main_pid):
    """Reap every exited child (orphans come to pid 1); the main child's wait status."""
    status = None
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == main_pid:
            status = st


def kill_all(main_pid):
    """SIGKILL every process of the sandbox but this one, and reap them all."""
    status = None
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            return status  # no child left: nothing runs in the sandbox but us
        if pid == main_pid:
            status = st


def child(command, env, rlimits, sched_idle, out_w, bash):
    """In the forked child: its own session, the call's limits, then exec bash."""
    try:
        os.setsid()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        if sched_idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        for name, (soft, hard) in rlimits.items():
            resource.setrlimit(RLIMITS[name], (int(soft), int(hard)))
        os.chdir(WORKDIR)
        os.execve(bash, [bash, "-c", command], env)
    except BaseException as exc:  # noqa: BLE001 - report and leave, whatever it was
        try:
            os.write(2, ("sandbox: cannot start the command: %s\n" % exc).encode())
        finally:
            os._exit(127)


def wait_status_code(status):
    if status is None:
        return None
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)  # what bwrap reports on the cold path
    return None


def read_into(fd, buf, limit, counts):
    """Read what the pipe has; False at end of file."""
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return True
    if not chunk:
        return False
    counts[0] += len(chunk)
    room = limit - len(buf)
    if room > 0:
        buf += chunk[:room]
    return True


def run(conn, req, wake_r, bash):
    call_id = req["id"]
    limit = max(0, int(req["limit"]))
    out_r, out_w = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(out_r)
        os.close(out_w)
        return {"op": "result", "id": call_id, "error": "cannot start command: %s" % exc}
    if pid == 0:
        os.close(out_r)
        child(req["command"], req["env"], req["rlimits"], req["sched_idle"], out_w, bash)
    os.close(out_w)
    conn.send({"op": "started", "id": call_id})
    os.set_blocking(out_r, False)
    buf, counts = bytearray(), [0]
    deadline = time.monotonic() + float(req["timeout"])
    status, timed_out, cancelled, open_ = None, False, False, True
    try:
        while status is None:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            fds = [wake_r, conn.fd] + ([out_r] if open_ else [])
            ready = select.select(fds, [], [], left)[0]
            if out_r in ready:
                open_ = read_into(out_r, buf, limit, counts)
            if wake_r in ready:
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            status = reap(pid)
            if conn.fd in ready and status is None:
                msg = conn.recv()
                if msg.get("op") == "kill":
                    cancelled = True
                    break
        # Exit, timeout or cancel: nothing of the call may outlive it.
        last = kill_all(pid)
        status = status if status is not None else last
        os.set_blocking(out_r, True)
        while open_:  # every writer is dead: the rest of the output, then end of file
            open_ = read_into(out_r, buf, limit, counts)
    finally:
        os.close(out_r)
    return {
        "op": "result", "id": call_id,
        "exit": None if timed_out or cancelled else wait_status_code(status),
        "timed_out": timed_out, "cancelled": cancelled, "total": counts[0],
        "output": base64.b64encode(bytes(buf)).decode("ascii"),
        "recycle": ipc_left(),
    }


def ipc_left():
    """SysV IPC objects outlive their processes (the IPC namespace is the sandbox's):
    if a call left some, this sandbox is not handed to the next call."""
    for kind in ("shm", "sem", "msg"):
        try:
            with open("/proc/sysvipc/" + kind) as fh:
                if len(fh.read().splitlines()) > 1:
                    return True
        except OSError:
            return True
    return False


def wipe(path, deadline):
    """Empty a directory, never following a link (nothing else runs any more)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        wipe_fd(fd, deadline, 0)
    finally:
        os.close(fd)


def wipe_fd(fd, deadline, depth):
    if depth > 200:
        raise OSError(errno.ELOOP, "too deep")
    with os.scandir(fd) as entries:
        names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in names:
        if time.monotonic() > deadline:
            raise TimeoutError("too much to clear")
        if not is_dir:
            os.unlink(name, dir_fd=fd)
            continue
        os.chmod(name, 0o700, dir_fd=fd)  # a directory the call made unreadable
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        try:
            wipe_fd(sub, deadline, depth + 1)
        finally:
            os.close(sub)
        os.rmdir(name, dir_fd=fd)


def main():
    sock, bash = int(sys.argv[2]), sys.argv[3]
    os.set_inheritable(sock, False)
    os.set_blocking(sock, True)
    conn = Conn(sock)
    try:
        # Whatever else bwrap handed down is not for the commands.
        for name in os.listdir("/proc/self/fd"):
            if int(name) not in (0, 1, 2, sock):
                try:
                    os.close(int(name))
                except OSError:
                    pass  # the listing's own fd
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as init: ignored from inside
        non_dumpable()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        if os.getpid() != 1:
            raise OSError("not pid 1 of the sandbox")
    except Exception as exc:  # noqa: BLE001
        conn.send({"op": "ready", "error": "%s: %s" % (type(exc).__name__, exc)})
        return
    conn.send({"op": "ready", "python": sys.version.split()[0]})
    while True:
        try:
            req = conn.recv()
        except Gone:
            return
        if req.get("op") != "run":
            continue
        try:
            result = run(conn, req, wake_r, bash)
        except Gone:
            kill_all(None)
            return
        conn.send(result)
        try:  # the next call starts with an empty /tmp, as on the cold path
            deadline = time.monotonic() + WIPE_SECONDS
            for path in WIPE_DIRS:
                wipe(path, deadline)
        except (OSError, TimeoutError, RecursionError):
            return  # too much or impossible to clear: end; the next call gets a new one


if __name__ == "__main__":
    main()
