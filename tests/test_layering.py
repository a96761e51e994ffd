"""The layers of the code base, checked on every module's imports (with ``ast``).

``gateway_project`` is wiring on top (settings, urls, asgi) that no module imports;
``gateway`` is the core app at the bottom, importing no app; ``agents`` is plain Python
that imports no Django app (nor Django or Channels at all); the policy and profile apps
know nothing of the agent or the chats that use them; chats knows nothing of the
notifications and jobs built on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway_project", "gateway", "chats", "agents", "profiles", "permissions",
            "users", "access", "usage", "audit",
            "mcp_servers", "dashboard", "files", "notifications", "jobs")
APPS = tuple(p for p in PACKAGES if p != "gateway_project")


def imports_of(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported module) for every absolute import in a package."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(ROOT)), node.lineno, name) for name in names]
    return found


def offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{file}:{line} imports {name}" for file, line, name in imports_of(package)
            if name.split(".")[0] in forbidden]


@pytest.mark.parametrize("package", APPS)
def test_no_app_imports_the_project_wiring(package: str) -> None:
    assert offending(package, ("gateway_project",)) == []


def test_the_core_app_imports_no_app() -> None:
    assert offending("gateway", tuple(p for p in PACKAGES if p != "gateway")) == []


def test_the_agent_imports_no_django_app_and_no_framework() -> None:
    others = tuple(p for p in PACKAGES if p != "agents")
    assert offending("agents", others + ("django", "channels", "rest_framework")) == []


@pytest.mark.parametrize("package", ["permissions", "profiles"])
def test_policy_and_profiles_know_neither_the_agent_nor_chats(package: str) -> None:
    assert offending(package, ("agents", "chats")) == []


def test_chats_knows_neither_notifications_nor_jobs() -> None:
    """They build on chats: the end of a turn reaches notifications through a signal of
    the core app (``gateway.hooks.turn_ended``), jobs plug in through chats' own hook."""
    assert offending("chats", ("notifications", "jobs")) == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path, monkeypatch) -> None:
    """A late import (inside a function) counts like one at the top: the walk is over
    the whole tree, not the module header."""
    package = tmp_path / "gateway"
    package.mkdir()
    (package / "late.py").write_text("def f():\n    from chats import models\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)

    assert offending("gateway", ("chats",)) == ["gateway/late.py:2 imports chats"]
