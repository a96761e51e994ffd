"""The files API in process: list, download with ranges, upload whole, in parts and as
multipart, folders, rename, delete, limits and admins acting for a user."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from chats.store import workspace_for


def ws(actor: Any) -> Path:
    root = workspace_for(actor.user)
    root.mkdir(parents=True, exist_ok=True)
    return root


def body(response: Any) -> bytes:
    """The response's bytes; a download is an async iterator (as daphne reads it)."""
    if not response.streaming:
        return response.content

    async def gather() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])
    return asyncio.run(gather())


def put(actor: Any, path: str, data: bytes, **params: Any) -> Any:
    query = "&".join(f"{k}={v}" for k, v in {"path": path, **params}.items())
    return actor.client.put(f"/api/files/content?{query}", data,
                            content_type="application/octet-stream")


def test_it_lists_a_folder_with_types_sizes_and_times(alice: Any) -> None:
    (ws(alice) / "notes").mkdir()
    (ws(alice) / "a.txt").write_text("hello")

    response = alice.client.get("/api/files")

    assert response.status_code == 200
    entries = {e["name"]: e for e in response.json()["entries"]}
    assert entries["a.txt"]["type"] == "file" and entries["a.txt"]["size"] == 5
    assert entries["notes"]["type"] == "dir" and entries["a.txt"]["modified"] > 0
    assert response.json()["quota"]["used_files"] == 1


def test_it_uploads_a_file_and_downloads_it_back(alice: Any) -> None:
    response = put(alice, "docs/report.txt", b"line one\nline two\n")

    assert response.status_code == 201, response.content
    assert (ws(alice) / "docs/report.txt").read_bytes() == b"line one\nline two\n"
    got = alice.client.get("/api/files/content?path=docs/report.txt")
    assert got.status_code == 200
    assert got["Content-Disposition"] == "attachment; filename*=UTF-8''report.txt"
    assert body(got) == b"line one\nline two\n"


def test_it_answers_a_range_with_206(alice: Any) -> None:
    (ws(alice) / "digits").write_bytes(b"0123456789")

    got = alice.client.get("/api/files/content?path=digits", HTTP_RANGE="bytes=2-5")
    tail = alice.client.get("/api/files/content?path=digits", HTTP_RANGE="bytes=-3")
    bad = alice.client.get("/api/files/content?path=digits", HTTP_RANGE="bytes=20-")

    assert got.status_code == 206 and body(got) == b"2345"
    assert got["Content-Range"] == "bytes 2-5/10"
    assert body(tail) == b"789"
    assert bad.status_code == 416 and bad.json()["error"] == "range_not_satisfiable"


def test_it_assembles_an_upload_sent_in_parts(alice: Any) -> None:
    first = put(alice, "big.bin", b"a" * 10, offset=0, total=25)
    upload = first.json()["upload"]
    wrong = put(alice, "big.bin", b"b" * 10, offset=5, total=25, upload=upload)
    second = put(alice, "big.bin", b"b" * 10, offset=10, total=25, upload=upload)
    assert not (ws(alice) / "big.bin").exists()  # nothing in the workspace before the end
    last = put(alice, "big.bin", b"c" * 5, offset=20, total=25, upload=upload)

    assert first.status_code == 202 and second.json()["received"] == 20
    assert wrong.status_code == 409 and wrong.json()["error"] == "offset_mismatch"
    assert last.status_code == 201 and last.json() == {"path": "big.bin", "size": 25}
    assert (ws(alice) / "big.bin").read_bytes() == b"a" * 10 + b"b" * 10 + b"c" * 5


def test_it_uploads_several_files_as_multipart(alice: Any) -> None:
    files = [SimpleUploadedFile("one.txt", b"1"), SimpleUploadedFile("two.txt", b"22")]

    response = alice.client.post("/api/files/upload?path=in", {"file": files},
                                 format="multipart")

    assert response.status_code == 201, response.content
    assert (ws(alice) / "in/one.txt").read_bytes() == b"1"
    assert (ws(alice) / "in/two.txt").read_bytes() == b"22"


