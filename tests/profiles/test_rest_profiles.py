"""/api/profiles: model profiles and the default one.

Admins change profiles; alice, a member, may only read them. An API key goes in once and
never comes back out: responses show its last four characters.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from profiles.models import ModelProfile

pytestmark = pytest.mark.django_db

API_KEY = "sk-live-0123456789abcdefWXYZ"
FORBIDDEN = {"error": "forbidden", "message": "Only admins may do this."}
PROFILE = {"provider": "openai", "model": "gpt-4o", "base_url": None, "api_key": None,
           "context_window": None, "max_output_tokens": None, "auto_title": False, "vision": False}


def _create(actor: Any, name: str, **fields: Any) -> Any:
    profile = {"provider": "openai", "model": "gpt-4o", **fields}
    return actor.client.post("/api/profiles", {"name": name, "profile": profile},
                             format="json")


def _default_name() -> str | None:
    default = ModelProfile.get_default()
    return default.name if default else None


# --- list ----------------------------------------------------------------------------

def test_the_listing_of_a_fresh_gateway_is_empty(alice: Any) -> None:
    response = alice.client.get("/api/profiles")

    assert response.status_code == 200
    assert response.json() == {"default": None, "profiles": {}}


def test_alice_lists_the_profiles_and_the_default(alice: Any, profile: Any) -> None:
    ModelProfile.objects.create(name="local", provider="ollama", model="llama3.1",
                                base_url="http://localhost:11434/v1", context_window=8192)

    response = alice.client.get("/api/profiles")

    assert response.status_code == 200
    assert response.json() == {
        "default": "fake",
        "profiles": {
            "fake": {"provider": "openai", "model": "fake-model", "base_url": profile.base_url,
                     "api_key": "...1234", "context_window": None, "max_output_tokens": None, "auto_title": False, "vision": False},
            "local": {"provider": "ollama", "model": "llama3.1",
                      "base_url": "http://localhost:11434/v1", "api_key": None,
                      "context_window": 8192, "max_output_tokens": None, "auto_title": False, "vision": False},
        },
    }


def test_alice_reads_one_profile(alice: Any, profile: Any) -> None:
    response = alice.client.get("/api/profiles/fake")

    assert response.status_code == 200
    assert response.json() == {"name": "fake", "profile": profile.to_dict()}


def test_reading_an_unknown_profile_is_a_404(alice: Any) -> None:
    response = alice.client.get("/api/profiles/nope")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message":
                               "No profile named 'nope'; GET /api/profiles lists them."}


def test_profiles_need_a_token(anon: APIClient, profile: Any) -> None:
    for response in (anon.get("/api/profiles"), anon.get("/api/profiles/fake"),
                     anon.get("/api/profiles/default"),
                     anon.post("/api/profiles", {}, format="json"),
                     anon.delete("/api/profiles/fake")):
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
    assert ModelProfile.objects.filter(name="fake").exists()


# --- create --------------------------------------------------------------------------

def test_an_admin_creates_a_profile(admin: Any) -> None:
    response = _create(admin, "gpt", base_url="https://api.openai.com/v1", api_key=API_KEY,
                       context_window=128000, max_output_tokens=4096)

    assert response.status_code == 201
    assert response.json() == {"name": "gpt", "profile": {
        "provider": "openai", "model": "gpt-4o", "base_url": "https://api.openai.com/v1",
        "api_key": "...WXYZ", "context_window": 128000, "max_output_tokens": 4096, "auto_title": False, "vision": False}}
    stored = ModelProfile.objects.get(name="gpt")
    assert (stored.provider, stored.model, stored.context_window) == ("openai", "gpt-4o",
                                                                      128000)


def test_a_minimal_profile_has_nulls(admin: Any) -> None:
    response = _create(admin, "gpt")

    assert response.status_code == 201
    assert response.json() == {"name": "gpt", "profile": PROFILE}


@pytest.mark.parametrize("provider", ["openai", "ollama", "anthropic"])
def test_every_provider_is_accepted(admin: Any, provider: str) -> None:
    response = _create(admin, "p", provider=provider)

    assert response.status_code == 201
    assert response.json()["profile"]["provider"] == provider


@pytest.mark.parametrize("base_url", [
    "http://localhost:11434/v1",
    "http://127.0.0.1:8999/v1",
    "http://ollama:11434/v1",  # a Compose service: a host name without a dot
    "https://api.anthropic.com/v1/",
])
def test_base_urls_of_local_and_remote_servers_are_accepted(admin: Any, base_url: str) -> None:
    response = _create(admin, "p", base_url=base_url)

    assert response.status_code == 201
    assert response.json()["profile"]["base_url"] == base_url


def test_the_first_profile_becomes_the_default(admin: Any) -> None:
    _create(admin, "first")
    _create(admin, "second")

    assert _default_name() == "first"
    assert admin.client.get("/api/profiles").json()["default"] == "first"


def test_an_empty_api_key_stores_none(admin: Any) -> None:
    response = _create(admin, "gpt", api_key="")

    assert response.json()["profile"]["api_key"] is None
    assert ModelProfile.objects.get(name="gpt").get_api_key() == ""


def test_the_api_key_never_comes_back_in_plaintext(admin: Any, alice: Any) -> None:
    created = _create(admin, "gpt", api_key=API_KEY)

    responses = [created, admin.client.get("/api/profiles"),
                 admin.client.get("/api/profiles/gpt"), alice.client.get("/api/profiles"),
                 alice.client.get("/api/profiles/gpt")]

    for response in responses:
        assert response.status_code in (200, 201)
        text = response.content.decode()
        assert API_KEY not in text
        assert API_KEY[:-4] not in text
        assert '"...WXYZ"' in text


def test_the_database_holds_the_api_key_encrypted(admin: Any) -> None:
    _create(admin, "gpt", api_key=API_KEY)

    stored = ModelProfile.objects.get(name="gpt")
    assert stored.api_key_encrypted
    assert API_KEY not in stored.api_key_encrypted
    assert stored.api_key_last4 == "WXYZ"
    assert stored.get_api_key() == API_KEY
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ModelProfile._meta.db_table}")
        cells = [str(cell) for row in cursor.fetchall() for cell in row]
    assert not any(API_KEY in cell for cell in cells)


def test_two_profiles_with_one_key_store_different_ciphertexts(admin: Any) -> None:
    _create(admin, "a", api_key=API_KEY)
    _create(admin, "b", api_key=API_KEY)

    a, b = ModelProfile.objects.get(name="a"), ModelProfile.objects.get(name="b")
    assert a.api_key_encrypted != b.api_key_encrypted
    assert a.get_api_key() == b.get_api_key() == API_KEY


def test_the_api_key_is_trimmed(admin: Any) -> None:
    _create(admin, "gpt", api_key=f"  {API_KEY}\n")

    assert ModelProfile.objects.get(name="gpt").get_api_key() == API_KEY


def test_a_duplicate_name_is_a_409(admin: Any, profile: Any) -> None:
    response = _create(admin, "fake", model="other-model")

    assert response.status_code == 409
    assert response.json() == {
        "error": "profile_exists",
        "message": "A profile named 'fake' exists; delete it first or pick another name.",
        "fields": {"name": "Already exists."}}
    assert ModelProfile.objects.get(name="fake").model == "fake-model"
    assert ModelProfile.objects.count() == 1


def test_a_member_cannot_create_a_profile(alice: Any) -> None:
    response = _create(alice, "mine")

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert not ModelProfile.objects.exists()


@pytest.mark.parametrize("body, fields", [
    ({"name": "p", "profile": {"provider": "gemini", "model": "m"}},
     {"profile": {"provider": '"gemini" is not a valid choice.'}}),
    ({"name": "p", "profile": {"provider": "openai"}},
     {"profile": {"model": "This field is required."}}),
    ({"name": "p", "profile": {"provider": "openai", "model": ""}},
     {"profile": {"model": "This field may not be blank."}}),
    ({"name": "p", "profile": {"provider": "openai", "model": "m", "base_url": "not a url"}},
     {"profile": {"base_url": "Enter an http:// or https:// URL."}}),
    ({"name": "p", "profile": {"provider": "openai", "model": "m", "base_url": "ftp://x.io"}},
     {"profile": {"base_url": "Enter an http:// or https:// URL."}}),
    ({"name": "p", "profile": {"provider": "openai", "model": "m",
                               "base_url": "http://host:port/v1"}},
     {"profile": {"base_url": "Enter an http:// or https:// URL."}}),
    ({"name": "p", "profile": {"provider": "openai", "model": "m", "context_window": 100}},
     {"profile": {"context_window": "Ensure this value is greater than or equal to 256."}}),
    ({"name": "p", "profile": {"provider": "openai", "model": "m", "max_output_tokens": 0}},
     {"profile": {"max_output_tokens": "Ensure this value is greater than or equal to 1."}}),
    ({"name": "p", "profile": {"provider": "openai", "model": "m",
                               "context_window": "big"}},
     {"profile": {"context_window": "A valid integer is required."}}),
    ({"name": "p"}, {"profile": "This field is required."}),
    ({"profile": {"provider": "openai", "model": "m"}}, {"name": "This field is required."}),
    ({"name": "p", "profile": {"provider": "openai", "model": "m"}, "extra": 1},
     {"extra": "Unknown field."}),
    ({"name": "p", "profile": {"provider": "openai", "model": "m", "temperature": 0.2}},
     {"profile": {"temperature": "Unknown field."}}),
])
def test_it_validates_a_new_profile(admin: Any, body: dict, fields: dict) -> None:
    response = admin.client.post("/api/profiles", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["fields"] == fields
    assert not ModelProfile.objects.exists()


@pytest.mark.parametrize("name", ["has space", "a/b", "é", "x" * 65, "", "dot.ted"])
def test_a_profile_name_is_a_slug(admin: Any, name: str) -> None:
    response = _create(admin, name)

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"name"}
    assert not ModelProfile.objects.exists()


# --- delete --------------------------------------------------------------------------

def test_an_admin_deletes_a_profile(admin: Any, profile: Any) -> None:
    _create(admin, "spare")

    response = admin.client.delete("/api/profiles/spare")

    assert response.status_code == 204
    assert response.content == b""
    assert list(ModelProfile.objects.values_list("name", flat=True)) == ["fake"]
    assert admin.client.get("/api/profiles/spare").status_code == 404


def test_the_default_profile_cannot_be_deleted(admin: Any, profile: Any) -> None:
    response = admin.client.delete("/api/profiles/fake")

    assert response.status_code == 400
    assert response.json() == {
        "error": "profile_in_use",
        "message": "'fake' is the default profile; make another profile the default "
                   "before deleting it."}
    assert ModelProfile.objects.filter(name="fake").exists()


def test_deleting_an_unknown_profile_is_a_404(admin: Any) -> None:
    response = admin.client.delete("/api/profiles/nope")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_member_cannot_delete_a_profile(alice: Any, admin: Any, profile: Any) -> None:
    _create(admin, "spare")

    response = alice.client.delete("/api/profiles/spare")

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert ModelProfile.objects.filter(name="spare").exists()


def test_default_is_a_reserved_profile_name(admin: Any, profile: Any) -> None:
    """/api/profiles/default is the default-profile endpoint, so no profile may be called
    that (it could never be read or deleted by name)."""
    response = _create(admin, "default")

    assert response.status_code == 400
    assert "reserved" in response.json()["fields"]["name"]
    assert not ModelProfile.objects.filter(name="default").exists()


# --- the default profile -------------------------------------------------------------

def test_there_is_no_default_on_a_fresh_gateway(alice: Any) -> None:
    response = alice.client.get("/api/profiles/default")

    assert response.status_code == 200
    assert response.json() == {"default": None}


@pytest.mark.parametrize("path", ["/api/profiles/default", "/api/profiles/default/current"])
def test_alice_reads_the_default(alice: Any, profile: Any, path: str) -> None:
    response = alice.client.get(path)

    assert response.status_code == 200
    assert response.json() == {"default": "fake"}


@pytest.mark.parametrize("method, path", [("put", "/api/profiles/default"),
                                          ("post", "/api/profiles/default/set")])
@pytest.mark.parametrize("key", ["name", "profile_name"])
def test_an_admin_sets_the_default(admin: Any, profile: Any, method: str, path: str,
                                   key: str) -> None:
    _create(admin, "other")

    response = getattr(admin.client, method)(path, {key: "other"}, format="json")

    assert response.status_code == 200
    assert response.json() == {"default": "other"}
    assert list(ModelProfile.objects.filter(is_default=True)
                .values_list("name", flat=True)) == ["other"]
    assert admin.client.get("/api/profiles").json()["default"] == "other"


def test_the_former_default_may_be_deleted_once_replaced(admin: Any, profile: Any) -> None:
    _create(admin, "other")
    admin.client.put("/api/profiles/default", {"name": "other"}, format="json")

    assert admin.client.delete("/api/profiles/fake").status_code == 204


def test_setting_the_default_again_keeps_it(admin: Any, profile: Any) -> None:
    response = admin.client.put("/api/profiles/default", {"name": "fake"}, format="json")

    assert response.json() == {"default": "fake"}
    assert _default_name() == "fake"


@pytest.mark.parametrize("method, path", [("put", "/api/profiles/default"),
                                          ("post", "/api/profiles/default/set")])
def test_a_member_cannot_set_the_default(alice: Any, admin: Any, profile: Any, method: str,
                                         path: str) -> None:
    _create(admin, "other")

    response = getattr(alice.client, method)(path, {"name": "other"}, format="json")

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert _default_name() == "fake"


def test_setting_an_unknown_default_is_a_400(admin: Any, profile: Any) -> None:
    response = admin.client.put("/api/profiles/default", {"name": "nope"}, format="json")

    assert response.status_code == 400
    message = "No profile named 'nope'; GET /api/profiles lists them."
    assert response.json() == {"error": "unknown_profile", "message": message,
                               "fields": {"name": message}}
    assert _default_name() == "fake"


@pytest.mark.parametrize("body, field", [({}, "name"), ({"name": ""}, "name"),
                                         ({"name": "fake", "force": True}, "force")])
def test_setting_the_default_validates_the_body(admin: Any, profile: Any, body: dict,
                                                field: str) -> None:
    response = admin.client.put("/api/profiles/default", body, format="json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {field}
