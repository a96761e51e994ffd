"""Editing a profile in place, and asking its provider for its models (the "test
connection"). Admin edits; alice is a member and may not."""

from __future__ import annotations

from typing import Any

import pytest

from agents.providers import DEFAULT_BASE_URLS
from profiles import upstream as profile_upstream
from profiles.models import ModelProfile
from tests.fake_upstream import FakeUpstream

pytestmark = pytest.mark.django_db
FORBIDDEN = {"error": "forbidden", "message": "Only admins may do this."}


def _profile(url: str, key: str = "sk-old-1111") -> ModelProfile:
    p = ModelProfile(name="p", provider="openai", model="m", base_url=url)
    p.set_api_key(key)
    p.save()
    return p


def test_an_admin_edits_a_profile_and_keeps_the_key(admin: Any) -> None:
    _profile("http://127.0.0.1:9/v1")

    response = admin.client.patch("/api/profiles/p", {"model": "m2", "context_window": 9000},
                                  format="json")

    assert response.status_code == 200, response.content
    assert response.json()["profile"]["model"] == "m2"
    stored = ModelProfile.objects.get(name="p")
    assert (stored.model, stored.context_window) == ("m2", 9000)
    assert stored.get_api_key() == "sk-old-1111"


def test_an_edit_may_replace_or_clear_the_key(admin: Any) -> None:
    _profile("http://127.0.0.1:9/v1")

    admin.client.patch("/api/profiles/p", {"api_key": "sk-new-2222"}, format="json")
    assert ModelProfile.objects.get(name="p").get_api_key() == "sk-new-2222"
    admin.client.patch("/api/profiles/p", {"api_key": None}, format="json")
    assert ModelProfile.objects.get(name="p").get_api_key() == ""


@pytest.mark.parametrize("body, field", [({"provider": "nope"}, "provider"),
                                         ({"base_url": "ftp://x"}, "base_url"),
                                         ({"context_window": 1}, "context_window"),
                                         ({"colour": "red"}, "colour")])
def test_an_edit_is_validated_and_changes_nothing(admin: Any, body: dict, field: str) -> None:
    _profile("http://127.0.0.1:9/v1")

    response = admin.client.patch("/api/profiles/p", body, format="json")

    assert response.status_code == 400 and field in response.json()["fields"]
    assert ModelProfile.objects.get(name="p").model == "m"


def test_a_member_may_not_edit_a_profile_or_list_its_models(alice: Any) -> None:
    _profile("http://127.0.0.1:9/v1")

    assert alice.client.patch("/api/profiles/p", {"model": "x"}, format="json").json() == \
        FORBIDDEN
    assert alice.client.get("/api/profiles/p/models").status_code == 403
    assert ModelProfile.objects.get(name="p").model == "m"


def test_the_models_of_a_reachable_provider_are_listed(admin: Any,
                                                       upstream: FakeUpstream) -> None:
    _profile(upstream.url)

    response = admin.client.get("/api/profiles/p/models")

    assert response.status_code == 200, response.content
    assert "fake-model" in response.json()["models"]


def test_an_unreachable_provider_is_a_502_that_says_so(admin: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    _profile("http://127.0.0.1:9/v1")

    with caplog.at_level("WARNING"):
        response = admin.client.get("/api/profiles/p/models")

    assert response.status_code == 502
    assert response.json()["error"] == "upstream_error"
    assert "could not be reached" in response.json()["message"]
    assert "sk-old" not in response.content.decode()
    # The provider failed, not the gateway: one warning, no ERROR line that reads like a crash.
    assert [r.levelname for r in caplog.records if "/api/profiles/p/models" in r.getMessage()] \
        == ["WARNING"]


def test_the_default_urls_match_the_agents_ones() -> None:
    assert profile_upstream.DEFAULT_BASE_URLS == DEFAULT_BASE_URLS
