"""The generated AsyncAPI document is a valid AsyncAPI 3.0 document and says what
``agents.events`` declares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest

from agents import asyncapi
from agents import events as ev

SPEC = Path(__file__).parent / "asyncapi_spec" / "asyncapi-3.0.0.schema.json"


@pytest.fixture(scope="module")
def spec_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SPEC.read_text()))


def _errors(validator: jsonschema.Draft7Validator, doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in validator.iter_errors(doc)]


def test_the_document_is_valid_asyncapi_3(spec_validator: jsonschema.Draft7Validator
                                          ) -> None:
    doc = asyncapi.document()
    assert doc["asyncapi"] == "3.0.0"
    assert _errors(spec_validator, doc) == []


@pytest.mark.parametrize("break_it", [
    lambda d: d["operations"]["sendEvents"].update(action="emit"),
    lambda d: d.pop("info"),
    lambda d: d["channels"]["chat"].update(address=5),
    lambda d: d["components"]["messages"]["agent.text"]["payload"].update(type="strin"),
], ids=["bad action", "no info", "bad address", "bad payload schema"])
def test_the_spec_schema_catches_a_broken_document(
        spec_validator: jsonschema.Draft7Validator, break_it: Any) -> None:
    """The check above can fail: a broken document is reported."""
    doc = asyncapi.document()
    break_it(doc)
    assert _errors(spec_validator, doc)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_reference_resolves() -> None:
    doc = asyncapi.document()
    refs = list(_refs(doc))
    assert refs
    for ref in refs:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref


def test_every_payload_is_valid_json_schema() -> None:
    doc = asyncapi.document()
    for name, message in doc["components"]["messages"].items():
        jsonschema.Draft7Validator.check_schema(message["payload"])
        jsonschema.Draft202012Validator.check_schema(message["payload"])


def test_every_declared_event_and_frame_is_in_the_document() -> None:
    doc = asyncapi.document()
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert names == set(ev.EVENTS) | set(ev.CLIENT_FRAMES)
    assert doc["x-error-codes"] == ev.ERROR_CODES
    for event_type, declared in ev.EVENTS.items():
        payload = asyncapi.message_schema(doc, event_type)
        assert payload["required"] == ["type", "data", "seq", "timestamp"]
        assert payload["properties"]["type"] == {"const": event_type,
                                                 "description": "The event type."}
        data = payload["properties"]["data"]
        assert set(data["properties"]) == {f.name for f in declared.fields}
        assert set(data["required"]) == ev.PAYLOAD_KEYS[event_type]
        assert data["additionalProperties"] is declared.extra


def test_a_new_declaration_appears_in_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding an event is one declaration: the document follows."""
    monkeypatch.setattr(ev, "EVENTS", dict(ev.EVENTS))
    ev.event("agent.example", "An example.", ev.Field("n", ev.COUNT, "A number."))
    payload = asyncapi.message_schema(asyncapi.document(), "agent.example")
    assert payload["properties"]["data"]["required"] == ["n"]


def test_examples_of_every_event_validate_and_a_renamed_field_does_not() -> None:
    doc = asyncapi.document()
    good = {"type": ev.TOOL_RESULT, "seq": 3, "timestamp": "2026-12-02T20:00:00.123Z",
            "data": {"tool_use_id": "c1", "tool_name": "bash", "content": "hi\n",
                     "is_error": False}}
    jsonschema.validate(good, asyncapi.message_schema(doc, ev.TOOL_RESULT))
    renamed = {**good, "data": {**good["data"], "tool_id": good["data"].pop("tool_use_id")}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(renamed, asyncapi.message_schema(doc, ev.TOOL_RESULT))


def test_check_event_rejects_types_codes_and_undeclared_keys() -> None:
    ev.check_event(ev.ERROR, {"code": "invalid_event", "message": "bad frame"})
    for event_type, data in [
        (ev.ERROR, {"code": "made_up", "message": "x"}),
        (ev.TEXT_DELTA, {}),
        (ev.TEXT_DELTA, {"text": "a", "extra": 1}),
        (ev.QUEUED, {"message_id": "7", "position": 1}),
        ("agent.nope", {}),
    ]:
        with pytest.raises(ValueError):
            ev.check_event(event_type, data)
