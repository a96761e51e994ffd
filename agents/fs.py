"""Race-free file access inside a workspace: the only way server code touches one.

Why: a workspace is shared with code the user runs (``bash``, in the sandbox or not), and
that code can swap any folder for a symlink at any instant. Checking a resolved path and
then opening it again ("check, then use") can be raced; here the check and the use are
one kernel operation. Every path is resolved by the kernel relative to an open file
descriptor of the workspace root, with ``openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)``
(Linux 5.6+, called through ``ctypes``), or, where ``openat2`` is missing (ENOSYS or a
seccomp filter), by a walk that opens one component at a time with ``O_NOFOLLOW``
relative to the previous one and expands symlinks itself. Symlinks that stay inside the
workspace work; nothing ever resolves outside it, whatever runs concurrently.

API (paths are workspace-relative strings; ``clean`` maps what a model or client sends)
----------------------------------------------------------------------------------------
``clean(raw) -> str``
    Validate a raw path: non-empty string, no NUL; ``/workspace/x`` (what the sandbox
    shows) becomes ``x``; other absolute paths and ``~`` are refused. ``..`` is left to
    the kernel, which refuses it once it would leave the root.
``Workspace(root, create=True)``  (a context manager; ``close()`` releases the fd)
    ``stat(path, follow=True) -> os.stat_result``
    ``kind(path, follow=True) -> "file"|"dir"|"link"|"other"|None``
    ``exists(path) / is_file(path) / is_dir(path) -> bool``
    ``listdir(path=".") -> list[Entry]``  (name, kind file|dir|link|other, size, mtime,
    mode; links are reported, not followed)
    ``open_read(path) -> (BinaryIO, os.stat_result)``  regular files only: opened with
    ``O_NONBLOCK`` and checked with ``fstat`` before a byte is read, so a FIFO, socket or
    device is refused at once. Seek on it for ranged downloads.
    ``read_text(path, max_chars, offset=None, limit=None, deadline=None) -> TextRead``
    streams: never more than ``max_chars`` (plus one chunk) is held, whatever the size.
    ``read_bytes(path, max_bytes) -> bytes``  (``FsError('too_large')`` past the cap)
    ``write_bytes(path, data, parents=True, max_bytes=None, mode=None, mtime_ns=None,
    deadline=None) -> int``  atomic: a temporary file in the same folder, then
    ``renameat``. ``data`` is bytes or an iterable of chunks (a streamed upload). A
    symlink at ``path`` that stays inside is written through (its target is replaced);
    an existing file keeps its permission bits, a new one gets 0600.
    ``create_exclusive(path, data) -> bool``  ``O_CREAT|O_EXCL``; False if it exists.
    ``edit_text(path, old, new, replace_all=False, max_bytes=..., quota=None) -> int``
    (with ``quota``: the edited file must fit it, else ``QuotaExceeded`` and no change)
    ``mkdir(path, parents=True)``  (folders 0700)
    ``rename(src, dst, replace=False)``  (``renameat2(RENAME_NOREPLACE)`` unless replace)
    ``remove(path)``  a file or link (never what it points to) or a whole folder,
    removed by walking directory fds with ``O_NOFOLLOW``.
    ``usage(path=".") -> Usage``  files and bytes (apparent and on disk), for quotas.
    ``check_quota(quota, adding_bytes, adding_files, replacing=None) -> Usage``
    ``QuotaExceeded`` (an ``FsError``, code ``quota_exceeded``) when the workspace would
    hold more than ``quota`` (a ``Quota(max_bytes, max_files)``); a regular file at
    ``replacing`` gives its bytes and its count back. Checked before a write, not
    atomically with it: concurrent writers can each pass the check.
``FsError(code, message)``  every refusal; ``code`` is one of ``CODES`` (e.g. ``outside``,
``not_found``, ``not_regular``, ``too_large``, ``timeout``) so an HTTP layer can map it.
``FileRunner(workers, timeout)``  a small thread pool of its own with a per-operation
timeout (``FsError('timeout')``): file work of one user can never take the threads the
other users' turns need. ``await runner.run(fn, timeout=None)`` calls ``fn(deadline)``
in the pool. ``shared_runner()`` is the process's one runner.

Modes: files the server creates get 0600, folders 0700 (the sandbox user maps to the
server's uid); setuid, setgid and sticky bits are never set. Operations are atomic for
concurrent readers, not durable across a crash (no fsync).
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import errno
import os
import platform
import secrets
import stat as st
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, TypeVar

T = TypeVar("T")

SANDBOX_ROOT = "/workspace"
CHUNK = 1024 * 1024  # bytes read or written per system call in streaming loops
MAX_LINKS = 40  # symlinks expanded per path, as the kernel allows
MAX_DEPTH = 256  # folder depth a removal or usage walk goes down
FILE_MODE = 0o600
DIR_MODE = 0o700
CODES = ("invalid", "outside", "loop", "not_found", "not_regular", "is_dir", "not_dir",
         "exists", "binary", "no_match", "ambiguous", "too_large", "too_deep", "not_utf8",
         "timeout", "io", "quota_exceeded")

# openat2(2): the syscall number is the same on x86_64 and aarch64 (the generic table).
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}.get(platform.machine())
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08
_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class FsError(Exception):
    """A refused or failed workspace operation; ``message`` is fit for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "file" | "dir" | "link" | "other"
    size: int
    mtime: float
    mode: int  # permission bits only


