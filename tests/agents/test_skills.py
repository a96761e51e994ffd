"""agents.skills: discovery from SKILL.md front matter, the mirror into the workspace, and
the skills in the system prompt."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agents import skills
from agents.prompt import prepare_system_prompt
from agents.skills import Skill, SkillError, discover, parse_front_matter, sync_into


def make_skill(root: Path, folder: str, text: str, **files: str) -> Path:
    path = root / folder
    path.mkdir(parents=True)
    (path / "SKILL.md").write_text(text)
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    return path


PDF = """---
name: pdf
description: >
  Extract text and tables
  from PDF files.
---
# PDF
Run `python extract.py <file>`.
"""


@pytest.fixture
def skills_dir(tmp_path: Path) -> Path:
    root = tmp_path / "skills"
    make_skill(root, "pdf", PDF, **{"extract.py": "print('text')\n",
                                    "reference/forms.md": "# Forms\n"})
    make_skill(root, "release-notes", "---\nname: Release notes\ndescription: Write release "
               "notes from the git log.\n---\nSteps...\n")
    return root


def test_skills_are_discovered_with_their_name_and_description(skills_dir: Path) -> None:
    assert discover(skills_dir) == [
        Skill("pdf", "Extract text and tables from PDF files.", "pdf"),
        Skill("Release notes", "Write release notes from the git log.", "release-notes"),
    ]
    assert discover(skills_dir)[0].path == ".skills/pdf/SKILL.md"


@pytest.mark.parametrize("text", [
    "# no front matter\n",
    "---\nname: x\n",  # never closed
    "---\nname: [unclosed\n---\n",  # not YAML
    "---\n- a\n- b\n---\n",  # not a mapping
    "---\nname: x\n---\nno description\n",
    "---\ndescription: no name\n---\n",
])
def test_unusable_skills_are_left_out(tmp_path: Path, skills_dir: Path, text: str) -> None:
    make_skill(skills_dir, "broken", text)

    assert [s.folder for s in discover(skills_dir)] == ["pdf", "release-notes"]


def test_folders_without_skill_md_files_and_odd_names_are_ignored(skills_dir: Path) -> None:
    (skills_dir / "notes").mkdir()
    (skills_dir / "README.md").write_text("hi")
    make_skill(skills_dir, ".hidden", PDF)

    assert [s.folder for s in discover(skills_dir)] == ["pdf", "release-notes"]
    assert discover(skills_dir / "missing") == [] and discover(None) == []


def test_front_matter_is_split_from_the_instructions() -> None:
    meta, body = parse_front_matter(PDF)
    assert meta["name"] == "pdf" and body.startswith("# PDF")
    with pytest.raises(SkillError):
        parse_front_matter("no")


def test_skills_are_mirrored_into_the_workspace(tmp_path: Path, skills_dir: Path) -> None:
    workspace = tmp_path / "ws"
    os.chmod(skills_dir / "pdf" / "extract.py", 0o755)

    sync_into(workspace, skills_dir, discover(skills_dir))

    mirror = workspace / ".skills"
    assert (mirror / "pdf" / "SKILL.md").read_text() == PDF
    assert (mirror / "pdf" / "reference" / "forms.md").read_text() == "# Forms\n"
    assert os.access(mirror / "pdf" / "extract.py", os.X_OK)
    assert (mirror / "release-notes" / "SKILL.md").exists()


def test_the_mirror_follows_changes_and_removals(tmp_path: Path, skills_dir: Path) -> None:
    workspace = tmp_path / "ws"
    sync_into(workspace, skills_dir, discover(skills_dir))
    (workspace / ".skills" / "stray.txt").write_text("x")
    (skills_dir / "pdf" / "SKILL.md").write_text(PDF + "More.\n")
    os.utime(skills_dir / "pdf" / "SKILL.md", (1, 1))
    (skills_dir / "pdf" / "extract.py").unlink()
    shutil.rmtree(skills_dir / "release-notes")

    sync_into(workspace, skills_dir, discover(skills_dir))

    mirror = workspace / ".skills"
    assert sorted(p.name for p in mirror.iterdir()) == ["pdf"]
    assert (mirror / "pdf" / "SKILL.md").read_text().endswith("More.\n")
    assert not (mirror / "pdf" / "extract.py").exists()


def test_no_skills_leave_no_mirror(tmp_path: Path, skills_dir: Path) -> None:
    workspace = tmp_path / "ws"
    sync_into(workspace, skills_dir, discover(skills_dir))

    sync_into(workspace, skills_dir, [])

    assert not (workspace / ".skills").exists()


def test_links_are_never_followed_out(tmp_path: Path, skills_dir: Path) -> None:
    """A link in the skills folder is not copied; a link a user put in the mirror is
    replaced, and nothing is written where it pointed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (skills_dir / "pdf" / "leak.txt").symlink_to(outside / "secret.txt")
    workspace = tmp_path / "ws"
    (workspace / ".skills").mkdir(parents=True)
    (workspace / ".skills" / "pdf").symlink_to(outside)
    (workspace / ".skills" / "release-notes").mkdir()
    (workspace / ".skills" / "release-notes" / "SKILL.md").symlink_to(outside / "secret.txt")

    sync_into(workspace, skills_dir, discover(skills_dir))

    mirror = workspace / ".skills"
    assert not (mirror / "pdf").is_symlink() and (mirror / "pdf" / "SKILL.md").is_file()
    assert not (mirror / "pdf" / "leak.txt").exists()
    assert not (mirror / "release-notes" / "SKILL.md").is_symlink()
    assert (outside / "secret.txt").read_text() == "secret"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_a_mirror_in_place_of_a_link_is_rebuilt(tmp_path: Path, skills_dir: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / ".skills").symlink_to(outside)

    sync_into(workspace, skills_dir, discover(skills_dir))

    assert not (workspace / ".skills").is_symlink()
    assert list(outside.iterdir()) == []


def test_oversized_skill_files_are_left_out(tmp_path: Path, skills_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(skills, "MAX_SKILL_BYTES", 400)
    (skills_dir / "pdf" / "zz-big.bin").write_bytes(b"x" * 1000)

    sync_into(tmp_path / "ws", skills_dir, discover(skills_dir))

    assert (tmp_path / "ws" / ".skills" / "pdf" / "SKILL.md").exists()
    assert not (tmp_path / "ws" / ".skills" / "pdf" / "zz-big.bin").exists()


def test_the_prompt_lists_the_skills_and_where_to_read_them(tmp_path: Path,
                                                             skills_dir: Path) -> None:
    prompt = prepare_system_prompt(tmp_path / "ws", False, skills_dir)

    assert "Skills:" in prompt
    assert "- pdf: Extract text and tables from PDF files. (read `.skills/pdf/SKILL.md`)" \
        in prompt
    assert "- Release notes: Write release notes from the git log. (read " \
           "`.skills/release-notes/SKILL.md`)" in prompt
    # The instructions are not in the prompt: the agent reads them on demand.
    assert "Run `python extract.py" not in prompt
    assert (tmp_path / "ws" / ".skills" / "pdf" / "SKILL.md").exists()


def test_without_skills_the_prompt_has_no_skills_part(tmp_path: Path) -> None:
    assert "Skills:" not in prepare_system_prompt(tmp_path / "ws", False, tmp_path / "none")
