"""The files API against a real ``serve``: a 50 MB upload in parts keeps the server's
memory flat, comes back byte-identical through range requests, and the quota refuses
what would not fit without storing any of it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.e2e.server import ServeProcess

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data = tmp_path_factory.mktemp("files") / "data"
    with ServeProcess(data, env={"DATABASE_URL": "", "REDIS_URL": "",
                                 "GATEWAY_FILES_QUOTA_BYTES": str(60 * MB)}) as proc:
        yield proc


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def upload(http: httpx.Client, path: str, data: bytes, part: int) -> httpx.Response:
    """``data`` sent as parts of ``part`` bytes, the way the CLI and dashboard do."""
    upload_id = None
    for offset in range(0, len(data), part):
        params: dict[str, Any] = {"path": path, "offset": offset, "total": len(data)}
        if upload_id:
            params["upload"] = upload_id
        response = http.put("/api/files/content", params=params,
                            content=data[offset:offset + part])
        if response.status_code != 202:
            return response
        upload_id = response.json()["upload"]
    return response


def test_a_50_mb_upload_keeps_memory_flat_and_comes_back_by_ranges(
        server: ServeProcess) -> None:
    data = os.urandom(50 * MB)
    with server.client() as http:
        part = http.get("/api/files").json()["quota"]["max_part_bytes"]
        warm = upload(http, "warm.bin", os.urandom(4 * part), part)  # the same code paths
        assert warm.status_code == 201, warm.text
        http.get("/api/files/content", params={"path": "warm.bin"},
                 headers={"Range": "bytes=0-"})
        before = peak_rss(server.proc.pid)

        done = upload(http, "big/blob.bin", data, part)
        grown = peak_rss(server.proc.pid) - before

        assert done.status_code == 201, done.text
        assert done.json() == {"path": "big/blob.bin", "size": 50 * MB}
        assert grown < 10 * MB, f"the server's peak memory grew by {grown / MB:.1f} MB"
        halves = [http.get("/api/files/content", params={"path": "big/blob.bin"},
                           headers={"Range": span}) for span in
                  (f"bytes=0-{25 * MB - 1}", f"bytes={25 * MB}-")]
    assert [r.status_code for r in halves] == [206, 206]
    assert halves[1].headers["Content-Range"] == f"bytes {25 * MB}-{50 * MB - 1}/{50 * MB}"
    got = halves[0].content + halves[1].content
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_the_quota_answers_409_and_stores_nothing(server: ServeProcess) -> None:
    with server.client() as http:
        used = http.get("/api/files").json()["quota"]["used_bytes"]
        over = 60 * MB - used + 1
        first = http.put("/api/files/content",
                         params={"path": "over.bin", "offset": 0, "total": over},
                         content=b"x" * 1024)
        listing = http.get("/api/files").json()

    assert first.status_code == 409, first.text
    assert first.json()["error"] == "quota_exceeded"
    assert "over.bin" not in [e["name"] for e in listing["entries"]]
    assert listing["quota"]["used_bytes"] == used
    staged = server.data_dir / "upload-parts"
    assert not any(p.is_file() for p in staged.rglob("*"))
