"""The repository stands on its own: it names no file outside it, and every document that
the README, the OpenAPI description or the docs name is in it.

A person who clones the repository has only the repository, so a reference to a sibling
folder, or to a protocol page that lives elsewhere, is a dead end for them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from agents import asyncapi

ROOT = Path(__file__).resolve().parents[1]

# Built from pieces so that this file does not match itself.
OUTSIDE = [
    re.compile(re.escape("../" + "shared")),
    re.compile(re.escape("/work/" + "shared")),
    re.compile(re.escape("spec/" + "rest-api.md")),
]
PROTOCOL_PAGE = "PROTOCOL" + ".md"

# A Markdown link target, or the path of a Markdown document in a folder (a bare name such
# as `SKILL.md` is a kind of file a user writes, not a document of this repository).
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
MD_NAME = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)*[\w.-]+/[\w./-]*\.md)\b")


def repo_files() -> list[Path]:
    """Tracked files plus new ones not ignored: what a clone (or the next commit) has."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the repository's files")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def text_of(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # binary files name nothing


def test_no_file_names_a_place_outside_the_repository() -> None:
    found = []
    for path in repo_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in OUTSIDE):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert found == []


def test_no_file_names_a_protocol_page_the_repository_lacks() -> None:
    files = repo_files()
    if any(p.name == PROTOCOL_PAGE for p in files):
        pytest.skip(f"the repository has a {PROTOCOL_PAGE}")
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:120]}"
             for p in files if (text := text_of(p)) is not None
             for n, line in enumerate(text.splitlines(), 1) if PROTOCOL_PAGE in line]
    assert found == [], f"the protocol page is docs/protocol.md; {PROTOCOL_PAGE} is not here"


def named_documents(text: str) -> set[str]:
    """Relative link targets and Markdown file names a text mentions."""
    names = {m.group(1) for m in LINK.finditer(text)}
    names |= {m.group(1) for m in MD_NAME.finditer(text)}
    return {n for n in names if "://" not in n and not n.startswith(("mailto:", "/api/"))}


def missing(names: set[str], base: Path) -> list[str]:
    """Names that resolve neither next to the naming file nor from the repository root."""
    return sorted(n for n in names
                  if not (base / n).exists() and not (ROOT / n.lstrip("/")).exists())


@pytest.mark.parametrize("document", ["README.md", "docs/protocol.md", "docs/api.md",
                                      "docs/deploy.md"])
def test_every_document_a_document_names_exists(document: str) -> None:
    path = ROOT / document
    assert path.is_file(), f"{document} is missing"
    names = named_documents(path.read_text(encoding="utf-8"))
    assert missing(names, path.parent) == []


def test_every_document_the_openapi_description_names_exists() -> None:
    description = settings.SPECTACULAR_SETTINGS.get("DESCRIPTION", "")
    assert missing(named_documents(description), ROOT) == []


def test_the_checks_above_can_fail(tmp_path: Path) -> None:
    """A dead reference is found, a live one is not."""
    assert missing(named_documents("see [the spec](../elsewhere/spec.md), `docs/GONE.md` "
                                   "and [this](NOPE.md); a `SKILL.md` is no document"),
                   ROOT) == ["../elsewhere/spec.md", "NOPE.md", "docs/GONE.md"]
    assert missing(named_documents("see [protocol](docs/protocol.md), `docs/api.md`"),
                   ROOT) == []
    assert any(p.search("the API is " + "../" + "shared/spec") for p in OUTSIDE)


def test_the_protocol_page_shows_the_declared_events() -> None:
    """docs/protocol.md's event reference is the one generated from agents/events.py
    (regenerate it with ``python3 -m agents.asyncapi --markdown``)."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    begin, end = "<!-- events:begin -->\n", "<!-- events:end -->"
    assert begin in text and end in text
    shown = text.split(begin, 1)[1].split(end, 1)[0]
    assert shown.strip() == asyncapi.events_markdown().strip()
