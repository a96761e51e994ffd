"""Benchmark: the gateway against the upstream it wraps.

    python3 bench/run.py [--quick] [--json out.json] [--redis URL] [--database URL]
                         [--team N]

Starts a fast fake OpenAI-compatible upstream (``bench/upstream.py``, its own process)
and a real ``manage.py serve`` (embedded default: SQLite and the in-memory channel layer,
in a temporary data directory; ``--redis``/``--database`` set ``REDIS_URL``/
``DATABASE_URL``; ``--team N`` starts N processes on them and spreads the clients over
the processes round-robin, as a proxy without sticky sessions would), drives the
gateway with real WebSocket (``websockets``) and HTTP (``httpx``) clients, and sends the very same requests straight to the upstream as the
baseline, twice: with a plain client (``aiohttp`` reading the SSE and decoding each
chunk's JSON) and with the ``openai`` package (the client the gateway itself uses), so
the gateway's overhead splits into "the openai client" and "the gateway".

Loopback only; every wait is bounded. Prints one table and writes the figures as JSON.
See README "Benchmark".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import openai  # noqa: E402
import websockets  # noqa: E402

from bench import profile  # noqa: E402
from bench.upstream import expected_text, spec_message  # noqa: E402
from tests.e2e.server import ServeProcess  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- sizes

@dataclasses.dataclass
class Sizes:
    name: str
    latency_turns: int = 50          # 1. sequential 200-token turns (after warm-up)
    latency_tokens: int = 200
    big_tokens: int = 5000           # 2. one long turn
    big_samples: int = 3
    load_chats: tuple[int, ...] = (10, 50, 200)   # 3. full speed
    load_turns: int = 100            # at least this many turns per load level
    load_tokens: int = 200
    paced_chats: tuple[int, ...] = (30, 200)      # 4. paced upstream
    paced_waves: int = 2
    paced_tokens: int = 100
    paced_delay_ms: float = 10
    rest_chats: int = 1000           # 5. POST /api/chats count, then GETs
    rest_gets: int = 200
    memory_turn_tokens: int = 20     # 7. one turn in each of the rest_chats
    memory_concurrency: int = 100
    tool_samples: int = 20           # 6. tool turns, each with and without sandbox
    tool_tokens: int = 20
    turn_timeout: float = 60.0       # seconds any one turn may take
    budget: float = 240.0            # seconds for the whole run; later parts are skipped
    # share of the budget each part may take at most (a slow part cannot starve the rest)
    caps: dict[str, float] = dataclasses.field(default_factory=lambda: {
        "latency": 0.12, "big": 0.08, "rest": 0.15, "tool": 0.1, "load": 0.3,
        "paced": 0.15, "memory_fill": 0.12})


PRESETS = {
    "full": Sizes("full"),
    "quick": Sizes("quick", latency_turns=10, big_tokens=2000, big_samples=1,
                   load_chats=(10, 50), load_turns=10, load_tokens=50, paced_chats=(30,),
                   paced_waves=1,
                   rest_chats=100, rest_gets=20, tool_samples=3, budget=30.0,
                   turn_timeout=20.0,
                   caps={"latency": 0.2, "big": 0.15, "rest": 0.1, "load": 0.3,
                         "paced": 0.15, "tool": 0.15, "memory_fill": 0.2}),
    # The test suite's smoke run: every part, tiny sizes; checks structure, not timing.
    "smoke": Sizes("smoke", latency_turns=3, latency_tokens=20, big_tokens=200,
                   big_samples=1, load_chats=(10,), load_turns=20, load_tokens=20,
                   paced_chats=(10,), paced_waves=1, paced_tokens=10, paced_delay_ms=5,
                   rest_chats=5, rest_gets=5, memory_turn_tokens=20, memory_concurrency=5,
                   tool_samples=2, tool_tokens=5, budget=90.0, turn_timeout=20.0,
                   caps={}),
}

PARTS = ("latency", "big", "rest", "load", "paced", "tool", "memory_fill")

# The targets of the performance issues ("the first token first" tightened the first
# ones: 200 chats 60 -> 100 turns/s, 30 paced chats 1.2 -> 1.15 s, a sandboxed tool turn
# +40 -> +20 ms, RSS after 1,000 chats 250 -> 200 MB).
TARGETS = {
    "first_delta_overhead_ms": 3.0,
    "full_turn_overhead_ms": 10.0,
    "big_rate_ratio": 0.9,
    "turns_per_s_200": 100.0,
    "paced_wall_s": {30: 1.15, 200: 1.5},
    "post_chats_ms": 5.0,
    "get_chats_ms": 10.0,
    "tool_overhead_ms": 10.0,
    "tool_overhead_sandbox_ms": 20.0,
    "rss_mb_1000": 200.0,
}


# --------------------------------------------------------------------------- helpers

def pct(values: list[float], q: float) -> float | None:
    """Percentile with linear interpolation (q in 0..100); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: list[float], scale: float = 1000.0) -> dict[str, Any]:
    """p50/p95/mean/min/max of seconds, in ms (scale) by default."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": pct(values, 50) * scale, "p95": pct(values, 95) * scale,
            "mean": sum(values) / len(values) * scale, "min": min(values) * scale,
            "max": max(values) * scale}


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


class CpuMeter:
    """CPU seconds used by the gateway, the upstream and this driver over a block."""

    def __init__(self, serve_pid: int, upstream_pid: int) -> None:
        self.pids = {"gateway": serve_pid, "upstream": upstream_pid}

    @contextlib.contextmanager
    def measure(self, into: dict[str, Any]):
        start = {k: cpu_s(p) for k, p in self.pids.items()}
        t0, d0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            wall = time.perf_counter() - t0
            into["cpu_s"] = {k: round(cpu_s(p) - start[k], 3) for k, p in self.pids.items()}
            into["cpu_s"]["driver"] = round(time.process_time() - d0, 3)
            into["wall_s"] = round(wall, 3)


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


# --------------------------------------------------------------------------- processes

class Upstream:
    """``bench/upstream.py`` in its own process."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> "Upstream":
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "upstream.py"),
                                      "--port", "0"], stdout=subprocess.PIPE, text=True,
                                     cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            self.stop()
            raise RuntimeError(f"the bench upstream did not start: {line!r}")
        self.port = int(line[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def issue_token(env: dict[str, str]) -> str:
    """A fresh admin user's token (when ``serve`` did not print one: a reused database)."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    out = subprocess.run([sys.executable, "manage.py", "issue_token", name, "--admin"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"issue_token failed: {out.stderr}")
    return out.stdout.strip().splitlines()[-1].strip()


# --------------------------------------------------------------------------- gateway client

@dataclasses.dataclass
class TurnResult:
    start: float
    first: float | None = None      # first text delta
    last: float | None = None       # last text delta
    end: float | None = None        # turn_complete
    deltas: int = 0
    text_ok: bool = False
    seq_ok: bool = True
    stop_reason: str | None = None
    error: str | None = None
    tool_results: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.text_ok and self.seq_ok and self.error is None and self.end is not None

    @property
    def first_s(self) -> float | None:
        return None if self.first is None else self.first - self.start

    @property
    def total_s(self) -> float | None:
        return None if self.end is None else self.end - self.start


class Sock:
    """One WebSocket of a chat; checks that ``seq`` rises by one over its whole life."""

    received = [0]  # text deltas received by all sockets (turns cut short included)

    def __init__(self, ws: Any, seq: int) -> None:
        self.ws = ws
        self.seq = seq

    @classmethod
    async def open(cls, ws_url: str, chat_id: str, token: str, timeout: float) -> "Sock":
        ws = await asyncio.wait_for(websockets.connect(
            f"{ws_url}/ws/{chat_id}?token={token}", max_size=None, compression=None,
            ping_interval=None, open_timeout=timeout, close_timeout=2), timeout)
        state = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if state.get("type") != "agent.state":
            raise RuntimeError(f"first event is not agent.state: {state}")
        return cls(ws, state["seq"])

    async def turn(self, content: str, expect: str, timeout: float) -> TurnResult:
        loads = json.loads
        result = TurnResult(start=time.perf_counter())
        parts: list[str] = []
        await self.ws.send(json.dumps({"type": "user_message", "content": content}))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = loads(await self.ws.recv())
                    seq = event.get("seq")
                    if seq != self.seq + 1:
                        result.seq_ok = False
                    self.seq = seq if isinstance(seq, int) else self.seq
                    kind = event["type"]
                    if kind == "agent.text_delta":
                        now = time.perf_counter()
                        if result.first is None:
                            result.first = now
                        result.last = now
                        parts.append(event["data"]["text"])
                        Sock.received[0] += 1
                    elif kind == "agent.turn_complete":
                        result.end = time.perf_counter()
                        result.stop_reason = event["data"].get("stop_reason")
                        break
                    elif kind == "agent.tool_result":
                        result.tool_results.append(event["data"])
                    elif kind in ("agent.error", "agent.cancelled"):
                        result.error = f"{kind}: {event['data']}"
                    elif kind == "agent.tool_request":
                        result.error = "unexpected tool_request (mode is not autonomous?)"
                        break
        except TimeoutError:
            result.error = f"no turn_complete within {timeout:g}s"
        except websockets.ConnectionClosed as exc:
            result.error = f"socket closed: {exc}"
        result.deltas = len(parts)
        result.text_ok = "".join(parts) == expect
        if result.stop_reason not in (None, "end_turn") and result.error is None:
            result.error = f"stop_reason {result.stop_reason}"
        return result

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 3)


class Gateway:
    def __init__(self, serve: ServeProcess, token: str, sizes: Sizes) -> None:
        self.serve = serve
        self.token = token
        self.sizes = sizes
        self.http = httpx.AsyncClient(base_url=serve.url, timeout=30,
                                      headers={"Authorization": f"Bearer {token}"},
                                      limits=httpx.Limits(max_connections=20))

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        response = await self.http.request(method, path, **kw)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response

    async def new_chat(self) -> str:
        return (await self.call("POST", "/api/chats", json={"title": "bench"})).json()["chat_id"]

    async def new_chats(self, n: int, parallel: int = 8) -> list[str]:
        sem = asyncio.Semaphore(parallel)

        async def one() -> str:
            async with sem:
                return await self.new_chat()
        return list(await asyncio.gather(*(one() for _ in range(n))))

    async def sock(self, chat_id: str) -> Sock:
        return await Sock.open(self.serve.ws_url, chat_id, self.token, self.sizes.turn_timeout)

    async def socks(self, chat_ids: list[str], parallel: int = 50) -> list[Sock]:
        sem = asyncio.Semaphore(parallel)

        async def one(chat_id: str) -> Sock:
            async with sem:
                return await self.sock(chat_id)
        return list(await asyncio.gather(*(one(c) for c in chat_ids)))

    async def upstream_body(self, upstream: Upstream) -> dict[str, Any]:
        """The last chat-completions body the upstream received (sent by the gateway)."""
        async with httpx.AsyncClient() as client:
            r = await client.get(upstream.url.rsplit("/v1", 1)[0] + "/bench/last_request")
            return r.json()

    async def close(self) -> None:
        await self.http.aclose()


# --------------------------------------------------------------------------- direct clients

@dataclasses.dataclass
class DirectResult:
    start: float
    first: float | None = None
    last: float | None = None
    end: float | None = None
    deltas: int = 0
    text: str = ""
    tool_args: str = ""

    @property
    def first_s(self) -> float | None:
        return None if self.first is None else self.first - self.start

    @property
    def total_s(self) -> float | None:
        return None if self.end is None else self.end - self.start


def with_content(body: dict[str, Any], content: str) -> dict[str, Any]:
    """``body`` with the content of its last user message replaced."""
    body = json.loads(json.dumps(body))
    for message in reversed(body["messages"]):
        if message.get("role") == "user":
            message["content"] = content
            break
    return body


class Plain:
    """aiohttp reading the SSE and decoding each chunk's JSON: the cheapest honest client."""

    def __init__(self, upstream: Upstream) -> None:
        self.url = upstream.url + "/chat/completions"
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                             timeout=aiohttp.ClientTimeout(total=120))

    async def call(self, body: dict[str, Any]) -> DirectResult:
        loads = json.loads
        result = DirectResult(start=time.perf_counter())
        parts: list[str] = []
        args: list[str] = []
        async with self.session.post(self.url, json=body) as response:
            response.raise_for_status()
            async for line in response.content:
                if not line.startswith(b"data: {"):
                    continue
                chunk = loads(line[6:])
                choices = chunk["choices"]
                if not choices:
                    continue
                delta = choices[0]["delta"]
                text = delta.get("content")
                if text:
                    now = time.perf_counter()
                    if result.first is None:
                        result.first = now
                    result.last = now
                    parts.append(text)
                for call in delta.get("tool_calls") or ():
                    args.append((call.get("function") or {}).get("arguments") or "")
        result.end = time.perf_counter()
        result.deltas, result.text, result.tool_args = len(parts), "".join(parts), "".join(args)
        return result

    async def close(self) -> None:
        await self.session.close()


class ViaOpenAI:
    """The ``openai`` package, as the gateway calls it (one client on its aiohttp
    transport, streamed, usage on)."""

    def __init__(self, upstream: Upstream) -> None:
        self.client = openai.AsyncOpenAI(base_url=upstream.url, api_key="sk-bench",
                                         max_retries=0, timeout=120,
                                         http_client=openai.DefaultAioHttpClient())

    async def call(self, body: dict[str, Any]) -> DirectResult:
        kwargs = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        result = DirectResult(start=time.perf_counter())
        parts: list[str] = []
        args: list[str] = []
        stream = await self.client.chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **kwargs)
        async for chunk in stream:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            if delta.content:
                now = time.perf_counter()
                if result.first is None:
                    result.first = now
                result.last = now
                parts.append(delta.content)
            for call in delta.tool_calls or ():
                if call.function and call.function.arguments:
                    args.append(call.function.arguments)
        result.end = time.perf_counter()
        result.deltas, result.text, result.tool_args = len(parts), "".join(parts), "".join(args)
        return result

    async def close(self) -> None:
        await self.client.close()


