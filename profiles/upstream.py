"""What a profile's provider says about itself: the models it serves, which is also the
admins' "test connection". Through the ``openai`` package (every provider is reached over
an OpenAI-compatible endpoint); ``profiles`` does not import the agent loop, so the
default URLs are repeated here (a test keeps them equal to ``agents.providers``)."""

from __future__ import annotations

import openai

from gateway.errors import GatewayError
from profiles.models import ModelProfile

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    "anthropic": "https://api.anthropic.com/v1/",
}
TIMEOUT = 10.0


def list_models(profile: ModelProfile) -> list[str]:
    """The ids of the models the provider serves (sorted); a failure is a 502 whose
    message says what went wrong, without the key."""
    client = None
    try:  # building the client too: a stored base URL httpx refuses fails here
        client = openai.OpenAI(base_url=profile.base_url or DEFAULT_BASE_URLS[profile.provider],
                               api_key=profile.get_api_key() or "not-needed", timeout=TIMEOUT,
                               max_retries=0)
        return sorted(model.id for model in client.models.list())
    except openai.APIStatusError as exc:
        reason = f"answered HTTP {exc.status_code}"
    except openai.APITimeoutError:
        reason = f"did not answer within {TIMEOUT:g} s"
    except openai.APIConnectionError:
        reason = "could not be reached"
    except Exception as exc:  # noqa: BLE001 - any other answer (not JSON, no model list,
        # a URL httpx refuses) is the provider's failure, never a 500 of ours
        reason = f"did not answer with a model list ({type(exc).__name__})"
    finally:
        if client is not None:
            client.close()
    raise GatewayError("upstream_error", f"The provider of profile {profile.name!r} "
                       f"{reason}; check its base URL and API key.", 502)
