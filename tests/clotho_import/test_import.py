"""``import_clotho`` in process: what lands where, and a second run changes nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from chats.models import Chat, Message
from chats.store import history_for_model
from jobs.models import Job
from notifications.models import Destination
from permissions.models import PermissionPolicy, SandboxConfig
from profiles.models import ModelProfile
from tests.clotho_import.home import CHAT_ID, JOB_CHAT_ID, build


def run(home, *extra: str) -> str:
    out = StringIO()
    call_command("import_clotho", str(home), "--user", "alice", "--timezone", "Europe/Paris",
                 *extra, stdout=out)
    return out.getvalue()


def snapshot() -> tuple:
    return (list(ModelProfile.objects.values_list("name", "api_key_encrypted", "is_default")),
            list(Message.objects.order_by("id").values_list("chat_id", "position", "role",
                                                            "compacted")),
            list(Job.objects.values_list("name", "enabled", "chat_id", "note")),
            PermissionPolicy.load().to_dict(), SandboxConfig.load().to_dict(),
            list(Destination.objects.values_list("name", "kind")))


def test_it_imports_profiles_permissions_chats_and_jobs(alice, tmp_path):
    home = build(tmp_path / ".clotho", "http://127.0.0.1:9/v1")
    output = run(home)
    profile = ModelProfile.objects.get()
    assert profile.name == "local-fake" and profile.is_default
    assert profile.get_api_key() == "sk-clotho-9876"
    assert "sk-clotho-9876" not in profile.api_key_encrypted  # encrypted at rest
    assert PermissionPolicy.load().to_dict()["mode"] == "autonomous"
    assert SandboxConfig.load().memory_limit_mb == 1024
    chat = Chat.objects.get(pk=CHAT_ID)
    assert chat.owner == alice.user and chat.title == "OLD-QUESTION before compaction"
    sent = history_for_model(chat.pk)
    assert "OLD" not in str(sent)  # before the last compaction marker: kept, not sent
    assert Message.objects.filter(chat=chat, compacted=True).count() == 3
    call = next(m for m in sent if m.get("tool_calls"))["tool_calls"][0]
    assert call == {"id": "tu_1", "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "ls"}'}}
    assert {"role": "tool", "content": "a.txt\nb.txt", "tool_call_id": "tu_1"} in sent
    standup = Job.objects.get(name="daily-standup")
    assert str(standup.chat_id) == JOB_CHAT_ID and standup.timezone == "Europe/Paris"
    assert standup.enabled is False and "Discord" in standup.note
    assert Job.objects.get(name="nightly").enabled is False
    assert "broken.yaml skipped" in output and "profile 'broken' skipped" in output


def test_a_second_import_changes_nothing(alice, tmp_path):
    home = build(tmp_path / ".clotho", "http://127.0.0.1:9/v1")
    run(home)
    before = snapshot()
    output = run(home)
    assert snapshot() == before
    assert "chats: 0 imported, 2 already there" in output
    assert "jobs: 0 imported, 2 already there" in output


def test_a_discord_webhook_makes_the_job_deliver_there(alice, tmp_path, settings):
    home = build(tmp_path / ".clotho", "http://127.0.0.1:9/v1")
    run(home, "--discord-webhook", "https://discord.com/api/webhooks/1/abc")
    standup = Job.objects.get(name="daily-standup")
    assert standup.enabled is True and standup.note == ""
    assert [d.name for d in standup.destinations.all()] == ["clotho-discord"]
    assert Destination.objects.get().get_target() == "https://discord.com/api/webhooks/1/abc"


def test_it_refuses_a_missing_user_or_folder(alice, tmp_path):
    with pytest.raises(CommandError):
        call_command("import_clotho", str(tmp_path / "nope"), "--user", "alice")
    with pytest.raises(CommandError):
        call_command("import_clotho", str(tmp_path), "--user", "nobody")
