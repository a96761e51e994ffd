"""The benchmark must keep running: ``bench/run.py --smoke`` (every part, tiny sizes)
against a real ``serve`` and the bench upstream. Checks structure and correctness (every
delta arrives, in order; the JSON is written), never timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run([sys.executable, "bench/run.py", "--smoke", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr}"
    assert "| measure" in proc.stdout and "first delta" in proc.stdout
    return {"json": json.loads(out.read_text()), "stdout": proc.stdout}


def test_every_part_ran_without_failures(report):
    data = report["json"]
    assert data["failures"] == [] and data["server_errors"] == []
    for part in ("latency", "big", "load", "paced", "rest", "tool", "memory_fill"):
        assert "error" not in data["results"][part] and "skipped" not in data["results"][part]


def test_streamed_turns_arrive_whole_and_in_order(report):
    results = report["json"]["results"]
    latency = results["latency"]
    assert latency["gateway"]["failed_turns"] == 0
    assert latency["gateway"]["first_delta_ms"]["n"] == results["sizes"]["latency_turns"]
    assert latency["direct"]["text_ok"] and latency["direct_openai"]["text_ok"]
    assert results["big"]["gateway"]["failed_turns"] == 0 and results["big"]["ratio"] > 0
    paced_one = latency["paced"]  # one chat at a time, paced upstream
    assert paced_one["gateway"]["failed_turns"] == 0
    assert paced_one["gateway"]["first_delta_ms"]["n"] >= 3
    for part in ("load", "paced"):
        for level in results[part].values():
            gw = level["gateway"]
            assert gw["all_deltas_in_order"], gw
            assert gw["delta_frames_per_turn"] >= 1
            assert gw["turns"] == level["chats"] * level["rounds"]
            assert level["direct"]["text_ok"] and level["direct_openai"]["text_ok"]


def test_rest_tool_and_memory_figures(report):
    data = report["json"]
    results = data["results"]
    assert results["rest"]["post_chats_ms"]["n"] == results["sizes"]["rest_chats"]
    assert results["rest"]["page_ok"]
    tool = results["tool"]
    assert tool["unsandboxed"]["tool_ran"] and tool["unsandboxed"]["failed_turns"] == 0
    # The sandbox may be unavailable on a machine: then it is reported n/a with the reason.
    assert tool["sandboxed"]["tool_ran"] or tool["sandboxed"]["reason"]
    assert results["memory_fill"]["complete"] and results["memory_fill"]["failed_turns"] == 0
    memory = results["memory_mb"]
    assert set(memory) == {"idle", "after_chats_created", "after_load",
                           "after_chats_with_a_turn"}
    assert all(isinstance(v, float) and v > 10 for v in memory.values())
    assert set(data["targets"]) >= {"first_delta_overhead_ms", "full_turn_overhead_ms",
                                    "big_rate_ratio", "post_chats_ms", "get_chats_ms",
                                    "tool_overhead_ms", "rss_mb_1000"}
    assert data["machine"]["cpus"] >= 1 and data["preset"] == "smoke"
