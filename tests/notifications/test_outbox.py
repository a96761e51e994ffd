"""Deliveries in process: the request each kind gets, cutting, signing, retries."""

from __future__ import annotations

import asyncio

import pytest

from notifications import outbox
from notifications.models import Delivery, Destination
from notifications.senders import fit
from notifications.signing import sign, verify
from tests.notifications.receivers import Receiver

SECRET = "s" * 32


def destination(owner, kind: str, target: str, secret: str = "") -> Destination:
    row = Destination(owner=owner, name=kind, kind=kind)
    row.set_target(target)
    row.set_secret(secret)
    row.save()
    return row


def deliver_until_settled(rounds: int = 50) -> None:
    for _ in range(rounds):
        asyncio.run(outbox.deliver_due("test"))
        if not Delivery.objects.filter(status__in=("pending", "sending")).exists():
            return
        asyncio.run(asyncio.sleep(0.05))


@pytest.fixture
def fast(settings):
    settings.GATEWAY_NOTIFY_UNSAFE_ANY_HOST = True
    settings.GATEWAY_NOTIFY_BACKOFF_SECONDS = 0.01
    settings.GATEWAY_PUBLIC_URL = "https://gw.example"
    return settings


@pytest.mark.django_db(transaction=True)
def test_a_webhook_that_fails_twice_gets_the_third_try_signed_each_time(alice, fast):
    with Receiver(fail_first=2) as hook:
        target = destination(alice.user, "webhook", hook.url + "/in", SECRET)
        outbox.enqueue([target], source="job_run:1", chat_id=None, title="Job x: succeeded",
                       text="all good", payload={"event": "job.run.finished"})
        deliver_until_settled()
        assert len(hook.requests) == 3
        for request in hook.requests:
            assert verify(SECRET, request["headers"], request["body"])
            assert not verify("wrong" * 8, request["headers"], request["body"])
        assert hook.json(2) == {"event": "job.run.finished", "title": "Job x: succeeded",
                                "text": "all good", "link": ""}
    row = Delivery.objects.get()
    assert row.status == "delivered" and row.attempts == 3
    assert [entry["status_code"] for entry in row.log] == [500, 500, 204]


@pytest.mark.django_db(transaction=True)
def test_it_gives_up_after_the_last_attempt(alice, fast):
    fast.GATEWAY_NOTIFY_MAX_ATTEMPTS = 2
    with Receiver(fail_first=10) as hook:
        outbox.enqueue([destination(alice.user, "slack", hook.url)], source="", chat_id=None,
                       title="t", text="x")
        deliver_until_settled()
        assert len(hook.requests) == 2
    assert Delivery.objects.get().status == "failed"


@pytest.mark.django_db(transaction=True)
def test_discord_gets_a_cut_text_with_a_link_back_and_no_mentions(alice, fast):
    chat_id = "6f1c1a52-5a0e-4f58-9a39-2f3b7d0c9a11"
    with Receiver() as discord:
        outbox.enqueue([destination(alice.user, "discord", discord.url)], source="",
                       chat_id=chat_id, title="Job long", text="word " * 1000)
        deliver_until_settled()
        content = discord.json(0)["content"]
    assert len(content) == 2000
    assert content.endswith(f"full result: https://gw.example/#/chats/{chat_id})")
    assert discord.json(0)["allowed_mentions"] == {"parse": []}


def test_e_mail_goes_through_djangos_mail(alice, settings, db):
    from django.core import mail

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    target = destination(alice.user, "email", "ops@example.com")
    outbox.enqueue([target], source="", chat_id=None, title="Job mail: succeeded",
                   text="the report")
    from notifications import senders

    row = Delivery.objects.get()
    asyncio.run(senders.send(target, senders.message_of(row)))
    assert mail.outbox[0].subject == "Job mail: succeeded"
    assert mail.outbox[0].to == ["ops@example.com"] and "the report" in mail.outbox[0].body


def test_fit_keeps_short_text_and_cuts_long_text_to_the_limit():
    assert fit("short", 100, "L") == "short"
    cut = fit("x" * 500, 100, "https://l")
    assert len(cut) == 100 and cut.endswith("(cut; the full result: https://l)")


def test_a_signature_expires_and_binds_the_body():
    headers = sign(SECRET, b"{}", now=1000)
    assert verify(SECRET, headers, b"{}", now=1100)
    assert not verify(SECRET, headers, b"{}", now=2000)
    assert not verify(SECRET, headers, b"{ }", now=1100)