def test_it_makes_renames_and_deletes(alice: Any) -> None:
    made = alice.client.post("/api/files/folder", {"path": "a/b"}, format="json")
    (ws(alice) / "a/b/f.txt").write_text("x")
    moved = alice.client.post("/api/files/rename", {"path": "a/b/f.txt", "to": "a/g.txt"},
                              format="json")
    (ws(alice) / "a/h.txt").write_text("y")
    clash = alice.client.post("/api/files/rename", {"path": "a/g.txt", "to": "a/h.txt"},
                              format="json")
    gone = alice.client.delete("/api/files/content?path=a")

    assert made.status_code == 201 and moved.status_code == 200
    assert clash.status_code == 409 and clash.json()["error"] == "exists"
    assert gone.status_code == 204 and not (ws(alice) / "a").exists()


def test_a_file_over_the_size_limit_is_refused_with_413_and_not_stored(
        alice: Any, settings: Any) -> None:
    settings.GATEWAY_FILES_MAX_FILE_BYTES = 8

    whole = put(alice, "x.bin", b"123456789")
    parted = put(alice, "y.bin", b"1234", offset=0, total=9)

    assert whole.status_code == 413 and whole.json()["error"] == "file_too_large"
    assert parted.status_code == 413
    assert not (ws(alice) / "x.bin").exists() and not (ws(alice) / "y.bin").exists()


def test_the_quota_refuses_with_409_and_stores_nothing(alice: Any, settings: Any) -> None:
    settings.GATEWAY_FILES_QUOTA_BYTES = 10
    settings.GATEWAY_FILES_QUOTA_FILES = 2
    (ws(alice) / "old").write_bytes(b"12345678")

    too_big = put(alice, "new", b"12345")
    replaced = put(alice, "old", b"1234567890")  # replacing gives the old bytes back
    put(alice, "second", b"")
    too_many = put(alice, "third", b"")

    assert too_big.status_code == 409 and too_big.json()["error"] == "quota_exceeded"
    assert "quota" in too_big.json()["message"]
    assert replaced.status_code == 201
    assert too_many.status_code == 409
    assert sorted(p.name for p in ws(alice).iterdir()) == ["old", "second"]


def test_an_admin_acts_on_another_users_workspace(alice: Any, admin: Any) -> None:
    (ws(alice) / "mine.txt").write_text("alice's")

    by_name = admin.client.get("/api/files?user=alice")
    by_id = admin.client.get(f"/api/files/content?path=mine.txt&user={alice.user.pk}")

    assert [e["name"] for e in by_name.json()["entries"]] == ["mine.txt"]
    assert body(by_id) == b"alice's"


def test_an_admin_reaches_a_user_whose_username_is_all_digits(admin: Any) -> None:
    from django.contrib.auth import get_user_model

    digits = get_user_model().objects.create(username="4242")  # no user has id 4242
    (Path(workspace_for(digits)) / "note.txt").write_text("by name")

    by_name = admin.client.get("/api/files/content?path=note.txt&user=4242")
    by_id = admin.client.get(f"/api/files/content?path=note.txt&user={digits.pk}")
    huge = admin.client.get("/api/files?user=" + "9" * 40)

    assert body(by_name) == b"by name" and body(by_id) == b"by name"
    assert huge.status_code == 404 and huge.json()["error"] == "not_found"


def test_a_member_may_not_name_another_user(alice: Any, bob: Any) -> None:
    (ws(alice) / "secret").write_text("s")

    response = bob.client.get("/api/files/content?path=secret&user=alice")

    assert response.status_code == 403 and response.json()["error"] == "forbidden"


def test_it_requires_a_token(anon: Any) -> None:
    assert anon.get("/api/files").status_code == 401


def test_several_files_over_the_quota_store_none(alice: Any, settings: Any) -> None:
    settings.GATEWAY_FILES_QUOTA_FILES = 1
    files = [SimpleUploadedFile("one.txt", b"1"), SimpleUploadedFile("two.txt", b"2")]

    response = alice.client.post("/api/files/upload", {"file": files}, format="multipart")

    assert response.status_code == 409 and response.json()["error"] == "quota_exceeded"
    assert list(ws(alice).iterdir()) == []


def test_parts_of_an_upload_abandoned_for_a_day_are_dropped(alice: Any, settings: Any) -> None:
    started = put(alice, "old.bin", b"a" * 4, offset=0, total=8).json()["upload"]
    staged = Path(settings.GATEWAY_DATA_DIR) / "upload-parts" / str(alice.user.pk) / started
    day_ago = time.time() - 25 * 3600
    os.utime(staged, (day_ago, day_ago))

    put(alice, "new.bin", b"b" * 4, offset=0, total=8)

    assert not staged.exists()
