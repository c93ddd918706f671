"""Assembling and running the listener from settings (``python -m chain_listener``, ``agentfleet listen``)."""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

import kombu.exceptions
import redis
import requests
from celery import Celery
from prometheus_client import start_http_server
from web3.exceptions import Web3RPCError

from agentfleet.chain.artifacts import Deployment
from agentfleet.directory import AgentDirectory
from agentfleet.logs import configure_logging
from agentfleet.protocol import keys
from agentfleet.protocol.keys import text
from agentfleet.settings import Settings, redact_url
from chain_listener.checkpoint import CheckpointStore
from chain_listener.dispatch import Dispatcher
from chain_listener.events import EventDecoder
from chain_listener.follower import ChainFollower, StepResult
from chain_listener.metrics import ListenerMetrics
from chain_listener.rpc import AdaptiveLogFetcher, RpcPool, RpcUnavailable, redact_text, short_reason
from chain_listener.wakeup import HeadWakeup

log = logging.getLogger(__name__)

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError)
RPC_DOWN = (RpcUnavailable, requests.RequestException, Web3RPCError)


def reset_nonce_counters(client: redis.Redis) -> int:
    """Delete the fleet's shared nonce counters (not their locks); returns how many.

    Why: a reorg deeper than the confirmations can drop the fleet's own transactions (anvil_reorg drops them
    for good), so the node's nonces go back while the counters stay ahead and every later send would leave a
    gap. Without a counter a sender re-reads its nonce from the node.
    """
    counters = [k for k in client.scan_iter(match=f"{keys.NONCE}:*", count=1000) if not text(k).endswith(":lock")]
    return int(client.delete(*counters)) if counters else 0


def redis_endpoint(client: redis.Redis) -> str:
    """Where ``client`` connects, as logs may show it: host and port (or socket path), no password."""
    kwargs = client.connection_pool.connection_kwargs
    return str(kwargs.get("path") or redact_url(f"redis://{kwargs.get('host')}:{kwargs.get('port')}"))


class RedactingFilter(logging.Filter):
    """Passes every record of a handler through ``redact``, traceback included.

    Why: at DEBUG, web3 logs each request's full URI (an API key in the path, a password in the user info).
    """

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = self.redact(message), None
        return True


