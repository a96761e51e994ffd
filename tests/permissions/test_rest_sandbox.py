"""/api/config/sandbox (and Clotho's /api/sandbox): members read it, admins change it."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from permissions.models import SandboxConfig

pytestmark = pytest.mark.django_db

DEFAULTS = {"enabled": False, "memory_limit_mb": 512, "cpu_seconds": 30,
            "timeout_seconds": 30, "network_enabled": False, "workspace_mode": "rw"}
FORBIDDEN = {"error": "forbidden", "message": "Only admins may do this."}


def _put(actor: Any, body: Any, path: str = "/api/config/sandbox") -> Any:
    return actor.client.put(path, body, format="json")


# --- read ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/config/sandbox", "/api/sandbox"])
def test_alice_reads_the_default_config(alice: Any, path: str) -> None:
    response = alice.client.get(path)

    assert response.status_code == 200
    assert response.json() == DEFAULTS


def test_alice_reads_what_an_admin_set(alice: Any) -> None:
    SandboxConfig.objects.update_or_create(pk=1, defaults={"enabled": True,
                                                           "workspace_mode": "ro"})

    assert alice.client.get("/api/config/sandbox").json() == {
        **DEFAULTS, "enabled": True, "workspace_mode": "ro"}


def test_the_sandbox_config_needs_a_token(anon: APIClient) -> None:
    for response in (anon.get("/api/config/sandbox"), anon.get("/api/sandbox"),
                     anon.put("/api/config/sandbox", {"enabled": True}, format="json"),
                     anon.post("/api/sandbox", {"enabled": True}, format="json")):
        assert response.status_code == 401
    assert SandboxConfig.load().enabled is False


# --- update --------------------------------------------------------------------------

def test_an_admin_changes_one_key_and_gets_the_whole_config(admin: Any) -> None:
    response = _put(admin, {"memory_limit_mb": 1024})

    assert response.status_code == 200
    assert response.json() == {**DEFAULTS, "memory_limit_mb": 1024}
    assert SandboxConfig.load().memory_limit_mb == 1024


def test_an_admin_changes_every_key(admin: Any) -> None:
    config = {"enabled": True, "memory_limit_mb": 2048, "cpu_seconds": 120,
              "timeout_seconds": 90, "network_enabled": True, "workspace_mode": "ro"}

    response = _put(admin, config)

    assert response.json() == config
    assert SandboxConfig.load().to_dict() == config


def test_partial_updates_keep_the_other_keys(admin: Any) -> None:
    _put(admin, {"enabled": True, "cpu_seconds": 5})

    response = _put(admin, {"network_enabled": True})

    assert response.json() == {**DEFAULTS, "enabled": True, "cpu_seconds": 5,
                               "network_enabled": True}


def test_the_clotho_alias_updates_with_post(admin: Any) -> None:
    response = admin.client.post("/api/sandbox", {"timeout_seconds": 10}, format="json")

    assert response.status_code == 200
    assert response.json() == {**DEFAULTS, "timeout_seconds": 10}
    assert admin.client.get("/api/config/sandbox").json()["timeout_seconds"] == 10


@pytest.mark.parametrize("value", [32, 1_048_576])
def test_the_memory_limit_bounds_are_allowed(admin: Any, value: int) -> None:
    assert _put(admin, {"memory_limit_mb": value}).json()["memory_limit_mb"] == value


@pytest.mark.parametrize("method, path", [("put", "/api/config/sandbox"),
                                          ("put", "/api/sandbox"),
                                          ("post", "/api/sandbox")])
def test_a_member_cannot_change_the_sandbox(alice: Any, method: str, path: str) -> None:
    response = getattr(alice.client, method)(path, {"enabled": True}, format="json")

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert SandboxConfig.load().enabled is False


# --- validation ----------------------------------------------------------------------

@pytest.mark.parametrize("body, fields", [
    ({"memory_limit_mb": 31},
     {"memory_limit_mb": "Ensure this value is greater than or equal to 32."}),
    ({"memory_limit_mb": 1_048_577},
     {"memory_limit_mb": "Ensure this value is less than or equal to 1048576."}),
    ({"cpu_seconds": 0}, {"cpu_seconds": "Ensure this value is greater than or equal to 1."}),
    ({"cpu_seconds": 86_401},
     {"cpu_seconds": "Ensure this value is less than or equal to 86400."}),
    ({"timeout_seconds": -5},
     {"timeout_seconds": "Ensure this value is greater than or equal to 1."}),
    ({"workspace_mode": "rx"}, {"workspace_mode": '"rx" is not a valid choice.'}),
    ({"workspace_mode": "RW"}, {"workspace_mode": '"RW" is not a valid choice.'}),
    ({"enabled": "maybe"}, {"enabled": "Must be a valid boolean."}),
    ({"network_enabled": None}, {"network_enabled": "This field may not be null."}),
    ({"memory_limit_mb": "lots"}, {"memory_limit_mb": "A valid integer is required."}),
    ({"memory_limit_mb": 64.5}, {"memory_limit_mb": "A valid integer is required."}),
    ({"cpu_seconds": True}, {"cpu_seconds": "A valid integer is required."}),
    ({"cpu_seconds": [5]}, {"cpu_seconds": "A valid integer is required."}),
    ({"gpu": True}, {"gpu": "Unknown field."}),
])
def test_it_validates_the_config(admin: Any, body: dict, fields: dict) -> None:
    response = _put(admin, body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["fields"] == fields
    assert SandboxConfig.load().to_dict() == DEFAULTS


def test_an_invalid_key_changes_nothing_else(admin: Any) -> None:
    response = _put(admin, {"enabled": True, "cpu_seconds": 0})

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"cpu_seconds"}
    assert SandboxConfig.load().enabled is False


def test_a_body_that_is_not_an_object_is_refused(admin: Any) -> None:
    response = _put(admin, [{"enabled": True}])

    assert response.status_code == 400
    assert response.json()["fields"] == {"body": "Send a JSON object."}
