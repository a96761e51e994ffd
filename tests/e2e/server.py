"""Run ``python3 manage.py serve`` as a real process for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import httpx

ROOT = Path(__file__).resolve().parents[2]
TOKEN_LINE = re.compile(r"^(gw_[0-9a-f]{64})$", re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def migrate_sqlite(folder: Path) -> Path:
    """``manage.py migrate`` of an empty SQLite database in ``folder``: its path."""
    data = folder / "data"
    env = {**os.environ, "GATEWAY_DATA_DIR": str(data), "DATABASE_URL": "", "REDIS_URL": ""}
    done = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{done.stdout}{done.stderr}")
    return data / "gateway.sqlite3"


class ServeProcess:
    """A gateway server process on a free port with its own data directory.

    ``admin_token`` is the token ``serve`` prints on its first start.

    When the test session set ``template_folder`` (``tests/conftest.py``), a first start on
    SQLite gets a copy of a database migrated once per session (and worker) instead of
    migrating its own: ``serve`` still runs ``migrate``, which finds nothing left to do,
    and still creates the admin user and prints the token. ``from_template=False`` keeps
    the real first start (an empty data dir), for tests about what ``serve`` creates.
    """

    template_folder: ClassVar[Path | None] = None
    _template: ClassVar[Path | None] = None

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None,
                 port: int | None = None, from_template: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.from_template = from_template
        self.env = {**os.environ, "GATEWAY_DATA_DIR": str(self.data_dir),
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.admin_token = ""
        self.log_path = self.data_dir / f"serve-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> "ServeProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._copy_template()
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1",
             "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"serve did not answer /health in {timeout}s:\n{self.log()}")
        found = TOKEN_LINE.findall(self.log())
        if found and not self.admin_token:
            self.admin_token = found[0]
        return self

    def _copy_template(self) -> None:
        database = self.data_dir / "gateway.sqlite3"
        cls = type(self)
        if (not self.from_template or cls.template_folder is None
                or self.env.get("DATABASE_URL") or database.exists()):
            return
        if cls._template is None:
            cls._template = migrate_sqlite(cls.template_folder)
        # As serve would have made it (its umask is 077).
        with open(cls._template, "rb") as src, \
                open(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst:
            shutil.copyfileobj(src, dst)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        self.stop(signal.SIGKILL)

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10,
                            headers={"Authorization": f"Bearer {token or self.admin_token}"})

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
