"""The system prompt, assembled in one place."""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path

CORE_PROMPT = (
    "You are an agent running on a self-hosted gateway. You help the user by answering "
    "and, when useful, by using your tools: `bash` runs a shell command, `read`, `write` "
    "and `edit` work on files. Tools only reach the user's workspace folder; use paths "
    "relative to it. Some tool calls need the user's approval and may be denied: then "
    "say what you would have done instead of retrying the same call. Be concise."
)


def build_system_prompt(workspace: Path, sandboxed: bool, *,
                        today: dt.date | None = None) -> str:
    today = today or dt.date.today()
    where = "/workspace (a sandbox)" if sandboxed else str(workspace)
    parts = [
        CORE_PROMPT,
        f"Today is {today.isoformat()}.",
        f"Environment: workspace {where}; platform {platform.system()} "
        f"{platform.machine()}.",
    ]
    return "\n\n".join(parts)
