"""Soak: 200 sockets on 50 chats of a real ``serve`` process, mixed turns for a while.

Each chat has 4 sockets and a driver that runs turns one after another, picked at random:
plain answers, two messages at once (the second is queued), tool calls in interactive mode
(allowed or denied by a random socket of the chat, or left unanswered until
``GATEWAY_APPROVAL_TIMEOUT``), and long answers cancelled by a random socket or over REST.
The fake upstream answers by the tag in the message, with small delays. A long answer
stops after its first pieces until its turn has ended: it can only end by the cancel.
(It used to stream to its end in about 2.4 s; under load this test's own process fell
behind reading its 200 sockets, saw the first delta late, and the cancel came after the
answer had finished: "a slow turn completed instead of being cancelled".)

Afterwards: every socket of a chat received the same events in seq order without a gap,
each streamed answer arrived whole, every turn ended (``turn_complete`` or ``cancelled``),
the only ``agent.error`` is ``approval_timeout`` for requests left unanswered, the
histories are consistent (every tool call has a result, nothing queued or running), the
server logged no error, and its RSS after a settle period is within +30 % of what it was
after a warm-up with the same workload. The mix has REST reads too: the context report
loads the tokenizer (~100 MB, once), which the warm-up must have paid for.

``GATEWAY_SOAK_SECONDS`` sets the soak (60 s by default, as in CI).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import websockets

from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream, Reply, Text, ToolCalls, last_user_text

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHATS = 50
SOCKETS_PER_CHAT = 4
SOAK_SECONDS = float(os.environ.get("GATEWAY_SOAK_SECONDS", "60"))
WARMUP_SECONDS = min(8.0, max(2.0, SOAK_SECONDS / 6))
SETTLE_SECONDS = 4.0
RSS_GROWTH_LIMIT = 1.30
APPROVAL_TIMEOUT = 5.0
TURN_DEADLINE = 30.0
END_EVENTS = ("agent.turn_complete", "agent.cancelled")


def expected_text(tag: str) -> str:
    return f"answer to {tag}: " + " ".join(f"w{n}" for n in range(12))


# Per slow tag: set when its turn has ended, so the upstream handler lets go.
slow_releases: dict[str, threading.Event] = {}


def reply_for(body: dict) -> Reply:
    """The fake model: what to answer is in the user message (``<kind> <tag>``)."""
    words = last_user_text(body).split()
    kind, tag = (words + ["?", "?"])[:2]
    last_role = (body.get("messages") or [{}])[-1].get("role")
    if last_role == "tool":
        return Text(f"tools done for {tag}", chunk_size=7)
    if kind == "tool":
        tool = "bash" if tag.endswith(("1", "3", "5", "7", "9")) else "read"
        args = {"command": f"echo {tag}"} if tool == "bash" else {"path": "notes.txt"}
        return ToolCalls([(f"call-{tag}", tool, args)])
    if kind == "slow":
        # A new event per request: the soak numbers its turns from 1 again after the
        # warm-up, so a tag comes back (with its old event already set).
        release = slow_releases[tag] = threading.Event()
        return Text("slow " * 80, chunk_size=5, delay=0.03, pause_after=3, release=release)
    if kind in ("plain", "queued"):
        return Text(expected_text(tag), chunk_size=6, delay=0.004)
    return Text("ok")


@dataclass
class ChatRun:
    chat_id: str
    rng: random.Random
    sockets: list[Any] = field(default_factory=list)
    received: list[list[dict[str, Any]]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    inbox: asyncio.Queue = field(default_factory=asyncio.Queue)  # socket 0's events
    turns: Counter = field(default_factory=Counter)
    unanswered: int = 0
    waits: list[float] = field(default_factory=list)  # message sent -> its turn started
    verdict_waits: list[float] = field(default_factory=list)  # verdict sent -> tool ran
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with FakeUpstream() as upstream:
        upstream.default_reply = reply_for
        proc = ServeProcess(tmp_path_factory.mktemp("soak") / "data", env={
            "DATABASE_URL": "", "REDIS_URL": "", "OPENAI_API_KEY": "",
            "GATEWAY_APPROVAL_TIMEOUT": str(APPROVAL_TIMEOUT)})
        try:
            proc.start()
            with proc.client() as http:
                assert http.post("/api/profiles", json={"name": "fake", "profile": {
                    "provider": "openai", "model": "fake-model", "base_url": upstream.url,
                    "api_key": "sk-soak"}}).status_code == 201
                assert http.put("/api/permissions", json={"mode": "interactive"}
                                ).status_code == 200
            yield proc
        finally:
            for release in slow_releases.values():  # a turn that never ended
                release.set()
            proc.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def reader(run: ChatRun, index: int) -> None:
    ws = run.sockets[index]
    try:
        async for raw in ws:
            event = json.loads(raw)
            run.received[index].append(event)
            if index == 0:
                run.inbox.put_nowait(event)
    except websockets.ConnectionClosed as closed:
        run.problems.append(f"socket {index} closed: {closed}")


async def next_event(run: ChatRun, deadline: float) -> dict[str, Any]:
    return await asyncio.wait_for(run.inbox.get(), max(0.1, deadline - time.monotonic()))


async def send(run: ChatRun, frame: dict[str, Any]) -> None:
    await run.rng.choice(run.sockets).send(json.dumps(frame))


async def one_turn(run: ChatRun, http: httpx.AsyncClient, n: int) -> None:
    """Start one kind of turn and follow it (socket 0's view) until it ends."""
    kind = run.rng.choices(["plain", "queued", "tool", "slow"], [40, 10, 30, 20])[0]
    tag = f"{run.chat_id[:8]}-{n}"
    await send(run, {"type": "user_message", "content": f"{kind} {tag}"})
    ends_expected = 1
    if kind == "queued":
        await send(run, {"type": "user_message", "content": f"queued {tag}b"})
        ends_expected = 2
    run.turns[kind] += ends_expected
    sent = time.monotonic()
    deadline = sent + TURN_DEADLINE
    text, ends, cancel_sent, verdict_sent = "", 0, False, 0.0
    while ends < ends_expected:
        event = await next_event(run, deadline)
        kind_of = event["type"]
        if verdict_sent and kind_of in ("agent.tool_use", "agent.tool_result", "agent.error"):
            run.verdict_waits.append(time.monotonic() - verdict_sent)
            verdict_sent = 0.0
        if kind_of == "agent.turn_started":
            text = ""
            if ends == 0:
                run.waits.append(time.monotonic() - sent)
        elif kind_of == "agent.text_delta":
            text += event["data"]["text"]
            if kind == "slow" and not cancel_sent:
                cancel_sent = True
                if run.rng.random() < 0.3:
                    await http.post(f"/api/chats/{run.chat_id}/cancel")
                else:
                    await send(run, {"type": "cancel"})
        elif kind_of == "agent.tool_request":
            calls = event["data"]["tool_calls"]
            roll = run.rng.random()
            if roll < 0.1:
                run.unanswered += 1  # left to the approval timeout
            else:
                verdict = "allow" if roll < 0.55 else "deny"
                await send(run, {"type": "tool_approval",
                                 "verdicts": {c["id"]: verdict for c in calls}})
                verdict_sent = time.monotonic()
        elif kind_of in END_EVENTS:
            ends += 1
            if kind == "slow" and tag in slow_releases:
                slow_releases[tag].set()
            problem = _check_end(kind, tag, kind_of, text)
            if problem:
                run.problems.append(problem)


def _check_end(kind: str, tag: str, end: str, text: str) -> str | None:
    if kind == "slow" and end != "agent.cancelled":
        return f"slow turn {tag} was not cancelled"
    if kind == "plain" and text != expected_text(tag):
        return f"turn of {tag}: text {text!r} != expected"
    if kind == "queued" and not text.startswith(f"answer to {tag}"):
        return f"queued turn of {tag}: text {text[:60]!r}"
    return None


async def drive(run: ChatRun, http: httpx.AsyncClient, until: float) -> None:
    n = 0
    while time.monotonic() < until and not run.problems:
        n += 1
        if n % 5 == 1:  # REST reads in the mix (the context report counts tokens)
            for path in ("", "/context"):
                response = await http.get(f"/api/chats/{run.chat_id}{path}")
                if response.status_code != 200:
                    run.problems.append(f"GET {path}: {response.status_code}")
        try:
            await one_turn(run, http, n)
        except TimeoutError:
            run.problems.append(f"turn {n} did not end within {TURN_DEADLINE}s")
            return
        await asyncio.sleep(run.rng.uniform(0.3, 1.5))  # a person reading


async def open_sockets(server: ServeProcess, run: ChatRun, gate: asyncio.Semaphore) -> None:
    url = f"{server.ws_url}/ws/{run.chat_id}?token={server.admin_token}"
    for _ in range(SOCKETS_PER_CHAT):
        async with gate:
            ws = await websockets.connect(url, open_timeout=20, ping_interval=None)
        run.states.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
        run.sockets.append(ws)
        run.received.append([])


@dataclass
class Measures:
    rss_warm: int = 0  # kB, after the warm-up
    rss_after: int = 0  # kB, after the soak and the settle period
    rss_timeline: list[int] = field(default_factory=list)  # kB, every 2 s
    cpu_share: float = 0.0  # of one core, during the soak


async def sample_rss(pid: int, timeline: list[int]) -> None:
    while True:
        timeline.append(rss_kb(pid))
        await asyncio.sleep(2)


async def soak(server: ServeProcess, chat_ids: list[str]) -> tuple[list[ChatRun], Measures]:
    pid, measures = server.proc.pid, Measures()
    runs = [ChatRun(chat_id, random.Random(n)) for n, chat_id in enumerate(chat_ids)]
    sampler = asyncio.create_task(sample_rss(pid, measures.rss_timeline))
    gate = asyncio.Semaphore(20)
    await asyncio.gather(*(open_sockets(server, run, gate) for run in runs))
    readers = [asyncio.create_task(reader(run, i)) for run in runs
               for i in range(SOCKETS_PER_CHAT)]
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=20) as http:
        warm_until = time.monotonic() + WARMUP_SECONDS
        await asyncio.gather(*(drive(run, http, warm_until) for run in runs))
        await asyncio.sleep(1)
        measures.rss_warm = rss_kb(pid)
        cpu_before, started = cpu_seconds(pid), time.monotonic()
        await asyncio.gather(*(drive(run, http, started + SOAK_SECONDS) for run in runs))
        measures.cpu_share = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - started)
    await asyncio.sleep(SETTLE_SECONDS)
    measures.rss_after = rss_kb(pid)
    sampler.cancel()
    for run in runs:
        for ws in run.sockets:
            await ws.close()
    await asyncio.gather(*readers)
    return runs, measures


