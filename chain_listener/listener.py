"""Assembling and running the listener from settings (``python -m chain_listener``, ``agentfleet listen``)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

import redis
from celery import Celery
from prometheus_client import start_http_server

from agentfleet.chain.artifacts import Deployment
from agentfleet.directory import AgentDirectory
from agentfleet.logs import configure_logging
from agentfleet.settings import Settings
from chain_listener.checkpoint import CheckpointStore
from chain_listener.dispatch import Dispatcher
from chain_listener.events import EventDecoder
from chain_listener.follower import ChainFollower, StepResult
from chain_listener.metrics import ListenerMetrics
from chain_listener.rpc import AdaptiveLogFetcher, RpcPool
from chain_listener.wakeup import HeadWakeup

log = logging.getLogger(__name__)


@dataclass
class Listener:
    follower: ChainFollower
    dispatcher: Dispatcher
    metrics: ListenerMetrics
    poll_interval: float
    stop_event: threading.Event
    wake: threading.Event = field(default_factory=threading.Event)
    ws_url: str | None = None

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
        client = redis_client or redis.Redis.from_url(settings.redis_url.get_secret_value())
        deployment = deployment or Deployment.load(settings.contract_addresses_path)
        pool = pool or RpcPool(
            settings.rpc_urls, on_error=lambda url, _exc: metrics.rpc_errors.labels(endpoint=url).inc()
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
        )
        follower = ChainFollower(
            pool=pool,
            fetcher=fetcher,
            store=CheckpointStore(client, chain_id=deployment.chain_id),
            start_block=deployment.deployment_block,
            confirmations=settings.confirmations,
            on_logs=dispatcher.handle,
            on_reverted=dispatcher.revert,
            on_shallow_reorg=lambda _depth: metrics.reorgs.labels(kind="shallow").inc(),
        )
        return cls(
            follower, dispatcher, metrics, settings.listener_poll_interval, threading.Event(), ws_url=settings.ws_url
        )

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
        while not self.stop_event.is_set():
            if deadline is not None and time.monotonic() > deadline:
                return
            try:
                result = self.step()
            except Exception:  # an RPC outage or a Redis hiccup: log, back off, carry on
                log.exception("listener step failed; retrying")
                self.stop_event.wait(1.0)
                continue
            if not result.advanced:
                self.wake.wait(self.poll_interval)  # a new head (WebSocket) or stop() ends the wait early
                self.wake.clear()

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
    from workers import app

    settings = settings or Settings()
    configure_logging(settings)
    listener = Listener.build(settings, app=app)
    if settings.listener_metrics_port:
        start_http_server(
            settings.listener_metrics_port, addr=settings.metrics_address, registry=listener.metrics.registry
        )
    listener.install_signal_handlers()
    log.info("listener following from block %s", listener.follower.start_block)
    listener.run()
