import os
from typing import Any

from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "profiles"
    verbose_name = "Model profiles"

    def ready(self) -> None:
        from gateway import hooks

        hooks.serve_prepare.connect(profile_from_environment, dispatch_uid="profiles.env")


def profile_from_environment(sender: Any, **kwargs: Any) -> str | None:
    """OPENAI_API_KEY at start-up and no profile yet: create a default from it."""
    from profiles.models import ModelProfile

    key = os.environ.get("OPENAI_API_KEY")
    if not key or ModelProfile.objects.exists():
        return None
    profile = ModelProfile(name="openai", provider="openai",
                           model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
                           base_url=os.environ.get("OPENAI_BASE_URL", ""))
    profile.set_api_key(key)
    profile.save()
    profile.make_default()
    return f"Created the default profile from OPENAI_API_KEY ({profile.model})."
