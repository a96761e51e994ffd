"""The per-process caches in front of a turn's start: the configuration snapshot
(``chats.config``) and the system prompt's workspace parts (``chats.system_prompt``).
Two processes: ``tests/scaleout/test_config_cache.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents import prompt as prompt_mod
from agents.sandbox import SandboxPolicy
from chats import config, system_prompt
from chats.store import TurnSetup
from permissions.models import PermissionPolicy, SandboxConfig
from profiles.models import ModelProfile


def test_an_unchanged_configuration_is_read_without_a_query(
        profile: Any, django_assert_num_queries: Any) -> None:
    config.current()  # may create the singleton rows, which is a change
    first = config.current()
    with django_assert_num_queries(0):
        assert config.current() is first
    assert first.provider(None).model == "fake-model"
    assert first.provider(None).api_key == "sk-test-1234"


def test_saving_the_policy_the_sandbox_or_a_profile_is_seen_at_the_next_read(
        profile: Any, upstream: Any) -> None:
    before = config.current()
    policy = PermissionPolicy.load()
    policy.mode = "autonomous"
    policy.tool_overrides = {"bash": "deny"}
    policy.save()
    after = config.current()
    assert after.version != before.version
    assert (after.mode, after.overrides) == ("autonomous", {"bash": "deny"})
    sandbox = SandboxConfig.load()
    sandbox.memory_limit_mb = 256
    sandbox.save()
    assert config.current().sandbox.memory_limit_mb == 256
    other = ModelProfile.objects.create(name="other", provider="openai", model="other-model",
                                        base_url=upstream.url)
    assert config.current().provider(other.pk).model == "other-model"
    other.make_default()
    assert config.current().provider(None).model == "other-model"
    other.delete()
    assert config.current().provider(other.pk) is None or \
        config.current().provider(other.pk).model != "other-model"


def test_a_lost_version_counts_as_a_change(profile: Any) -> None:
    from django.core.cache import cache

    before = config.current()
    cache.delete(config.VERSION_KEY)
    assert config.current().version != before.version


def setup_for(workspace: Path) -> TurnSetup:
    return TurnSetup(message_id=1, stream=True, owner_id=1, owner_name="a", workspace=workspace,
                     provider=None, history=[], mode="interactive", overrides={},
                     allowed_tools=set(), sandbox=SandboxPolicy(enabled=False),
                     next_position=0)


@pytest.fixture
def prepares(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = prompt_mod.prepare_workspace

    def counting(workspace: Path, skills_dir: Path | None) -> Any:
        calls.append(workspace)
        return real(workspace, skills_dir)

    monkeypatch.setattr(system_prompt, "prepare_workspace", counting)
    return calls


def write_skill(skills_dir: Path, folder: str, description: str) -> None:
    (skills_dir / folder).mkdir(parents=True, exist_ok=True)
    (skills_dir / folder / "SKILL.md").write_text(
        f"---\nname: {folder}\ndescription: {description}\n---\nDo it.\n")


async def test_the_prompt_comes_from_kept_parts_until_a_file_behind_them_changes(
        tmp_path: Path, settings: Any, prepares: list[Path]) -> None:
    settings.GATEWAY_SKILLS_DIR = tmp_path / "skills"
    write_skill(tmp_path / "skills", "deploy", "Ship it.")
    setup = setup_for(tmp_path / "ws")
    first = await system_prompt.system_prompt_for("c", setup)
    assert "holds `PERSONALITY.md`, `USER.md`, `AGENTS.md`:" in first
    assert "deploy: Ship it." in first and len(prepares) == 1
    assert await system_prompt.system_prompt_for("c", setup) == first
    assert len(prepares) == 1  # nothing changed: no file work, no thread

    (setup.workspace / "USER.md").unlink()  # the user deleted an identity file
    assert "holds `PERSONALITY.md`, `AGENTS.md`:" in \
        await system_prompt.system_prompt_for("c", setup)
    assert len(prepares) == 2

    write_skill(tmp_path / "skills", "review", "Read the diff.")
    assert "review: Read the diff." in await system_prompt.system_prompt_for("c", setup)
    write_skill(tmp_path / "skills", "review", "Read the whole diff twice.")
    assert "Read the whole diff twice." in await system_prompt.system_prompt_for("c", setup)


async def test_after_a_turn_the_skills_mirror_is_repaired(tmp_path: Path, settings: Any
                                                          ) -> None:
    settings.GATEWAY_SKILLS_DIR = tmp_path / "skills"
    write_skill(tmp_path / "skills", "deploy", "Ship it.")
    setup = setup_for(tmp_path / "ws")
    await system_prompt.system_prompt_for("c", setup)
    mirrored = setup.workspace / ".skills" / "deploy" / "SKILL.md"
    mirrored.write_text("tampered by a tool")
    await system_prompt.prepare(setup)  # what the turn runner does after each turn
    assert "Ship it." in mirrored.read_text()


def test_a_cache_that_cannot_be_read_means_reading_the_database(
        profile: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.cache import cache

    config.current()

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis away")

    monkeypatch.setattr(cache, "get", down)
    ModelProfile.objects.filter(pk=profile.pk).update(model="changed-behind-its-back")
    assert config.current().provider(profile.pk).model == "changed-behind-its-back"
