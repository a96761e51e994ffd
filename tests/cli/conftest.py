"""The command-line client against a real ``serve`` process and the fake upstream.

The client runs as ``python -m gateway_cli`` with ``PYTHONPATH=cli`` (as from a checkout);
``HOME`` points at a temporary folder so its history and state are the test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.server import ROOT, ServeProcess
from tests.fake_upstream import FakeUpstream

CLI_DIR = ROOT / "cli"
if str(CLI_DIR) not in sys.path:  # the unit tests import gateway_cli in-process
    sys.path.insert(0, str(CLI_DIR))


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            upstream_server: FakeUpstream) -> Iterator[ServeProcess]:
    """One gateway for the client tests (no upstream retries, so errors come at once)."""
    proc = ServeProcess(tmp_path_factory.mktemp("cli-gateway") / "data",
                        env={"GATEWAY_UPSTREAM_RETRIES": "0"})
    with proc:
        with proc.client() as http:
            created = http.post("/api/profiles", json={"name": "fake", "profile": {
                "provider": "openai", "model": "fake-model", "base_url": upstream_server.url,
                "api_key": "sk-cli-0000"}})
            assert created.status_code == 201, created.text
        yield proc


@pytest.fixture
def cli_env(gateway: ServeProcess, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "GATEWAY_CLI_CONFIG")}
    home = tmp_path / "home"
    home.mkdir()
    env.update(PYTHONPATH=str(CLI_DIR), HOME=str(home), GATEWAY_URL=gateway.url,
               GATEWAY_TOKEN=gateway.admin_token, PYTHONUNBUFFERED="1")
    return env


def run_cli(env: dict[str, str], *args: str, input: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python -m gateway_cli ARGS``; stdin is /dev/null unless ``input`` is given."""
    kwargs: dict[str, Any] = {"input": input} if input is not None else {
        "stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-m", "gateway_cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def run_many(*runs: tuple[dict[str, str], list[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Several independent ``run_cli`` calls at once (each is mostly start-up time)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return list(pool.map(lambda run: run_cli(run[0], *run[1]), runs))
