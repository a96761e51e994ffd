"""The WebSocket contract, declared once: every event, every client frame, every error code.

Each server-to-client event is one ``event(...)`` call below: its type, what it means, and
its ``data`` fields with their JSON Schema, whether each is required, and whether ``data``
may carry keys that are not declared. The loop, the turn runner and the consumer send
events by these names (``ev.TEXT_DELTA``...); ``agents.asyncapi`` turns the declarations
into the AsyncAPI document served at ``/api/asyncapi.json``; tests check real frames
against it. Adding an event is one ``event(...)`` call: the constant, ``PAYLOAD_KEYS``,
``check_event``, the AsyncAPI document and docs/protocol.md's reference all follow from it
(regenerate that part of the page with ``python3 -m agents.asyncapi --markdown``); the
contract test then asks for a scenario that sends the new event for real
(``tests/contract/test_asyncapi.py``).

Every event travels in one envelope, ``{"type", "data", "seq", "timestamp"}``
(``ENVELOPE_FIELDS`` and ``envelope_schema`` below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

JSON = dict[str, Any]

# -- JSON Schema building blocks ------------------------------------------------------

STRING: JSON = {"type": "string"}
NON_EMPTY_STRING: JSON = {"type": "string", "minLength": 1}
BOOLEAN: JSON = {"type": "boolean"}
COUNT: JSON = {"type": "integer", "minimum": 0}
OBJECT: JSON = {"type": "object"}


def _object(properties: dict[str, JSON], required: list[str], extra: bool = False) -> JSON:
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": extra}


TOOL_CALL: JSON = _object({
    "id": {**STRING, "description": "The tool call's id (`tool_use_id` elsewhere)."},
    "name": {**STRING, "description": "The tool's name."},
    "arguments": {**OBJECT, "description": "The call's arguments; `{\"_raw\": text}` when "
                                           "the model sent text that is not a JSON object."},
}, ["id", "name", "arguments"])

USAGE: JSON = _object({"input_tokens": COUNT, "output_tokens": COUNT},
                      ["input_tokens", "output_tokens"])


# -- declarations ---------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One key of a frame or of an event's ``data``."""

    name: str
    schema: JSON
    description: str
    required: bool = True


def opt(name: str, schema: JSON, description: str) -> Field:
    """An optional field."""
    return Field(name, schema, description, required=False)


@dataclass(frozen=True)
class Event:
    """A server-to-client event type and the shape of its ``data``."""

    type: str
    summary: str
    fields: tuple[Field, ...]
    extra: bool = False  # may ``data`` carry undeclared keys?
    # "chat": numbered and sent to every socket of the chat (and replayed);
    # "socket": sent to one socket only, carrying the chat's current seq unchanged.
    scope: Literal["chat", "socket", "both"] = "chat"

    def data_schema(self) -> JSON:
        """JSON Schema of ``data``."""
        return _object({f.name: {**f.schema, "description": f.description}
                        for f in self.fields},
                       [f.name for f in self.fields if f.required], self.extra)


@dataclass(frozen=True)
class ClientFrame:
    """A client-to-server frame. ``name`` is unique; several forms may share a ``type``."""

    name: str
    type: str
    summary: str
    fields: tuple[Field, ...] = field(default_factory=tuple)

    def schema(self) -> JSON:
        """JSON Schema of the whole frame (extra keys are ignored by the server)."""
        properties = {"type": {"const": self.type}}
        properties.update({f.name: {**f.schema, "description": f.description}
                           for f in self.fields})
        return _object(properties, ["type", *(f.name for f in self.fields if f.required)],
                       extra=True)


EVENTS: dict[str, Event] = {}
CLIENT_FRAMES: dict[str, ClientFrame] = {}


def event(type_: str, summary: str, *fields: Field, extra: bool = False,
          scope: Literal["chat", "socket", "both"] = "chat") -> str:
    """Declare one event type; returns its name for the module constant."""
    if type_ in EVENTS:
        raise ValueError(f"event {type_!r} declared twice")
    EVENTS[type_] = Event(type_, summary, tuple(fields), extra, scope)
    return type_


