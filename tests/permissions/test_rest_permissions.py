"""/api/permissions and /api/permissions/tools: members read the policy, admins change it."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from rest_framework.test import APIClient

from agents import toolbox
from permissions.models import PermissionPolicy

pytestmark = pytest.mark.django_db

BUILTINS = ["bash", "read", "write", "edit"]
FORBIDDEN = {"error": "forbidden", "message": "Only admins may do this."}


class ExtraTools:
    """A stand-in for an MCP server: one more tool name."""

    def names(self) -> list[str]:
        return ["mcp_search"]

    def schemas(self) -> list[dict[str, Any]]:
        return []

    async def run(self, name: str, args: dict[str, Any], env: Any) -> Any:
        raise AssertionError("not run in these tests")


@pytest.fixture
def extra_tools() -> Iterator[ExtraTools]:
    provider = ExtraTools()
    toolbox.register(provider)
    yield provider
    toolbox.unregister(provider)


def _put(actor: Any, body: Any) -> Any:
    return actor.client.put("/api/permissions", body, format="json")


# --- read ----------------------------------------------------------------------------

def test_a_fresh_gateway_asks_for_every_tool(alice: Any) -> None:
    response = alice.client.get("/api/permissions")

    assert response.status_code == 200
    assert response.json() == {"mode": "interactive", "tool_overrides": {}}


def test_alice_reads_the_policy_an_admin_set(alice: Any) -> None:
    PermissionPolicy.objects.update_or_create(
        pk=1, defaults={"mode": "readonly", "tool_overrides": {"bash": "ask"}})

    assert alice.client.get("/api/permissions").json() == {
        "mode": "readonly", "tool_overrides": {"bash": "ask"}}


def test_the_tools_are_the_builtins(alice: Any) -> None:
    response = alice.client.get("/api/permissions/tools")

    assert response.status_code == 200
    assert response.json() == {"tools": BUILTINS}


def test_the_tools_include_those_of_other_providers_after_the_builtins(
        alice: Any, extra_tools: ExtraTools) -> None:
    assert alice.client.get("/api/permissions/tools").json() == {
        "tools": [*BUILTINS, "mcp_search"]}


def test_permissions_need_a_token(anon: APIClient) -> None:
    for response in (anon.get("/api/permissions"), anon.get("/api/permissions/tools"),
                     anon.put("/api/permissions", {"mode": "autonomous"}, format="json")):
        assert response.status_code == 401
    assert PermissionPolicy.load().mode == "interactive"


# --- update --------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["interactive", "autonomous", "readonly"])
def test_an_admin_sets_the_mode(admin: Any, mode: str) -> None:
    response = _put(admin, {"mode": mode})

    assert response.status_code == 200
    assert response.json() == {"mode": mode, "tool_overrides": {}}
    assert PermissionPolicy.load().mode == mode


def test_setting_the_mode_keeps_the_overrides(admin: Any) -> None:
    _put(admin, {"tool_overrides": {"bash": "deny"}})

    response = _put(admin, {"mode": "autonomous"})

    assert response.json() == {"mode": "autonomous", "tool_overrides": {"bash": "deny"}}


def test_overrides_replace_the_whole_map_and_keep_the_mode(admin: Any) -> None:
    _put(admin, {"mode": "readonly", "tool_overrides": {"bash": "deny", "write": "ask"}})

    response = _put(admin, {"tool_overrides": {"edit": "allow"}})

    assert response.json() == {"mode": "readonly", "tool_overrides": {"edit": "allow"}}
    assert PermissionPolicy.load().tool_overrides == {"edit": "allow"}


def test_an_empty_map_clears_the_overrides(admin: Any) -> None:
    _put(admin, {"tool_overrides": {"bash": "deny"}})

    assert _put(admin, {"tool_overrides": {}}).json()["tool_overrides"] == {}


def test_an_empty_body_changes_nothing(admin: Any) -> None:
    _put(admin, {"mode": "autonomous", "tool_overrides": {"read": "ask"}})

    response = _put(admin, {})

    assert response.status_code == 200
    assert response.json() == {"mode": "autonomous", "tool_overrides": {"read": "ask"}}


def test_every_level_may_override_every_tool(admin: Any) -> None:
    overrides = {"bash": "allow", "read": "ask", "write": "deny", "edit": "ask"}

    assert _put(admin, {"tool_overrides": overrides}).json()["tool_overrides"] == overrides


def test_a_tool_of_another_provider_may_be_overridden(admin: Any,
                                                      extra_tools: ExtraTools) -> None:
    response = _put(admin, {"tool_overrides": {"mcp_search": "deny"}})

    assert response.status_code == 200
    assert response.json()["tool_overrides"] == {"mcp_search": "deny"}


def test_a_member_cannot_change_the_policy(alice: Any) -> None:
    response = _put(alice, {"mode": "autonomous"})

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert PermissionPolicy.load().mode == "interactive"


def test_a_member_cannot_change_the_overrides_either(alice: Any) -> None:
    response = _put(alice, {"tool_overrides": {"bash": "allow"}})

    assert response.status_code == 403
    assert PermissionPolicy.load().tool_overrides == {}


# --- validation ----------------------------------------------------------------------

@pytest.mark.parametrize("body, fields", [
    ({"mode": "yolo"}, {"mode": '"yolo" is not a valid choice.'}),
    ({"mode": ""}, {"mode": '"" is not a valid choice.'}),
    ({"mode": None}, {"mode": "This field may not be null."}),
    ({"mode": ["autonomous"]}, {"mode": '"[\'autonomous\']" is not a valid choice.'}),
    ({"tool_overrides": {"bash": "sometimes"}},
     {"tool_overrides": {"bash": '"sometimes" is not a valid choice.'}}),
    ({"tool_overrides": {"bash": True}},
     {"tool_overrides": {"bash": '"True" is not a valid choice.'}}),
    ({"tool_overrides": {"rm": "allow"}},
     {"tool_overrides": "Unknown tool(s): rm. Known: bash, edit, read, write."}),
    ({"tool_overrides": ["bash"]},
     {"tool_overrides": 'Expected a dictionary of items but got type "list".'}),
    ({"tool_overrides": "bash=allow"},
     {"tool_overrides": 'Expected a dictionary of items but got type "str".'}),
    ({"mode": "readonly", "tools": {}}, {"tools": "Unknown field."}),
])
def test_it_validates_the_policy(admin: Any, body: dict, fields: dict) -> None:
    response = _put(admin, body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["fields"] == fields
    assert PermissionPolicy.load().to_dict() == {"mode": "interactive", "tool_overrides": {}}


def test_a_body_that_is_not_an_object_is_refused(admin: Any) -> None:
    response = _put(admin, ["autonomous"])

    assert response.status_code == 400
    assert response.json()["fields"] == {"body": "Send a JSON object."}


def test_an_invalid_part_changes_nothing(admin: Any) -> None:
    response = _put(admin, {"mode": "autonomous", "tool_overrides": {"nope": "allow"}})

    assert response.status_code == 400
    assert PermissionPolicy.load().mode == "interactive"
