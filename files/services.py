"""The files of a user's workspace over HTTP: list, download, upload, mkdir, rename, delete.

Every path goes through ``agents.fs`` (resolved by the kernel beneath the workspace root);
nothing here joins or checks paths itself. The workspace of a user is
``chats.store.workspace_for``: the one place that computes it.

Uploads never hold a file whole in memory. The server (daphne) hands a request's body to
the application only once it has read all of it, so one request can never be larger than
``GATEWAY_MAX_BODY_BYTES`` without costing that much memory; a larger file is sent in
parts (``offset``/``total``/``upload``), each part streamed to a staging folder outside
the workspace, and the parts are streamed into the workspace file (atomically) once the
last one arrived. Limits: ``GATEWAY_FILES_MAX_FILE_BYTES`` per file, and per workspace
its user's quota (``quota_for``: what an admin set, else ``GATEWAY_FILES_QUOTA_BYTES`` and
``GATEWAY_FILES_QUOTA_FILES``), the same quota the agent's `write` and `edit` tools are
held to; a refused upload stores nothing.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from django.conf import settings
from django.contrib.auth import get_user_model

from agents import fs
from chats.store import workspace_for
from files.models import WorkspaceQuota
from gateway.errors import GatewayError

# FsError codes as HTTP statuses: a refused path is the client's mistake (400/403), a
# clash with what is there a conflict (409).
_STATUS = {"invalid": 400, "outside": 403, "loop": 400, "not_found": 404,
           "not_regular": 409, "is_dir": 409, "not_dir": 409, "exists": 409,
           "too_large": 413, "too_deep": 409, "timeout": 504}
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
ABANDONED_AFTER = 24 * 3600  # seconds an unfinished upload's parts are kept


def gateway_error(exc: fs.FsError) -> GatewayError:
    """An ``agents.fs`` refusal as the gateway's one error type."""
    return GatewayError(exc.code, exc.message, _STATUS.get(exc.code, 500))


def owner_of(caller: Any, requested: str | None) -> Any:
    """The user whose workspace is acted on: the caller, or (admins only) ``?user=``,
    given as an id or a username. Digits name the user with that id if there is one,
    else the user with that username (usernames may be all digits)."""
    if not requested:
        return caller
    if not caller.is_staff:
        if requested in (str(caller.pk), caller.username):
            return caller
        raise GatewayError("forbidden", "Only admins may act on another user's workspace.",
                           403)
    users = get_user_model().objects
    found = None
    if requested.isascii() and requested.isdigit() and len(requested) <= 18:  # a bigint
        found = users.filter(pk=int(requested)).first()
    if found is None:
        found = users.filter(username=requested).first()
    if found is None:
        raise GatewayError("not_found", f"No such user: {requested!r}.", 404)
    return found


def open_workspace(user: Any) -> fs.Workspace:
    return fs.Workspace(workspace_for(user))


def _path(raw: Any, *, root_ok: bool = False) -> str:
    if root_ok and raw in (None, ""):
        raw = "."
    try:
        path = fs.clean(raw)
    except fs.FsError as exc:
        raise gateway_error(exc) from None
    if path in (".", "./") and not root_ok:
        raise GatewayError("invalid", "Name a file or folder inside the workspace, not "
                                      "the workspace itself.", 400)
    return path


# --- looking -------------------------------------------------------------------------

def listing(user: Any, raw_path: str | None) -> dict[str, Any]:
    """The entries of a folder: name, type, size, modified (links are reported, not
    followed)."""
    path = _path(raw_path, root_ok=True)
    with open_workspace(user) as ws:
        try:
            entries = ws.listdir(path)
        except fs.FsError as exc:
            raise gateway_error(exc) from None
    return {"path": path, "entries": [
        {"name": e.name, "type": e.kind, "size": e.size, "modified": e.mtime}
        for e in entries if not _is_temporary(e.name)]}


