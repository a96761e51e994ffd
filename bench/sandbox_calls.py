"""Sandboxed ``bash`` calls, cold vs warm: N sequential ``echo hi`` calls, timed.

    python3 bench/sandbox_calls.py [--calls 20] [--rounds 3] [--json out.json]

Cold: ``agents.sandbox.run_command`` (a new bubblewrap sandbox per call). Warm:
``agents.warm.run_command`` with one chat key; each round starts from no warm sandbox,
so its first call pays the sandbox's start. Plain (no sandbox) is the floor. Prints, per
mode, the total of the N calls (median over the rounds) and the median and the first call
of the rounds' calls. Needs bubblewrap; runs nothing else (no server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents import sandbox as sb  # noqa: E402
from agents import warm  # noqa: E402
from agents.sandbox import SandboxPolicy  # noqa: E402


async def series(mode: str, ws: Path, calls: int) -> list[float]:
    policy = SandboxPolicy(enabled=mode != "plain")
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        if mode == "warm":
            res = await warm.run_command("echo hi", ws, policy, timeout=10, key="bench")
        else:
            res = await sb.run_command("echo hi", ws, policy, timeout=10)
        samples.append((time.perf_counter() - t0) * 1000)
        if res.output != "hi\n":
            raise SystemExit(f"{mode}: unexpected result {res}")
    if mode == "warm":
        await warm.close_all()
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    status = await asyncio.to_thread(sb.sandbox_status)
    if not status["available"]:
        raise SystemExit(f"the sandbox is unusable here: {status['reason']}")
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        ws = Path(tmp)
        await series("cold", ws, 2)  # warm up the page cache
        out = {}
        for mode in ("plain", "cold", "warm"):
            rounds = [await series(mode, ws, args.calls) for _ in range(args.rounds)]
            every = [s for r in rounds for s in r]
            out[mode] = {
                "total_ms": statistics.median(sum(r) for r in rounds),
                "per_call_median_ms": statistics.median(every),
                "first_call_ms": statistics.median(r[0] for r in rounds),
            }
    print(f"{args.calls} sequential `echo hi` calls, median of {args.rounds} rounds "
          f"(process limit: {status['process_limit']}):")
    for mode, fig in out.items():
        print(f"  {mode:5}  total {fig['total_ms']:7.1f} ms   per call {fig['per_call_median_ms']:6.1f}"
              f" ms   first call {fig['first_call_ms']:6.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
