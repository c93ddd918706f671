"""Per-process resources of a worker or the trainer, created lazily after the fork (never in a prefork parent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from agentfleet.chain.session import ChainSession
from agentfleet.content import ResultStore, TaskTexts
from agentfleet.directory import AgentDirectory
from agentfleet.llm import LLMProvider, make_provider
from agentfleet.settings import Settings, get_settings

if TYPE_CHECKING:
    from agentfleet.bidding.policy_net import PolicyCache


@dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis
    session: ChainSession
    provider: LLMProvider
    directory: AgentDirectory
    results: ResultStore
    texts: TaskTexts
    policies: PolicyCache | None = None  # built on the first RL bid (NumPy weights; no torch)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        client = redis.Redis.from_url(settings.redis_url.get_secret_value())
        return cls(
            settings=settings,
            redis=client,
            session=ChainSession.open(settings, redis_client=client),
            provider=make_provider(settings, client),
            directory=AgentDirectory(client),
            results=ResultStore(client),
            texts=TaskTexts(client),
        )

    def policy_cache(self) -> PolicyCache:
        """The RL policies this process bids with, reloaded when the trainer writes a new version."""
        if self.policies is None:
            from agentfleet.bidding.policy_net import PolicyCache

            self.policies = PolicyCache(self.settings.models_dir)
        return self.policies

    def secrets(self) -> list[str]:
        """Values that must never appear in a result, a prompt or a log line."""
        return secrets_of(self.settings)


def secrets_of(settings: Settings) -> list[str]:
    values = [settings.mnemonic.get_secret_value(), settings.redis_url.get_secret_value()]
    if settings.broker_url is not None and settings.broker_url.get_secret_value():
        values.append(settings.broker_url.get_secret_value())
    if settings.openai_api_key is not None:
        values.append(settings.openai_api_key.get_secret_value())
    if settings.dashboard_password is not None and settings.dashboard_password.get_secret_value():
        values.append(settings.dashboard_password.get_secret_value())
    return values


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime.build(get_settings())
    return _runtime


def use_runtime(value: Runtime | None) -> None:
    """Install a runtime (tests and the embedded demo build theirs from explicit settings)."""
    global _runtime
    _runtime = value


_plain_redis: redis.Redis | None = None


def redis_only() -> tuple[redis.Redis, Settings]:
    """This process's Redis client without building the rest of the runtime (no chain connection): for work
    that must succeed while the node is down, such as recording why a task failed. One client per process."""
    global _plain_redis
    if _runtime is not None:
        return _runtime.redis, _runtime.settings
    settings = get_settings()
    if _plain_redis is None:
        _plain_redis = redis.Redis.from_url(settings.redis_url.get_secret_value())
    return _plain_redis, settings
