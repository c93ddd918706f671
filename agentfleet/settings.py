"""All configuration in one pydantic-settings class.

Why one class: every process (listener, workers, trainer, CLI) reads the same names from the same
environment, so a setting documented once in the README means the same thing everywhere. Secrets are
``SecretStr`` so that printing a ``Settings`` object, logging it or putting it in a Celery message never
reveals them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The well-known development mnemonic of anvil and hardhat: its keys are public and hold value on local
# chains only. Production deployments must set AGENTFLEET_MNEMONIC.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_MODEL = "gpt-4o-mini"  # every LLM role's model unless its AGENTFLEET_MODEL_* says otherwise

StrategyName = Literal["adaptive", "shading", "rl"]
LogFormat = Literal["text", "json"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
AuctionModeChoice = Literal["open", "sealed", "mixed"]


class Settings(BaseSettings):
    """Fleet settings, read from environment variables (prefix ``AGENTFLEET_``) and ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="AGENTFLEET_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- chain -------------------------------------------------------------------------------------
    rpc_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8545"],
        description="JSON-RPC HTTP endpoints, comma separated; the first that answers is used (failover).",
    )
    ws_url: str | None = Field(default=None, description="Optional WebSocket endpoint for newHeads wake-ups.")
    chain_id: int | None = Field(default=None, description="Expected chain id; None = accept what the node says.")
    confirmations: int = Field(default=1, ge=0, description="Blocks an event must be buried under (blocks).")
    mnemonic: SecretStr = Field(default=SecretStr(DEV_MNEMONIC), description="HD mnemonic of the fleet's keys.")
    requester_index: int = Field(default=0, ge=0, description="HD index of the key that creates tasks.")
    evaluator_index: int = Field(default=1, ge=0, description="HD index of the evaluator key.")
    agent_index_offset: int = Field(default=2, ge=0, description="HD index of agent 0; agent i uses offset+i.")
    deployer_index: int = Field(default=0, ge=0, description="HD index of the deployer/owner key.")
    tx_timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for a receipt.")
    gas_limit_multiplier: float = Field(default=1.25, ge=1.0, description="Headroom on estimated gas.")

    # --- queue ------------------------------------------------------------------------------------
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="Redis URL for broker, results, nonces and idempotency keys (may hold a password).",
    )

    broker_url: SecretStr | None = Field(
        default=None,
        description="Celery broker URL (redis:// or amqp://); unset = AGENTFLEET_REDIS_URL. Results stay in Redis.",
    )
    visibility_timeout: int = Field(
        default=45, ge=10, description="Seconds before an unacked message of a dead worker is redelivered."
    )
    unacked_restore_interval: int = Field(
        default=5, ge=1, description="Seconds between sweeps that redeliver messages of dead workers."
    )
    task_time_limit: int = Field(default=600, ge=5, description="Hard time limit of one task (seconds).")

    # --- listener ------------------------------------------------------------------------------------
    listener_poll_interval: float = Field(default=0.2, gt=0, description="Seconds between head polls when idle.")
    listener_batch_blocks: int = Field(default=500, ge=1, description="Initial eth_getLogs range (blocks).")
    listener_max_batch_blocks: int = Field(default=5000, ge=1, description="Largest eth_getLogs range (blocks).")
    listener_stream_maxlen: int = Field(default=100_000, ge=100, description="Approximate cap of the event stream.")
    listener_metrics_port: int | None = Field(default=None, description="Prometheus port of the listener (unset: off).")
    metrics_address: str = Field(default="127.0.0.1", description="Address metrics endpoints bind to.")
    worker_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Prometheus port of a Celery worker or the trainer (unset: off)."
    )

    # --- workers ---------------------------------------------------------------------------------------
    bidding_strategy: StrategyName = Field(
        default="adaptive", description="adaptive (seed heuristic) or rl (trained DQN)."
    )
    capability_push_threshold: int = Field(
        default=10, ge=0, le=100, description="Weight drift (points) before the trainer updates the chain."
    )
    action_logging: bool = Field(
        default=False, description="Workers also log bids and results to ActionLogger (the events already audit them)."
    )
    auction_mode: AuctionModeChoice = Field(
        default="mixed",
        description="Auction of the tasks the demo and create-tasks post: open, sealed or mixed (alternate).",
    )
    keeper_interval: float = Field(default=5.0, gt=0, description="Seconds between keeper finalize sweeps.")
    claim_ttl: int = Field(
        default=30, ge=5, description="Seconds a claim outlives its holder's last heartbeat (ttl/3 beats)."
    )
    trainer_checkpoint_every: int = Field(
        default=50, ge=1, description="Outcomes an agent's model learns between full checkpoints (journal between)."
    )
    trainer_checkpoint_seconds: float = Field(
        default=30.0, gt=0, description="Seconds after which an agent's model is checkpointed at its next outcome."
    )
    trainer_shards: int = Field(
        default=1, ge=1, le=256, description="Training queues: an agent's outcomes go to training.<hash % shards>."
    )
    trainer_lease_seconds: int = Field(
        default=30, ge=5, description="Seconds a trainer's claim on a shard outlives its last heartbeat."
    )
    consider_batch: int = Field(
        default=32, ge=1, le=256, description="Eligible agents of one profile per consider message (one LLM each)."
    )
    prefilter_min_weight: int = Field(
        default=30,
        ge=0,
        le=100,
        description="Capability weight a tagged task must name before an agent asks the LLM (0: always ask).",
    )
    rl_warmup: int = Field(
        default=2000,
        ge=0,
        description="Transitions an agent's model learns from (hindsight included, ~150 settled bids) before it bids"
        " with the RL strategy; until then its learning profile's adaptive heuristic bids (and teaches it).",
    )
    eth_per_usd: float = Field(
        default=1 / 3000,
        ge=0,
        description="ETH one US dollar buys: the LLM bill (priced in USD) becomes a cost in the RL reward (ETH).",
    )
    training_confirmations: int = Field(
        default=6, ge=0, description="Blocks an outcome's event must be buried under before the trainer learns."
    )
    reconcile_interval: float = Field(default=10.0, gt=0, description="Seconds between reconciler sweeps (beat).")
    reconcile_batch: int = Field(default=200, ge=1, description="Tasks the reconciler reads per sweep.")
    training_resend_after: float = Field(
        default=300.0,
        gt=0,
        description="Seconds after its last send before the reconciler sends an outcome or clearing message the"
        " trainer has not settled again (a worker killed as it took a message from Redis loses it).",
    )
    execute_attempts: int = Field(
        default=3, ge=1, description="Executions of one won task (LLM answers unusable) before it is given up."
    )
    score_attempts: int = Field(
        default=3, ge=1, description="Scoring attempts before a result waits for a human decision."
    )

    # --- LLM ------------------------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTFLEET_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="API key; unset = the offline provider.",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTFLEET_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        description="Base URL of an OpenAI-compatible server; unset = api.openai.com.",
    )
    model_evaluate: str = Field(default=DEFAULT_MODEL, description="Model for task-fit evaluation.")
    model_bid: str = Field(default=DEFAULT_MODEL, description="Model for bid advice.")
    model_execute: str = Field(default=DEFAULT_MODEL, description="Model that executes tasks.")
    model_score: str = Field(default=DEFAULT_MODEL, description="Model that scores results.")
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds per LLM request.")
    llm_max_retries: int = Field(default=2, ge=0, description="SDK retries on 408/429/5xx/connection errors.")
    llm_rate_per_second: float = Field(default=5.0, gt=0, description="LLM calls per second, whole fleet.")
    llm_burst: int = Field(default=10, ge=1, description="LLM calls allowed in a burst, whole fleet.")
    llm_output_attempts: int = Field(
        default=3, ge=1, le=10, description="Asks per LLM call when the answer does not validate (re-asks)."
    )

    # --- paths ------------------------------------------------------------------------------------------
    contract_addresses_path: Path = Field(
        default=PROJECT_ROOT / "contract_addresses.json", description="Deployment record (JSON)."
    )
    models_dir: Path = Field(default=PROJECT_ROOT / "models", description="Shared volume for RL models.")

    # --- dashboard -------------------------------------------------------------------------------------
    dashboard_address: str = Field(
        default="127.0.0.1", description="Address the dashboard binds to; anything but loopback requires a login."
    )
    dashboard_port: int = Field(default=8600, ge=1, le=65535, description="Port of the dashboard (HTTP).")
    dashboard_user: str = Field(default="operator", min_length=1, description="Dashboard login name (basic auth).")
    dashboard_password: SecretStr | None = Field(
        default=None, description="Dashboard password; required when it binds to a non-loopback address."
    )

    # --- operations ------------------------------------------------------------------------------------
    log_format: LogFormat = Field(default="text", description="Log format: text or json.")
    log_level: LogLevel = Field(default="INFO", description="Root log level (any case).")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("rpc_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("rpc_urls")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one RPC URL is required")
        return value


def redact_url(url: str) -> str:
    """scheme://host:port only: RPC URLs often carry an API key in the path, query or user info."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    hidden = "/…" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests build their own ``Settings`` instead)."""
    return Settings()
