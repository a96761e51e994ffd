"""Tests for tests/fake_upstream.py, using the real openai client over HTTP.

Run without Django:
    python -m pytest -p no:django -p no:cacheprovider -q tests/test_fake_upstream.py
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest

from tests.fake_upstream import (
    CutStream,
    FakeUpstream,
    Hang,
    HttpError,
    MalformedSSE,
    Text,
    ToolCalls,
    split_words,
)

MESSAGES = [{"role": "user", "content": "hi there"}]


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as f:
        yield f


def client(fake: FakeUpstream, **kw: Any) -> openai.AsyncOpenAI:
    kw.setdefault("max_retries", 0)
    return openai.AsyncOpenAI(base_url=fake.url, api_key=kw.pop("api_key", "k"), **kw)


async def collect(stream: Any) -> tuple[list[Any], list[str]]:
    """Return (all chunks, content deltas of the chunks that have choices)."""
    chunks, contents = [], []
    async for chunk in stream:
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content is not None:
            contents.append(chunk.choices[0].delta.content)
    return chunks, contents


# --------------------------------------------------------------------------- text


def test_split_words_roundtrip() -> None:
    for s in ["", "a", "  lead and trail  ", "one\ntwo\t three", "x  y"]:
        assert "".join(split_words(s)) == s
    assert split_words("Hello big world") == ["Hello ", "big ", "world"]


@pytest.mark.asyncio
async def test_stream_text_chunks(fake: FakeUpstream) -> None:
    fake.enqueue(
        Text("Hello there, big world", chunk_size=5),
        Text("Hello big world"),
        Text("ignored", chunks=["a", "bc", "", "d"]),
    )
    async with client(fake) as c:
        stream = await c.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
        chunks, contents = await collect(stream)
        # role chunk (content ""), one chunk per piece, finish chunk
        assert chunks[0].choices[0].delta.role == "assistant"
        assert contents[0] == ""
        assert contents[1:] == ["Hello", " ther", "e, bi", "g wor", "ld"]
        assert "".join(contents) == "Hello there, big world"
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert all(ch.choices[0].finish_reason is None for ch in chunks[:-1])
        assert all(ch.usage is None for ch in chunks)
        assert all(ch.object == "chat.completion.chunk" and ch.model == "gpt-test" for ch in chunks)
        assert len({ch.id for ch in chunks}) == 1

        _, contents = await collect(await c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        assert contents[1:] == ["Hello ", "big ", "world"]

        _, contents = await collect(await c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        assert contents[1:] == ["a", "bc", "", "d"]


@pytest.mark.asyncio
async def test_stream_usage_chunk(fake: FakeUpstream) -> None:
    fake.enqueue(Text("a b c", usage=(11, 7), finish_reason="length"), Text("one two three four"))
    async with client(fake) as c:
        stream = await c.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks, contents = await collect(stream)
        assert "".join(contents) == "a b c"
        last = chunks[-1]
        assert last.choices == []
        assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (11, 7, 18)
        assert chunks[-2].choices[0].finish_reason == "length"
        assert all(ch.usage is None for ch in chunks[:-1])

        chunks, _ = await collect(
            await c.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )
        assert chunks[-1].usage.completion_tokens == 4  # one per chunk
        assert chunks[-1].usage.prompt_tokens >= 1


@pytest.mark.asyncio
async def test_non_stream_text(fake: FakeUpstream) -> None:
    fake.enqueue(Text("full answer here", usage=(3, 4)), Text("x y z"))
    async with client(fake) as c:
        r = await c.chat.completions.create(model="gpt-x", messages=MESSAGES)
        assert r.object == "chat.completion"
        assert r.model == "gpt-x"
        assert r.choices[0].message.role == "assistant"
        assert r.choices[0].message.content == "full answer here"
        assert r.choices[0].message.tool_calls is None
        assert r.choices[0].finish_reason == "stop"
        assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (3, 4, 7)

        long_msgs = [{"role": "system", "content": "s" * 400}, {"role": "user", "content": "u" * 400}]
        r = await c.chat.completions.create(model="m", messages=long_msgs)
        assert r.usage.completion_tokens == 3
        assert r.usage.prompt_tokens == 200


@pytest.mark.asyncio
async def test_default_echo_reply(fake: FakeUpstream) -> None:
    async with client(fake) as c:
        msgs = [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "you"}]},
        ]
        r = await c.chat.completions.create(model="m", messages=msgs)
        assert r.choices[0].message.content == "echo: hello you"
        _, contents = await collect(await c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        assert "".join(contents) == "echo: hi there"

        fake.default_reply = lambda body: Text("custom " + body["model"])
        r = await c.chat.completions.create(model="zz", messages=MESSAGES)
        assert r.choices[0].message.content == "custom zz"


# --------------------------------------------------------------------------- tool calls


@pytest.mark.asyncio
async def test_stream_tool_calls(fake: FakeUpstream) -> None:
    calls = [
        ("call_1", "get_weather", {"city": "Paris", "unit": "C"}),
        ("call_2", "search", {"q": "x" * 40, "n": [1, 2, 3]}),
        ("call_3", "broken", '{"a": '),
    ]
    fake.enqueue(ToolCalls(calls, content="Let me check."))
    async with client(fake) as c:
        stream = await c.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks, contents = await collect(stream)
    assert "".join(contents) == "Let me check."
    assembled: dict[int, dict[str, Any]] = {}
    arg_chunks: dict[int, int] = {}
    content_done = False
    for ch in chunks:
        if not ch.choices:
            continue
        delta = ch.choices[0].delta
        if delta.tool_calls:
            content_done = True
            for tc in delta.tool_calls:
                entry = assembled.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                if tc.id is not None:
                    assert entry["id"] is None  # id only on the first delta of a call
                    assert tc.type == "function"
                    assert tc.function.name and tc.function.arguments == ""
                    entry["id"], entry["name"] = tc.id, tc.function.name
                else:
                    arg_chunks[tc.index] = arg_chunks.get(tc.index, 0) + 1
                entry["args"] += tc.function.arguments or ""
        elif delta.content:
            assert not content_done, "content must come before the tool calls"
    assert sorted(assembled) == [0, 1, 2]
    for i, (cid, name, args) in enumerate(calls):
        assert assembled[i]["id"] == cid
        assert assembled[i]["name"] == name
        assert arg_chunks[i] >= 2
        if isinstance(args, dict):
            assert json.loads(assembled[i]["args"]) == args
        else:
            assert assembled[i]["args"] == args
    finish = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert [ch.choices[0].finish_reason for ch in finish] == ["tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


@pytest.mark.asyncio
async def test_non_stream_tool_calls(fake: FakeUpstream) -> None:
    fake.enqueue(ToolCalls([("c1", "f", {"x": 1}), ("c2", "g", "not json")], usage=(5, 6)), ToolCalls([("c", "h", {})]))
    async with client(fake) as c:
        r = await c.chat.completions.create(model="m", messages=MESSAGES)
        msg = r.choices[0].message
        assert r.choices[0].finish_reason == "tool_calls"
        assert msg.content is None
        assert [(t.id, t.type, t.function.name, t.function.arguments) for t in msg.tool_calls] == [
            ("c1", "function", "f", '{"x": 1}'),
            ("c2", "function", "g", "not json"),
        ]
        assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (5, 6)
        # empty-args call streams fine too
        chunks, _ = await collect(await c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        args = "".join(
            tc.function.arguments or ""
            for ch in chunks
            if ch.choices and ch.choices[0].delta.tool_calls
            for tc in ch.choices[0].delta.tool_calls
        )
        assert json.loads(args) == {}


# --------------------------------------------------------------------------- failures


@pytest.mark.asyncio
async def test_http_errors(fake: FakeUpstream) -> None:
    fake.enqueue(
        HttpError(500),
        HttpError(429, headers={"Retry-After": "1"}),
        HttpError(400, body={"error": {"message": "bad thing", "type": "invalid_request_error", "code": "x"}}),
        HttpError(500),
    )
    async with client(fake) as c:
        with pytest.raises(openai.InternalServerError) as ei:
            await c.chat.completions.create(model="m", messages=MESSAGES)
        assert ei.value.status_code == 500
        assert ei.value.body["type"] == "server_error"

        with pytest.raises(openai.RateLimitError) as ei2:
            await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        assert ei2.value.response.headers["retry-after"] == "1"
        assert ei2.value.code == "rate_limit_exceeded"

        with pytest.raises(openai.BadRequestError) as ei3:
            await c.chat.completions.create(model="m", messages=MESSAGES)
        assert ei3.value.body["message"] == "bad thing"

        with pytest.raises(openai.InternalServerError):
            await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert len(fake.requests) == 4  # max_retries=0: no retries


@pytest.mark.asyncio
async def test_hang_timeout_and_late_answer(fake: FakeUpstream) -> None:
    fake.enqueue(Hang(5), Hang(0.2), Hang(0.2))
    async with client(fake, timeout=0.3) as c:
        t0 = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        assert time.monotonic() - t0 < 2
    async with client(fake, timeout=5) as c:
        t0 = time.monotonic()
        r = await c.chat.completions.create(model="m", messages=MESSAGES)
        assert r.choices[0].message.content == "late"
        assert time.monotonic() - t0 >= 0.19
        _, contents = await collect(await c.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        assert "".join(contents) == "late"


@pytest.mark.asyncio
async def test_cut_stream(fake: FakeUpstream) -> None:
    content = "one two three four five six"
    fake.enqueue(CutStream(content, after_chunks=3), CutStream(content, after_chunks=1))
    async with client(fake) as c:
        stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        got: list[str] = []
        with pytest.raises(Exception) as ei:
            async for ch in stream:
                assert ch.choices[0].finish_reason is None
                got.append(ch.choices[0].delta.content or "")
        assert "".join(got) == "one two three "
        assert content.startswith("".join(got))
        # openai wraps httpx2.RemoteProtocolError ("incomplete chunked read")
        assert isinstance(ei.value, openai.APIConnectionError), repr(ei.value)

        with pytest.raises(Exception):
            await c.chat.completions.create(model="m", messages=MESSAGES)  # non-stream: truncated body


@pytest.mark.asyncio
async def test_malformed_sse(fake: FakeUpstream) -> None:
    fake.enqueue(MalformedSSE())
    async with client(fake) as c:
        stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with pytest.raises(Exception) as ei:
            async for _ in stream:
                pass
        assert isinstance(ei.value, ValueError)  # json.JSONDecodeError, not an openai error


# --------------------------------------------------------------------------- pause / release


@pytest.mark.asyncio
async def test_pause_after_and_release(fake: FakeUpstream) -> None:
    reply = Text("a b c d e f", pause_after=2)
    assert reply.release is not None
    fake.enqueue(reply)
    got: list[str] = []
    async with client(fake) as c:

        async def consume() -> list[Any]:
            stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            chunks = []
            async for ch in stream:
                chunks.append(ch)
                got.append(ch.choices[0].delta.content or "")
            return chunks

        task = asyncio.create_task(consume())
        assert await asyncio.to_thread(reply.paused.wait, 5)
        await asyncio.sleep(0.15)
        assert "".join(got) == "a b "
        assert not task.done()
        reply.release.set()
        chunks = await asyncio.wait_for(task, 5)
    assert "".join(got) == "a b c d e f"
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.asyncio
async def test_pause_with_explicit_event_non_stream(fake: FakeUpstream) -> None:
    ev = threading.Event()
    reply = Text("held", pause_after=0, release=ev)
    fake.enqueue(reply)
    async with client(fake) as c:
        task = asyncio.create_task(c.chat.completions.create(model="m", messages=MESSAGES))
        assert await asyncio.to_thread(reply.paused.wait, 5)
        await asyncio.sleep(0.05)
        assert not task.done()
        threading.Timer(0.05, ev.set).start()
        r = await asyncio.wait_for(task, 5)
    assert r.choices[0].message.content == "held"


def test_stop_with_stream_held(fake: FakeUpstream) -> None:
    """stop() must not hang on a paused stream that is never released."""
    reply = Text("a b c", pause_after=1)
    fake.enqueue(reply)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with httpx.stream(
                "POST", fake.url + "/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True}
            ) as r:
                for _ in r.iter_bytes():
                    pass
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert reply.paused.wait(5)
    t0 = time.monotonic()
    fake.stop()
    assert time.monotonic() - t0 < 3
    t.join(5)
    assert not t.is_alive()


# --------------------------------------------------------------------------- bookkeeping


@pytest.mark.asyncio
async def test_requests_and_auth_recorded(fake: FakeUpstream) -> None:
    async with client(fake, api_key="sk-one") as c1, client(fake, api_key="sk-two") as c2:
        await c1.chat.completions.create(model="m1", messages=MESSAGES, temperature=0.5)
        await c2.chat.completions.create(model="m2", messages=MESSAGES, stream=True)
    reqs = fake.requests
    assert [r["model"] for r in reqs] == ["m1", "m2"]
    assert reqs[0]["temperature"] == 0.5 and reqs[0]["messages"] == MESSAGES
    assert reqs[1]["stream"] is True
    assert fake.auth_headers == ["Bearer sk-one", "Bearer sk-two"]
    reqs.append({})  # a copy
    assert len(fake.requests) == 2

    fake.enqueue(Text("x"))
    fake.clear()
    assert fake.requests == [] and fake.auth_headers == [] and fake.pending == 0


def test_sync_client_models_and_404(fake: FakeUpstream) -> None:
    c = openai.OpenAI(base_url=fake.url, api_key="k", max_retries=0)
    assert [m.id for m in c.models.list()] == ["fake-model"]
    fake.enqueue(Text("sync ok"))
    assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "sync ok"
    fake.enqueue(HttpError(503, body="plain oops", headers={"Content-Type": "text/plain"}))
    with pytest.raises(openai.InternalServerError) as ei:
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert ei.value.status_code == 503 and ei.value.response.text == "plain oops"
    r = httpx.get(fake.url + "/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.post(fake.url + "/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    c.close()


def test_raw_sse_format(fake: FakeUpstream) -> None:
    fake.enqueue(Text("a b", usage=(1, 2)))
    r = httpx.post(
        fake.url + "/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = r.text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    datas = [json.loads(e[len("data: ") :]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert [list(d) for d in datas][0] == ["id", "object", "created", "model", "choices", "usage"]
    assert datas[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    assert datas[-2]["choices"][0]["finish_reason"] == "stop"
    assert datas[-1]["choices"] == [] and datas[-1]["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
    }


def test_main_entry_point() -> None:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_upstream", "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        c = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
        r = c.chat.completions.create(model="m", messages=MESSAGES)
        assert r.choices[0].message.content == "echo: hi there"
        c.close()
    finally:
        proc.terminate()
        proc.wait(5)


# --------------------------------------------------------------------------- load


@pytest.mark.asyncio
async def test_many_concurrent_streams(fake: FakeUpstream) -> None:
    n_streams, n_chunks = 100, 200
    expected = [f"s{i}:" + "".join(f"w{j} " for j in range(n_chunks)) for i in range(n_streams)]
    fake.default_reply = lambda body: Text(expected[int(body["messages"][0]["content"])], chunk_size=None)

    async with client(fake) as c:

        async def one(i: int) -> tuple[int, str]:
            stream = await c.chat.completions.create(
                model="m", messages=[{"role": "user", "content": str(i)}], stream=True
            )
            _, contents = await collect(stream)
            return len(contents) - 1, "".join(contents)

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(n_streams)))
        elapsed = time.perf_counter() - t0
    total = n_streams * n_chunks
    print(f"\n{n_streams} streams x {n_chunks} chunks: {elapsed:.2f}s ({total / elapsed:,.0f} chunks/s)")
    for i, (count, text) in enumerate(results):
        assert count == n_chunks
        assert text == expected[i]
