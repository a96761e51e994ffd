"""The typed readers of ``gateway/env.py``: defaults, values, and loud failures."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.env import envbool, envfloat, envint, envlist, envpath, envsecret, envstr

NAME = "GATEWAY_TEST_SETTING"


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)


def test_envstr_reads_the_value_or_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert envstr(NAME) == ""
    assert envstr(NAME, "fallback") == "fallback"
    monkeypatch.setenv(NAME, " spaced ")
    assert envstr(NAME, "fallback") == " spaced "


@pytest.mark.parametrize("raw, expected", [
    ("1", True), ("true", True), ("TRUE", True), (" yes ", True), ("on", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
])
def test_envbool_reads_the_usual_spellings(monkeypatch: pytest.MonkeyPatch, raw: str,
                                           expected: bool) -> None:
    monkeypatch.setenv(NAME, raw)

    assert envbool(NAME, not expected) is expected


def test_envbool_falls_back_to_the_default_when_unset() -> None:
    assert envbool(NAME, True) is True
    assert envbool(NAME, False) is False


@pytest.mark.parametrize("raw", ["maybe", "2", "truee", "y"])
def test_envbool_fails_loudly_on_anything_else(monkeypatch: pytest.MonkeyPatch,
                                               raw: str) -> None:
    monkeypatch.setenv(NAME, raw)

    with pytest.raises(ImproperlyConfigured, match=f"{NAME} must be a boolean"):
        envbool(NAME, False)


def test_envint_reads_an_integer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, " 42 ")

    assert envint(NAME, 7) == 42


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_envint_falls_back_to_the_default_when_unset_or_blank(
        monkeypatch: pytest.MonkeyPatch, raw: str | None) -> None:
    if raw is not None:
        monkeypatch.setenv(NAME, raw)

    assert envint(NAME, 7, minimum=1) == 7


@pytest.mark.parametrize("raw", ["abc", "4.5", "1e3", "12k"])
def test_envint_fails_loudly_on_a_non_integer(monkeypatch: pytest.MonkeyPatch,
                                              raw: str) -> None:
    monkeypatch.setenv(NAME, raw)

    with pytest.raises(ImproperlyConfigured, match=f"{NAME} must be an integer"):
        envint(NAME, 7)


def test_envint_enforces_the_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "0")
    with pytest.raises(ImproperlyConfigured, match=f"{NAME} must be >= 1, got 0"):
        envint(NAME, 7, minimum=1)

    monkeypatch.setenv(NAME, "1")
    assert envint(NAME, 7, minimum=1) == 1


def test_envfloat_reads_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "0.25")
    assert envfloat(NAME, 1.0) == 0.25

    monkeypatch.setenv(NAME, "3")
    assert envfloat(NAME, 1.0) == 3.0


def test_envfloat_falls_back_to_the_default_when_unset_or_blank(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert envfloat(NAME, 1.5) == 1.5
    monkeypatch.setenv(NAME, "")
    assert envfloat(NAME, 1.5) == 1.5


def test_envfloat_fails_loudly_on_a_non_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "fast")

    with pytest.raises(ImproperlyConfigured, match=f"{NAME} must be a number"):
        envfloat(NAME, 1.0)


def test_envfloat_enforces_the_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "0.01")

    with pytest.raises(ImproperlyConfigured, match=f"{NAME} must be >= 0.05"):
        envfloat(NAME, 0.75, minimum=0.05)


def test_envlist_splits_on_commas_and_drops_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert envlist(NAME, ["a"]) == ["a"]
    monkeypatch.setenv(NAME, " x.example , ,y.example,")
    assert envlist(NAME, ["a"]) == ["x.example", "y.example"]
    monkeypatch.setenv(NAME, "")
    assert envlist(NAME, ["a"]) == []


def test_envpath_resolves_the_value_or_the_default(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    assert envpath(NAME, tmp_path / "x" / ".." / "d") == tmp_path / "d"
    monkeypatch.setenv(NAME, str(tmp_path / "data" / "." / "sub"))
    assert envpath(NAME, Path("/nowhere")) == tmp_path / "data" / "sub"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(NAME, "~/gw")
    assert envpath(NAME, Path("/nowhere")) == tmp_path / "gw"


def test_envsecret_generates_a_file_once_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"  # not there yet: it is created

    first = envsecret(NAME, data_dir)

    path = data_dir / "secret_key"
    assert path.read_text() == first
    assert len(first) >= 50
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert envsecret(NAME, data_dir) == first  # re-read, not regenerated
    assert path.read_text() == first


def test_envsecret_differs_between_data_dirs(tmp_path: Path) -> None:
    assert envsecret(NAME, tmp_path / "a") != envsecret(NAME, tmp_path / "b")


def test_envsecret_reads_an_existing_file_stripped(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("s" * 40 + "\n")

    assert envsecret(NAME, tmp_path) == "s" * 40


def test_envsecret_prefers_the_environment(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv(NAME, "e" * 32)

    assert envsecret(NAME, tmp_path) == "e" * 32
    assert not (tmp_path / "secret_key").exists()


def test_envsecret_fails_loudly_on_a_short_secret(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv(NAME, "e" * 31)

    with pytest.raises(ImproperlyConfigured, match=f"{NAME} must be at least 32 characters"):
        envsecret(NAME, tmp_path)
    assert not (tmp_path / "secret_key").exists()


def test_envsecret_does_not_return_an_empty_secret(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("")

    with pytest.raises(ImproperlyConfigured):
        envsecret(NAME, tmp_path)


def test_two_processes_generating_the_secret_at_once_agree(tmp_path: Path) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        values = pool.starmap(envsecret, [(NAME, tmp_path)] * 32)
    assert len(set(values)) == 1 and len(values[0]) >= 32
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]


@pytest.mark.parametrize("name, raw", [("GATEWAY_SANDBOX_WARM", "maybe"),
                                       ("GATEWAY_SANDBOX_WARM_IDLE", "0")])
def test_a_bad_warm_sandbox_setting_stops_the_start(name: str, raw: str, tmp_path: Path) -> None:
    """``agents.warm`` reads these itself; the settings module refuses a bad one first."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "manage.py", "check"], cwd=root, text=True,
                         capture_output=True, timeout=120,
                         env={**os.environ, name: raw, "GATEWAY_DATA_DIR": str(tmp_path)})
    assert run.returncode != 0
    assert f"{name} must be" in run.stderr


@pytest.mark.parametrize("raw, bound", [(None, True), ("false", False)])
def test_postgresql_binds_parameters_unless_told_not_to(raw: str | None, bound: bool,
                                                        tmp_path: Path) -> None:
    """Server-side binding (and prepared statements) is the default; PgBouncer in
    transaction mode needs GATEWAY_DB_SERVER_BINDING=false."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path),
           "DATABASE_URL": "postgres://u@127.0.0.1:9/x"}
    env.pop("GATEWAY_DB_SERVER_BINDING", None)
    if raw is not None:
        env["GATEWAY_DB_SERVER_BINDING"] = raw
    code = ("import json, django; from django.conf import settings; django.setup(); "
            "print(json.dumps(settings.DATABASES['default']['OPTIONS']['server_side_binding']))")
    run = subprocess.run([sys.executable, "-c", code], cwd=root, text=True, timeout=120,
                         capture_output=True,
                         env={**env, "DJANGO_SETTINGS_MODULE": "gateway_project.settings"})
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) is bound