def client_frame(name: str, type_: str, summary: str, *fields: Field) -> None:
    """Declare one form of a client frame."""
    if name in CLIENT_FRAMES:
        raise ValueError(f"client frame {name!r} declared twice")
    CLIENT_FRAMES[name] = ClientFrame(name, type_, summary, tuple(fields))


# -- agent.error codes ----------------------------------------------------------------

# code -> when it is sent. "Reserved" codes are declared for clients but not sent yet.
ERROR_CODES: dict[str, str] = {
    "invalid_event": "A client frame was not JSON, had an unknown type or a bad field, or "
                     "approved a call that is not pending. Sent to that socket only; the "
                     "socket stays open.",
    "upstream_error": "The model server failed or timed out; the turn ends with "
                      "agent.turn_complete, stop_reason \"error\".",
    "no_profile": "The chat has no model profile and there is no default; the turn ends "
                  "with agent.turn_complete, stop_reason \"error\".",
    "approval_timeout": "No verdict arrived within GATEWAY_APPROVAL_TIMEOUT; the calls were "
                        "denied and the turn goes on.",
    "turn_failed": "The turn failed on the server (logged); the chat stays usable.",
    "infrastructure_error": "The database or Redis failed during the turn for longer than "
                            "the retries cover; the turn was ended with a consistent history "
                            "and the chat stays usable.",
    "interrupted": "The server running the turn stopped; the turn was settled and the chat "
                   "is usable again.",
    "compaction_failed": "Context compaction failed; nothing was changed.",
    "invalid_tool_call": "The model sent tool arguments that are not a JSON object; it was "
                         "told so and may try again.",
    "tool_failed": "A tool could not run (not an error of the command it ran); its result "
                   "follows with is_error true.",
    "budget_exceeded": "A budget of the user (or of one of his groups) is used up: the turn "
                       "is refused before any model call and ends with agent.turn_complete, "
                       "stop_reason \"error\"; remaining and resets_at say what is left "
                       "and when the period starts again.",
    "profile_not_allowed": "The chat's model profile is not one the user may use (an admin "
                           "restricted it); the turn is refused before any model call. Pick "
                           "another profile.",
    "sandbox_unavailable": "Reserved: not sent by this version.",
    "replay_unavailable": "Reserved: not sent by this version.",
}

# -- server-to-client events ----------------------------------------------------------

STATE = event(
    "agent.state",
    "Sent first on every connect, to that socket only, carrying the chat's current seq: "
    "what a client that (re)connects needs to pick up where it was.",
    Field("running", BOOLEAN, "A turn of this chat is running."),
    Field("queued", COUNT, "User messages waiting in the chat's queue."),
    Field("pending_tool_calls", {"type": "array", "items": TOOL_CALL},
          "Tool calls waiting for a verdict (answer with tool_approval)."),
    Field("partial_text", STRING,
          "Text streamed so far by the model call in progress (empty when idle)."),
    opt("replay_complete", BOOLEAN,
        "Only with ?since=: false when some events after since are no longer kept "
        "(reload GET /api/chats/{id})."),
    scope="socket")
TURN_STARTED = event(
    "agent.turn_started", "A turn starts running a user message.",
    Field("message_id", COUNT, "Id of the user message the turn answers."))
TEXT_DELTA = event(
    "agent.text_delta", "A piece of the model's reply (stream true).",
    Field("text", STRING, "The next piece of text."))
TEXT = event(
    "agent.text", "The model's whole reply of one model call (stream false).",
    Field("text", STRING, "The reply's text."))
TOOL_REQUEST = event(
    "agent.tool_request",
    "Tool calls that need the user's approval; answer with tool_approval from any socket "
    "of the chat.",
    Field("tool_calls", {"type": "array", "items": TOOL_CALL, "minItems": 1},
          "Only the calls that need approval."))
