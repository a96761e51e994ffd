"""Destinations cannot make the server call into its own network, or reach another user's
destinations."""

from __future__ import annotations

import asyncio

import pytest

from notifications import outbox
from notifications.models import Delivery, Destination

REFUSED = [
    ("webhook", "https://127.0.0.1/hook"),
    ("webhook", "https://localhost:8000/admin"),
    ("webhook", "https://169.254.169.254/latest/meta-data"),
    ("webhook", "https://[::1]/x"),
    ("webhook", "https://10.1.2.3/x"),
    ("webhook", "http://example.com/plain-http"),
    ("webhook", "file:///etc/passwd"),
    ("discord", "https://evil.example/api/webhooks/1/x"),
    ("discord", "https://discord.com/not-a-webhook"),
    ("slack", "https://hooks.slack.com.evil.example/services/x"),
    ("email", "not-an-address"),
    ("email", "a@example.com\nBcc: everyone@example.com"),
]


@pytest.mark.parametrize("kind, target", REFUSED)
def test_a_destination_into_a_private_network_or_elsewhere_is_refused(alice, kind, target):
    body = {"name": "x", "kind": kind, "target": target}
    if kind == "webhook":
        body["secret"] = "s" * 20
    response = alice.client.post("/api/notifications/destinations", body, format="json")
    assert response.status_code == 400, (target, response.json())
    assert "target" in response.json()["fields"]
    assert not Destination.objects.exists()


def test_the_service_hosts_are_accepted(alice):
    for kind, target in [("discord", "https://discord.com/api/webhooks/1/abc"),
                         ("slack", "https://hooks.slack.com/services/T/B/x")]:
        response = alice.client.post("/api/notifications/destinations",
                                     {"name": kind, "kind": kind, "target": target},
                                     format="json")
        assert response.status_code == 201
        assert "abc" not in response.json()["target"] and "/B/" not in response.json()["target"]


@pytest.mark.django_db(transaction=True)
def test_a_stored_private_target_is_refused_again_at_send_time(alice):
    row = Destination(owner=alice.user, name="w", kind="webhook")
    row.set_target("https://localhost:1/hook")  # as if its name resolved elsewhere before
    row.set_secret("s" * 20)
    row.save()
    outbox.enqueue([row], source="", chat_id=None, title="t", text="x")
    asyncio.run(outbox.deliver_due("me"))
    delivery = Delivery.objects.get()
    assert delivery.attempts == 1 and "private or local" in delivery.log[0]["error"]


def test_a_job_cannot_use_another_users_destination(alice, bob):
    row = Destination(owner=bob.user, name="bobs", kind="email")
    row.set_target("bob@example.com")
    row.save()
    response = alice.client.post("/api/jobs", {
        "name": "sneaky", "prompt": "p", "destinations": ["bobs"],
        "schedule": {"kind": "interval", "seconds": 3600}}, format="json")
    assert response.status_code == 400 and "destinations" in response.json()["fields"]
    assert alice.client.get(f"/api/notifications/destinations/{row.pk}").status_code == 404


def test_a_webhook_needs_a_secret(alice, settings):
    settings.GATEWAY_NOTIFY_UNSAFE_ANY_HOST = True  # no name resolution needed here
    response = alice.client.post("/api/notifications/destinations", {
        "name": "w", "kind": "webhook", "target": "https://example.com/x"}, format="json")
    assert response.status_code == 400 and "secret" in response.json()["fields"]
