"""Nonce allocation under concurrency, against a real anvil and a real redis-server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import redis
from web3 import Web3

from agentfleet.chain.client import ChainClient
from agentfleet.chain.connect import http_web3
from agentfleet.chain.keys import derive_account
from agentfleet.chain.nonces import LocalNonceAllocator, RedisNonceAllocator
from agentfleet.protocol import keys
from agentfleet.settings import DEV_MNEMONIC
from shell.services import AnvilNode, RedisServer

pytestmark = pytest.mark.anvil

SENDER_INDEX = 7  # one agent address shared by every process

CHILD = textwrap.dedent(
    """
    import json, sys
    from concurrent.futures import ThreadPoolExecutor
    import redis
    from agentfleet.chain.client import ChainClient
    from agentfleet.chain.connect import http_web3
    from agentfleet.chain.keys import derive_account
    from agentfleet.chain.nonces import RedisNonceAllocator
    from agentfleet.settings import DEV_MNEMONIC

    rpc, redis_url, count, index, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    w3 = http_web3(rpc)
    client = ChainClient(w3, nonces=RedisNonceAllocator(redis.Redis.from_url(redis_url), chain_id=w3.eth.chain_id))
    account = derive_account(DEV_MNEMONIC, index)

    def one(i):
        to = "0x" + f"{tag:04x}{i:036x}"
        receipt = client.transfer(account, w3.to_checksum_address(to), 1)
        return receipt["status"]

    with ThreadPoolExecutor(max_workers=3) as pool:
        statuses = list(pool.map(one, range(count)))
    print(json.dumps(statuses))
    """
)


def _run_children(node: AnvilNode, server: RedisServer, counts: list[int]) -> list[list[int]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, node.url, server.url, str(n), str(SENDER_INDEX), str(tag)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag, n in enumerate(counts, start=1)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_fifty_transactions_from_four_processes_all_land(anvil: AnvilNode, redis_server: RedisServer) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    w3 = http_web3(anvil.url)
    sender = derive_account(DEV_MNEMONIC, SENDER_INDEX).address
    start = w3.eth.get_transaction_count(sender)

    results = _run_children(anvil, redis_server, [13, 13, 12, 12])

    assert [len(r) for r in results] == [13, 13, 12, 12]
    assert all(status == 1 for r in results for status in r)
    assert w3.eth.get_transaction_count(sender) == start + 50
    for tag, n in enumerate([13, 13, 12, 12], start=1):  # every transfer arrived exactly once
        for i in range(n):
            assert w3.eth.get_balance(Web3.to_checksum_address("0x" + f"{tag:04x}{i:036x}")) == 1


def test_stale_counter_recovers_from_nonce_too_low(anvil: AnvilNode, redis_client: redis.Redis) -> None:
    """Another sender used the key behind the allocator's back: the counter resyncs, nothing surfaces."""
    w3 = http_web3(anvil.url)
    account = derive_account(DEV_MNEMONIC, SENDER_INDEX)
    allocator = RedisNonceAllocator(redis_client, chain_id=w3.eth.chain_id)
    client = ChainClient(w3, nonces=allocator)
    client.transfer(account, "0x" + "11" * 20, 1)  # counter now at 1
    other = ChainClient(w3, nonces=LocalNonceAllocator())  # a second sender the allocator cannot see
    for _ in range(3):
        other.transfer(account, "0x" + "22" * 20, 1)

    receipt = client.transfer(account, "0x" + "33" * 20, 5)

    assert receipt["status"] == 1
    assert w3.eth.get_transaction_count(account.address) == 5
    assert int(redis_client.get(f"{keys.NONCE}:{w3.eth.chain_id}:{account.address.lower()}") or 0) == 5


def test_failed_send_leaves_no_gap(anvil: AnvilNode, redis_client: redis.Redis) -> None:
    """A transaction the node refuses (here: gas limit too low) must not consume a nonce."""
    w3 = http_web3(anvil.url)
    account = derive_account(DEV_MNEMONIC, SENDER_INDEX)
    client = ChainClient(w3, nonces=RedisNonceAllocator(redis_client, chain_id=w3.eth.chain_id))
    with pytest.raises(Exception, match=r"(?i)gas"):
        client.send(account, {"to": "0x" + "44" * 20, "value": 1, "gas": 1000})
    receipt = client.transfer(account, "0x" + "44" * 20, 1)
    assert receipt["status"] == 1
    assert w3.eth.get_transaction_count(account.address) == 1
