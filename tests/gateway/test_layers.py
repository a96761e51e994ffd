"""The tuned in-memory channel layer keeps the semantics the gateway relies on."""

from __future__ import annotations

import asyncio

import pytest
from channels.exceptions import ChannelFull

from gateway import layers
from gateway.layers import GatewayInMemoryChannelLayer


async def test_a_group_message_reaches_every_member_in_order():
    layer = GatewayInMemoryChannelLayer(capacity=100)
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("chat.x", a)
    await layer.group_add("chat.x", b)
    for seq in range(5):
        await layer.group_send("chat.x", {"type": "chat.event", "seq": seq})
    for channel in (a, b):
        got = [(await layer.receive(channel))["seq"] for _ in range(5)]
        assert got == [0, 1, 2, 3, 4]


async def test_a_full_channel_refuses_instead_of_growing():
    layer = GatewayInMemoryChannelLayer(capacity=2)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "x"})
    await layer.send(channel, {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "x"})


async def test_expired_messages_are_still_cleaned_and_their_channel_leaves_groups(monkeypatch):
    monkeypatch.setattr(layers, "CLEAN_INTERVAL", 0.0)
    layer = GatewayInMemoryChannelLayer(expiry=0.01)
    stale, live = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", stale)
    await layer.send(stale, {"type": "old"})
    await asyncio.sleep(0.05)
    await layer.send(live, {"type": "new"})
    assert (await layer.receive(live))["type"] == "new"
    assert stale not in layer.groups["g"]
