"""A Clotho home folder built by the tests, in Clotho's layout."""

from __future__ import annotations

import json
from pathlib import Path

CHAT_ID = "0b6f3c1e-2f4a-4d0e-9a51-3c2d1e0f9a77"
JOB_CHAT_ID = "5e0d7a2b-9c1f-4b3e-8d6a-1f2e3d4c5b6a"


def _jsonl(path: Path, turns: list[dict]) -> None:
    path.write_text("".join(json.dumps(t) + "\n" for t in turns))


def build(home: Path, upstream_url: str) -> Path:
    (home / "projects").mkdir(parents=True)
    (home / "jobs").mkdir()
    (home / "scheduler").mkdir()
    (home / "config.json").write_text(json.dumps({
        "api_token": "clo_secret",
        "permissions": {"mode": "autonomous", "tool_overrides": {"bash": "ask"}},
        "sandbox": {"enabled": False, "memory_limit": "1g", "cpu_quota": 100000,
                    "timeout_seconds": 45, "network_enabled": False, "workspace_mode": "rw"},
        "mcp": {"servers": {}}}))
    (home / "profiles.json").write_text(json.dumps({"default": "Local Fake", "profiles": {
        "Local Fake": {"provider": "openai", "model": "fake-model", "base_url": upstream_url,
                       "api_key": "sk-clotho-9876", "context_window": 100000,
                       "max_output_tokens": 1000},
        "broken": {"provider": "nobody", "model": "x"}}}))
    usage = {"input_tokens": 10, "output_tokens": 5}
    _jsonl(home / "projects" / f"{CHAT_ID}.jsonl", [
        {"role": "system", "content": "You are Clotho."},
        {"role": "user", "content": "OLD-QUESTION before compaction"},
        {"role": "assistant", "content": "OLD-ANSWER", "model": "m", "stop_reason": "end_turn",
         "usage": usage},
        {"role": "compaction", "timestamp": "2026-01-01T00:00:00Z", "turns_removed": 1,
         "tokens_before": 900, "tokens_after": 100},
        {"role": "user", "content": [{"type": "text", "text": "SUMMARY: they asked a thing."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Noted."}], "model": "m",
         "stop_reason": "end_turn", "usage": usage},
        {"role": "user", "content": "List the files."},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Listing."},
            {"type": "tool_use", "id": "tu_1", "name": "bash", "arguments": {"command": "ls"}}],
         "model": "m", "stop_reason": "tool_use", "usage": usage},
        {"role": "tool", "content": [{"type": "tool_result", "tool_use_id": "tu_1",
                                      "tool_name": "bash", "content": "a.txt\nb.txt",
                                      "is_error": False}]},
        {"role": "assistant", "content": "Two files: a.txt and b.txt.", "model": "m",
         "stop_reason": "end_turn", "usage": usage},
    ])
    _jsonl(home / "projects" / f"{JOB_CHAT_ID}.jsonl", [
        {"role": "user", "content": "Standup please."},
        {"role": "assistant", "content": "Yesterday: x.", "model": "m",
         "stop_reason": "end_turn", "usage": usage}])
    (home / "jobs" / "standup.yaml").write_text(
        'name: daily-standup\ntrigger:\n  type: cron\n  expression: "0 9 * * 1-5"\n'
        'prompt: "Generate a daily standup report."\ndelivery:\n'
        '  - type: discord_channel\n    channel_id: "123456789"\n')
    (home / "jobs" / "plain.yaml").write_text(
        'name: nightly\nenabled: false\ntrigger:\n  type: cron\n  expression: "0 2 * * *"\n'
        'prompt: "Clean up."\n')
    (home / "jobs" / "broken.yaml").write_text("name: [unclosed\n")
    (home / "scheduler" / "sessions.json").write_text(json.dumps(
        {"daily-standup": JOB_CHAT_ID}))
    return home
