"""The providers a profile may name are the ones the agent can reach."""

from agents.providers import DEFAULT_BASE_URLS
from profiles.models import PROVIDERS


def test_profiles_offer_exactly_the_providers_the_agent_knows() -> None:
    assert set(PROVIDERS) == set(DEFAULT_BASE_URLS)