@dataclass(frozen=True)
class TextRead:
    text: str
    size: int  # the file's size in bytes
    truncated: bool  # more would have followed past max_chars


@dataclass(frozen=True)
class Usage:
    files: int
    bytes: int  # apparent size (st_size)
    disk_bytes: int  # allocated blocks (a sparse file costs what it holds)


@dataclass(frozen=True)
class Quota:
    """What a workspace may hold: bytes (apparent sizes of its regular files) and files."""

    max_bytes: int
    max_files: int

    def exceeded_by(self, used: Usage) -> bool:
        return used.bytes > self.max_bytes or used.files > self.max_files


class QuotaExceeded(FsError):
    """A write would take the workspace past its quota; nothing was written."""

    def __init__(self, quota: Quota, used: Usage, size: int, files: int) -> None:
        super().__init__("quota_exceeded", (
            f"The workspace would hold {size} bytes in {files} files; its quota is "
            f"{quota.max_bytes} bytes and {quota.max_files} files (it holds {used.bytes} "
            f"bytes in {used.files} files now). Nothing was written: delete something "
            "first."))
        self.quota = quota
        self.used = used


# --- path resolution in the kernel -------------------------------------------------------

def clean(raw: object) -> str:
    """``raw`` as a workspace-relative path; FsError('invalid'/'outside') if it cannot be."""
    if not isinstance(raw, str) or not raw.strip():
        raise FsError("invalid", "'path' must be a non-empty string")
    if "\x00" in raw:
        raise FsError("invalid", "'path' must not contain NUL bytes")
    path = raw.strip()
    if path == SANDBOX_ROOT or path.startswith(SANDBOX_ROOT + "/"):
        path = path[len(SANDBOX_ROOT):].lstrip("/") or "."
    if path.startswith("/") or path.startswith("~"):
        raise FsError("outside", f"{raw!r} is outside the workspace: use a path relative "
                                 "to it")
    return path


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def _openat2(dir_fd: int, path: str, flags: int, mode: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
    encoded = os.fsencode(path)
    for _ in range(64):  # EAGAIN: a concurrent rename somewhere; the kernel asks to retry
        fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd),
                           ctypes.c_char_p(encoded), ctypes.byref(how),
                           ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR):
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def _probe_openat2() -> bool:
    if _SYS_OPENAT2 is None:
        return False
    root = os.open("/", os.O_PATH | os.O_CLOEXEC)
    try:
        os.close(_openat2(root, ".", os.O_PATH, 0))
    except OSError as exc:  # ENOSYS: old kernel; EPERM: a seccomp filter refusing it
        if exc.errno in (errno.ENOSYS, errno.EPERM):
            return False
        raise
    finally:
        os.close(root)
    return True