def report(runs: list[ChatRun], measures: Measures) -> None:
    """What the soak did, for the test log (pytest -s) and for tuning."""
    turns = sum((run.turns for run in runs), Counter())
    print(f"\nsoak {SOAK_SECONDS:.0f}s: {sum(turns.values())} turns {dict(turns)}, "
          f"{sum(r.unanswered for r in runs)} approvals timed out, "
          f"{sum(len(r.received[0]) for r in runs) * SOCKETS_PER_CHAT} events delivered; "
          f"server CPU {measures.cpu_share:.0%} of a core")
    print(f"RSS {measures.rss_warm // 1024} MiB after warm-up, "
          f"{measures.rss_after // 1024} MiB after; every 2 s:",
          [kb // 1024 for kb in measures.rss_timeline])
    for name, waits in (("message -> turn_started", [w for r in runs for w in r.waits]),
                        ("verdict -> tool ran", [w for r in runs for w in r.verdict_waits])):
        waits.sort()
        if waits:
            print(f"{name}: median {waits[len(waits) // 2]:.3f}s, "
                  f"p95 {waits[int(len(waits) * 0.95)]:.3f}s, max {waits[-1]:.3f}s")


def check_chat(run: ChatRun) -> list[str]:
    problems = list(run.problems)
    shared = [[e for e in events if not (e["type"] == "agent.error"
                                         and e["data"]["code"] == "invalid_event")]
              for events in run.received]
    first = shared[0]
    for index, events in enumerate(shared[1:], start=1):
        if events != first:
            problems.append(f"socket {index} saw {len(events)} events, socket 0 {len(first)}")
    start = run.states[0]["seq"]
    seqs = [e["seq"] for e in first]
    if seqs != list(range(start + 1, start + 1 + len(seqs))):
        problems.append(f"seq gap or disorder after {start}: {seqs[:5]}...")
    types = Counter(e["type"] for e in first)
    if types["agent.turn_started"] != types["agent.turn_complete"] + types["agent.cancelled"]:
        problems.append(f"turns started/ended: {dict(types)}")
    if types["agent.turn_started"] != sum(run.turns.values()):
        problems.append(f"{types['agent.turn_started']} turns for {sum(run.turns.values())} "
                        "messages")
    errors = Counter(e["data"]["code"] for e in first if e["type"] == "agent.error")
    if errors != Counter({"approval_timeout": run.unanswered} if run.unanswered else {}):
        problems.append(f"errors {dict(errors)}, {run.unanswered} requests unanswered")
    return problems


def check_history(detail: dict[str, Any]) -> list[str]:
    calls = {c["id"] for m in detail["messages"] if m["role"] == "assistant"
             for c in m.get("tool_calls", [])}
    results = {m["tool_call_id"] for m in detail["messages"] if m["role"] == "tool"}
    problems = []
    if calls != results:
        problems.append(f"tool calls without a result: {sorted(calls - results)[:3]}")
    if detail["queued"] or detail["running"]:
        problems.append("still queued or running after the soak")
    return problems


def test_200_sockets_on_50_chats_lose_nothing_and_memory_stays_flat(
        server: ServeProcess) -> None:
    with server.client() as http:
        chat_ids = [http.post("/api/chats", json={"title": f"soak {n}"}).json()["chat_id"]
                    for n in range(CHATS)]

    runs, measures = asyncio.run(soak(server, chat_ids))

    report(runs, measures)
    problems = {run.chat_id: check_chat(run) for run in runs}
    assert {k: v for k, v in problems.items() if v} == {}
    turns = sum((run.turns for run in runs), Counter())
    assert turns["tool"] > 0 and turns["slow"] > 0 and turns["queued"] > 0
    with server.client() as http:
        histories = {chat_id: check_history(http.get(f"/api/chats/{chat_id}").json())
                     for chat_id in chat_ids}
    assert {k: v for k, v in histories.items() if v} == {}
    errors = [line for line in server.log().splitlines() if '"level": "ERROR"' in line]
    assert errors == [], errors[:3]
    assert measures.rss_after <= measures.rss_warm * RSS_GROWTH_LIMIT, measures
