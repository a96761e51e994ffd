"""Where the gateway is and which token to use: flags, then env vars, then a config file.

The config file is TOML (``~/.config/gateway-cli/config.toml``, or the path in
``GATEWAY_CLI_CONFIG``)::

    url = "https://gateway.example.com"
    token = "gw_..."

Local state (the prompt history and the last chat per gateway URL) lives in
``$XDG_DATA_HOME/gateway-cli`` (``~/.local/share/gateway-cli`` by default).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None  # type: ignore[assignment]

DEFAULT_URL = "http://127.0.0.1:8000"


class ConfigError(Exception):
    """A usage or configuration problem (exit code 2)."""


@dataclass
class Config:
    url: str
    token: str
    source: str = ""  # where the token came from, for messages

    @property
    def ws_base(self) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("GATEWAY_CLI_CONFIG"):
        return Path(env["GATEWAY_CLI_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "gateway-cli" / "config.toml"


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home())
                                           / ".local" / "share")
    return Path(base) / "gateway-cli"


def _read_file(path: Path, explicit: bool) -> dict[str, Any]:
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    if tomllib is None:  # pragma: no cover
        raise ConfigError("reading a config file needs Python 3.11 (tomllib)")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return data


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"gateway URL {url!r} is not an http:// or https:// URL")
    return url


def load(url_flag: Optional[str] = None, token_flag: Optional[str] = None,
         env: Mapping[str, str] | None = None) -> Config:
    """Resolve the gateway URL and token. Raises :class:`ConfigError` when the token is
    missing or a value is malformed."""
    env = os.environ if env is None else env
    path = config_path(env)
    file = _read_file(path, explicit=bool(env.get("GATEWAY_CLI_CONFIG")))
    url = url_flag or env.get("GATEWAY_URL") or file.get("url") or DEFAULT_URL
    if token_flag:
        token, source = token_flag, "--token"
    elif env.get("GATEWAY_TOKEN"):
        token, source = env["GATEWAY_TOKEN"], "GATEWAY_TOKEN"
    elif file.get("token"):
        token, source = str(file["token"]), str(path)
    else:
        raise ConfigError("no token: pass --token, set GATEWAY_TOKEN, or put token = \"...\" "
                          f"in {path}")
    if not isinstance(url, str):
        raise ConfigError(f"url in {path} must be a string")
    return Config(url=normalize_url(url), token=token.strip(), source=source)


class State:
    """Small persistent state: the last chat used per gateway URL."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def last_chat(self, url: str) -> Optional[str]:
        value = self._load().get("last_chat", {}).get(url)
        return value if isinstance(value, str) else None

    def set_last_chat(self, url: str, chat_id: Optional[str]) -> None:
        data = self._load()
        chats = data.setdefault("last_chat", {})
        if chat_id:
            chats[url] = chat_id
        else:
            chats.pop(url, None)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2))
            os.replace(tmp, self.path)
        except OSError:
            pass  # state is a convenience; never fail a command over it