HAVE_OPENAT2 = _probe_openat2()


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _walk_open(root_fd: int, path: str, flags: int, mode: int) -> int:
    """The openat2 fallback: one ``O_NOFOLLOW`` open per component, relative to the last.

    ``..`` pops our own stack of folder fds (never the kernel's idea of the parent), so it
    can't climb above the root; symlinks are read with ``readlinkat`` and expanded here.
    A component swapped for a link after it was looked at fails the ``O_NOFOLLOW`` open.
    """
    parts = _split(path)
    stack: list[int] = []
    links = 0
    try:
        while True:
            here = stack[-1] if stack else root_fd
            if not parts:
                return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=here)
            name = parts.pop(0)
            if name == "..":
                if not stack:
                    raise OSError(errno.EXDEV, "outside the workspace", path)
                os.close(stack.pop())
                continue
            last = not parts
            if not (last and flags & os.O_NOFOLLOW):
                target = _readlink(here, name)
                if target is not None:
                    links += 1
                    if links > MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    if target.startswith("/"):
                        raise OSError(errno.EXDEV, "outside the workspace", path)
                    parts[:0] = _split(target)
                    continue
            if last:
                return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=here)
            stack.append(os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, dir_fd=here))
    finally:
        for fd in stack:
            os.close(fd)