def _is_temporary(name: str) -> bool:
    """The half-written temporaries of ``fs.write_bytes`` (``.<name>.<hex>.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


# --- downloading ---------------------------------------------------------------------

@dataclass
class Download:
    handle: BinaryIO
    name: str
    size: int  # the whole file
    start: int
    length: int  # bytes to send from start
    partial: bool


def open_download(user: Any, raw_path: str | None, range_header: str | None) -> Download:
    """The file opened for reading (regular files only), at the requested range."""
    path = _path(raw_path)
    with open_workspace(user) as ws:
        try:
            handle, info = ws.open_read(path)
        except fs.FsError as exc:
            raise gateway_error(exc) from None
    try:
        span = parse_range(range_header, info.st_size)
    except GatewayError:
        handle.close()
        raise
    start, end = span if span else (0, info.st_size - 1)
    handle.seek(start)
    return Download(handle, path.rstrip("/").rpartition("/")[2], info.st_size, start,
                    max(end - start + 1, 0), span is not None)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as (first, last) byte, or None for the whole file (also for
    several ranges, which RFC 9110 lets a server ignore); 416 when unsatisfiable."""
    match = _RANGE.match((header or "").strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise GatewayError("range_not_satisfiable",
                           f"The range {header!r} is outside the file's {size} bytes.", 416,
                           {"size": size})
    return start, end


def read_span(handle: BinaryIO, length: int) -> Iterator[bytes]:
    """``length`` bytes from the handle's position, a chunk at a time."""
    left = length
    while left > 0:
        chunk = handle.read(min(fs.CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


# --- limits --------------------------------------------------------------------------

def check_size(size: int) -> None:
    limit = settings.GATEWAY_FILES_MAX_FILE_BYTES
    if size > limit:
        raise GatewayError("file_too_large", f"The file has {size} bytes; the limit per "
                                             f"file is {limit} bytes.", 413,
                           {"limit": limit})


def _own_quota(user_id: int) -> WorkspaceQuota | None:
    return WorkspaceQuota.objects.filter(user_id=user_id).first()


def quota_for(user_id: int) -> fs.Quota:
    """The quota of the user's workspace: his own values where an admin set them, the
    defaults (``GATEWAY_FILES_QUOTA_BYTES``/``_FILES``) for the rest."""
    own = _own_quota(user_id)
    return fs.Quota(
        own.quota_bytes if own and own.quota_bytes is not None
        else settings.GATEWAY_FILES_QUOTA_BYTES,
        own.quota_files if own and own.quota_files is not None
        else settings.GATEWAY_FILES_QUOTA_FILES)


def check_quota(ws: fs.Workspace, limit: fs.Quota, adding_bytes: int, adding_files: int,
                replacing: str | None = None) -> None:
    """409 ``quota_exceeded`` when the workspace would hold more bytes or files than its
    quota (what a replaced file held is given back)."""
    try:
        ws.check_quota(limit, adding_bytes, adding_files, replacing=replacing)
    except fs.QuotaExceeded as exc:
        raise GatewayError("quota_exceeded", exc.message, 409, {
            "quota_bytes": limit.max_bytes, "quota_files": limit.max_files,
            "used_bytes": exc.used.bytes, "used_files": exc.used.files}) from None


def quota(user: Any) -> dict[str, int]:
    """The workspace's usage and the limits in force."""
    limit = quota_for(user.pk)
    with open_workspace(user) as ws:
        used = ws.usage()
    return {"used_bytes": used.bytes, "used_files": used.files,
            "quota_bytes": limit.max_bytes, "quota_files": limit.max_files,
            "max_file_bytes": settings.GATEWAY_FILES_MAX_FILE_BYTES,
            "max_part_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}


def quota_detail(user: Any) -> dict[str, Any]:
    """``quota`` plus whose it is, what an admin set (null: the default) and the
    defaults."""
    own = _own_quota(user.pk)
    return {"user": user.get_username(), **quota(user),
            "own": {"quota_bytes": own.quota_bytes if own else None,
                    "quota_files": own.quota_files if own else None},
            "default": {"quota_bytes": settings.GATEWAY_FILES_QUOTA_BYTES,
                        "quota_files": settings.GATEWAY_FILES_QUOTA_FILES}}


def set_quota(user: Any, changes: dict[str, int | None]) -> dict[str, Any]:
    """An admin sets the user's own quota (``quota_bytes``, ``quota_files``; None goes
    back to the default). It applies to the next upload and the next tool call."""
    own = _own_quota(user.pk) or WorkspaceQuota(user=user)
    for key in ("quota_bytes", "quota_files"):
        if key in changes:
            setattr(own, key, changes[key])
    own.save()
    return quota_detail(user)


# --- uploading -----------------------------------------------------------------------

def stream_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """A request body, read a chunk at a time."""
    return iter(lambda: stream.read(fs.CHUNK), b"")


def store(user: Any, raw_path: str | None, chunks: Iterable[bytes], size: int) -> dict:
    """One whole file of ``size`` bytes (as declared), streamed into the workspace."""
    path = _path(raw_path)
    check_size(size)
    limit = quota_for(user.pk)
    with open_workspace(user) as ws:
        try:
            check_quota(ws, limit, size, 1, replacing=path)
            written = ws.write_bytes(path, chunks, max_bytes=min(
                size, settings.GATEWAY_FILES_MAX_FILE_BYTES))
        except fs.FsError as exc:
            raise gateway_error(exc) from None
    return {"path": path, "size": written}


def store_many(user: Any, raw_folder: str | None, uploads: list[Any]) -> list[dict]:
    """Several uploaded files (Django ``UploadedFile``s, each at most the request body
    limit) into one folder under their own names; the limits are checked for all of them
    first, so a refusal stores none."""
    folder = _path(raw_folder, root_ok=True).rstrip("/")
    for upload in uploads:
        check_size(upload.size)
    with open_workspace(user) as ws:
        try:
            check_quota(ws, quota_for(user.pk), sum(u.size for u in uploads), len(uploads))
        except fs.FsError as exc:
            raise gateway_error(exc) from None
    return [store(user, f"{folder}/{upload.name}", upload.chunks(fs.CHUNK), upload.size)
            for upload in uploads]


def _staging(user: Any) -> fs.Workspace:
    """Parts of unfinished uploads: outside the workspace, so neither the agent nor the
    quota sees half a file."""
    return fs.Workspace(Path(settings.GATEWAY_DATA_DIR) / "upload-parts" / str(user.pk))


def store_part(user: Any, raw_path: str | None, chunks: Iterable[bytes], offset: int,
               total: int, upload: str | None) -> dict:
    """One part of a file of ``total`` bytes, at ``offset``. The first part (offset 0)
    starts an upload and answers its id; the part that completes it moves the file in."""
    path = _path(raw_path)
    check_size(total)
    limit = quota_for(user.pk)
    with open_workspace(user) as ws, _staging(user) as parts:
        try:
            if offset == 0 and not upload:
                check_quota(ws, limit, total, 1, replacing=path)
                _drop_abandoned(parts)
                upload = uuid.uuid4().hex
            elif not upload or not _UPLOAD_ID.match(upload) or not parts.is_dir(upload):
                raise GatewayError("unknown_upload", "Start an upload with offset=0 and "
                                                     "send its 'upload' id with each part.", 404)
            received = parts.usage(upload).bytes if parts.is_dir(upload) else 0
            if offset != received:
                raise GatewayError("offset_mismatch", f"The upload has {received} bytes; "
                                   f"send the part at offset {received}.", 409,
                                   {"received": received})
            received += parts.write_bytes(f"{upload}/{offset:016d}", chunks,
                                          max_bytes=total - offset)
            if received < total:
                return {"upload": upload, "received": received, "size": total}
            check_quota(ws, limit, total, 1, replacing=path)
            written = ws.write_bytes(path, _joined(parts, upload), max_bytes=total)
        except fs.FsError as exc:
            if upload and exc.code == "too_large":
                parts.remove(upload, missing_ok=True)
            raise gateway_error(exc) from None
        except GatewayError as err:
            if upload and err.code == "quota_exceeded":
                parts.remove(upload, missing_ok=True)
            raise
        parts.remove(upload, missing_ok=True)
    return {"path": path, "size": written}


def _drop_abandoned(parts: fs.Workspace) -> None:
    """Parts of the user's uploads untouched for a day: given up on, so removed."""
    cutoff = time.time() - ABANDONED_AFTER
    for entry in parts.listdir("."):
        if entry.kind == "dir" and _UPLOAD_ID.match(entry.name) and entry.mtime < cutoff:
            parts.remove(entry.name, missing_ok=True)


def _joined(parts: fs.Workspace, upload: str) -> Iterator[bytes]:
    for entry in parts.listdir(upload):
        handle, _ = parts.open_read(f"{upload}/{entry.name}")
        with handle:
            yield from iter(lambda: handle.read(fs.CHUNK), b"")


# --- changing ------------------------------------------------------------------------

def make_folder(user: Any, raw_path: Any) -> dict:
    path = _path(raw_path)
    with open_workspace(user) as ws:
        try:
            ws.mkdir(path)
        except fs.FsError as exc:
            raise gateway_error(exc) from None
    return {"path": path, "type": "dir"}


def rename(user: Any, raw_src: Any, raw_dst: Any, replace: bool) -> dict:
    src, dst = _path(raw_src), _path(raw_dst)
    with open_workspace(user) as ws:
        try:
            ws.rename(src, dst, replace=replace)
        except fs.FsError as exc:
            raise gateway_error(exc) from None
    return {"path": dst, "from": src}


def delete(user: Any, raw_path: Any) -> None:
    path = _path(raw_path)
    with open_workspace(user) as ws:
        try:
            ws.remove(path)
        except fs.FsError as exc:
            raise gateway_error(exc) from None
