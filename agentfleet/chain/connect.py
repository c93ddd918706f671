"""Building a Web3 connection: HTTP with failover, or the in-process py-evm chain.

Why failover here: every process takes its RPC URLs from the same setting; the first endpoint that
answers ``eth_chainId`` is used, so a dead primary node does not stop a worker from starting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.types import RPCEndpoint

from agentfleet.chain.errors import ChainError
from agentfleet.settings import redact_url

log = logging.getLogger(__name__)


CACHEABLE = {
    RPCEndpoint(name)
    for name in ("eth_chainId", "net_version", "web3_clientVersion", "eth_getBlockByNumber", "eth_getBlockByHash")
}


def http_web3(url: str, *, timeout: float = 10.0) -> Web3:
    """A Web3 over HTTP with web3's request cache for what cannot change: the chain id and finalized blocks.

    Transaction lookups are left out of the cache: web3 8.0.0 validates a cached ``eth_getTransactionByHash``
    from the block number in its result, which a pending transaction lacks, and logs a traceback every time."""
    provider = HTTPProvider(
        url,
        request_kwargs={"timeout": timeout},
        cache_allowed_requests=True,
        cacheable_requests=CACHEABLE,
    )
    return Web3(provider)


def connect(urls: Sequence[str], *, timeout: float = 10.0, expected_chain_id: int | None = None) -> Web3:
    """The first endpoint of ``urls`` that answers (and has the expected chain id)."""
    problems: list[str] = []
    for url in urls:
        w3 = http_web3(url, timeout=timeout)
        try:
            chain_id = w3.eth.chain_id
        except Exception as exc:  # connection refused, timeout, garbage: try the next one
            problems.append(f"{redact_url(url)}: {type(exc).__name__}")
            log.warning("RPC endpoint %s unavailable: %s", redact_url(url), type(exc).__name__)
            continue
        if expected_chain_id is not None and chain_id != expected_chain_id:
            problems.append(f"{redact_url(url)}: chain id {chain_id} != {expected_chain_id}")
            continue
        return w3
    raise ChainError("no RPC endpoint answered: " + "; ".join(problems))


def inprocess_web3() -> Web3:
    """A fresh in-process py-evm chain (eth-tester): no node, ten funded unlocked accounts."""
    return Web3(EthereumTesterProvider())


def is_inprocess(w3: Web3) -> bool:
    return isinstance(w3.provider, EthereumTesterProvider)