def _readlink(dir_fd: int, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
            return None  # not a link (or not there: the open that follows says so)
        raise


def _fs_error(exc: OSError, path: str) -> FsError:
    """An OSError of a workspace operation in the user's terms."""
    shown = repr(path)
    messages = {
        errno.EXDEV: ("outside", f"{shown} resolves outside the workspace; refused"),
        errno.ELOOP: ("loop", f"{shown} goes through a symlink loop"),
        errno.ENOENT: ("not_found", f"{shown} does not exist"),
        errno.ENOTDIR: ("not_dir", f"a folder in {shown} is not a folder"),
        errno.EISDIR: ("is_dir", f"{shown} is a folder"),
        errno.EEXIST: ("exists", f"{shown} already exists"),
        errno.ENOTEMPTY: ("exists", f"{shown} is a folder that is not empty"),
        errno.ENAMETOOLONG: ("invalid", f"{shown[:80]} is too long a path"),
        # A socket (or a FIFO opened for writing with no reader) cannot be opened at all.
        errno.ENXIO: ("not_regular", f"{shown} is not a regular file (a FIFO, socket or "
                                     "device); refused"),
    }
    code, message = messages.get(exc.errno, ("io", f"{shown}: {exc.strerror or exc}"))
    return FsError(code, message)


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise FsError("timeout", "the file operation took too long and was stopped")


def _kind(mode: int) -> str:
    if st.S_ISREG(mode):
        return "file"
    if st.S_ISDIR(mode):
        return "dir"
    return "link" if st.S_ISLNK(mode) else "other"


# --- the workspace ------------------------------------------------------------------------

class Workspace:
    """One workspace folder, held open; every path resolves beneath it in the kernel.

    The root path itself is the server's (``GATEWAY_WORKSPACE/<user>``) and is trusted;
    everything below it is the user's and is not.
    """

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = Path(root)
        if create:
            self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The one place a path becomes an fd.
    def _open(self, path: str, flags: int, mode: int = 0) -> int:
        try:
            if HAVE_OPENAT2:
                return _openat2(self.fd, path, flags, mode)
            return _walk_open(self.fd, path, flags, mode)
        except OSError as exc:
            raise _fs_error(exc, path) from None

    def _parent(self, path: str) -> tuple[int, str]:
        """An fd of the folder that holds ``path``'s last component, and that name."""
        head, _, name = path.rstrip("/").rpartition("/")
        if name in ("", ".", ".."):
            raise FsError("is_dir", f"{path!r} names a folder, not a file")
        return self._open(head or ".", os.O_PATH | os.O_DIRECTORY), name

    def _final(self, path: str) -> str:
        """``path`` with a symlink in its last component replaced by the link's target
        (still checked beneath the root when it is opened): writes go through links
        that stay inside instead of replacing them."""
        for _ in range(MAX_LINKS):
            try:
                fd, name = self._parent(path)
            except FsError as exc:
                if exc.code in ("not_found", "not_dir"):
                    return path  # no folder yet, so no link: write_bytes makes them
                raise
            try:
                target = _readlink(fd, name)
            finally:
                os.close(fd)
            if target is None:
                return path
            if target.startswith("/"):
                raise FsError("outside", f"{path!r} resolves outside the workspace; refused")
            head = path.rstrip("/").rpartition("/")[0]
            path = f"{head}/{target}" if head else target
        raise FsError("loop", f"{path!r} goes through a symlink loop")

    # --- looking ---------------------------------------------------------------------
    def stat(self, path: str, *, follow: bool = True) -> os.stat_result:
        fd = self._open(path, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def kind(self, path: str, *, follow: bool = True) -> str | None:
        """"file", "dir", "link" (only with ``follow=False``), "other", or None if the
        path does not resolve (missing, outside, a loop)."""
        try:
            return _kind(self.stat(path, follow=follow).st_mode)
        except FsError:
            return None

    def exists(self, path: str) -> bool:
        return self.kind(path) is not None

    def is_file(self, path: str) -> bool:
        return self.kind(path) == "file"

    def is_dir(self, path: str) -> bool:
        return self.kind(path) == "dir"

    def listdir(self, path: str = ".") -> list[Entry]:
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with os.scandir(fd) as entries:
                found = []
                for entry in entries:
                    info = entry.stat(follow_symlinks=False)
                    found.append(Entry(entry.name, _kind(info.st_mode), info.st_size,
                                       info.st_mtime, st.S_IMODE(info.st_mode)))
        finally:
            os.close(fd)
        return sorted(found, key=lambda e: e.name)

    # --- reading ---------------------------------------------------------------------
    def open_read(self, path: str) -> tuple[BinaryIO, os.stat_result]:
        """A regular file opened for reading. ``O_NONBLOCK`` makes the open of a FIFO
        return at once; ``fstat`` then refuses everything that is not a regular file."""
        fd = self._open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            info = os.fstat(fd)
            if st.S_ISDIR(info.st_mode):
                raise FsError("is_dir", f"{path!r} is a folder")
            if not st.S_ISREG(info.st_mode):
                raise FsError("not_regular", f"{path!r} is not a regular file (a FIFO, "
                                             "socket or device); refused")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb", buffering=0), info
        except BaseException:
            os.close(fd)
            raise

    def read_bytes(self, path: str, max_bytes: int) -> bytes:
        handle, info = self.open_read(path)
        with handle:
            if info.st_size > max_bytes:
                raise FsError("too_large", f"{path!r} has {info.st_size} bytes, over the "
                                           f"{max_bytes}-byte limit")
            data = handle.read(max_bytes + 1)  # a file growing meanwhile is caught too
        if len(data) > max_bytes:
            raise FsError("too_large", f"{path!r} is over the {max_bytes}-byte limit")
        return data

    def read_text(self, path: str, max_chars: int, *, offset: int | None = None,
                  limit: int | None = None, deadline: float | None = None) -> TextRead:
        """Up to ``max_chars`` of the file's text from line ``offset`` (1-based), at most
        ``limit`` lines. Streams in chunks: memory is bounded by ``max_chars`` and
        ``CHUNK``, not the file's size. A NUL in the first 8 KiB means binary: refused."""
        handle, info = self.open_read(path)
        with handle:
            first = handle.read(CHUNK)
            if b"\x00" in first[:8192]:
                raise FsError("binary", f"{path!r} looks like a binary file "
                                        f"({info.st_size} bytes)")
            chunks = _chunks(handle, first, deadline)
            start = max(int(offset or 1), 1) - 1
            text, truncated = _take_lines(chunks, start, limit, max_chars)
        return TextRead(text, info.st_size, truncated)

    # --- writing ---------------------------------------------------------------------
    def write_bytes(self, path: str, data: bytes | Iterable[bytes], *, parents: bool = True,
                    max_bytes: int | None = None, mode: int | None = None,
                    mtime_ns: int | None = None, deadline: float | None = None) -> int:
        """Replace (or create) ``path`` atomically; returns the bytes written."""
        path = self._final(path)
        head = path.rstrip("/").rpartition("/")[0]
        if parents and head:
            self.mkdir(head)
        fd, name = self._parent(path)
        try:
            keep = self._existing_mode(fd, name, path)
            bits = (mode if mode is not None else keep if keep is not None else FILE_MODE)
            return _replace_at(fd, name, data, bits & 0o777, max_bytes, mtime_ns, deadline,
                               path)
        finally:
            os.close(fd)

    @staticmethod
    def _existing_mode(dir_fd: int, name: str, path: str) -> int | None:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if st.S_ISDIR(info.st_mode):
            raise FsError("is_dir", f"{path!r} is a folder")
        if not st.S_ISREG(info.st_mode) and not st.S_ISLNK(info.st_mode):
            raise FsError("not_regular", f"{path!r} is not a regular file (a FIFO, socket "
                                         "or device); refused")
        return st.S_IMODE(info.st_mode) if st.S_ISREG(info.st_mode) else None

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create ``path`` only if nothing (not even a dangling link) is there."""
        fd, name = self._parent(path)
        try:
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, FILE_MODE, dir_fd=fd)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _fs_error(exc, path) from None
        finally:
            os.close(fd)
        with os.fdopen(out, "wb") as handle:
            handle.write(data)
        return True

    def edit_text(self, path: str, old: str, new: str, *, replace_all: bool = False,
                  max_bytes: int = 8 * 1024 * 1024, quota: Quota | None = None) -> int:
        """Replace ``old`` (once, or everywhere); returns how many were replaced. With
        ``quota``, the edited file must fit the workspace's quota (else QuotaExceeded,
        and the file is left as it was)."""
        try:
            text = self.read_bytes(path, max_bytes).decode("utf-8")
        except UnicodeDecodeError:
            raise FsError("not_utf8", f"{path!r} is not UTF-8 text") from None
        count = text.count(old)
        if count == 0:
            raise FsError("no_match", "old_string was not found in the file")
        if count > 1 and not replace_all:
            raise FsError("ambiguous", f"old_string occurs {count} times; make it unique or "
                                    "set replace_all")
        data = text.replace(old, new).encode("utf-8")
        if quota is not None:
            self.check_quota(quota, len(data), 1, replacing=path)
        self.write_bytes(path, data, parents=False)
        return count if replace_all else 1

    def mkdir(self, path: str, *, parents: bool = True) -> None:
        """Create the folder (and its parents); an existing folder is fine."""
        parts = path.rstrip("/").split("/")
        steps = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)] if parents \
            else [path]
        for step in steps:
            if not step or self._dir_or_missing(step):
                continue
            fd, name = self._parent(step)
            try:
                os.mkdir(name, DIR_MODE, dir_fd=fd)
            except FileExistsError:
                pass  # made meanwhile, or a link/file: the check below says which
            except OSError as exc:
                raise _fs_error(exc, step) from None
            finally:
                os.close(fd)
            if _kind(self.stat(step).st_mode) != "dir":  # stat says if it leads outside
                raise FsError("not_dir", f"{step!r} exists and is not a folder")

    def _dir_or_missing(self, path: str) -> bool:
        """True for a folder, False when nothing is there; FsError for anything else
        (a file, a path leading outside, a loop)."""
        try:
            kind = _kind(self.stat(path).st_mode)
        except FsError as exc:
            if exc.code == "not_found":
                return False
            raise
        if kind != "dir":
            raise FsError("not_dir", f"{path!r} exists and is not a folder")
        return True

    def rename(self, src: str, dst: str, *, replace: bool = False) -> None:
        """Rename within the workspace; the names themselves are never followed."""
        sfd, sname = self._parent(src)
        try:
            dfd, dname = self._parent(dst)
            try:
                _rename_at(sfd, sname, dfd, dname, replace)
            except OSError as exc:
                raise _fs_error(exc, dst if exc.errno == errno.EEXIST else src) from None
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def remove(self, path: str, *, missing_ok: bool = False) -> None:
        """Remove a file or link (never its target) or a folder with all it holds."""
        fd, name = self._parent(path)
        try:
            _remove_at(fd, name)
        except FileNotFoundError:
            if not missing_ok:
                raise FsError("not_found", f"{path!r} does not exist") from None
        except OSError as exc:
            raise _fs_error(exc, path) from None
        finally:
            os.close(fd)

    def usage(self, path: str = ".") -> Usage:
        """Files and bytes under ``path`` (links not followed), for quota counting."""
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        total = [0, 0, 0]
        try:
            _usage_at(fd, total, 0)
        finally:
            os.close(fd)
        return Usage(*total)

    def check_quota(self, quota: Quota, adding_bytes: int, adding_files: int,
                    replacing: str | None = None) -> Usage:
        """The usage now, or QuotaExceeded when adding ``adding_files`` files of
        ``adding_bytes`` bytes would pass ``quota``; the regular file a write to
        ``replacing`` would replace (through a link that stays inside, as
        ``write_bytes`` does) gives its bytes and count back."""
        used = self.usage()
        files, size = used.files + adding_files, used.bytes + adding_bytes
        if replacing is not None:
            try:
                info = self.stat(self._final(replacing), follow=False)
            except FsError:
                info = None  # nothing there yet (or not writable: the write says why)
            if info is not None and st.S_ISREG(info.st_mode):
                files, size = files - 1, size - info.st_size
        if size > quota.max_bytes or files > quota.max_files:
            raise QuotaExceeded(quota, used, size, files)
        return used


# --- helpers of the operations ------------------------------------------------------------

def _chunks(handle: BinaryIO, first: bytes, deadline: float | None) -> Iterable[bytes]:
    chunk = first
    while chunk:
        _check(deadline)
        yield chunk
        chunk = handle.read(CHUNK)


def _take_lines(chunks: Iterable[bytes], start: int, limit: int | None,
                max_chars: int) -> tuple[str, bool]:
    """Lines ``start`` .. ``start + limit`` of the chunks, at most ``max_chars`` of text."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stop = None if limit is None else start + int(limit)
    out: list[str] = []
    size = line = 0
    for chunk in chunks:
        pos = 0
        while line < start and pos < len(chunk):  # skipping costs no memory
            newline = chunk.find(b"\n", pos)
            if newline < 0:
                break
            line, pos = line + 1, newline + 1
        if line < start:
            continue
        while pos < len(chunk) and (stop is None or line < stop):
            newline = chunk.find(b"\n", pos)
            end = len(chunk) if newline < 0 else newline + 1
            piece = decoder.decode(chunk[pos:end])
            out.append(piece)
            size += len(piece)
            pos = end
            line += newline >= 0
            if size > max_chars:
                return "".join(out)[:max_chars], True
        if stop is not None and line >= stop:
            break
    out.append(decoder.decode(b"", final=True))
    return "".join(out), False


def _replace_at(dir_fd: int, name: str, data: bytes | Iterable[bytes], mode: int,
                max_bytes: int | None, mtime_ns: int | None, deadline: float | None,
                path: str) -> int:
    """Write a temporary file next to ``name`` and rename it over ``name``."""
    tmp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
    try:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                      | os.O_CLOEXEC, FILE_MODE, dir_fd=dir_fd)
    except OSError as exc:
        raise _fs_error(exc, path) from None
    written = 0
    try:
        with os.fdopen(out, "wb") as handle:
            for chunk in ([data] if isinstance(data, (bytes, bytearray)) else data):
                _check(deadline)
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise FsError("too_large", f"{path!r} would be over the "
                                               f"{max_bytes}-byte limit")
                handle.write(chunk)
            os.fchmod(handle.fileno(), mode & 0o777)  # never setuid, setgid or sticky
            if mtime_ns is not None:
                os.utime(handle.fileno(), ns=(mtime_ns, mtime_ns))
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as exc:
        with _suppress_missing():
            os.unlink(tmp, dir_fd=dir_fd)
        if isinstance(exc, OSError):
            raise _fs_error(exc, path) from None
        raise
    return written