TOOL_DENIED = event(
    "agent.tool_denied", "Tool calls the permission policy denied without asking.",
    Field("tool_calls", {"type": "array", "items": TOOL_CALL, "minItems": 1},
          "The denied calls."),
    Field("reason", STRING, "Why they were denied."))
TOOL_USE = event(
    "agent.tool_use",
    "A tool call starts running (every call that runs, also those allowed without asking).",
    Field("tool_use_id", STRING, "The call's id."),
    Field("tool_name", STRING, "The tool's name."),
    Field("arguments", OBJECT, "The call's arguments."))
TOOL_RESULT = event(
    "agent.tool_result",
    "The result of a tool call, also of a denied or failed one (then is_error is true).",
    Field("tool_use_id", STRING, "The call's id."),
    Field("tool_name", STRING, "The tool's name."),
    Field("content", STRING, "What the tool returned (what the model is sent)."),
    Field("is_error", BOOLEAN, "The call failed or was denied."))
FILES_CHANGED = event(
    "agent.files_changed",
    "After a tool call that may have changed the workspace (write, edit, bash): a files "
    "panel refreshes, and marks the paths as written by the agent.",
    Field("tool_use_id", STRING, "The call's id."),
    Field("paths", {"type": "array", "items": STRING},
          "Workspace paths the call wrote (empty when not known)."),
    Field("complete", BOOLEAN, "paths is every change (write, edit); false after bash, "
                               "which may have changed anything."))
TURN_COMPLETE = event(
    "agent.turn_complete", "A turn ended (not sent after agent.cancelled).",
    Field("stop_reason", STRING,
          "end_turn, max_tokens, content_filter, tools_denied (3 rounds in a row with every "
          "call denied), max_tool_rounds, error (after agent.error), or the model server's "
          "own finish reason."),
    Field("model", {"type": ["string", "null"]},
          "The model that answered (null when there was none)."),
    Field("usage", USAGE, "Tokens of the turn's own model calls (a compaction's summary "
          "call is not in it; it is in the usage ledger, GET /api/usage)."))
CANCELLED = event(
    "agent.cancelled", "The running turn was cancelled; it ends here.",
    Field("message", STRING, "A sentence for the user."))
ERROR = event(
    "agent.error",
    "Something went wrong. invalid_event goes to the sending socket only and carries the "
    "chat's current seq; every other code is a chat event.",
    Field("code", {"type": "string", "enum": list(ERROR_CODES)}, "What went wrong."),
    Field("message", STRING, "One sentence a person can act on."),
    opt("detail", STRING, "The technical text (for a turn's errors; shown folded away)."),
    opt("error_id", COUNT, "Id of the error as kept in the chat's history (GET "
                           "/api/chats/{id} lists it under errors): a turn's errors only."),
    opt("remaining", _object({"tokens": {"type": ["integer", "null"], "minimum": 0},
                              "cost": {"type": ["string", "null"]}}, ["tokens", "cost"]),
        "budget_exceeded only: what is left of the limit that was hit, in tokens and in "
        "cost (a decimal string); null for a kind of limit the budget does not set."),
    opt("resets_at", {"type": "string", "format": "date-time"},
        "budget_exceeded only: when the budget's day or month starts again (UTC)."),
    scope="both")
COMPACTION_STARTED = event(
    "agent.compaction_started", "Older exchanges are being summarised to free context.",
    Field("tokens_before", COUNT, "Estimated tokens of what the model is sent now."),
    Field("context_window", COUNT, "The model's context window."))
CONTEXT_COMPACTED = event(
    "agent.context_compacted", "Compaction finished.",
    Field("tokens_before", COUNT, "Tokens before."),
    Field("tokens_after", COUNT, "Tokens after."),
    Field("turns_removed", COUNT, "User exchanges replaced by the summary."))
QUEUED = event(
    "agent.queued",
    "A user message was stored in the chat's queue (sent for every message, also when it "
    "runs at once; always before its agent.turn_started).",
    Field("message_id", COUNT, "Id of the stored user message."),
    Field("position", {"type": "integer", "minimum": 1}, "1 = next to run."))
