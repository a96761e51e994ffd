"""The AsyncAPI 3.0 document of the WebSocket API, made from ``agents.events``.

Nothing here is written by hand twice: every message, its payload schema and the error
codes come from the declarations in ``agents.events``, so the document changes when an
event does. Plain Python (no Django): the ``chats`` app serves it at
``/api/asyncapi.json`` and the contract tests validate real frames against it.

Perspective: the document describes the gateway. It *sends* the ``agent.*`` events on the
chat channel and *receives* the client frames.
"""

from __future__ import annotations

import copy
from typing import Any

from agents import events as ev

ASYNCAPI_VERSION = "3.0.0"
CHANNEL = "chat"

# WebSocket close codes the gateway uses; AsyncAPI has no field for them, so they go in
# the channel's description and an ``x-close-codes`` extension.
CLOSE_CODES: dict[int, str] = {
    4001: "Missing or wrong token (sent before any event).",
    4004: "The chat does not exist or belongs to another user (never says which).",
    4029: "Too many wrong tokens from this address; retry after the window "
          "(GATEWAY_AUTH_FAIL_WINDOW).",
    1009: "A frame larger than 4 x GATEWAY_MAX_FRAME_BYTES (a frame over the limit itself "
          "only gets agent.error invalid_event).",
}

DESCRIPTION = (
    "The agent gateway's WebSocket API, one socket per chat. The server sends every event "
    "in one envelope `{\"type\", \"data\", \"seq\", \"timestamp\"}`; the first event on "
    "every connect is `agent.state`. `seq` rises by one per chat for every chat event, "
    "across all sockets of the chat; `agent.state` and `agent.error` `invalid_event` go to "
    "one socket and repeat the current seq. Reconnect with `?since=<last seq>` to get the "
    "events after it replayed. Every socket of a chat gets every event of the chat and any "
    "of them may approve or cancel. The prose reference is docs/protocol.md in the "
    "repository."
)


def _message_id(name: str) -> str:
    """A component key (AsyncAPI allows letters, digits, ``.``, ``-`` and ``_``)."""
    return name.replace(" ", "_")


def _event_message(event: ev.Event) -> dict[str, Any]:
    scope = {"chat": "Sent to every socket of the chat, numbered and replayable.",
             "socket": "Sent to one socket only; repeats the chat's current seq.",
             "both": "Per code: see the code's description."}[event.scope]
    return {
        "name": event.type,
        "title": event.type,
        "summary": event.summary,
        "description": scope,
        "contentType": "application/json",
        "payload": ev.envelope_schema(event.type),
        "x-scope": event.scope,
    }


def _frame_message(frame: ev.ClientFrame) -> dict[str, Any]:
    return {
        "name": frame.name,
        "title": frame.type,
        "summary": frame.summary,
        "contentType": "application/json",
        "payload": frame.schema(),
    }


def _channel(event_ids: list[str], frame_ids: list[str]) -> dict[str, Any]:
    closes = " ".join(f"{code}: {text}" for code, text in CLOSE_CODES.items())
    return {
        "address": "/ws/{chat_id}",
        "title": "One chat's socket",
        "description": "Authenticate with `?token=` or an `Authorization: Bearer` header. "
                       f"Close codes: {closes}",
        "parameters": {"chat_id": {"description": "The chat's UUID."}},
        "messages": {mid: {"$ref": f"#/components/messages/{mid}"}
                     for mid in [*event_ids, *frame_ids]},
        "bindings": {"ws": {"bindingVersion": "0.1.0", "method": "GET", "query": {
            "type": "object",
            "properties": {
                "token": {"type": "string", "description": "An API token."},
                "since": {"type": "integer", "minimum": 0,
                          "description": "Replay the retained events after this seq."},
            },
        }}},
        "x-close-codes": {str(code): text for code, text in CLOSE_CODES.items()},
    }


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, a fresh copy on every call."""
    event_ids = [_message_id(name) for name in ev.EVENTS]
    frame_ids = [_message_id(name) for name in ev.CLIENT_FRAMES]
    messages = {_message_id(e.type): _event_message(e) for e in ev.EVENTS.values()}
    messages.update({_message_id(f.name): _frame_message(f)
                     for f in ev.CLIENT_FRAMES.values()})

    def refs(ids: list[str]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{CHANNEL}/messages/{mid}"} for mid in ids]

    doc = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Agent gateway WebSocket API",
            "version": "1.0.0",
            "description": DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "channels": {CHANNEL: _channel(event_ids, frame_ids)},
        "operations": {
            "sendEvents": {
                "action": "send",
                "title": "Events of the chat",
                "summary": "Everything the gateway sends on a chat's socket.",
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "messages": refs(event_ids),
            },
            "receiveFrames": {
                "action": "receive",
                "title": "Client frames",
                "summary": "What a client may send. A frame that is not JSON, has an "
                           "unknown type or a bad field gets agent.error invalid_event "
                           "and the socket stays open.",
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "messages": refs(frame_ids),
            },
        },
        "components": {
            "messages": messages,
            "schemas": {"ToolCall": ev.TOOL_CALL, "Usage": ev.USAGE},
        },
        "x-error-codes": dict(ev.ERROR_CODES),
    }
    return copy.deepcopy(doc)


def message_schema(doc: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The payload schema a frame of ``event_type`` must match, looked up in ``doc``
    (not in the declarations), so a test checks frames against the document itself."""
    for ref in doc["operations"]["sendEvents"]["messages"]:
        mid = ref["$ref"].rsplit("/", 1)[1]
        message = doc["components"]["messages"][mid]
        if message["name"] == event_type:
            return message["payload"]
    raise KeyError(f"the document has no event {event_type!r}")


# -- the same declarations as Markdown, for docs/protocol.md ------------------------------

def _type_text(schema: dict[str, Any]) -> str:
    """A short human reading of a field's JSON Schema."""
    if "enum" in schema:
        return "string, one of the codes below" if len(schema["enum"]) > 5 else \
            " or ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        items = schema.get("items", {})
        if items == ev.TOOL_CALL:
            return "array of tool calls"
        return f"array of {_type_text(items)}"
    if kind == "object" and schema.get("properties"):
        return "object `{" + ", ".join(schema["properties"]) + "}`"
    if kind == "integer" and "minimum" in schema:
        return f"integer >= {schema['minimum']}"
    return str(kind or "any")


def events_markdown() -> str:
    """The reference of every event and error code, as docs/protocol.md shows it."""
    lines: list[str] = []
    for event in ev.EVENTS.values():
        lines += [f"### `{event.type}`", "", event.summary, "",
                  "| field | type | required | meaning |", "|---|---|---|---|"]
        for f in event.fields:
            lines.append(f"| `{f.name}` | {_type_text(f.schema)} | "
                         f"{'yes' if f.required else 'no'} | {f.description} |")
        lines += ["", "Other keys: " + ("allowed." if event.extra else "never sent."), ""]
    lines += ["### `agent.error` codes", "", "| code | when |", "|---|---|"]
    lines += [f"| `{code}` | {when} |" for code, when in ev.ERROR_CODES.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python3 -m agents.asyncapi [--markdown]
    import json
    import sys

    sys.stdout.write(events_markdown() if "--markdown" in sys.argv
                     else json.dumps(document(), indent=2) + "\n")
