"""Shared fixtures: named actors (alice and bob are members, admin is staff), their
tokens and API clients, the fake upstream and a profile pointing at it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from rest_framework.test import APIClient

from gateway.auth import create_token
from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream

IN_CI = os.environ.get("CI", "").lower() == "true"


def need(condition: bool, reason: str) -> None:
    """Skip when a service is missing on a laptop; fail in CI, where it must exist."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


class Actor:
    def __init__(self, user: Any, token: str) -> None:
        self.user = user
        self.token = token
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")


def _actor(username: str, staff: bool = False) -> Actor:
    user = get_user_model().objects.create(username=username, is_staff=staff,
                                           is_superuser=staff)
    _, token = create_token(user, "test")
    return Actor(user, token)


@pytest.fixture
def alice(db: None) -> Actor:
    return _actor("alice")


@pytest.fixture
def bob(db: None) -> Actor:
    return _actor("bob")


@pytest.fixture
def admin(db: None) -> Actor:
    return _actor("admin", staff=True)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def _data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def _workspaces(settings: Any, tmp_path: Path, _data_dir: Path) -> Path:
    """Each test gets its own workspace root (and an empty skills folder, so skills a
    developer keeps in ./data/skills never reach a test's prompt), and a data folder of
    this worker's: the stamps of the shared versions (``gateway.shared_version``) live there,
    and one bumped by a test on the other worker made this one read the database again
    (the query-counting tests failed now and then). One per worker."""
    settings.GATEWAY_DATA_DIR = _data_dir
    settings.GATEWAY_SKILLS_DIR = tmp_path / "skills"
    settings.GATEWAY_WORKSPACE = tmp_path / "workspaces"
    return settings.GATEWAY_WORKSPACE


@pytest.fixture(autouse=True)
def _auth_fail_counts() -> Iterator[None]:
    """Failed-authentication counts (``gateway.ratelimit``) do not leak from one
    test into the next. Only a per-process cache is cleared: a Redis one is shared."""
    yield
    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()


@pytest.fixture(scope="session", autouse=True)
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Served gateways on SQLite start from a copy of one migrated database (made at the
    first such start of this process) instead of migrating their own
    (``tests/e2e/server.py``)."""
    ServeProcess.template_folder = tmp_path_factory.mktemp("migrated-sqlite")
    yield
    ServeProcess.template_folder = ServeProcess._template = None


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream_server.clear()
    yield upstream_server
    upstream_server.clear()


@pytest.fixture
def profile(db: None, upstream: FakeUpstream) -> Any:
    """The default profile, talking to the fake upstream."""
    from profiles.models import ModelProfile

    p = ModelProfile(name="fake", provider="openai", model="fake-model", base_url=upstream.url)
    p.set_api_key("sk-test-1234")
    p.save()
    p.make_default()
    return p


# Fixtures that start a served gateway (or its services) for the tests that use them.
SERVED_FIXTURES = {"server", "gateway", "cluster", "pg_url", "redis_url", "own_redis"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (its hook adds them to ids)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The order and grouping of the two workers' work (``pytest.ini``: ``--dist
    loadgroup`` without xdist's reordering by test count, which put the one-test slow files
    last).

    Files with a ``slow`` test run first: with two workers they then run beside the quick
    files instead of forming a tail at the end of the suite. Files that start a served
    gateway come next, in-process ones last, where they fill in evenly.

    A work unit (``xdist_group``) is a file, except that the files sharing a package- or
    session-scoped fixture of their folder's conftest (the served gateway of
    ``tests/security``, of ``tests/cli``) are one unit: split over both workers, each
    worker started that gateway again, up to once per file."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    served_files = {item.path for item in items
                    if SERVED_FIXTURES & set(getattr(item, "fixturenames", ()))}
    items.sort(key=lambda item: (item.path not in slow_files, item.path not in served_files))
    root = config.rootpath
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_work_unit(item, root)))


def _work_unit(item: pytest.Item, root: Path) -> str:
    here = Path(__file__).resolve().parent
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        shared = [d for d in defs if d.scope in ("package", "session") and d.baseid]
        # This file's own (the fake upstream) serve every file: no reason to group.
        if shared and (root / shared[-1].baseid).resolve() != here:
            return f"{shared[-1].baseid}:{shared[-1].argname}"
    return item.nodeid.split("::", 1)[0]
