"""Where apps plug into the core app, which imports none of them.

Each hook is filled by the app that knows the answer, in its ``AppConfig.ready()``:
- ``health_parts``: pieces of ``GET /health`` (``chats`` adds the running turns and the
  tool mode, ``mcp_servers`` its servers' states);
- ``tool_names``: the tools the model may call, for ``/api/permissions/tools`` and the
  policy's validation (``chats`` wires in the agent's toolbox, MCP tools included);
- ``serve_prepare`` and ``serve_loop_started``: signals of ``manage.py serve``, before
  daphne starts and once its event loop runs;
- ``turn_ended``: a signal ``chats`` sends when a turn of a chat has ended
  (``notifications`` tells the chat's chosen destination).
"""

from __future__ import annotations

from typing import Callable

from django.dispatch import Signal

# A health part returns the keys it adds to the report and whether the gateway is
# degraded because of it.
HealthPart = Callable[[], "tuple[dict, bool]"]
health_parts: list[HealthPart] = []


def add_health_part(part: HealthPart) -> None:
    if part not in health_parts:
        health_parts.append(part)


_tool_names: list[Callable[[], list[str]]] = []


def provide_tool_names(provider: Callable[[], list[str]]) -> None:
    """Set where the list of callable tools comes from (one provider; the last wins)."""
    _tool_names[:] = [provider]


def tool_names() -> list[str]:
    """Every tool name the model may call; empty until an app provides them."""
    return _tool_names[0]() if _tool_names else []


# Sent by ``serve`` after migrating and before daphne starts; a receiver returns a line to
# print (or None). Arguments: none.
serve_prepare = Signal()
# Sent once daphne's asyncio event loop runs; receivers may schedule tasks on it.
# Arguments: ``force_recovery`` (bool): this is the only process, so turns marked running
# died with an earlier one.
serve_loop_started = Signal()

# Sent by ``chats`` when a turn ended with ``agent.turn_complete`` (it completed, or ended
# in an error; a cancelled turn is not announced), off the turn's path, in a thread that
# may use the database. Arguments: ``chat_id`` (str), ``message_id`` (int or None: the
# user message the turn answered), ``stop_reason`` (str) and ``summary``, a callable that
# reads what the turn left: ``{"chat_title", "status": "completed" or "failed", "text"}``
# (the last answer, or the errors' sentences). Receivers are called robustly: an error in
# one is logged and stops nothing.
turn_ended = Signal()
