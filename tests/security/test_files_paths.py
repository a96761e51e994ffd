"""Attacks on the files API through a real ``serve``: every path a client sends is
resolved beneath the caller's workspace by the kernel, so ``..``, absolute paths,
symlinks leading out and another user's workspace are refused, for reading and writing."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from tests.security.conftest import Gateway
from tests.security.sandbox_serve import user_id

# Workspaces are named "@<user id>"; the fixture links the victim's as "victimfiles-link".
ESCAPES = ["../victimfiles-link/secret.txt", "a/../../victimfiles-link/secret.txt",
           "/etc/passwd", "~/secret.txt", "/workspace/../victimfiles-link/secret.txt",
           "out/secret.txt", "out-file"]


@pytest.fixture(scope="module")
def actors(gateway: Gateway) -> dict[str, Any]:
    gateway.make_users(["filer", "victimfiles"])
    filer = gateway.workspaces / f"@{user_id(gateway.server, 'filer')}"
    victim = gateway.workspaces / f"@{user_id(gateway.server, 'victimfiles')}"
    for root in (filer, victim):
        root.mkdir(parents=True, exist_ok=True)
    os.symlink(victim.name, gateway.workspaces / "victimfiles-link")  # what ../ would reach
    (victim / "secret.txt").write_text("the victim's secret")
    (filer / "mine.txt").write_text("filer's own")
    os.symlink(victim, filer / "out")  # a link leading out of the workspace
    os.symlink(victim / "secret.txt", filer / "out-file")
    return {"gateway": gateway, "victim": victim, "filer": filer}


def client(actors: dict[str, Any], name: str) -> httpx.Client:
    gateway = actors["gateway"]
    return gateway.server.client(gateway.tokens[name])


@pytest.mark.parametrize("path", ESCAPES)
def test_reading_outside_the_workspace_is_refused(actors: dict[str, Any], path: str) -> None:
    with client(actors, "filer") as http:
        got = http.get("/api/files/content", params={"path": path})
        listed = http.get("/api/files", params={"path": path.rpartition("/")[0] or path})

    assert got.status_code in (400, 403, 404), got.text
    assert b"the victim's secret" not in got.content
    assert listed.status_code != 200 or "secret.txt" not in listed.text


@pytest.mark.parametrize("path", ESCAPES)
def test_writing_outside_the_workspace_is_refused(actors: dict[str, Any], path: str) -> None:
    with client(actors, "filer") as http:
        moved = http.post("/api/files/rename", json={"path": "mine.txt", "to": path})
        put = http.put("/api/files/content", params={"path": path}, content=b"overwritten")
        removed = http.delete("/api/files/content", params={"path": path})

    assert put.status_code in (400, 403, 404), put.text
    assert (actors["victim"] / "secret.txt").read_text() == "the victim's secret"
    assert moved.status_code in (400, 403, 404, 409), moved.text  # 409: the link is there
    assert (actors["filer"] / "mine.txt").exists()
    # Removing the link "out-file" removes the link only, never what it points to.
    assert removed.status_code in (204, 400, 403, 404)
    assert (actors["victim"] / "secret.txt").exists()


def test_a_member_cannot_name_another_users_workspace(actors: dict[str, Any]) -> None:
    with client(actors, "filer") as http:
        got = http.get("/api/files/content", params={"path": "secret.txt",
                                                     "user": "victimfiles"})
        put = http.put("/api/files/content", params={"path": "x", "user": "victimfiles"},
                       content=b"x")

    assert got.status_code == 403 and got.json()["error"] == "forbidden"
    assert put.status_code == 403 and not (actors["victim"] / "x").exists()


def test_an_uploaded_multipart_name_cannot_climb_out(actors: dict[str, Any]) -> None:
    with client(actors, "filer") as http:
        response = http.post("/api/files/upload", files={
            "file": ("../../victimfiles/secret.txt", b"overwritten")})

    assert (actors["victim"] / "secret.txt").read_text() == "the victim's secret"
    assert response.status_code in (201, 400, 403)