TITLE = event(
    "agent.title",
    "The server titled the chat: the model wrote a short title after the first reply "
    "(profiles with auto_title). A title a person set is never replaced.",
    Field("title", STRING, "The chat's new title."))

# -- client-to-server frames ----------------------------------------------------------

ATTACHMENTS: JSON = {"type": "array", "maxItems": 20, "items": NON_EMPTY_STRING}
CONTENT: JSON = {"oneOf": [
    NON_EMPTY_STRING,
    {"type": "array", "minItems": 1, "maxItems": 100, "items": {
        "type": "object", "required": ["type"], "properties": {"type": STRING}}},
]}
STREAM: JSON = {"type": "boolean", "default": True}

client_frame(
    "user_message", "user_message",
    "Run a turn with this message; while a turn runs it is queued and runs next.",
    Field("content", CONTENT, "Text, or a list of content blocks ({\"type\": \"text\", "
                              "\"text\": ...}, ...)."),
    opt("stream", STREAM, "Stream the reply as agent.text_delta (default) or send it as "
                          "agent.text."),
    opt("attachments", ATTACHMENTS, "Workspace paths of files uploaded before (by "
                                    "convention under uploads/<chat>/): the model is told "
                                    "where they are; images reach a vision profile as image "
                                    "parts."))
client_frame(
    "run", "run", "Clotho's form of user_message.",
    Field("data", _object({"message": CONTENT, "stream": STREAM}, ["message"], extra=True),
          "The message and, optionally, stream."))
client_frame(
    "tool_approval", "tool_approval",
    "Verdicts for pending tool calls; a pending call without a verdict is denied.",
    Field("verdicts", {"type": "object", "minProperties": 1, "additionalProperties": {
        "enum": ["allow", "deny", "allow_chat"]}},
          "tool_use_id -> allow, deny, or allow_chat (allow this tool for the rest of the "
          "chat)."))
client_frame(
    "tool_approval_clotho", "tool_approval",
    "Clotho's form of tool_approval: one verdict for every pending call.",
    Field("data", _object({"approved": BOOLEAN}, ["approved"], extra=True),
          "approved true allows, false denies every pending call."))
client_frame("cancel", "cancel", "Stop the running turn; queued messages go on.")

# -- the envelope ---------------------------------------------------------------------

ENVELOPE_FIELDS: tuple[Field, ...] = (
    Field("type", STRING, "The event type."),
    Field("data", OBJECT, "The event's fields."),
    Field("seq", COUNT, "Rises by one per chat for every chat event, across all sockets of "
                        "the chat; socket-only events repeat the current value."),
    Field("timestamp", {"type": "string", "format": "date-time",
                        "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"},
          "When the event was made, UTC, ISO 8601 with milliseconds."),
)


def envelope_schema(event_type: str) -> JSON:
    """JSON Schema of one whole frame of ``event_type``."""
    properties = {f.name: {**f.schema, "description": f.description} for f in ENVELOPE_FIELDS}
    properties["type"] = {"const": event_type, "description": "The event type."}
    properties["data"] = EVENTS[event_type].data_schema()
    return _object(properties, [f.name for f in ENVELOPE_FIELDS])


# Required keys of each event's ``data`` (derived; kept for callers that only need keys).
PAYLOAD_KEYS: dict[str, frozenset[str]] = {
    name: frozenset(f.name for f in e.fields if f.required) for name, e in EVENTS.items()}


def check_event(event_type: str, data: dict[str, Any]) -> None:
    """Raise ValueError when an event does not match its declaration (keys, JSON types,
    error codes, undeclared keys where they are not allowed)."""
    if event_type not in EVENTS:
        raise ValueError(f"undeclared event type {event_type!r}")
    import jsonschema  # only tests and the contract check call this: not the hot path

    try:
        jsonschema.validate(data, EVENTS[event_type].data_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "data"
        raise ValueError(f"{event_type} {where}: {exc.message}") from None