@dataclass
class Listener:
    follower: ChainFollower
    dispatcher: Dispatcher
    metrics: ListenerMetrics
    poll_interval: float
    stop_event: threading.Event
    wake: threading.Event = field(default_factory=threading.Event)
    ws_url: str | None = None
    redis_endpoint: str = "redis"
    secrets: tuple[str, ...] = ()  # literal strings logs must never show (the Redis password)
    retry_initial: float = 0.5  # seconds after the first failed step, doubling up to retry_max
    retry_max: float = 10.0

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        app: Celery,
        redis_client: redis.Redis | None = None,
        deployment: Deployment | None = None,
        pool: RpcPool | None = None,
    ) -> Listener:
        metrics = ListenerMetrics()
        stop = threading.Event()
        client = redis_client or redis.Redis.from_url(settings.redis_url.get_secret_value())
        deployment = deployment or Deployment.load(settings.contract_addresses_path)
        # Quick failover inside a step (each endpoint twice); a longer outage is the loop's backoff (0.5..10 s).
        pool = pool or RpcPool(
            settings.rpc_urls,
            attempts=2 * len(settings.rpc_urls),
            backoff_max=0.5,
            on_error=lambda url, _exc: metrics.rpc_errors.labels(endpoint=url).inc(),
            sleep=stop.wait,  # a stop ends the pool's backoff too
        )
        fetcher = AdaptiveLogFetcher(
            pool,
            list(deployment.contracts.values()),
            initial_batch=settings.listener_batch_blocks,
            max_batch=settings.listener_max_batch_blocks,
        )
        dispatcher = Dispatcher(
            client,
            app,
            EventDecoder(deployment.contracts),
            directory=AgentDirectory(client),
            metrics=metrics,
            stream_maxlen=settings.listener_stream_maxlen,
            trainer_shards=settings.trainer_shards,
            consider_batch=settings.consider_batch,
        )
        follower = ChainFollower(
            pool=pool,
            fetcher=fetcher,
            store=CheckpointStore(client, chain_id=deployment.chain_id),
            start_block=deployment.deployment_block,
            confirmations=settings.confirmations,
            on_logs=dispatcher.handle,
            on_reverted=lambda event_ids: cls._reverted(dispatcher, client, event_ids),
            on_shallow_reorg=lambda _depth: metrics.reorgs.labels(kind="shallow").inc(),
        )
        password = client.connection_pool.connection_kwargs.get("password")
        return cls(
            follower,
            dispatcher,
            metrics,
            settings.listener_poll_interval,
            stop,
            ws_url=settings.ws_url,
            redis_endpoint=redis_endpoint(client),
            secrets=_broker_secrets(settings, password),
        )

    @staticmethod
    def _reverted(dispatcher: Dispatcher, client: redis.Redis, event_ids: list[str]) -> None:
        """A reorg deeper than the confirmations: mark the orphaned events reverted, then reset the nonces."""
        if event_ids:
            dispatcher.revert(event_ids)
        reset = reset_nonce_counters(client)
        log.warning("deep reorg: reset %s fleet nonce counters; senders re-read their nonces from the node", reset)

    def step(self) -> StepResult:
        result = self.follower.step()
        if result.reorg_depth:
            self.metrics.reorgs.labels(kind="deep").inc()
        if result.advanced:
            self.metrics.checkpoint.set(result.to_block)
        self.metrics.head_lag.set(max(0, result.head - max(result.to_block, result.from_block - 1)))
        return result

    def run(self, *, max_seconds: float | None = None) -> None:
        """Follow the chain until ``stop()`` (or SIGTERM/SIGINT via ``install_signal_handlers``)."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        wakeup = HeadWakeup(self.ws_url, self.wake).start() if self.ws_url else None
        try:
            self._loop(deadline)
        finally:
            if wakeup:
                wakeup.stop()

    def _loop(self, deadline: float | None) -> None:
        delay, failures = self.retry_initial, 0
        while not self.stop_event.is_set():
            if deadline is not None and time.monotonic() > deadline:
                return
            try:
                result = self.step()
            except Exception as exc:  # an RPC or Redis outage (or a bug): one line, back off, carry on
                failures += 1
                self._report(exc, failures, delay)
                self.stop_event.wait(delay)
                delay = min(self.retry_max, delay * 2)
                continue
            if failures:
                log.info("listener recovered after %s failed steps", failures)
                delay, failures = self.retry_initial, 0
            if not result.advanced:
                self.wake.wait(self.poll_interval)  # a new head (WebSocket) or stop() ends the wait early
                self.wake.clear()

    def _report(self, exc: Exception, failures: int, delay: float) -> None:
        """One line per failed step, naming the endpoint (redacted). Why no traceback: an outage repeats it
        every few seconds for as long as it lasts; it goes to DEBUG (and, for an unexpected error, to ERROR
        once per streak of failures, as that is a bug to fix)."""
        if isinstance(exc, RpcUnavailable):
            what, outage = str(exc), True
        elif isinstance(exc, RPC_DOWN):
            what, outage = f"RPC {self.follower.pool.endpoints} failed: {short_reason(exc)}", True
        elif isinstance(exc, REDIS_DOWN):
            what, outage = f"Redis or broker ({self.redis_endpoint}) unavailable: {short_reason(exc)}", True
        else:
            what, outage = f"listener step failed: {short_reason(exc)}", False
        line = f"{what}; step retried in {delay:.1f} s (failed steps in a row: {failures})"
        log.log(logging.WARNING if outage else logging.ERROR, "%s", self.redact(line))
        level = logging.DEBUG if outage or failures > 1 else logging.ERROR
        if log.isEnabledFor(level):
            log.log(level, "traceback of the failed step:\n%s", self.redact("".join(traceback.format_exception(exc))))

    def redact(self, message: str) -> str:
        """``message`` without the RPC URLs' keys or passwords and without the Redis password."""
        message = redact_text(message, self.follower.pool.urls)
        for secret in self.secrets:
            message = message.replace(secret, "…")
        return message

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: stopping after the current step", signum)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def main(settings: Settings | None = None) -> None:
    from agentfleet.protocol.app import app

    settings = settings or Settings()
    configure_logging(settings)
    listener = Listener.build(settings, app=app)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(listener.redact))
    if settings.listener_metrics_port:
        start_http_server(
            settings.listener_metrics_port, addr=settings.metrics_address, registry=listener.metrics.registry
        )
    listener.install_signal_handlers()
    log.info("listener following from block %s", listener.follower.start_block)
    listener.run()


def _broker_secrets(settings: Settings, redis_password: object) -> tuple[str, ...]:
    """What a log line must never show: the Redis password and the broker URL's password (RabbitMQ)."""
    from urllib.parse import urlsplit

    found = [str(redis_password)] if redis_password else []
    broker = settings.broker_url.get_secret_value() if settings.broker_url is not None else ""
    try:
        broker_password = urlsplit(broker).password if broker else None
    except ValueError:
        broker_password = None
    if broker_password:
        found.append(broker_password)
    return tuple(found)
