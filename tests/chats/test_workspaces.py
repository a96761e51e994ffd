"""Workspaces are named by the user's immutable id (``@<id>``), private, and a folder of
before (named by username) moves there on first use unless two users could claim it."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from chats.store import workspace_for

pytestmark = pytest.mark.django_db


def test_a_workspace_is_named_by_id_and_private(alice: Any, settings: Any) -> None:
    path = workspace_for(alice.user)

    assert path == Path(settings.GATEWAY_WORKSPACE) / f"@{alice.user.pk}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_folder_named_by_username_moves_to_the_id_on_first_use(alice: Any,
                                                                 settings: Any) -> None:
    old = Path(settings.GATEWAY_WORKSPACE) / "alice"
    old.mkdir(parents=True)
    (old / "notes.txt").write_text("mine")

    path = workspace_for(alice.user)

    assert (path / "notes.txt").read_text() == "mine"
    assert not old.exists()


def test_a_folder_two_users_shared_is_left_alone(settings: Any) -> None:
    users = get_user_model().objects
    unsafe = users.create(username="no safe/name")
    lookalike = users.create(username=f"user-{unsafe.pk}")
    shared = Path(settings.GATEWAY_WORKSPACE) / f"user-{unsafe.pk}"
    shared.mkdir(parents=True)
    (shared / "secret.txt").write_text("whose?")

    first, second = workspace_for(unsafe), workspace_for(lookalike)

    assert first != second
    assert not (first / "secret.txt").exists() and not (second / "secret.txt").exists()
    assert (shared / "secret.txt").exists()


def test_a_username_made_of_digits_never_lands_in_another_users_folder(
        alice: Any, settings: Any) -> None:
    digits = get_user_model().objects.create(username=str(alice.user.pk))
    old = Path(settings.GATEWAY_WORKSPACE) / digits.username
    old.mkdir(parents=True)
    (old / "theirs.txt").write_text("digits'")

    assert not (workspace_for(alice.user) / "theirs.txt").exists()
    assert (workspace_for(digits) / "theirs.txt").exists()
