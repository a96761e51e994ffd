"""``gateway-cli jobs ...`` against a real ``serve``."""

from __future__ import annotations

import json
import time

import pytest

from tests.cli.conftest import run_cli

pytestmark = pytest.mark.timeout(300)


def ok(env, *args: str) -> str:
    done = run_cli(env, "jobs", *args, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_jobs_are_created_listed_run_paused_and_deleted(cli_env, upstream):
    created = json.loads(ok(cli_env, "--json", "create", "cli-report", "--prompt",
                            "Say hi.", "--cron", "0 9 * * 1-5", "--timezone", "Europe/Paris"))
    assert created["schedule"] == {"kind": "cron", "cron": "0 9 * * 1-5",
                                   "timezone": "Europe/Paris"}
    listing = ok(cli_env, "list")
    assert "cli-report" in listing and "cron 0 9 * * 1-5 (Europe/Paris)" in listing
    assert ok(cli_env, "run", "cli-report").startswith("run ")
    deadline = time.monotonic() + 120
    while "succeeded" not in (runs := ok(cli_env, "runs", "cli-report")):
        assert time.monotonic() < deadline, runs
        time.sleep(0.5)
    assert "manual" in runs
    assert "paused" in ok(cli_env, "pause", "cli-report")
    assert "enabled" in ok(cli_env, "resume", str(created["id"]))
    assert ok(cli_env, "delete", "cli-report").strip() == "deleted"
    assert "cli-report" not in ok(cli_env, "list")


def test_errors_name_the_problem_and_exit_4(cli_env):
    done = run_cli(cli_env, "jobs", "create", "bad", "--prompt", "x", "--cron", "nope")
    assert done.returncode == 4 and "HTTP 400" in done.stderr
    missing = run_cli(cli_env, "jobs", "show", "no-such-job")
    assert missing.returncode == 4 and "no job 'no-such-job'" in missing.stderr
    assert run_cli(cli_env, "jobs").returncode == 2  # a subcommand is required
