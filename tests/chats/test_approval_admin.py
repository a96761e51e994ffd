"""Pending approvals in the Django admin: made by the agent loop only, so the admin shows
them and offers no way to add, change or delete one (a superuser included)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from chats.models import Chat, PendingApproval

pytestmark = pytest.mark.django_db
LIST = "/admin/chats/pendingapproval/"


@pytest.fixture
def approval(alice: Any) -> PendingApproval:
    chat = Chat.objects.create(owner=alice.user, title="asks")
    return PendingApproval.objects.create(
        chat=chat, tool_call_id="call-1", tool_name="bash", arguments={"command": "ls"},
        expires_at=timezone.now() + dt.timedelta(minutes=5))


@pytest.fixture
def browser(admin: Any) -> Client:
    assert admin.user.is_superuser  # every permission there is, and still no add
    client = Client()
    client.force_login(admin.user)
    return client


def test_the_admin_offers_no_add_for_pending_approvals(browser: Client,
                                                      approval: PendingApproval) -> None:
    listing = browser.get(LIST)

    assert listing.status_code == 200
    page = listing.content.decode()
    assert "call-1" in page
    assert f"{LIST}add/" not in page
    assert browser.get(f"{LIST}add/").status_code == 403
    assert browser.post(f"{LIST}add/", {
        "chat": approval.chat_id, "tool_call_id": "forged", "tool_name": "bash",
        "arguments": "{}", "expires_at_0": "2099-01-01", "expires_at_1": "00:00:00",
    }).status_code == 403
    assert list(PendingApproval.objects.values_list("tool_call_id", flat=True)) == ["call-1"]


def test_a_pending_approval_is_shown_read_only(browser: Client,
                                               approval: PendingApproval) -> None:
    url = f"{LIST}{approval.pk}/change/"

    shown = browser.get(url)

    assert shown.status_code == 200
    page = shown.content.decode()
    assert "bash" in page and 'name="verdict"' not in page and 'name="_save"' not in page
    posted = browser.post(url, {"verdict": "allow", "tool_name": "rm"})
    assert posted.status_code == 403
    approval.refresh_from_db()
    assert approval.verdict is None and approval.tool_name == "bash"


def test_a_pending_approval_cannot_be_deleted_in_the_admin(browser: Client,
                                                           approval: PendingApproval) -> None:
    assert browser.get(f"{LIST}{approval.pk}/delete/").status_code == 403
    assert browser.post(LIST, {"action": "delete_selected", "_selected_action": [approval.pk],
                               "post": "yes"}).status_code in (200, 302)

    assert PendingApproval.objects.filter(pk=approval.pk).exists()
