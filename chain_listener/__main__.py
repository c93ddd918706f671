"""``python -m chain_listener``: parse the command line first, then follow the chain.

Why parse before importing the listener: ``--help`` or a typo must answer at once and must never touch
the chain or Redis (the listener starts following as soon as it is built).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agentfleet.settings import Settings

# Settings the listener reads (all of them come from the environment or .env, none from flags).
LISTENER_SETTINGS = (
    "rpc_urls",
    "ws_url",
    "redis_url",
    "broker_url",
    "contract_addresses_path",
    "confirmations",
    "listener_poll_interval",
    "listener_batch_blocks",
    "listener_max_batch_blocks",
    "listener_stream_maxlen",
    "listener_metrics_port",
    "metrics_address",
    "log_level",
    "log_format",
)


def parser() -> argparse.ArgumentParser:
    fields = Settings.model_fields
    settings = "\n".join(
        f"  {'AGENTFLEET_' + name.upper():<37}{fields[name].description or ''}" for name in LISTENER_SETTINGS
    )
    return argparse.ArgumentParser(
        prog="python -m chain_listener",
        description=(
            "Follow the fleet's contracts on the chain (confirmed, reorg-aware, resuming from its checkpoint in\n"
            "Redis) and turn their events into Celery work and entries of the event stream. Runs until SIGTERM\n"
            "or Ctrl-C; RPC and Redis outages are retried with backoff. Same as `agentfleet listen`."
        ),
        epilog=f"Configuration comes from AGENTFLEET_* environment variables (or .env), e.g.:\n{settings}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser().parse_args(argv)  # exits 0 on --help, 2 on anything unknown
    from chain_listener.listener import main as run

    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