# --------------------------------------------------------------------------- the bench

class Bench:
    def __init__(self, sizes: Sizes, serve: ServeProcess, token: str, upstream: Upstream,
                 config: str, profile_dir: Path | None = None,
                 profile_gil: bool = False) -> None:
        self.profile_dir = profile_dir
        self.profile_gil = profile_gil
        self.sizes = sizes
        self.serve = serve
        self.upstream = upstream
        self.gw = Gateway(serve, token, sizes)
        self.plain = Plain(upstream)
        self.oai = ViaOpenAI(upstream)
        self.cpu = CpuMeter(serve.proc.pid, upstream.pid)  # type: ignore[union-attr]
        self.budget = Budget(sizes.budget)
        self.results: dict[str, Any] = {"config": config, "sizes": dataclasses.asdict(sizes)}
        self.failures: list[str] = []
        self.bodies: dict[str, dict[str, Any]] = {}
        self.partial: dict[str, dict[str, Any]] = {}  # levels done of a part cut short

    @property
    def pid(self) -> int:
        return self.serve.proc.pid  # type: ignore[union-attr]

    def note_rss(self, key: str) -> None:
        self.results.setdefault("memory_mb", {})[key] = rss_mb(self.pid)

    async def part(self, key: str, fn: Callable[[], Awaitable[dict[str, Any]]],
                   reserve: float = 0.0) -> None:
        """Run one part, bounded by its share of the budget and by what is left of it;
        record its result (with the gateway's hottest functions when profiling)."""
        # load and paced bound each of their levels themselves (see level_limits); the
        # slack is for their direct baselines
        cap = self.sizes.caps.get(key, 1.0) * self.budget.seconds * (
            1.6 if key in ("load", "paced") else 1.3)
        left = min(cap, self.budget.left() - reserve)
        if left <= 1:
            self.results[key] = {"skipped": "time budget"}
            self.failures.append(f"{key}: skipped (time budget)")
            return
        recorder = contextlib.nullcontext()
        out = self.profile_dir / f"{key}.txt" if self.profile_dir else None
        if out:
            recorder = profile.record(self.pid, out, gil=self.profile_gil)
        try:
            with recorder:
                async with asyncio.timeout(left):
                    self.results[key] = await fn()
        except TimeoutError:
            self.results[key] = self.partial.get(key) or {
                "error": f"timed out after {left:.0f} s (its share of the time budget)"}
            self.failures.append(f"{key}: timed out after {left:.0f} s")
            await self.fresh_direct_clients()  # requests cut mid-stream leave nothing behind
        except Exception as exc:  # noqa: BLE001 - one broken part must not hide the rest
            self.results[key] = {"error": f"{type(exc).__name__}: {exc}"}
            self.failures.append(f"{key}: {type(exc).__name__}: {exc}")
        if out and out.exists():
            self.results.setdefault("profile", {})[key] = {
                "file": str(out), **profile.summarize(out, top=15)}
        await self.wait_idle(key, cancel="error" in self.results.get(key, {}))

    async def fresh_direct_clients(self) -> None:
        for client in (self.plain, self.oai):
            with contextlib.suppress(Exception):
                await client.close()
        self.plain, self.oai = Plain(self.upstream), ViaOpenAI(self.upstream)

    async def wait_idle(self, key: str, limit: float = 15.0, cancel: bool = False) -> None:
        """Wait (bounded) until the gateway runs no turn, so that a part that was cut
        short does not weigh on the next one (``cancel``: stop its turns first)."""
        if cancel:
            with contextlib.suppress(Exception):
                await self.gw.http.post("/api/panic", timeout=10)
        deadline = time.monotonic() + min(limit, max(1.0, self.budget.left()))
        active = None
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                active = (await self.gw.http.get("/health", timeout=5)).json()["active_turns"]
                if active == 0:
                    return
            await asyncio.sleep(0.2)
        self.failures.append(f"{key}: the gateway still ran {active} turn(s) afterwards")

    # -- setup -------------------------------------------------------------------------
    async def setup(self) -> None:
        gw = self.gw
        profiles = (await gw.call("GET", "/api/profiles")).json()
        if "bench" not in profiles.get("profiles", {}):
            await gw.call("POST", "/api/profiles", json={"name": "bench", "profile": {
                "provider": "openai", "model": "bench-model", "base_url": self.upstream.url,
                "api_key": "sk-bench-0000"}})
        else:
            await gw.call("DELETE", "/api/profiles/bench")  # a reused database: re-point it
            await gw.call("POST", "/api/profiles", json={"name": "bench", "profile": {
                "provider": "openai", "model": "bench-model", "base_url": self.upstream.url,
                "api_key": "sk-bench-0000"}})
        await gw.call("PUT", "/api/profiles/default", json={"name": "bench"})
        self.saved_policy = (await gw.call("GET", "/api/permissions")).json()
        self.saved_sandbox = (await gw.call("GET", "/api/config/sandbox")).json()
        # The turns of parts 1-5 call no tool; autonomous so that no approval is asked.
        await gw.call("PUT", "/api/permissions", json={"mode": "autonomous"})
        await gw.call("PUT", "/api/config/sandbox", json={"enabled": False})

    async def restore(self) -> None:
        with contextlib.suppress(Exception):
            await self.gw.call("PUT", "/api/permissions", json={
                "mode": self.saved_policy["mode"],
                "tool_overrides": self.saved_policy.get("tool_overrides", {})})
            await self.gw.call("PUT", "/api/config/sandbox", json=self.saved_sandbox)

    async def close(self) -> None:
        for client in (self.gw, self.plain, self.oai):
            with contextlib.suppress(Exception):
                await client.close()

    # -- 1. latency of a 200-token turn ------------------------------------------------
    async def latency(self) -> dict[str, Any]:
        s = self.sizes
        n, tokens, per_chat, warm = s.latency_turns, s.latency_tokens, 5, 5
        expect = expected_text(tokens)
        results: list[TurnResult] = []
        bodies: list[dict[str, Any]] = []
        sock: Sock | None = None
        out: dict[str, Any] = {"tokens": tokens}
        with self.cpu.measure(out.setdefault("gateway_cpu", {})):
            for i in range(warm + n):
                if i % per_chat == 0:
                    if sock:
                        await sock.close()
                    sock = await self.gw.sock(await self.gw.new_chat())
                r = await sock.turn(spec_message(tokens), expect, s.turn_timeout)  # type: ignore[union-attr]
                if i >= warm:
                    results.append(r)
                    bodies.append(await self.gw.upstream_body(self.upstream))
                elif i == 0:
                    self.bodies["first"] = await self.gw.upstream_body(self.upstream)
        if sock:
            await sock.close()
        bad = [r for r in results if not r.ok]
        out["gateway"] = {"first_delta_ms": summary([r.first_s for r in results if r.first_s]),
                          "turn_ms": summary([r.total_s for r in results if r.total_s]),
                          "failed_turns": len(bad),
                          "errors": sorted({r.error or "text/seq" for r in bad})[:5]}
        for name, client in (("direct", self.plain), ("direct_openai", self.oai)):
            for body in bodies[:3]:
                await client.call(body)  # warm the connection
            got = [await client.call(body) for body in bodies]
            out[name] = {"first_delta_ms": summary([g.first_s for g in got if g.first_s]),
                         "turn_ms": summary([g.total_s for g in got if g.total_s]),
                         "text_ok": all(g.text == expect for g in got)}
        out["paced"] = await self.latency_paced()
        return out

    async def latency_paced(self) -> dict[str, Any]:
        """First delta of one chat at a time with a paced upstream (tokens 10 ms apart):
        what a person feels; the openai client direct is the baseline (its first chunk
        has the same pace)."""
        s = self.sizes
        n = max(3, s.latency_turns // 5)
        tokens, delay = 20, s.paced_delay_ms
        expect, content = expected_text(tokens), spec_message(tokens, delay)
        sock = await self.gw.sock(await self.gw.new_chat())
        results = []
        for i in range(n + 1):
            r = await sock.turn(content, expect, s.turn_timeout)
            if i:  # the first one warms the chat
                results.append(r)
        await sock.close()
        body = with_content(self.bodies["first"], content)
        out: dict[str, Any] = {"tokens": tokens, "delay_ms": delay, "gateway": {
            "first_delta_ms": summary([r.first_s for r in results if r.first_s]),
            "failed_turns": sum(1 for r in results if not r.ok)}}
        for name, client in (("direct", self.plain), ("direct_openai", self.oai)):
            await client.call(body)
            got = [await client.call(body) for _ in range(n)]
            out[name] = {"first_delta_ms": summary([g.first_s for g in got if g.first_s])}
        return out

    # -- 2. delta rate of one long turn ------------------------------------------------
    async def big(self) -> dict[str, Any]:
        s = self.sizes
        tokens, expect = s.big_tokens, expected_text(s.big_tokens)
        out: dict[str, Any] = {"tokens": tokens}

        def rate(start: float, last: float | None) -> float | None:
            """Tokens per second from sending the request to the last text received
            (the same for every client; a gateway that merged deltas is not penalised)."""
            return None if last is None or last <= start else tokens / (last - start)

        rates, totals, oks, frames = [], [], [], []
        with self.cpu.measure(out.setdefault("gateway_cpu", {})):
            for _ in range(s.big_samples):
                sock = await self.gw.sock(await self.gw.new_chat())
                r = await sock.turn(spec_message(tokens), expect, s.turn_timeout)
                await sock.close()
                rates.append(rate(r.start, r.last) if r.ok else None)
                frames.append(r.deltas)
                totals.append(r.total_s)
                oks.append(r.ok)
        body = await self.gw.upstream_body(self.upstream)
        out["gateway"] = {"tokens_per_s": pct([x for x in rates if x], 50),
                          "turn_ms": summary([t for t in totals if t]),
                          "delta_frames": frames, "failed_turns": oks.count(False)}
        for name, client in (("direct", self.plain), ("direct_openai", self.oai)):
            got = [await client.call(body) for _ in range(max(3, s.big_samples))]
            out[name] = {"tokens_per_s": pct([x for x in (rate(g.start, g.last)
                                                           for g in got) if x], 50),
                         "turn_ms": summary([g.total_s for g in got if g.total_s]),
                         "text_ok": all(g.text == expect for g in got)}
        g, d, o = (out[k]["tokens_per_s"] for k in ("gateway", "direct", "direct_openai"))
        out["ratio"] = g / d if g and d else None
        out["ratio_openai"] = g / o if g and o else None
        return out

    # -- 3. and 4. many chats at once ---------------------------------------------------
    async def many(self, chats: int, rounds: int, tokens: int, delay_ms: float,
                   waves: bool, limit: float) -> dict[str, Any]:
        """``chats`` sockets; each runs ``rounds`` turns back to back (``waves``: every
        round starts together and the wall time of each round is kept). After ``limit``
        seconds the level stops and reports the turns that completed."""
        s = self.sizes
        expect = expected_text(tokens)
        content = spec_message(tokens, delay_ms)
        ids = await self.gw.new_chats(chats)
        socks = await self.gw.socks(ids)
        out: dict[str, Any] = {"chats": chats, "rounds": rounds, "tokens": tokens,
                               "delay_ms": delay_ms}
        results: list[TurnResult] = []
        walls: list[float] = []
        timed_out = False

        async def turn(sock: Sock) -> None:
            results.append(await sock.turn(content, expect, s.turn_timeout))

        received_before = Sock.received[0]
        try:
            with self.cpu.measure(out.setdefault("gateway_cpu", {})):
                t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(limit):
                        if waves:
                            for _ in range(rounds):
                                w0 = time.perf_counter()
                                await asyncio.gather(*(turn(k) for k in socks))
                                walls.append(time.perf_counter() - w0)
                        else:
                            async def chat(sock: Sock) -> None:
                                for _ in range(rounds):
                                    await turn(sock)
                            await asyncio.gather(*(chat(k) for k in socks))
                except TimeoutError:
                    timed_out = True
                wall = time.perf_counter() - t0
        finally:
            await asyncio.gather(*(k.close() for k in socks))
        if timed_out:
            self.failures.append(f"{chats} chats x {tokens} tokens (delay {delay_ms:g} ms): "
                                 f"{len(results)} of {chats * rounds} turns done in "
                                 f"{limit:.0f} s")
            await self.wait_idle(f"{chats} chats", limit=8, cancel=True)
        bad = [r for r in results if not r.ok]
        out["gateway"] = {
            "timed_out": timed_out, "limit_s": round(limit, 1),
            "turns": len(results), "wall_s": wall, "turns_per_s": len(results) / wall,
            # text deltas that reached the clients per second, turns cut short included
            "deltas_per_s": (Sock.received[0] - received_before) / wall,
            "turn_ms": summary([r.total_s for r in results if r.total_s]),
            "first_delta_ms": summary([r.first_s for r in results if r.first_s]),
            "wave_wall_s": walls, "wave_wall_s_p50": pct(walls, 50),
            # every turn's text arrived whole and in order, with no seq skipped
            "all_deltas_in_order": bool(results) and not bad,
            "delta_frames": sum(r.deltas for r in results),
            "delta_frames_per_turn": (sum(r.deltas for r in results) / len(results)
                                      if results else None),
            "failed_turns": len(bad),
            "lost_or_misordered": sum(1 for r in results if not (r.text_ok and r.seq_ok)),
            "errors": sorted({r.error or "text/seq" for r in bad})[:5],
        }
        cpu = out["gateway_cpu"]["cpu_s"]["gateway"]
        delivered = Sock.received[0] - received_before
        out["gateway"]["gateway_cpu_us_per_token"] = cpu / delivered * 1e6 if delivered else None
        body = with_content(self.bodies["first"], content)
        for name, client in (("direct", self.plain), ("direct_openai", self.oai)):
            # one wave is enough for the direct baseline of a paced level
            out[name] = await self.many_direct(client, body, chats, 1 if waves else rounds,
                                               expect, waves)
        return out

    async def many_direct(self, client: Any, body: dict[str, Any], chats: int, rounds: int,
                          expect: str, waves: bool) -> dict[str, Any]:
        results: list[DirectResult] = []
        walls: list[float] = []
        t0 = time.perf_counter()
        if waves:
            for _ in range(rounds):
                w0 = time.perf_counter()
                results.extend(await asyncio.gather(*(client.call(body)
                                                      for _ in range(chats))))
                walls.append(time.perf_counter() - w0)
        else:
            async def chat() -> list[DirectResult]:
                return [await client.call(body) for _ in range(rounds)]
            for got in await asyncio.gather(*(chat() for _ in range(chats))):
                results.extend(got)
        wall = time.perf_counter() - t0
        return {"turns": len(results), "wall_s": wall, "turns_per_s": len(results) / wall,
                "turn_ms": summary([r.total_s for r in results if r.total_s]),
                "wave_wall_s": walls, "wave_wall_s_p50": pct(walls, 50),
                "text_ok": all(r.text == expect for r in results)}

    def level_limits(self, key: str, weights: list[float]) -> list[float]:
        """Each level's share of the part's time (by expected work, leaving time for
        the direct baselines)."""
        cap = min(self.sizes.caps.get(key, 1.0) * self.budget.seconds, self.budget.left())
        total = sum(weights)
        return [max(2.0, 0.15 * cap, 0.75 * cap * w / total) for w in weights]

    async def load(self) -> dict[str, Any]:
        s = self.sizes
        out = self.partial.setdefault("load", {})
        plan = [(chats, max(1, -(-s.load_turns // chats))) for chats in s.load_chats]
        limits = self.level_limits("load", [c * r for c, r in plan])
        for (chats, rounds), limit in zip(plan, limits):
            out[str(chats)] = await self.many(chats, rounds, s.load_tokens, 0, waves=False,
                                              limit=limit)
        return out

    async def paced(self) -> dict[str, Any]:
        s = self.sizes
        out = self.partial.setdefault("paced", {})
        limits = self.level_limits("paced", [max(c, 50) for c in s.paced_chats])
        for chats, limit in zip(s.paced_chats, limits):
            out[str(chats)] = await self.many(chats, s.paced_waves, s.paced_tokens,
                                              s.paced_delay_ms, waves=True, limit=limit)
        return out

    # -- 5. REST -----------------------------------------------------------------------
    async def rest(self) -> dict[str, Any]:
        s = self.sizes
        http = self.gw.http
        headers = {"Authorization": f"Bearer {self.gw.token}"}

        async def timed(method: str, path: str, **kw: Any) -> tuple[float, httpx.Response]:
            t0 = time.perf_counter()
            response = await http.request(method, path, **kw)
            elapsed = time.perf_counter() - t0
            if response.status_code >= 400:
                raise RuntimeError(f"{method} {path}: {response.status_code}")
            return elapsed, response

        out: dict[str, Any] = {}
        with self.cpu.measure(out.setdefault("gateway_cpu", {})):
            posts = []
            for i in range(s.rest_chats):
                elapsed, _ = await timed("POST", "/api/chats", json={"title": f"bench {i}"})
                posts.append(elapsed)
            self.note_rss("after_chats_created")
            listing: dict[str, list[float]] = {"limit20": [], "limit100": [], "all": [],
                                               "health": []}
            for i in range(s.rest_gets):
                elapsed, r = await timed("GET", "/api/chats", params={"limit": 20})
                listing["limit20"].append(elapsed)
                if i == 0:
                    page = r.json()
                    # a full page of the most recently active chats (or the last page)
                    out["page_ok"] = (len(page["chats"]) == 20 or page["next"] is None) \
                        and page["chats"][0]["title"] == f"bench {s.rest_chats - 1}"
                # Without a limit: every chat, as the spec's "list all chat sessions" says.
                elapsed, r = await timed("GET", "/api/chats")
                listing["all"].append(elapsed)
                if i == 0:
                    out["all_ok"] = len(r.json()["chats"]) >= s.rest_chats
                elapsed, _ = await timed("GET", "/api/chats", params={"limit": 100})
                listing["limit100"].append(elapsed)
                elapsed, _ = await timed("GET", "/health", headers=headers)
                listing["health"].append(elapsed)
            # The client's own share: the same client and loopback against the bench
            # upstream's trivial route (a bare asyncio server, no framework).
            stats_url = self.upstream.url.rsplit("/v1", 1)[0] + "/bench/stats"
            floor = [(await timed("GET", stats_url))[0] for _ in range(s.rest_gets)]
        out["post_chats_ms"] = summary(posts)
        out["get_chats_ms"] = summary(listing["limit20"])
        out["get_chats_100_ms"] = summary(listing["limit100"])
        out["get_chats_all_ms"] = summary(listing["all"])
        out["health_ms"] = summary(listing["health"])
        out["client_floor_ms"] = summary(floor)
        out["chats_created"] = s.rest_chats
        return out

    # -- 7. memory: a turn in each of the chats created by part 5 --------------------
    async def memory_fill(self) -> dict[str, Any]:
        s = self.sizes
        ids: list[str] = []
        cursor = None
        while len(ids) < s.rest_chats:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = (await self.gw.call("GET", "/api/chats", params=params)).json()
            ids += [c["chat_id"] for c in page["chats"] if c["title"].startswith("bench ")]
            cursor = page["next"]
            if not cursor:
                break
        ids = ids[:s.rest_chats]
        tokens, expect = s.memory_turn_tokens, expected_text(s.memory_turn_tokens)
        content = spec_message(tokens)
        sem = asyncio.Semaphore(s.memory_concurrency)
        results: list[TurnResult] = []

        async def one(chat_id: str) -> None:
            async with sem:
                sock = await self.gw.sock(chat_id)
                try:
                    results.append(await sock.turn(content, expect, s.turn_timeout))
                finally:
                    await sock.close()

        out: dict[str, Any] = {"chats": len(ids), "tokens": tokens,
                               "concurrency": s.memory_concurrency}
        # Leave time to settle: a fill cut short still reports how far it got.
        cap = s.caps.get("memory_fill", 1.0) * self.budget.seconds
        limit = max(1.0, min(cap, self.budget.left()) - 3)
        with self.cpu.measure(out.setdefault("gateway_cpu", {})):
            done, pending = await asyncio.wait(
                [asyncio.create_task(one(c)) for c in ids], timeout=limit)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        wall = out["gateway_cpu"]["wall_s"]
        out["turns_done"] = len(results)
        out["complete"] = not pending
        out["turns_per_s"] = len(results) / wall if wall else None
        out["failed_turns"] = sum(1 for r in results if not r.ok)
        self.note_rss("after_chats_with_a_turn")
        if pending:
            await self.wait_idle("memory_fill", limit=5, cancel=True)
        return out

    # -- 6. a tool turn ------------------------------------------------------------------
    async def tool(self) -> dict[str, Any]:
        s = self.sizes
        tokens, expect = s.tool_tokens, expected_text(s.tool_tokens)
        content = spec_message(tokens, tool="bash")
        out: dict[str, Any] = {"tokens": tokens, "command": "echo hi"}

        async def series(sandbox: bool) -> dict[str, Any]:
            await self.gw.call("PUT", "/api/config/sandbox", json={"enabled": sandbox})
            res: dict[str, Any] = {}
            results: list[TurnResult] = []
            sock: Sock | None = None
            with self.cpu.measure(res.setdefault("gateway_cpu", {})):
                for i in range(2 + s.tool_samples):
                    if i % 5 == 0:
                        if sock:
                            await sock.close()
                        sock = await self.gw.sock(await self.gw.new_chat())
                    r = await sock.turn(content, expect, s.turn_timeout)  # type: ignore[union-attr]
                    if i == 0 and not sandbox:
                        self.bodies["tool_second"] = await self.gw.upstream_body(self.upstream)
                    if i >= 2:
                        results.append(r)
            if sock:
                await sock.close()
            outputs = [(t.get("content"), t.get("is_error")) for r in results
                       for t in r.tool_results]
            ran = bool(outputs) and all(c == "hi" and not e for c, e in outputs)
            res["turn_ms"] = summary([r.total_s for r in results if r.total_s])
            res["failed_turns"] = sum(1 for r in results if not r.ok)
            res["tool_ran"] = ran
            if not ran:
                res["reason"] = str(outputs[0][0] if outputs else "no tool_result")[:300]
            return res

        try:
            out["unsandboxed"] = await series(False)
            out["sandboxed"] = await series(True)
        finally:
            await self.gw.call("PUT", "/api/config/sandbox", json={"enabled": False})

        # Direct: the same two model calls, and the same command run with bash.
        second = self.bodies["tool_second"]
        first = dict(second, messages=second["messages"][:-2])

        async def direct_turn(client: Any) -> float:
            t0 = time.perf_counter()
            call = await client.call(first)
            command = json.loads(call.tool_args)["command"]
            proc = await asyncio.create_subprocess_exec(
                "bash", "-c", command, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, cwd=tempfile.gettempdir())
            output, _ = await proc.communicate()
            assert output.strip() == b"hi"
            reply = await client.call(second)
            assert reply.text == expect
            return time.perf_counter() - t0

        for name, client in (("direct", self.plain), ("direct_openai", self.oai)):
            await direct_turn(client)
            out[name] = {"turn_ms": summary([await direct_turn(client)
                                             for _ in range(s.tool_samples)])}
        return out

    # -- all -----------------------------------------------------------------------------
    async def warm_up(self) -> None:
        """One turn, to capture the request the gateway sends upstream (when part 1,
        which does this, is not run)."""
        sock = await self.gw.sock(await self.gw.new_chat())
        tokens = self.sizes.latency_tokens
        r = await sock.turn(spec_message(tokens), expected_text(tokens),
                            self.sizes.turn_timeout)
        await sock.close()
        if not r.ok:
            raise RuntimeError(f"the warm-up turn failed: {r.error or 'text/seq'}")
        self.bodies["first"] = await self.gw.upstream_body(self.upstream)

    async def run(self, only: set[str] | None = None) -> dict[str, Any]:
        def wanted(key: str) -> bool:
            return not only or key in only

        await self.setup()
        self.note_rss("idle")
        if wanted("latency"):
            await self.part("latency", self.latency, reserve=10)
        if "first" not in self.bodies:
            await self.warm_up()
        # The heavy parts last: one that is cut short leaves work behind in the gateway.
        for key, fn, reserve in (("big", self.big, 10), ("rest", self.rest, 10),
                                 ("tool", self.tool, 10), ("load", self.load, 8),
                                 ("paced", self.paced, 5)):
            if wanted(key):
                await self.part(key, fn, reserve=reserve)
        self.note_rss("after_load")
        if wanted("memory_fill") and "rest" in self.results:
            await self.part("memory_fill", self.memory_fill, reserve=0)
        await self.restore()
        return self.results


# --------------------------------------------------------------------------- verdicts

def _p50(d: dict[str, Any] | None, key: str) -> float | None:
    try:
        return d[key]["p50"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: the figure compared, the target, and whether it is met."""
    out: dict[str, dict[str, Any]] = {}

    def check(key: str, value: float | None, target: float, higher: bool = False,
              extra: bool = True) -> None:
        met = None if value is None else (value >= target if higher else value <= target)
        out[key] = {"value": value, "target": target, "met": bool(met and extra)
                    if met is not None else None}

    lat = results.get("latency", {})
    if "gateway" in lat:
        g, d = lat["gateway"], lat["direct"]
        first = _sub(_p50(g, "first_delta_ms"), _p50(d, "first_delta_ms"))
        full = _sub(_p50(g, "turn_ms"), _p50(d, "turn_ms"))
        check("first_delta_overhead_ms", first, TARGETS["first_delta_overhead_ms"])
        check("full_turn_overhead_ms", full, TARGETS["full_turn_overhead_ms"])
    big = results.get("big", {})
    if "ratio" in big:
        check("big_rate_ratio", big["ratio"], TARGETS["big_rate_ratio"], higher=True)
    load = results.get("load", {})
    if "200" in load and "gateway" in load["200"]:
        g = load["200"]["gateway"]
        check("turns_per_s_200", g["turns_per_s"], TARGETS["turns_per_s_200"], higher=True,
              extra=g["all_deltas_in_order"] and not g["timed_out"])
    for chats, target in TARGETS["paced_wall_s"].items():  # type: ignore[union-attr]
        p = results.get("paced", {}).get(str(chats), {})
        if "gateway" in p:
            g = p["gateway"]
            wall = g["wave_wall_s_p50"]
            if wall is None or g["timed_out"]:  # not even one wave within its time
                wall = max(g["wave_wall_s"] + [g["limit_s"]])
            check(f"paced_wall_s_{chats}", wall, target,
                  extra=g["all_deltas_in_order"] and not g["timed_out"])
    rest = results.get("rest", {})
    if "post_chats_ms" in rest:
        check("post_chats_ms", _p50(rest, "post_chats_ms"), TARGETS["post_chats_ms"])
        check("get_chats_ms", _p50(rest, "get_chats_ms"), TARGETS["get_chats_ms"])
    tool = results.get("tool", {})
    if "direct" in tool:
        base = _p50(tool["direct"], "turn_ms")
        for kind, key in (("unsandboxed", "tool_overhead_ms"),
                          ("sandboxed", "tool_overhead_sandbox_ms")):
            if tool[kind]["tool_ran"]:
                check(key, _sub(_p50(tool[kind], "turn_ms"), base), TARGETS[key])
            else:
                out[key] = {"value": None, "target": TARGETS[key], "met": None,
                            "na": tool[kind].get("reason")}
    latency_verdicts(results, check)
    mem = results.get("memory_mb", {})
    worst = max([v for k, v in mem.items() if k.startswith("after_chats") and v] or [0]) \
        or None
    check("rss_mb_1000", worst, TARGETS["rss_mb_1000"])
    return out


LATENCY_TARGETS = {
    "first_delta_over_openai_ms": 3.0,   # over the openai client direct
    "paced_first_delta_over_openai_ms": 3.0,
    "paced_first_delta_p95_ms": 100.0,   # at every paced level
    "paced_frames_per_turn": 20.0,
    "health_ms": 1.0,
    "post_chats_fast_ms": 3.0,
    "get_chats_fast_ms": 3.0,
}


def latency_verdicts(results: dict[str, Any], check: Callable[..., None]) -> None:
    """The first-token targets: first delta over the openai client (fast and paced
    upstream), p95 first delta and delta frames a turn with many paced chats, REST p50."""
    t = LATENCY_TARGETS
    lat = results.get("latency", {})
    if "gateway" in lat:
        check("first_delta_over_openai_ms", _sub(_p50(lat["gateway"], "first_delta_ms"),
                                                 _p50(lat["direct_openai"], "first_delta_ms")),
              t["first_delta_over_openai_ms"])
    paced1 = lat.get("paced", {})
    if "gateway" in paced1:
        check("paced_first_delta_over_openai_ms",
              _sub(_p50(paced1["gateway"], "first_delta_ms"),
                   _p50(paced1["direct_openai"], "first_delta_ms")),
              t["paced_first_delta_over_openai_ms"])
    for n, p in results.get("paced", {}).items():
        g = p.get("gateway") if isinstance(p, dict) else None
        if not g:
            continue
        p95 = (g.get("first_delta_ms") or {}).get("p95")
        check(f"paced_first_delta_p95_ms_{n}", p95, t["paced_first_delta_p95_ms"],
              extra=not g["timed_out"])
        check(f"paced_frames_per_turn_{n}", g.get("delta_frames_per_turn"),
              t["paced_frames_per_turn"], higher=True)
    rest = results.get("rest", {})
    for key, target in (("health_ms", "health_ms"), ("post_chats_ms", "post_chats_fast_ms"),
                        ("get_chats_ms", "get_chats_fast_ms")):
        if key in rest:
            check(target, _p50(rest, key), t[target])


def latency_rows(results: dict[str, Any], checks: dict[str, dict[str, Any]],
                 row: Callable[..., None]) -> None:
    """Rows of the first-token targets (``latency_verdicts``)."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:+.1f} ms"

    lat = results.get("latency", {})
    if "gateway" in lat:
        row("1 first delta over the openai client direct (p50)", "", "", "",
            ms(checks.get("first_delta_over_openai_ms", {}).get("value")), "<= +3 ms",
            _ok(checks.get("first_delta_over_openai_ms")))
    paced1 = lat.get("paced", {})
    if "gateway" in paced1:
        g, d, o = paced1["gateway"], paced1["direct"], paced1["direct_openai"]
        row(f"1 first delta, one chat, {paced1['tokens']} tokens {paced1['delay_ms']:g} ms "
            "apart (p50 / p95)", _ms(g, "first_delta_ms"), _ms(d, "first_delta_ms"),
            _ms(o, "first_delta_ms"),
            ms(checks.get("paced_first_delta_over_openai_ms", {}).get("value"))
            + " over openai", "<= +3 ms", _ok(checks.get("paced_first_delta_over_openai_ms")))
    for n, p in results.get("paced", {}).items():
        g = p.get("gateway") if isinstance(p, dict) else None
        if not g:
            continue
        frames = g.get("delta_frames_per_turn")
        row(f"4 {n} paced chats: first delta p50 / p95; delta frames a turn",
            f"{_ms(g, 'first_delta_ms')}; " + ("-" if frames is None else f"{frames:.0f}"),
            "", "", "", "p95 <= 100 ms; >= 20 frames",
            _ok(checks.get(f"paced_first_delta_p95_ms_{n}"))
            + "; " + _ok(checks.get(f"paced_frames_per_turn_{n}")))
    rest = results.get("rest", {})
    if "health_ms" in rest:
        floor = ("; the client's own floor "
                 + _ms(rest, "client_floor_ms", p95=False)) if "client_floor_ms" in rest else ""
        row("5 REST p50: GET /health; POST /api/chats; GET /api/chats",
            "; ".join(_ms(rest, k, p95=False) for k in ("health_ms", "post_chats_ms",
                                                       "get_chats_ms")) + floor,
            "", "", "", "<= 1; <= 3; <= 3 ms",
            "; ".join(_ok(checks.get(k)) for k in ("health_ms", "post_chats_fast_ms",
                                                  "get_chats_fast_ms")))


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


# --------------------------------------------------------------------------- the table

def _ms(d: dict[str, Any] | None, key: str, p95: bool = True) -> str:
    try:
        x = d[key]  # type: ignore[index]
        return f"{x['p50']:.1f} / {x['p95']:.1f} ms" if p95 else f"{x['p50']:.1f} ms"
    except (KeyError, TypeError):
        return "-"


def _ok(v: dict[str, Any] | None) -> str:
    if not v:
        return ""
    if v.get("na"):
        return "n/a"
    return {True: "yes", False: "NO", None: "?"}[v["met"]]


def table(results: dict[str, Any], checks: dict[str, dict[str, Any]]) -> str:
    rows: list[tuple[str, ...]] = []

    def row(*cells: str) -> None:
        rows.append(tuple(cells))

    def diff(a: float | None, b: float | None, unit: str = "ms") -> str:
        return "-" if a is None or b is None else f"{a - b:+.1f} {unit}"

    def broken(key: str, label: str) -> bool:
        part = results.get(key)
        if isinstance(part, dict) and ("error" in part or "skipped" in part):
            row(label, f"not measured: {part.get('error') or part.get('skipped')}",
                "", "", "", "", "NO")
            return True
        return False

    lat = results.get("latency", {})
    if broken("latency", "1 latency of a turn"):
        pass
    elif "gateway" in lat:
        g, d, o = lat["gateway"], lat["direct"], lat["direct_openai"]
        t = lat["tokens"]
        row(f"1 first delta, {t}-token turn (p50 / p95)", _ms(g, "first_delta_ms"),
            _ms(d, "first_delta_ms"), _ms(o, "first_delta_ms"),
            diff(_p50(g, "first_delta_ms"), _p50(d, "first_delta_ms")),
            "<= +3 ms", _ok(checks.get("first_delta_overhead_ms")))
        row(f"1 full turn, {t} tokens (p50 / p95)", _ms(g, "turn_ms"), _ms(d, "turn_ms"),
            _ms(o, "turn_ms"), diff(_p50(g, "turn_ms"), _p50(d, "turn_ms")),
            "<= +10 ms", _ok(checks.get("full_turn_overhead_ms")))
    big = results.get("big", {})
    if broken("big", "2 delta rate of a long turn"):
        pass
    elif "ratio" in big:
        r = lambda k: f"{big[k]['tokens_per_s']:,.0f} tokens/s" if big[k]["tokens_per_s"] \
            else "-"  # noqa: E731
        row(f"2 delta rate, one {big['tokens']:,}-token turn", r("gateway"), r("direct"),
            r("direct_openai"),
            f"x{big['ratio']:.2f} (x{big['ratio_openai']:.2f} of openai)"
            if big["ratio"] and big["ratio_openai"] else "-",
            ">= x0.9", _ok(checks.get("big_rate_ratio")))
    for n, p in ({} if broken("load", "3 chats at full speed") else
                 results.get("load", {})).items():
        g, d, o = p["gateway"], p["direct"], p["direct_openai"]
        target = (f">= {TARGETS['turns_per_s_200']:g} turns/s, none lost" if n == "200"
                  else "none lost")
        ok = _ok(checks.get("turns_per_s_200")) if n == "200" else \
            ("yes" if g["all_deltas_in_order"] else "NO")
        lost = "all deltas in order" if g["all_deltas_in_order"] else \
            f"{g['lost_or_misordered']} turns lost/misordered, {g['failed_turns']} failed"
        if g["timed_out"]:
            lost += f"; cut at {g['limit_s']:g} s: {g['turns']} of {p['chats'] * p['rounds']}" \
                    f" turns done, {g['deltas_per_s']:,.0f} deltas/s"
        row(f"3 {n} chats x {p['tokens']} tokens, full speed: turns/s; turn p50 / p95",
            f"{g['turns_per_s']:.1f}/s; {_ms(g, 'turn_ms')}; {lost}",
            f"{d['turns_per_s']:.0f}/s; {_ms(d, 'turn_ms')}",
            f"{o['turns_per_s']:.0f}/s; {_ms(o, 'turn_ms')}",
            f"x{g['turns_per_s'] / d['turns_per_s']:.2f}; "
            + (f"{g['gateway_cpu_us_per_token']:.0f} us gateway CPU/token"
               if g["gateway_cpu_us_per_token"] else ""), target, ok)
    for n, p in ({} if broken("paced", "4 paced chats") else
                 results.get("paced", {})).items():
        g, d, o = p["gateway"], p["direct"], p["direct_openai"]
        target = TARGETS["paced_wall_s"].get(int(n))  # type: ignore[union-attr]
        ok = _ok(checks.get(f"paced_wall_s_{n}")) if target else \
            ("yes" if g["all_deltas_in_order"] else "NO")
        lost = "" if g["all_deltas_in_order"] else f"; {g['lost_or_misordered']} lost"
        wall = f"{g['wave_wall_s_p50']:.2f} s" if g["wave_wall_s_p50"] is not None else "-"
        if g["timed_out"]:
            lost += f"; cut at {g['limit_s']:g} s: {len(g['wave_wall_s'])} of {p['rounds']}" \
                    " waves done"
        gw_wall = g["wave_wall_s_p50"] if g["wave_wall_s_p50"] is not None else g["limit_s"]
        row(f"4 {n} chats x {p['tokens']} tokens {p['delay_ms']:g} ms apart: all done; "
            "turn p50 / p95",
            f"{wall}; {_ms(g, 'turn_ms')}{lost}",
            f"{d['wave_wall_s_p50']:.2f} s; {_ms(d, 'turn_ms')}",
            f"{o['wave_wall_s_p50']:.2f} s; {_ms(o, 'turn_ms')}",
            f"{gw_wall - d['wave_wall_s_p50']:+.2f} s" + (" (at least)" if g["timed_out"]
                                                          else ""),
            f"<= {target:g} s" if target else "none lost", ok)
    rest = results.get("rest", {})
    if broken("rest", "5 REST"):
        pass
    elif "post_chats_ms" in rest:
        row(f"5 POST /api/chats ({rest['chats_created']:,} chats) p50 / p95",
            _ms(rest, "post_chats_ms"), "", "", "", "<= 5 ms", _ok(checks.get("post_chats_ms")))
        row("5 GET /api/chats?limit=20 p50 / p95", _ms(rest, "get_chats_ms"), "", "", "",
            "<= 10 ms", _ok(checks.get("get_chats_ms")))
        row("5 GET /api/chats?limit=100 p50 / p95", _ms(rest, "get_chats_100_ms"), "", "", "",
            "", "")
        row(f"5 GET /api/chats (all {rest['chats_created']:,} chats) p50 / p95",
            _ms(rest, "get_chats_all_ms"), "", "", "", "", "")
        row("5 GET /health (floor) p50 / p95", _ms(rest, "health_ms"), "", "", "", "", "")
    tool = results.get("tool", {})
    if broken("tool", "6 tool turn"):
        pass
    elif "direct" in tool:
        for kind, key in (("unsandboxed", "tool_overhead_ms"),
                          ("sandboxed", "tool_overhead_sandbox_ms")):
            target = f"<= +{TARGETS[key]:g} ms"
            t = tool[kind]
            base = _p50(tool["direct"], "turn_ms")
            cell = _ms(t, "turn_ms") if t["tool_ran"] else f"n/a: {t.get('reason', '')[:60]}"
            row(f"6 tool turn (bash echo hi + {tool['tokens']} tokens), {kind}", cell,
                _ms(tool["direct"], "turn_ms"), _ms(tool["direct_openai"], "turn_ms"),
                diff(_p50(t, "turn_ms"), base) if t["tool_ran"] else "-", target,
                _ok(checks.get(key)))
    mem = results.get("memory_mb", {})
    fill = results.get("memory_fill", {})
    labels = [("idle", "idle"), ("after_chats_created", "after creating the chats"),
              ("after_load", "after the load"),
              ("after_chats_with_a_turn", "after a turn in each chat")]
    cells = [f"{label} {mem[k]:.0f}" for k, label in labels if mem.get(k)]
    n = results.get("rest", {}).get("chats_created", "?")
    extra = ""
    if fill.get("turns_per_s"):
        extra = f"; fill: {fill['turns_done']} turns of {fill['tokens']} tokens, " \
                f"{fill['turns_per_s']:.0f} turns/s"
    if fill.get("error") or fill.get("skipped"):
        extra = f"; the fill failed: {fill.get('error') or fill.get('skipped')}"
    row(f"7 gateway RSS, {n} chats (MB)", "; ".join(cells) + extra, "", "", "",
        f"<= {TARGETS['rss_mb_1000']:g} MB", _ok(checks.get("rss_mb_1000")))

    latency_rows(results, checks, row)
    head = ("measure", "gateway", "direct (aiohttp)", "direct (openai client)",
            "gateway vs direct", "target", "met")
    return markdown([head, *rows])


def markdown(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in rows[1:])])


# --------------------------------------------------------------------------- team mode

class TeamGateway(Gateway):
    """The gateway as N processes (``--team N``): sockets and REST calls go round-robin
    to the processes, as a proxy without sticky sessions would send them."""

    def __init__(self, servers: list[ServeProcess], token: str, sizes: Sizes) -> None:
        super().__init__(servers[0], token, sizes)
        self.servers = servers
        self.clients = [self.http] + [
            httpx.AsyncClient(base_url=s.url, timeout=30,
                              headers={"Authorization": f"Bearer {token}"},
                              limits=httpx.Limits(max_connections=20))
            for s in servers[1:]]
        self.turn = 0

    def _next(self) -> int:
        self.turn = (self.turn + 1) % len(self.servers)
        return self.turn

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        response = await self.clients[self._next()].request(method, path, **kw)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response

    async def sock(self, chat_id: str) -> Sock:
        server = self.servers[self._next()]
        return await Sock.open(server.ws_url, chat_id, self.token, self.sizes.turn_timeout)

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


class TeamCpuMeter(CpuMeter):
    """CPU seconds of all the gateway's processes together."""

    def __init__(self, serve_pids: list[int], upstream_pid: int) -> None:
        super().__init__(serve_pids[0], upstream_pid)
        self.pids = {"gateway": serve_pids[0], "upstream": upstream_pid,
                     **{f"gateway{i + 2}": pid for i, pid in enumerate(serve_pids[1:])}}

    @contextlib.contextmanager
    def measure(self, into: dict[str, Any]):
        with super().measure(into):
            yield
        cpu = into["cpu_s"]
        for key in [k for k in cpu if k.startswith("gateway") and k != "gateway"]:
            cpu["gateway"] = round(cpu["gateway"] + cpu.pop(key), 3)


def start_team(data_dir: Path, env: dict[str, str], n: int) -> list[ServeProcess]:
    """N ``serve`` processes on one PostgreSQL and one Redis; the first one migrates
    and creates the admin, the others start after it."""
    # One SECRET_KEY for all: it decrypts the profiles' API keys (docs/deploy.md).
    env = {**env, "SECRET_KEY": env.get("SECRET_KEY") or secrets.token_urlsafe(50)}
    servers = [ServeProcess(data_dir / f"data{i}", env=env) for i in range(n)]
    started: list[ServeProcess] = []
    try:
        for server in servers:
            started.append(server.start(timeout=90))
    except Exception:
        for server in started:
            server.stop()
        raise
    for server in servers[1:]:
        server.admin_token = servers[0].admin_token
    return servers


def team_config(n: int) -> str:
    return f"team: {n} processes on PostgreSQL + Redis, clients round-robin"


# --------------------------------------------------------------------------- main

def server_errors(log: str) -> list[dict[str, Any]]:
    """ERROR lines of the gateway's log (plain or JSON lines), counted by message."""
    counts: dict[str, int] = {}
    for line in log.splitlines():
        message = None
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("level") in ("ERROR", "CRITICAL"):
                    message = f"{entry.get('logger')}: {entry.get('msg')}"
        elif " ERROR " in line or " CRITICAL " in line:
            message = line.split(" ERROR ", 1)[-1].split(" CRITICAL ", 1)[-1]
        if message:
            message = message[:200]
            counts[message] = counts.get(message, 0) + 1
    return [{"message": m, "count": n} for m, n in sorted(counts.items(),
                                                           key=lambda kv: -kv[1])][:10]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    load = ""
    with contextlib.suppress(OSError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory": mem, "loadavg": load,
            "python": platform.python_version(), "platform": platform.platform(),
            "openai": openai.__version__, "websockets": websockets.__version__}


async def run_async(sizes: Sizes, serve: ServeProcess, token: str, upstream: Upstream,
                    config: str, profile_dir: Path | None, only: set[str] | None = None,
                    team: list[ServeProcess] | None = None, profile_gil: bool = False
                    ) -> tuple[dict[str, Any], list[str]]:
    bench = Bench(sizes, serve, token, upstream, config, profile_dir, profile_gil)
    if team:
        await bench.gw.close()
        bench.gw = TeamGateway(team, token, sizes)
        bench.cpu = TeamCpuMeter([s.proc.pid for s in team], upstream.pid)  # type: ignore
    try:
        results = await bench.run(only)
    finally:
        await bench.close()
    return results, bench.failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the gateway against its upstream.")
    parser.add_argument("--quick", action="store_true", help="small sizes (< 40 s)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--redis", default="", help="REDIS_URL for the gateway")
    parser.add_argument("--database", default="", help="DATABASE_URL for the gateway")
    parser.add_argument("--team", type=int, default=0, metavar="N",
                        help="N server processes (needs --redis and --database); clients "
                             "are spread over them round-robin")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--show", type=Path, metavar="JSON",
                        help="print the table of a saved report and exit")
    parser.add_argument("--only", metavar="PARTS",
                        help="run only these parts (comma-separated): " + ",".join(PARTS)
                             + " (memory_fill needs rest)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy the gateway during each part: DIR/<part>.txt "
                             "(collapsed stacks) and the hottest functions in the JSON")
    parser.add_argument("--profile-gil", action="store_true",
                        help="with --profile: sample only the thread holding the "
                             "interpreter (where a GIL-bound gateway spends it)")
    args = parser.parse_args(argv)
    if args.show:
        show(json.loads(args.show.read_text()))
        return 0
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(PARTS):
        parser.error(f"--only takes some of {','.join(PARTS)}")
    if args.profile and not profile.available():
        parser.error("--profile needs py-spy: pip install py-spy")
    if args.team and not (args.redis and args.database):
        parser.error("--team needs --redis and --database (the processes share them)")
    sizes = PRESETS["smoke" if args.smoke else "quick" if args.quick else "full"]
    config = "embedded (SQLite, in-memory channel layer)"
    if args.redis or args.database:
        config = f"REDIS_URL={'set' if args.redis else 'unset'}, " \
                 f"DATABASE_URL={'set' if args.database else 'unset'}"
    if args.team:
        config = team_config(args.team)

    started = time.perf_counter()
    load_before = machine()["loadavg"]
    data_dir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    env = {"REDIS_URL": args.redis, "DATABASE_URL": args.database, "OPENAI_API_KEY": "",
           "DEBUG": "false", "GATEWAY_WORKSPACE": str(data_dir / "workspaces"),
           # Tools are sandboxed by default; the opt-out lets part 6 also time them bare.
           "GATEWAY_UNSANDBOXED_TOOLS": "true"}
    upstream = Upstream().start()
    serve = ServeProcess(data_dir / "data", env=env)
    team: list[ServeProcess] = []
    failures: list[str] = []
    try:
        if args.team:
            team = start_team(data_dir, env, args.team)
            serve = team[0]
        else:
            serve.start(timeout=60)
        token = serve.admin_token or issue_token(serve.env)
        for server in team:
            server.admin_token = token
        results, failures = asyncio.run(run_async(sizes, serve, token, upstream, config,
                                                  args.profile, only, team,
                                                  args.profile_gil))
    finally:
        for server in team or [serve]:
            server.stop()
        upstream.stop()
        log = "\n".join(server.log() for server in team or [serve])
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    checks = verdicts(results)
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "loadavg_before": load_before, "preset": sizes.name,
              "elapsed_s": round(time.perf_counter() - started, 1), "results": results,
              "targets": checks, "failures": failures,
              "missed": sorted(k for k, v in checks.items() if v["met"] is False),
              "server_errors": server_errors(log)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
    show(report)
    if args.json:
        print(f"\nJSON: {args.json}")
    return 1 if failures else 0


def show(report: dict[str, Any]) -> None:
    """Print the table of a report (``--show FILE`` prints a saved one again)."""
    results = report["results"]
    print(f"Gateway benchmark ({report['preset']}; {results.get('config')}; "
          f"{report['machine']['cpus']} CPUs; {report['elapsed_s']} s; "
          f"{report['date']}; load average before {report.get('loadavg_before')})\n")
    print(table(results, report["targets"]))
    if report["failures"]:
        print("\nfailures: " + "; ".join(report["failures"]))
    if report["server_errors"]:
        print("\nserver log errors (count x message):\n  " + "\n  ".join(
            f"{e['count']} x {e['message']}" for e in report["server_errors"]))


if __name__ == "__main__":
    sys.exit(main())