class _suppress_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        return kind is not None and issubclass(kind, FileNotFoundError)


def _rename_at(sfd: int, sname: str, dfd: int, dname: str, replace: bool) -> None:
    if replace:
        os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)
        return
    result = _libc.renameat2(sfd, os.fsencode(sname), dfd, os.fsencode(dname),
                             _RENAME_NOREPLACE)
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), dname)


def _remove_at(dir_fd: int, name: str) -> None:
    """unlink, or for a folder: walk it by fds opened with O_NOFOLLOW, then rmdir."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except IsADirectoryError:
        pass
    _clear_dir_at(dir_fd, name, 0)
    os.rmdir(name, dir_fd=dir_fd)


def _clear_dir_at(dir_fd: int, name: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise FsError("too_deep", f"folders nested deeper than {MAX_DEPTH}; not removed")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a link or file meanwhile
            return
        raise
    try:
        with os.scandir(fd) as entries:
            for entry in list(entries):
                if entry.is_dir(follow_symlinks=False):
                    _clear_dir_at(fd, entry.name, depth + 1)
                    os.rmdir(entry.name, dir_fd=fd)
                else:
                    os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)


def _usage_at(fd: int, total: list[int], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise FsError("too_deep", f"folders nested deeper than {MAX_DEPTH}")
    with os.scandir(fd) as entries:
        for entry in list(entries):
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile (a command runs in the workspace)
            if st.S_ISDIR(info.st_mode):
                try:
                    child = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                    | os.O_CLOEXEC, dir_fd=fd)
                except OSError:
                    continue  # swapped meanwhile: not counted this time
                try:
                    _usage_at(child, total, depth + 1)
                finally:
                    os.close(child)
            elif st.S_ISREG(info.st_mode):
                total[0] += 1
                total[1] += info.st_size
                total[2] += info.st_blocks * 512


# --- a bounded executor of its own --------------------------------------------------------

class FileRunner:
    """Runs file operations on ``workers`` threads of their own, each within ``timeout``
    seconds (queueing included): an operation that blocks or crawls ends as
    FsError('timeout'), and the shared default executor is never touched."""

    def __init__(self, workers: int = 4, timeout: float = 30.0) -> None:
        self.workers = workers
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers,
                                        thread_name_prefix="workspace-files")

    async def run(self, fn: Callable[[float], T], timeout: float | None = None) -> T:
        """``fn(deadline)`` in the pool, within ``timeout`` (the runner's by default);
        ``deadline`` (time.monotonic) lets long loops stop themselves, since a thread
        cannot be killed from outside."""
        seconds = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + seconds
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn, deadline)
        try:
            async with asyncio.timeout(seconds):  # not wait_for: it can swallow a cancel
                return await future
        except TimeoutError:
            raise FsError("timeout", f"the file operation did not finish within "
                                     f"{seconds:g} s and was abandoned") from None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_shared: list[FileRunner] = []


def shared_runner(workers: int = 4, timeout: float = 30.0) -> FileRunner:
    """The process's runner, made on first use with these settings (one pool per process:
    its bound is the point)."""
    if not _shared:
        _shared.append(FileRunner(workers, timeout))
    return _shared[0]
