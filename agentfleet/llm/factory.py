"""Choose the provider from the settings: OpenAI-compatible when a key is set, offline otherwise."""

from __future__ import annotations

import redis

from agentfleet.llm.base import LLMProvider
from agentfleet.llm.offline import OfflineProvider
from agentfleet.llm.openai_provider import OpenAIProvider
from agentfleet.llm.ratelimit import TokenBucket
from agentfleet.settings import Settings


def make_provider(settings: Settings, redis_client: redis.Redis | None = None) -> LLMProvider:
    if settings.openai_api_key is None:
        return OfflineProvider()
    bucket = None
    if redis_client is not None:
        name = (settings.openai_base_url or "api.openai.com").replace("/", "_")
        bucket = TokenBucket(redis_client, name, rate=settings.llm_rate_per_second, burst=settings.llm_burst)
    return OpenAIProvider(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        models={
            "evaluate": settings.model_evaluate,
            "bid": settings.model_bid,
            "execute": settings.model_execute,
            "score": settings.model_score,
        },
        timeout=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
        bucket=bucket,
        output_attempts=settings.llm_output_attempts,
    )
