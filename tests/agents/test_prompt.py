"""agents.prompt and agents.identity: the system prompt's parts, in order, and the identity
files seeded once and never overwritten."""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path

from agents import identity
from agents.prompt import CORE_PROMPT, build_system_prompt, prepare_system_prompt
from agents.skills import Skill

TOOL = {"type": "function", "function": {
    "name": "fs__read_file", "description": "[MCP server fs] Read a file.\n  Any file.",
    "parameters": {"type": "object"}}}


def test_the_core_prompt_date_and_environment_come_first(tmp_path: Path) -> None:
    prompt = build_system_prompt(tmp_path, False, today=dt.date(2026, 11, 28))

    assert prompt.split("\n\n") == [
        CORE_PROMPT,
        "Today is 2026-11-28.",
        f"Environment: workspace {tmp_path}; platform {platform.system()} "
        f"{platform.machine()}.",
    ]
    assert "workspace /workspace (a sandbox)" in build_system_prompt(tmp_path, True)


def test_identity_extra_tools_and_skills_follow_in_that_order(tmp_path: Path) -> None:
    prompt = build_system_prompt(
        tmp_path, False, today=dt.date(2026, 11, 28), extra_tools=[TOOL],
        skills=[Skill("pdf", "Read PDFs.", "pdf")],
        identity_files=["PERSONALITY.md", "USER.md", "AGENTS.md"])

    parts = prompt.split("\n\n")
    assert parts[3].startswith("Identity: the workspace holds `PERSONALITY.md`, "
                               "`USER.md`, `AGENTS.md`")
    assert "Read them with `read`" in parts[3]
    assert parts[4] == ("Extra tools (from MCP servers; they may need approval like the "
                        "others):\n- `fs__read_file`: [MCP server fs] Read a file. Any file.")
    assert parts[5].startswith("Skills:") and parts[5].endswith(
        "- pdf: Read PDFs. (read `.skills/pdf/SKILL.md`)")


def test_long_tool_descriptions_are_cut(tmp_path: Path) -> None:
    long = {"type": "function", "function": {"name": "x__y", "description": "word " * 100}}

    line = build_system_prompt(tmp_path, False, extra_tools=[long]).splitlines()[-1]

    assert len(line) < 180 and line.endswith("...")


def test_identity_files_are_seeded_on_first_use(tmp_path: Path) -> None:
    workspace = tmp_path / "alice"

    assert identity.seed(workspace) == ["PERSONALITY.md", "USER.md", "AGENTS.md"]

    assert (workspace / "USER.md").read_text() == identity.TEMPLATES["USER.md"]
    assert identity.present(workspace) == ["PERSONALITY.md", "USER.md", "AGENTS.md"]


def test_the_users_edits_are_never_overwritten(tmp_path: Path) -> None:
    workspace = tmp_path / "alice"
    workspace.mkdir()
    (workspace / "USER.md").write_text("Alice, a chemist.")

    assert identity.seed(workspace) == ["PERSONALITY.md", "AGENTS.md"]
    (workspace / "AGENTS.md").write_text("Use tabs.")
    assert identity.seed(workspace) == []

    assert (workspace / "USER.md").read_text() == "Alice, a chemist."
    assert (workspace / "AGENTS.md").read_text() == "Use tabs."


def test_a_deleted_identity_file_stays_deleted(tmp_path: Path) -> None:
    workspace = tmp_path / "alice"
    identity.seed(workspace)
    (workspace / "PERSONALITY.md").unlink()

    assert identity.seed(workspace) == []

    assert not (workspace / "PERSONALITY.md").exists()
    assert identity.present(workspace) == ["USER.md", "AGENTS.md"]


def test_seeding_never_writes_through_a_link(tmp_path: Path) -> None:
    workspace = tmp_path / "alice"
    workspace.mkdir()
    target = tmp_path / "elsewhere.md"
    (workspace / "USER.md").symlink_to(target)

    identity.seed(workspace)

    assert not target.exists()


def test_the_prompt_of_a_turn_tells_the_agent_to_read_its_identity(tmp_path: Path) -> None:
    workspace = tmp_path / "alice"

    prompt = prepare_system_prompt(workspace, False, None)

    assert "Identity: the workspace holds `PERSONALITY.md`, `USER.md`, `AGENTS.md`" in prompt
    assert (workspace / "AGENTS.md").is_file()


def test_a_preview_writes_nothing_but_shows_what_the_turn_will_send(tmp_path: Path) -> None:
    workspace = tmp_path / "alice"

    preview = prepare_system_prompt(workspace, False, None, write=False)

    assert not workspace.exists()
    assert preview == prepare_system_prompt(workspace, False, None)
