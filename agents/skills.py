"""Skills: folders with a ``SKILL.md`` under the skills directory (``GATEWAY_SKILLS_DIR``).

A ``SKILL.md`` starts with YAML front matter (``name``, ``description``) followed by the
instructions. The system prompt lists names and descriptions; the agent reads the
instructions on demand with its ``read`` tool. Tools only reach the user's workspace
(and the sandbox only mounts that), so before each turn every skill folder is mirrored
into ``<workspace>/.skills/<folder>/``: ``read`` and ``bash`` (sandboxed or not) see the
skill and its scripts, and the workspace confinement stays exactly as it is.

The mirror belongs to the gateway: files there that differ from the source are replaced,
folders of removed skills are deleted. Links are never followed inside a skill, and a
link the user put in place of a mirrored folder or file is removed, not written through.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agents import fs

logger = logging.getLogger(__name__)

SKILL_FILE = "SKILL.md"
WORKSPACE_FOLDER = ".skills"
MAX_SKILL_BYTES = 20 * 1024 * 1024  # mirrored per skill; larger files are left out
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class SkillError(ValueError):
    """A SKILL.md that cannot be used; the message says why."""


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    folder: str  # the folder's name, in the skills directory and in .skills/

    @property
    def path(self) -> str:
        """Where the agent reads it, relative to the workspace."""
        return f"{WORKSPACE_FOLDER}/{self.folder}/{SKILL_FILE}"


def parse_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The YAML front matter (between ``---`` lines) and the body after it."""
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise SkillError("it does not start with YAML front matter ('---')")
    for end, line in enumerate(lines[1:], start=1):
        if line.strip() in ("---", "..."):
            break
    else:
        raise SkillError("its front matter has no closing '---'")
    try:
        meta = yaml.safe_load("".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        raise SkillError(f"its front matter is not valid YAML ({exc})") from None
    if not isinstance(meta, dict):
        raise SkillError("its front matter is not a mapping of keys to values")
    return meta, "".join(lines[end + 1:])


def load_skill(folder: Path) -> Skill:
    meta, _ = parse_front_matter((folder / SKILL_FILE).read_text(encoding="utf-8"))
    name, description = meta.get("name"), meta.get("description")
    if not isinstance(name, str) or not name.strip():
        raise SkillError("its front matter lacks 'name'")
    if not isinstance(description, str) or not description.strip():
        raise SkillError("its front matter lacks 'description'")
    return Skill(name=" ".join(name.split())[:100],
                 description=" ".join(description.split())[:1024], folder=folder.name)


def discover(skills_dir: Path | None) -> list[Skill]:
    """The usable skills, by folder name; unusable ones are logged and left out."""
    if skills_dir is None or not skills_dir.is_dir():
        return []
    skills = []
    for folder in sorted(skills_dir.iterdir()):
        if not _FOLDER.match(folder.name) or not (folder / SKILL_FILE).is_file():
            continue
        try:
            skills.append(load_skill(folder))
        except (SkillError, OSError, UnicodeError) as exc:
            logger.warning("skill %s is skipped: %s", folder, exc)
    return skills


def sync_into(workspace: Path, skills_dir: Path | None, skills: list[Skill]) -> None:
    """Mirror the skills' folders into ``<workspace>/.skills/``.

    Every change inside the workspace goes through ``agents.fs`` (resolved beneath the
    open workspace folder, links never followed out), so a user swapping folders of the
    mirror for links while this runs cannot make it delete or write anything outside.
    """
    with fs.Workspace(workspace) as ws:
        if skills_dir is None or not skills:
            ws.remove(WORKSPACE_FOLDER, missing_ok=True)
            return
        _real_dir(ws, WORKSPACE_FOLDER)
        wanted = {skill.folder for skill in skills}
        for entry in ws.listdir(WORKSPACE_FOLDER):
            if entry.name not in wanted:
                ws.remove(f"{WORKSPACE_FOLDER}/{entry.name}", missing_ok=True)
        for skill in skills:
            _mirror(ws, skills_dir / skill.folder, f"{WORKSPACE_FOLDER}/{skill.folder}",
                    [MAX_SKILL_BYTES])


def _real_dir(ws: fs.Workspace, path: str) -> None:
    """``path`` as a real folder: a link or file in its place is removed first."""
    if ws.kind(path, follow=False) not in (None, "dir"):
        ws.remove(path, missing_ok=True)
    ws.mkdir(path)


def _mirror(ws: fs.Workspace, src: Path, dst: str, budget: list[int]) -> None:
    _real_dir(ws, dst)
    sources = {e.name: e for e in os.scandir(src) if not e.is_symlink()
               and (e.is_dir() or e.is_file())}
    have = {entry.name: entry for entry in ws.listdir(dst)}
    for name, entry in have.items():
        source = sources.get(name)
        if source is None or source.is_dir() != (entry.kind == "dir"):
            ws.remove(f"{dst}/{name}", missing_ok=True)
    for name, source in sorted(sources.items()):
        target = f"{dst}/{name}"
        if source.is_dir():
            _mirror(ws, Path(source.path), target, budget)
            continue
        info = source.stat()
        budget[0] -= info.st_size
        if budget[0] < 0:
            logger.warning("skill file %s is left out: the skill is over %d bytes",
                           source.path, MAX_SKILL_BYTES)
            ws.remove(target, missing_ok=True)
            continue
        current = have.get(name)
        if current is not None and current.kind == "file" and \
                current.size == info.st_size and int(current.mtime) == int(info.st_mtime):
            continue
        _copy(ws, Path(source.path), target, info)


def _copy(ws: fs.Workspace, src: Path, target: str, info: os.stat_result) -> None:
    """Copy through a temporary file and a rename (``Workspace.write_bytes``); the
    executable bits survive (as 0700 at most), the mtime marks the copy as current."""
    if ws.kind(target, follow=False) == "link":
        ws.remove(target)  # a link in the mirror is replaced, never written through
    mode = 0o700 if info.st_mode & 0o111 else fs.FILE_MODE
    with src.open("rb") as source:
        ws.write_bytes(target, iter(lambda: source.read(fs.CHUNK), b""), parents=False,
                       mode=mode, mtime_ns=info.st_mtime_ns)
