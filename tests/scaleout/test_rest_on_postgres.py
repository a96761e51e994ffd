"""The REST and socket suites, run again on PostgreSQL.

The channel layer stays in memory here: those tests run in one process, and the Redis
layer across processes is what ``test_two_processes`` proves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = ["tests/gateway", "tests/profiles", "tests/permissions", "tests/chats"]


@pytest.mark.slow
@pytest.mark.timeout(900)  # a whole suite of its own; its tests have their own timeouts
def test_the_rest_and_socket_suites_pass_on_postgresql(pg_url, tmp_path):
    env = {**os.environ, "DATABASE_URL": pg_url, "GATEWAY_DATA_DIR": str(tmp_path / "data")}
    env.pop("REDIS_URL", None)
    suites = [s for s in SUITES if (ROOT / s).exists()]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-n", "0", "-x", *suites],
                         cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    tail = "\n".join(run.stdout.splitlines()[-30:])
    assert run.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail
