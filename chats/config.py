"""The admin-edited configuration every turn reads, cached per process.

Model profiles and their prices, the permission policy, the sandbox config, the enabled
MCP servers, and which profiles have grants and whether any budget exists (for a turn's
admission) change
rarely and are read by every turn, so each process keeps one snapshot of them and
reloads it only when the configuration's version changed.

The version (``gateway.shared_version``) is replaced whenever one of those rows is saved
or deleted (``bump``, wired to the models' signals in ``chats.apps``), so every process
reloads on its next read.

``current()`` does database work when it reloads: call it where the database may be used
(in the turn's one database call, in a sync view).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from access.models import ProfileGrant
from agents.mcp import ServerConfig
from agents.providers import ProviderConfig
from agents.sandbox import SandboxPolicy
from gateway.shared_version import SharedVersion
from mcp_servers.models import McpServer
from permissions.models import PermissionPolicy, SandboxConfig
from profiles.models import ModelProfile
from usage.models import Budget, ProfilePrice

VERSION_KEY = "gateway:config-version"
VERSION = SharedVersion(VERSION_KEY, "config-version")


@dataclass(frozen=True)
class ConfigSnapshot:
    """The configuration as it was at ``version``. Treat it as read-only: it is shared."""

    version: str
    profiles: dict[int, ProviderConfig]  # by profile id, API keys decrypted
    default_profile_id: int | None
    mode: str
    overrides: dict[str, str]
    sandbox: SandboxPolicy
    mcp_servers: tuple[ServerConfig, ...]
    # What a turn's admission must look up, known here so a turn does no query when
    # nothing applies: profiles with a grant (the others are open to everyone), and
    # whether any budget exists at all.
    granted_profiles: frozenset[int] = frozenset()
    budgets_exist: bool = False
    # The price of each priced profile, by profile name (the usage ledger's cost).
    prices: dict[str, ProfilePrice] = field(default_factory=dict)
    # Profiles whose model titles a chat after its first reply.
    auto_title: frozenset[int] = frozenset()

    def provider(self, profile_id: int | None) -> ProviderConfig | None:
        """The chat's own profile, else the default one; None when there is neither."""
        if profile_id is not None and profile_id in self.profiles:
            return self.profiles[profile_id]
        if self.default_profile_id is None:
            return None
        return self.profiles.get(self.default_profile_id)


_snapshot: ConfigSnapshot | None = None
_loading = threading.Lock()


def current_version() -> str:
    return VERSION.current()


def current() -> ConfigSnapshot:
    """The snapshot of the current version (reloaded from the database if it changed)."""
    global _snapshot
    # The sandbox in force also depends on an operator setting (tests change it).
    version = f"{current_version()}:{settings.GATEWAY_UNSANDBOXED_TOOLS}"
    snapshot = _snapshot
    if snapshot is not None and snapshot.version == version:
        return snapshot
    with _loading:
        if _snapshot is None or _snapshot.version != version:
            # The version is read before the rows: a save in between leaves a snapshot
            # tagged with the older version, which the next read replaces.
            _snapshot = _load(version)
        return _snapshot


def _load(version: str) -> ConfigSnapshot:
    from chats.store import provider_config  # the one ProviderConfig builder

    rows = list(ModelProfile.objects.all())
    profiles = {row.pk: provider_config(row) for row in rows}
    default = next((row.pk for row in rows if row.is_default), None)
    policy = PermissionPolicy.load()
    sandbox = SandboxConfig.load()
    servers = tuple(s.to_config() for s in McpServer.objects.filter(enabled=True))
    granted = frozenset(ProfileGrant.objects.values_list("profile_id", flat=True))
    names = {row.pk: row.name for row in rows}
    prices = {names[price.profile_id]: price for price in ProfilePrice.objects.all()
              if price.profile_id in names}
    return ConfigSnapshot(version=version, profiles=profiles, default_profile_id=default,
                          mode=policy.mode, overrides=dict(policy.tool_overrides),
                          sandbox=SandboxPolicy(**sandbox.policy()), mcp_servers=servers,
                          granted_profiles=granted, budgets_exist=Budget.objects.exists(),
                          prices=prices,
                          auto_title=frozenset(row.pk for row in rows if row.auto_title))


def bump(**kwargs: Any) -> None:
    """A configuration row changed: every process reloads on its next read."""
    VERSION.bump()


CACHED_MODELS = (ModelProfile, PermissionPolicy, SandboxConfig, McpServer, ProfileGrant,
                 Budget, ProfilePrice)
