"""Prometheus metrics of the listener (served on ``AGENTFLEET_LISTENER_METRICS_PORT`` when set)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ListenerMetrics:
    """One registry per listener so tests can run several listeners in one process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.head_lag = Gauge(
            "agentfleet_listener_head_lag_blocks", "Chain head minus checkpoint", registry=self.registry
        )
        self.checkpoint = Gauge("agentfleet_listener_checkpoint_block", "Last processed block", registry=self.registry)
        self.events = Counter(
            "agentfleet_listener_events", "Events handed over, by name", ["event"], registry=self.registry
        )
        self.dispatched = Counter(
            "agentfleet_listener_work", "Work items dispatched, by task", ["task"], registry=self.registry
        )
        self.skipped = Counter(
            "agentfleet_listener_skipped_logs", "Malformed or unknown logs", ["reason"], registry=self.registry
        )
        self.reorgs = Counter(
            "agentfleet_listener_reorgs", "Reorgs detected, by kind", ["kind"], registry=self.registry
        )
        self.reverted = Counter(
            "agentfleet_listener_reverted_events", "Events reported reverted", registry=self.registry
        )
        self.rpc_errors = Counter(
            "agentfleet_listener_rpc_errors", "Failed RPC calls", ["endpoint"], registry=self.registry
        )
