"""A running turn's controls (cancels, verdicts) travel on the event hub: to the chat's
inbox in whichever process runs the turn, once each, and to nobody else."""

from __future__ import annotations

import asyncio
import threading

from chats.hub import LocalEventHub, RedisEventHub


class Inbox:
    def __init__(self) -> None:
        self.got: list[dict] = []
        self.arrived = asyncio.Event()

    def deliver(self, message: dict) -> None:
        self.got.append(message)
        self.arrived.set()


async def settle(*inboxes: Inbox) -> None:
    await asyncio.wait_for(asyncio.gather(*(i.arrived.wait() for i in inboxes)), 5)
    await asyncio.sleep(0.2)  # a second delivery would arrive by now


async def test_a_control_reaches_the_turn_on_the_other_process_once(redis_url):
    runs, other = RedisEventHub(redis_url, 100), RedisEventHub(redis_url, 100)
    turn, bystander, elsewhere = Inbox(), Inbox(), Inbox()
    await runs.watch_control("chat-a", turn)        # the process running chat-a's turn
    await runs.watch_control("chat-b", bystander)   # another chat's turn there
    await other.watch_control("chat-c", elsewhere)  # and one on the sending process
    await other.send_control("chat-a", {"type": "turn.verdicts", "verdicts": {"c1": "allow"}})
    await runs.send_control("chat-a", {"type": "turn.cancel"})  # its own process too
    await settle(turn)
    assert turn.got == [{"type": "turn.verdicts", "verdicts": {"c1": "allow"}},
                        {"type": "turn.cancel"}]
    assert bystander.got == [] and elsewhere.got == []
    runs.unwatch_control("chat-a", turn)
    await other.send_control("chat-a", {"type": "turn.cancel"})
    await asyncio.sleep(0.2)
    assert len(turn.got) == 2  # a turn that ended hears nothing more
    for hub in (runs, other):
        hub._listener.cancel()


async def test_in_one_process_a_control_is_a_direct_call():
    hub = LocalEventHub(100)
    turn, bystander = Inbox(), Inbox()
    await hub.watch_control("chat-a", turn)
    await hub.watch_control("chat-b", bystander)
    await hub.send_control("chat-a", {"type": "turn.cancel"})
    assert turn.got == [{"type": "turn.cancel"}] and bystander.got == []
    hub.unwatch_control("chat-a", turn)
    await hub.send_control("chat-a", {"type": "turn.cancel"})
    assert len(turn.got) == 1


async def test_a_turns_inbox_acts_in_its_own_loop_when_a_view_thread_sends():
    """A REST view (a thread of its own) cancels: the turn acts in its event loop."""
    from chats.turns import ControlChannel

    hub = LocalEventHub(100)
    control = ControlChannel("chat-a", hub)
    await control.open()
    loop = asyncio.get_running_loop()
    acted_in: list[asyncio.AbstractEventLoop] = []
    cancelled = asyncio.Event()

    def on_cancel() -> None:
        acted_in.append(asyncio.get_running_loop())
        cancelled.set()

    control.on_cancel = on_cancel
    thread = threading.Thread(
        target=lambda: asyncio.run(hub.send_control("chat-a", {"type": "turn.cancel"})))
    thread.start()
    await asyncio.wait_for(cancelled.wait(), 5)
    thread.join()
    assert acted_in == [loop]
    await control.close()
