"""What puts configuration changes, sign-ins and token events into the audit log.

Django's model signals are the one place every path of change passes (the REST views,
the Django admin, management commands), so the record cannot be forgotten by a new view.
Each receiver only snapshots and calls ``audit.services.record``.
"""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import signals as auth_signals
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model, signals

from audit.services import record

# model label -> (kind, what the target is called)
WATCHED: dict[str, tuple[str, str]] = {
    "profiles.ModelProfile": ("config", "profile"),
    "permissions.PermissionPolicy": ("config", "permissions"),
    "permissions.SandboxConfig": ("config", "sandbox"),
    "mcp_servers.McpServer": ("config", "mcp_server"),
    "usage.Budget": ("config", "budget"),
    "usage.ProfilePrice": ("config", "price"),
    "access.ProfileGrant": ("config", "profile_access"),
    "files.WorkspaceQuota": ("config", "workspace_quota"),
    "auth.Group": ("user", "group"),
    settings.AUTH_USER_MODEL: ("user", "user"),
}
# Fields that change on their own, not by anybody's decision.
NOISE = {"updated_at", "created_at", "last_login", "date_joined"}


def snapshot(instance: Model) -> dict[str, Any]:
    """The instance's own fields as JSON values (secrets masked by ``record``)."""
    values: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if field.name in NOISE:
            continue
        value = field.value_from_object(instance)
        if field.name == "password":
            value = "set" if value and instance.has_usable_password() else "unusable"
        values[field.attname if field.is_relation else field.name] = value
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def _label(instance: Model) -> str:
    return f"{instance._meta.app_label}.{instance._meta.object_name}"


def _target(instance: Model, what: str) -> str:
    return f"{what} {instance}"


def before_save(sender: type[Model], instance: Model, raw: bool = False, **kw: Any) -> None:
    if raw or instance.pk is None:
        instance._audit_before = None  # type: ignore[attr-defined]
        return
    old = sender.objects.filter(pk=instance.pk).first()
    instance._audit_before = snapshot(old) if old else None  # type: ignore[attr-defined]


def after_save(sender: type[Model], instance: Model, created: bool, raw: bool = False,
               **kw: Any) -> None:
    if raw:
        return
    kind, what = WATCHED[_label(instance)]
    before = getattr(instance, "_audit_before", None)
    after = snapshot(instance)
    if before is None:
        record(kind, "created", target=_target(instance, what), data={"after": after})
        return
    changed = sorted(k for k in after if before.get(k) != after.get(k))
    if changed:
        record(kind, "changed", target=_target(instance, what),
               data={"before": {k: before.get(k) for k in changed},
                     "after": {k: after[k] for k in changed}})


def after_delete(sender: type[Model], instance: Model, **kw: Any) -> None:
    kind, what = WATCHED[_label(instance)]
    record(kind, "deleted", target=_target(instance, what), data={"before": snapshot(instance)})


def groups_changed(sender: Any, instance: Model, action: str, pk_set: set[int] | None,
                   reverse: bool, **kw: Any) -> None:
    if action not in ("post_add", "post_remove", "post_clear") or reverse:
        return
    from django.contrib.auth.models import Group

    names = sorted(Group.objects.filter(pk__in=pk_set or []).values_list("name", flat=True))
    record("user", f"groups_{action[5:]}", target=f"user {instance}", data={"groups": names})


def signed_in(sender: Any, request: Any, user: Any, **kw: Any) -> None:
    record("signin", "signed_in", target=f"user {user}", actor=user,
           data={"how": "password"})


def sign_in_failed(sender: Any, credentials: dict[str, Any], request: Any = None,
                   **kw: Any) -> None:
    record("signin", "failed", target=f"user {credentials.get('username', '')}",
           data={"username": str(credentials.get("username", ""))[:150]})


def token_saved(sender: Any, instance: Any, created: bool, **kw: Any) -> None:
    if created:
        record("token", "created", target=f"token {instance.token_key}", actor=instance.user,
               data={"name": instance.name, "prefix": instance.token_key,
                     "expiry": instance.expiry.isoformat() if instance.expiry else None})


def token_deleted(sender: Any, instance: Any, **kw: Any) -> None:
    record("token", "deleted", target=f"token {instance.token_key}",
           data={"name": instance.name, "prefix": instance.token_key,
                 "owner": instance.user.get_username() if instance.user_id else None})


def connect() -> None:
    """Hook every receiver up (``AuditConfig.ready``)."""
    for label in WATCHED:
        model = apps.get_model(label)
        uid = f"audit.{label}"
        signals.pre_save.connect(before_save, sender=model, dispatch_uid=uid + ".pre")
        signals.post_save.connect(after_save, sender=model, dispatch_uid=uid + ".post")
        signals.post_delete.connect(after_delete, sender=model, dispatch_uid=uid + ".del")
    user_model = apps.get_model(settings.AUTH_USER_MODEL)
    signals.m2m_changed.connect(groups_changed, sender=user_model.groups.through,
                                dispatch_uid="audit.groups")
    auth_signals.user_logged_in.connect(signed_in, dispatch_uid="audit.signin")
    auth_signals.user_login_failed.connect(sign_in_failed, dispatch_uid="audit.signin_failed")
    token = apps.get_model("gateway.ApiToken")
    signals.post_save.connect(token_saved, sender=token, dispatch_uid="audit.token")
    signals.post_delete.connect(token_deleted, sender=token, dispatch_uid="audit.token_del")
