"""``manage.py`` as an operator runs it: help that writes nothing and shows defaults, and
an upgrade from a database made before the core app existed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.server import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).with_name("fixtures")


def manage(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    environ.update(GATEWAY_DATA_DIR=str(data_dir), **env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_help_writes_no_secret_key(tmp_path: Path) -> None:
    result = manage(tmp_path, "--help")

    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert not (tmp_path / "secret_key").exists()


def test_serve_help_shows_every_option_with_its_default(tmp_path: Path) -> None:
    result = manage(tmp_path, "serve", "--help")

    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for option, default in (("--host", "127.0.0.1"), ("--port", "8000"),
                            ("--no-migrate", "False")):
        assert option in text
        assert f"(default: {default})" in text, option
    assert not (tmp_path / "secret_key").exists()


def test_a_database_from_before_the_core_app_keeps_its_tokens(tmp_path: Path) -> None:
    """The fixture was made by the previous layout (tokens in the app
    ``gateway_project``): ``serve`` migrates it and the old token still works."""
    shutil.copy(FIXTURES / "pre-layout.sqlite3", tmp_path / "gateway.sqlite3")
    token = (FIXTURES / "pre-layout-token.txt").read_text().strip()
    secret = "k" * 50  # the SECRET_KEY the fixture was made with

    # The fixture is a SQLite file: the embedded default, also when the suite itself runs
    # on PostgreSQL and Redis (tests/scaleout/test_rest_on_postgres.py).
    env = {"SECRET_KEY": secret, "DATABASE_URL": "", "REDIS_URL": ""}
    with ServeProcess(tmp_path, env) as server:
        response = httpx.get(server.url + "/api/tokens", timeout=10,
                             headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200, server.log()
    assert [t["prefix"] for t in response.json()["tokens"]] == [token[:15]]
