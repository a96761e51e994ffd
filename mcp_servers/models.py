"""MCP servers configured by admins (Django admin or ``/api/mcp/servers``).

Only configuration lives here; the connections are kept by ``agents.mcp`` in each server
process (``mcp_servers.runtime``), which reads the enabled rows.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from agents.mcp import TRANSPORTS, ServerConfig

_NAME = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$",
                       "Use 1-40 letters, digits, '_' or '-', starting with a letter or digit.")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def env_var_name(value: str) -> None:
    if value and not _ENV_NAME.match(value):
        raise ValidationError("Give the NAME of an environment variable of the gateway "
                              "(e.g. GITHUB_MCP_TOKEN), never the token itself.")


class McpServer(models.Model):
    name = models.CharField(max_length=40, unique=True, validators=[_NAME])
    transport = models.CharField(max_length=8, choices=[(t, t) for t in TRANSPORTS],
                                 default="stdio")
    enabled = models.BooleanField(default=True)
    tool_prefix = models.CharField(max_length=40, blank=True, default="", validators=[_NAME],
                                   help_text="Tools are named <prefix>__<tool>; empty: the "
                                             "server's name.")
    # stdio: the command is run as a child process of the gateway.
    command = models.CharField(max_length=500, blank=True, default="")
    args = models.JSONField(default=list, blank=True)
    env = models.JSONField(default=dict, blank=True,
                           help_text='Extra environment, e.g. {"TOKEN": "${MY_TOKEN}"}: '
                                     "${NAME} is read from the gateway's environment.")
    # http: streamable HTTP.
    url = models.CharField(max_length=500, blank=True, default="")
    bearer_token_env = models.CharField(max_length=128, blank=True, default="",
                                        validators=[env_var_name],
                                        help_text="Name of the environment variable that "
                                                  "holds the bearer token (not the token).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"

    def __str__(self) -> str:
        return self.name

    @property
    def prefix(self) -> str:
        return self.tool_prefix or self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.transport == "stdio" and not self.command.strip():
            errors["command"] = "A stdio server needs the command that starts it."
        if self.transport == "http":
            parts = urlsplit(self.url or "")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                errors["url"] = "An http server needs its http:// or https:// URL."
        if not isinstance(self.args, list) or not all(isinstance(a, str) for a in self.args):
            errors["args"] = "A list of strings."
        if not isinstance(self.env, dict) or not all(
                isinstance(k, str) and _ENV_NAME.match(k) and isinstance(v, str)
                for k, v in self.env.items()):
            errors["env"] = "An object of variable names to string values."
        taken = {s.prefix: s.name for s in McpServer.objects.exclude(pk=self.pk)}
        if self.prefix in taken:
            errors["tool_prefix"] = f"The prefix {self.prefix!r} is used by the server " \
                                    f"{taken[self.prefix]!r}; pick another tool_prefix."
        if errors:
            raise ValidationError(errors)

    def to_config(self) -> ServerConfig:
        return ServerConfig(
            name=self.name, transport=self.transport, command=self.command,
            args=tuple(self.args or ()), env=tuple(sorted((self.env or {}).items())),
            url=self.url, bearer_token_env=self.bearer_token_env, tool_prefix=self.prefix)

    def to_dict(self, *, reveal_env: bool = False) -> dict[str, Any]:
        """The config; literal env values (secrets, maybe) only with ``reveal_env``."""
        env = {key: value if reveal_env or _ENV_REFERENCE.match(value) else "***"
               for key, value in self.env.items()}
        return {
            "name": self.name, "transport": self.transport, "enabled": self.enabled,
            "tool_prefix": self.prefix, "command": self.command, "args": list(self.args),
            "env": env, "url": self.url, "bearer_token_env": self.bearer_token_env,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }
