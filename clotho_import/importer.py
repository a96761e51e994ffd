"""Import a Clotho home folder: profiles, permissions, sandbox settings, chats, jobs.

Everything is matched by a stable key before it is written (a profile by name, a chat by
its id, a job by its owner and name, a destination by name), and what exists is left as
it is: running the import twice changes nothing.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify

from chats.models import Chat, Message
from jobs import services as job_services
from jobs.models import Job
from jobs.schedule import cron_error
from notifications.models import Destination
from notifications.targets import check_target
from permissions.models import MODES, PermissionPolicy, SandboxConfig
from profiles.models import PROVIDERS, ModelProfile

DISCORD_DESTINATION = "clotho-discord"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.I)
_MB_PER_UNIT = {"": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


@dataclass
class Report:
    """What the import did, for the command to print."""

    counts: dict[str, list[int]] = field(default_factory=dict)  # kind: [imported, kept]
    notes: list[str] = field(default_factory=list)

    def count(self, kind: str, imported: bool) -> None:
        pair = self.counts.setdefault(kind, [0, 0])
        pair[0 if imported else 1] += 1

    def lines(self) -> list[str]:
        out = [f"{kind}: {new} imported, {kept} already there"
               for kind, (new, kept) in self.counts.items()]
        return out + [f"note: {note}" for note in self.notes]


class ClothoImport:
    def __init__(self, home: Path, user: AbstractBaseUser, *, timezone: str,
                 discord_webhook: str = "") -> None:
        self.home = home
        self.user = user
        self.timezone = timezone
        self.discord_webhook = discord_webhook
        self.report = Report()

    def run(self) -> Report:
        self.config()
        self.profiles()
        self.chats()
        self.jobs()
        self.report.notes.append("not imported: the Discord bridge (discord/), MCP OAuth "
                                 "tokens (mcp/tokens/), MCP servers, skills and the API "
                                 "token; see docs/clotho-import.md")
        return self.report

    def _json(self, name: str, default: Any) -> Any:
        path = self.home / name
        if not path.is_file():
            return default
        return json.loads(path.read_text(encoding="utf-8"))

    # -- config.json: permissions and sandbox ----------------------------------------
    def config(self) -> None:
        config = self._json("config.json", {})
        permissions = config.get("permissions") or {}
        if permissions.get("mode") in MODES:
            policy = PermissionPolicy.load()
            overrides = {k: v for k, v in (permissions.get("tool_overrides") or {}).items()
                         if v in ("allow", "ask", "deny")}
            changed = (policy.mode, policy.tool_overrides) != (permissions["mode"], overrides)
            if changed:
                policy.mode, policy.tool_overrides = permissions["mode"], overrides
                policy.save()
            self.report.count("permissions", changed)
        if config.get("sandbox"):
            self.report.count("sandbox", self._sandbox(config["sandbox"]))

    @staticmethod
    def _sandbox(clotho: dict[str, Any]) -> bool:
        sandbox = SandboxConfig.load()
        wanted = {"enabled": bool(clotho.get("enabled", False)),
                  "network_enabled": bool(clotho.get("network_enabled", False))}
        if isinstance(clotho.get("timeout_seconds"), int) and clotho["timeout_seconds"] > 0:
            wanted["timeout_seconds"] = clotho["timeout_seconds"]
        if clotho.get("workspace_mode") in ("ro", "rw"):
            wanted["workspace_mode"] = clotho["workspace_mode"]
        memory = _megabytes(str(clotho.get("memory_limit", "")))
        if memory:
            wanted["memory_limit_mb"] = memory
        changed = any(getattr(sandbox, k) != v for k, v in wanted.items())
        if changed:
            for key, value in wanted.items():
                setattr(sandbox, key, value)
            sandbox.save()
        return changed

    # -- profiles.json ---------------------------------------------------------------
    def profiles(self) -> None:
        data = self._json("profiles.json", {})
        for name, clotho in (data.get("profiles") or {}).items():
            slug = slugify(name)[:64]
            if not slug or clotho.get("provider") not in PROVIDERS or not clotho.get("model"):
                self.report.notes.append(f"profile {name!r} skipped: no usable provider/model")
                continue
            exists = ModelProfile.objects.filter(name=slug).exists()
            if not exists:
                self._new_profile(slug, clotho)
            self.report.count("profiles", not exists)
        default = slugify(data.get("default") or "")[:64]
        if default and not ModelProfile.get_default():
            profile = ModelProfile.objects.filter(name=default).first()
            if profile:
                profile.make_default()

    @staticmethod
    def _new_profile(slug: str, clotho: dict[str, Any]) -> None:
        profile = ModelProfile(name=slug, provider=clotho["provider"], model=clotho["model"],
                               base_url=clotho.get("base_url") or "",
                               context_window=clotho.get("context_window"),
                               max_output_tokens=clotho.get("max_output_tokens"))
        profile.set_api_key(clotho.get("api_key") or "")  # encrypted on the way in
        profile.save()

    # -- projects/<id>.jsonl ---------------------------------------------------------
    def chats(self) -> None:
        folder = self.home / "projects"
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            try:
                chat_id = uuid.UUID(path.stem)
            except ValueError:
                self.report.notes.append(f"{path.name} skipped: its name is not a chat id")
                continue
            if Chat.objects.filter(pk=chat_id).exists():
                self.report.count("chats", False)
                continue
            try:
                turns = list(_read_jsonl(path))
            except ValueError as exc:
                self.report.notes.append(f"{path.name} skipped: {exc}")
                continue
            self._new_chat(chat_id, turns)
            self.report.count("chats", True)

    @transaction.atomic
    def _new_chat(self, chat_id: uuid.UUID, turns: list[dict[str, Any]]) -> None:
        chat = Chat.objects.create(id=chat_id, owner=self.user, title=_title_of(turns))
        last_marker = max((i for i, t in enumerate(turns) if t.get("role") == "compaction"),
                          default=-1)
        rows: list[Message] = []
        for index, turn in enumerate(turns):
            for fields in convert_turn(turn):
                rows.append(Message(chat=chat, position=len(rows), status="done",
                                    compacted=index < last_marker, **fields))
        Message.objects.bulk_create(rows)

    # -- jobs/*.yaml -----------------------------------------------------------------
    def jobs(self) -> None:
        folder = self.home / "jobs"
        sessions = self._json("scheduler/sessions.json", {})
        for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
            try:
                spec = yaml.safe_load(path.read_text(encoding="utf-8"))
                name, body, note = self._job_body(spec)
            except (yaml.YAMLError, ValueError, KeyError, TypeError) as exc:
                self.report.notes.append(f"{path.name} skipped: {exc}")
                continue
            if Job.objects.filter(owner=self.user, name=name).exists():
                self.report.count("jobs", False)
                continue
            self._new_job(body, note, sessions.get(spec.get("name")))
            self.report.count("jobs", True)

    def _job_body(self, spec: Any) -> tuple[str, dict[str, Any], str]:
        trigger = spec["trigger"]
        if trigger.get("type") != "cron":
            raise ValueError(f"trigger type {trigger.get('type')!r} is not cron")
        problem = cron_error(str(trigger["expression"]))
        if problem:
            raise ValueError(problem)
        name = slugify(str(spec["name"]))[:64]
        if not name or not str(spec.get("prompt") or "").strip():
            raise ValueError("a job needs a name and a prompt")
        destinations, note = self._deliveries(spec.get("delivery") or [])
        body = {"name": name, "prompt": str(spec["prompt"]),
                "schedule": {"kind": "cron", "cron": str(trigger["expression"]),
                             "timezone": self.timezone},
                "enabled": bool(spec.get("enabled", True)) and not note,
                "destinations": destinations}
        return name, body, note

    def _deliveries(self, entries: list[dict[str, Any]]) -> tuple[list[str], str]:
        discord = [e for e in entries if str(e.get("type", "")).startswith("discord")]
        other = [e.get("type") for e in entries if e not in discord]
        notes = [f"delivery type {t!r} has no equivalent here" for t in other]
        if discord and not self.discord_webhook:
            where = ", ".join(f"{e['type']} {e.get('channel_id') or e.get('user_id')}"
                              for e in discord)
            notes.append(f"Clotho posted results to Discord ({where}); paused until a "
                         "destination is added (import again with --discord-webhook, or "
                         "POST /api/notifications/destinations)")
            return [], "; ".join(notes)
        if discord:
            self._discord_destination()
            return [DISCORD_DESTINATION], "; ".join(notes)
        return [], "; ".join(notes)

    def _discord_destination(self) -> None:
        if Destination.objects.filter(owner=self.user, name=DISCORD_DESTINATION).exists():
            return
        destination = Destination(owner=self.user, name=DISCORD_DESTINATION, kind="discord")
        destination.set_target(check_target("discord", self.discord_webhook))
        destination.save()

    @transaction.atomic
    def _new_job(self, body: dict[str, Any], note: str, chat_id: str | None) -> None:
        chat = None
        if chat_id:
            chat = Chat.objects.filter(pk=chat_id, owner=self.user, job__isnull=True).first()
        job = job_services.create(self.user, body, chat=chat)
        if note:
            job.note = note
            job.save(update_fields=["note"])
            self.report.notes.append(f"job {job.name}: {note}")


# --- converting Clotho's turns -----------------------------------------------------------

def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            turn = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"line {number} is not JSON") from None
        if not isinstance(turn, dict) or "role" not in turn:
            raise ValueError(f"line {number} is not a turn")
        yield turn


def convert_turn(turn: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages (as ``Message`` fields) one Clotho turn becomes; a compaction marker
    becomes none (the messages before it are marked compacted instead)."""
    role = turn["role"]
    if role in ("system", "user"):
        return [{"role": role, "content": _user_content(turn.get("content"))}]
    if role == "assistant":
        return [_assistant(turn)]
    if role == "tool":
        return [{"role": "tool", "tool_call_id": str(b.get("tool_use_id", ""))[:200],
                 "tool_name": str(b.get("tool_name", ""))[:200],
                 "content": str(b.get("content", "")), "is_error": bool(b.get("is_error"))}
                for b in _blocks(turn.get("content")) if b.get("type") == "tool_result"]
    return []


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _user_content(content: Any) -> Any:
    if isinstance(content, str):
        return content
    parts = []
    for block in _blocks(content):
        if block.get("type") == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif block.get("type") == "image":
            url = block.get("data", "")
            if block.get("source_type") == "base64":
                url = f"data:{block.get('media_type') or 'image/png'};base64,{url}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _assistant(turn: dict[str, Any]) -> dict[str, Any]:
    blocks = _blocks(turn.get("content"))
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    calls = [{"id": str(b.get("id", "")), "type": "function",
              "function": {"name": str(b.get("name", "")),
                           "arguments": json.dumps(b.get("arguments") or {})}}
             for b in blocks if b.get("type") == "tool_use"]
    usage = turn.get("usage") or {}
    return {"role": "assistant", "content": text, "tool_calls": calls or None,
            "model": str(turn.get("model") or "")[:200],
            "usage": {"input_tokens": int(usage.get("input_tokens") or 0),
                      "output_tokens": int(usage.get("output_tokens") or 0)}
            if usage else None}


def _title_of(turns: list[dict[str, Any]]) -> str:
    for turn in turns:
        if turn.get("role") == "user":
            content = turn.get("content")
            text = content if isinstance(content, str) else " ".join(
                str(b.get("text", "")) for b in _blocks(content) if b.get("type") == "text")
            return " ".join(text.split())[:80]
    return "Imported from Clotho"


def _megabytes(size: str) -> int | None:
    """A Docker size ("512m", "1g", "1048576") in MiB."""
    match = _SIZE.match(size)
    if not match:
        return None
    return max(int(float(match.group(1)) * _MB_PER_UNIT[match.group(2).lower()]), 1)
